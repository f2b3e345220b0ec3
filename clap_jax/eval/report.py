"""Writing evaluation results: results.json, a markdown table laid out like the paper's, our
numbers beside the paper's Table 2 with the Zero-Shot score (clap_jax.eval.paper) and its plot
(paper.png), and per task a confusion matrix (single-label), a per-class AP chart (multi-label)
or recall bars (retrieval). `out_dir` may be on object storage (gs://...): tf.io.gfile writes."""
import json
import os
from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from clap_jax.data import records
from clap_jax.eval import metrics, paper
from clap_jax.eval.zeroshot import TaskResult
from clap_jax.eval.tasks import MULTI_LABEL, RETRIEVAL, SINGLE_LABEL, Task

# The paper's headline number per task kind (retrieval: both directions); a multi-label task's
# is its `headline` (mAP, or F1 for DCASE17 Task 4).
HEADLINE = {SINGLE_LABEL: ("top1",), RETRIEVAL: ("t2a/R@1", "a2t/R@1")}


def _headline(task: Task) -> tuple[str, ...]:
  return HEADLINE.get(task.kind, (task.headline,))


def write(results: Mapping[str, TaskResult], out_dir: str | os.PathLike, *, model_name: str) -> dict:
  """Writes results.json, results.md and the plots into `out_dir`; returns the JSON content."""
  out_dir = os.fspath(out_dir)
  tf.io.gfile.makedirs(out_dir)
  content = to_json(results, model_name)
  records.write_text(os.path.join(out_dir, "results.json"), json.dumps(content, indent=1))
  records.write_text(os.path.join(out_dir, "results.md"), markdown(results, model_name))
  for result in results.values():
    if result.skipped is None:
      plot(result, out_dir)
  plot_paper(paper.comparison(results), os.path.join(out_dir, "paper.png"), model_name=model_name)
  return content


def to_json(results: Mapping[str, TaskResult], model_name: str) -> dict:
  tasks = {}
  for name, r in results.items():
    tasks[name] = {"title": r.task.title, "group": r.task.group, "kind": r.task.kind,
                   "templates": list(r.task.templates), "in_paper": r.task.in_paper,
                   "metrics": r.metrics, "num_items": r.num_items}
    if r.skipped is not None:
      tasks[name]["skipped"] = r.skipped
    if r.unusable:
      tasks[name]["unusable"] = r.unusable
    if r.task.note:
      tasks[name]["note"] = r.task.note
  rows = paper.comparison(results)
  return {"model": model_name, "tasks": tasks,
          "paper": {"rows": rows, "zero_shot_score": paper.zero_shot_scores(rows)}}


def markdown(results: Mapping[str, TaskResult], model_name: str) -> str:
  """The headline table (one column per task and headline metric, as the paper's Table 2) and a
  detailed table with every metric; skipped tasks show '-' and why; clips left out are listed."""
  columns = [(r, m) for r in results.values() for m in _headline(r.task)]

  def header(r, metric):
    if len(_headline(r.task)) == 1:
      return r.task.title
    return f"{r.task.title} {metric.split('/')[0].upper()}"

  def cell(r, metric):
    return "-" if r.skipped is not None else f"{r.metrics[metric]:.4f}"

  lines = [f"# Zero-shot results: {model_name}", ""]
  lines.append("| | " + " | ".join(header(r, m) for r, m in columns) + " |")
  lines.append("|---" * (len(columns) + 1) + "|")
  lines.append("| task | " + " | ".join(r.task.group for r, _ in columns) + " |")
  lines.append("| metric | " + " | ".join(m.split("/")[-1] for _, m in columns) + " |")
  lines.append(f"| {model_name} | " + " | ".join(cell(r, m) for r, m in columns) + " |")
  lines += ["", "| task | metric | value | clips | note |", "|---|---|---|---|---|"]
  for name, r in results.items():
    if r.skipped is not None:
      lines.append(f"| {name} | - | skipped | 0 | {r.skipped} |")
      continue
    for i, (metric, value) in enumerate(r.metrics.items()):
      note = r.task.note if i == 0 else ""
      lines.append(f"| {name} | {metric} | {value:.4f} | {r.num_items} | {note} |")
  notes = [f"- {name}: {r.task.note}" for name, r in results.items() if r.task.note]
  if notes:
    lines += ["", "Notes:", *notes]
  left_out = [f"- {name}: {clip}" for name, r in results.items() for clip in r.unusable]
  if left_out:
    lines += ["", f"Clips left out ({len(left_out)}, not in the metrics):", *left_out]
  lines += ["", *paper_markdown(paper.comparison(results), model_name)]
  return "\n".join(lines) + "\n"


def paper_markdown(rows: list[dict], model_name: str) -> list[str]:
  """Every row of the paper's Table 2 with ours beside it (or why not), and the Zero-Shot score."""
  def number(x):
    return "-" if x is None else f"{x:.4f}"
  lines = ["## Beside the paper (MS-CLAP 2023, Table 2)", "",
           "Ours on the clips present here (`clips`), the paper's on the whole evaluation sets.", "",
           f"| task | metric | {model_name} | clips | MS-CLAP 2023 | benchmark | difference | note |",
           "|---|---|---|---|---|---|---|---|"]
  for r in rows:
    difference = "-" if r["difference"] is None else f"{r['difference']:+.4f}"
    lines.append(f"| {r['task']} | {r['metric']} | {number(r['ours'])} | {r['clips']} | {r['paper']:.4f} | "
                 f"{r['benchmark']:.4f} ({r['benchmark_source']}) | {difference} | "
                 f"{r['skipped'] or ''} |")
  lines += ["", "Zero-Shot score (mean of the tasks' metrics; a retrieval direction by its R@1), "
            "over the tasks that ran, the paper's over the same tasks:"]
  for name, title in (("table2", "Table 2's tasks"), ("table1", "Table 1's tasks")):
    s = paper.zero_shot_scores(rows)[name]
    lines.append(f"- {title}: {s['ran']} of {s['tasks']} ran: {model_name} {number(s['ours'])}, "
                 f"MS-CLAP 2023 {number(s['paper'])}")
  return lines


def plot_paper(rows: list[dict], path: str | os.PathLike, *, model_name: str) -> str:
  """Horizontal bars per Table 2 row: the paper's MS-CLAP 2023, ours where the task ran, and the
  benchmark as a tick."""
  labels = [f"{r['task']} ({r['metric']})" for r in rows]
  y = np.arange(len(rows))
  fig, ax = _subplots(figsize=(8, 0.28 * len(rows) + 1.5))
  ax.barh(y - 0.2, [r["paper"] for r in rows], 0.4, color="tab:gray", label="MS-CLAP 2023")
  ran = [i for i, r in enumerate(rows) if r["ours"] is not None]
  ax.barh(y[ran] + 0.2, [rows[i]["ours"] for i in ran], 0.4, color="tab:blue", label=model_name)
  ax.scatter([r["benchmark"] for r in rows], y, marker="|", s=80, color="black", label="benchmark")
  ax.set_yticks(y, labels, fontsize=7)
  ax.invert_yaxis()
  ax.set_xlim(0, 1)
  ax.legend(loc="lower right", fontsize=8)
  ax.set_title(f"{model_name} beside the paper: {len(ran)} of {len(rows)} rows ran")
  return _save_png(fig, path)


def plot(result: TaskResult, out_dir: str | os.PathLike) -> str:
  """The task's chart as `{task}_{confusion|ap|recall}.png`."""

  task = result.task
  if task.kind == SINGLE_LABEL:
    fig, name = _confusion(task, result), f"{task.name}_confusion.png"
  elif task.kind == MULTI_LABEL:
    fig, name = _per_class_ap(task, result), f"{task.name}_ap.png"
  else:
    fig, name = _recall(task, result), f"{task.name}_recall.png"
  return _save_png(fig, os.path.join(out_dir, name))


def _save_png(fig, path: str | os.PathLike) -> str:
  path = os.fspath(path)
  with tf.io.gfile.GFile(path, "wb") as f:
    fig.savefig(f, format="png", dpi=100, bbox_inches="tight")
  return path


def _subplots(figsize):
  """A figure that is never shown: matplotlib's object API, so no pyplot state or backend switch."""
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  fig = Figure(figsize=figsize)
  return fig, fig.subplots()


def _label_texts(task: Task) -> list[str]:
  return [label.replace("_", " ") for label in task.labels]


def _confusion(task: Task, result: TaskResult):
  n = len(task.labels)
  counts = metrics.confusion_matrix(result.targets.argmax(1), result.scores.argmax(1), n)
  # Row-normalised: each true class sums to 1, so rare classes are as readable as common ones.
  rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
  size = max(4.0, 0.22 * n + 2)
  fig, ax = _subplots(figsize=(size + 1, size))
  image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
  fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of the true class")
  ax.set_xticks(range(n), _label_texts(task), rotation=90, fontsize=7 if n > 20 else 9)
  ax.set_yticks(range(n), _label_texts(task), fontsize=7 if n > 20 else 9)
  ax.set_xlabel("predicted")
  ax.set_ylabel("true")
  if n <= 20:
    for (i, j), c in np.ndenumerate(counts):
      if c:
        ax.text(j, i, str(c), ha="center", va="center", fontsize=8,
                color="white" if rates[i, j] > 0.5 else "black")
  ax.set_title(f"{task.title}: top-1 {result.metrics['top1']:.3f} ({result.num_items} clips)")
  return fig


def _per_class_ap(task: Task, result: TaskResult):
  ap = metrics.per_class_average_precision(result.targets, result.scores)
  present = np.flatnonzero(~np.isnan(ap))
  order = present[np.argsort(ap[present])]
  labels = _label_texts(task)
  fig, ax = _subplots(figsize=(7, max(3.0, 0.18 * len(order) + 1)))
  ax.barh(range(len(order)), ap[order], color="tab:blue")
  ax.set_yticks(range(len(order)), [labels[i] for i in order], fontsize=7 if len(order) > 30 else 9)
  ax.set_xlim(0, 1)
  ax.set_xlabel("average precision")
  ax.set_title(f"{task.title}: mAP {result.metrics['mAP']:.3f} over {len(present)} classes "
               f"({result.num_items} clips)")
  return fig


def _recall(task: Task, result: TaskResult):
  directions = ("t2a", "a2t")
  ks = [k for k in result.metrics if k.startswith("t2a/")]
  fig, ax = _subplots(figsize=(6, 3.5))
  width = 0.4
  for d, direction in enumerate(directions):
    values = [result.metrics[k.replace("t2a", direction)] for k in ks]
    ax.bar(np.arange(len(ks)) + (d - 0.5) * width, values, width,
           label={"t2a": "text to audio", "a2t": "audio to text"}[direction])
  ax.set_xticks(range(len(ks)), [k.split("/")[1] for k in ks])
  ax.set_ylim(0, 1)
  ax.legend()
  ax.set_title(f"{task.title} retrieval ({result.num_items} clips, {len(result.targets)} captions)")
  return fig
