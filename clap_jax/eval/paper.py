"""Our results beside the paper's (MS-CLAP 2023, arXiv 2309.05767v2): per row of its Table 2 our
number, the paper's MS-CLAP 2023 number and the benchmark column, and the Zero-Shot score.

The Zero-Shot score is, as the paper defines it (Table 1), the average of the tasks' metrics. A
task's metric is its first row in Table 2: a retrieval direction counts with its R@1 (ours: the
paper averages one number per task and does not say which retrieval metric; R@1 is its first).
Scores are taken over the tasks that ran, and the paper's over the same tasks, so the two are
comparable; each says how many of the 26 (or of Table 1's 16) it covers.

Tables: clap_jax/assets/paper/ (transcribed from the paper; see its README).
"""
import csv
import pathlib
from collections.abc import Mapping

import numpy as np

from clap_jax.eval import tasks as tasks_lib

_ASSETS = pathlib.Path(__file__).resolve().parents[1] / "assets" / "paper"
_DIRECTIONS = {"audio-to-text": "a2t", "text-to-audio": "t2a"}


def table2() -> list[dict]:
  """Table 2's rows: task, domain, metric, ms_clap_2023, benchmark, benchmark_source (floats where
  numbers)."""
  with open(_ASSETS / "ms_clap_2023_table2.csv", newline="") as f:
    rows = list(csv.DictReader(f))
  for row in rows:
    row["ms_clap_2023"], row["benchmark"] = float(row["ms_clap_2023"]), float(row["benchmark"])
  return rows


def table1_tasks() -> tuple[str, ...]:
  """The 16 tasks of Table 1 (its last row is their Zero-Shot score, not a task)."""
  with open(_ASSETS / "ms_clap_2023_table1.csv", newline="") as f:
    return tuple(row["task"] for row in csv.DictReader(f) if row["metric"] != "mean")


def metric_key(row: Mapping) -> str:
  """The key of our metrics dict that Table 2's `row` reports."""
  metric = {"accuracy": "top1"}.get(row["metric"], row["metric"])
  for words, direction in _DIRECTIONS.items():
    if row["task"].endswith(words):
      return f"{direction}/{metric}"
  return metric


def _registry_task(row_task: str) -> tasks_lib.Task:
  (task,) = [t for t in tasks_lib.TASKS.values() if t.in_paper and row_task in t.paper_rows]
  return task


def comparison(results: Mapping) -> list[dict]:
  """Per Table 2 row: the registry task, our value (None where the task did not run, with
  `skipped` saying why) and on how many clips, the paper's, the benchmark and our difference
  from the paper.

  `results`: by registry name, objects with `metrics` and `skipped` (zero-shot TaskResults,
  captioning results); a paper task absent from them was not part of the run."""
  rows = []
  for row in table2():
    task = _registry_task(row["task"])
    result = results.get(task.name)
    ours, skipped = None, None
    if result is None:
      skipped = ("not run: captioning is evaluated for a clapcap checkpoint (configs/captioning.py)"
                 if task.kind == tasks_lib.CAPTIONING else "not run: not in config.tasks")
    elif result.skipped is not None:
      skipped = result.skipped
    elif metric_key(row) not in result.metrics:
      skipped = f"no {metric_key(row)} in its metrics"
    else:
      ours = float(result.metrics[metric_key(row)])
    rows.append({"task": row["task"], "registry": task.name, "domain": row["domain"],
                 "metric": row["metric"], "ours": ours,
                 "clips": 0 if ours is None else result.num_items, "paper": row["ms_clap_2023"],
                 "benchmark": row["benchmark"], "benchmark_source": row["benchmark_source"],
                 "difference": None if ours is None else ours - row["ms_clap_2023"],
                 "skipped": skipped})
  return rows


def zero_shot_scores(rows: list[dict]) -> dict[str, dict]:
  """From `comparison` rows -> {'table2': ..., 'table1': ...}, each {'tasks': how many it
  averages over, 'ran': how many ran, 'ours', 'paper': means over the tasks that ran (None if
  none)}."""
  scored = {}  # task -> its first row, the task's metric (a retrieval direction's R@1)
  for row in rows:
    scored.setdefault(row["task"], row)
  table1 = set(table1_tasks())
  out = {}
  for name, members in {"table2": list(scored.values()),
                        "table1": [r for r in scored.values() if r["task"] in table1]}.items():
    ran = [r for r in members if r["ours"] is not None]
    out[name] = {"tasks": len(members), "ran": len(ran),
                 "ours": float(np.mean([r["ours"] for r in ran])) if ran else None,
                 "paper": float(np.mean([r["paper"] for r in ran])) if ran else None}
  return out


def score_keys(task: tasks_lib.Task) -> tuple[str, ...]:
  """The metrics (keys of an evaluator's 'task/metric' values) `task` counts with in a Zero-Shot
  score: its headline, or both retrieval directions' R@1 (two of the paper's tasks)."""
  if task.kind == tasks_lib.RETRIEVAL:
    return (f"{task.name}/a2t/R@1", f"{task.name}/t2a/R@1")
  return (f"{task.name}/{'top1' if task.headline == 'accuracy' else task.headline}",)


def training_score(values: Mapping[str, float], tasks: list[tasks_lib.Task]) -> float | None:
  """A training run's Zero-Shot score: the mean of its evaluated tasks' `score_keys` among
  `values` (None if none is there). A run's own tasks (e.g. the demo's) count as the paper's do."""
  scores = [values[key] for task in tasks for key in score_keys(task) if key in values]
  return float(np.mean(scores)) if scores else None
