"""Captioning evaluation (the paper's AudioCaps and Clotho captioning): every clip of a task
captioned by clapcap (clap_jax.caption, msclap's beam search) and scored against its references
(clap_jax.eval.caption_metrics).

    evaluator = from_settings(model_config, settings(), tokenizer=text.Tokenizer.load())
    results = evaluator.evaluate(variables)       # {task: CaptioningResult}
    write(results, workdir, model_name="clapcap")  # results.json, results.md, captions.jsonl

Tasks are the registry's CAPTIONING tasks, their clips read by clap_jax.eval.sources. A clip
stored as several pieces (shards) is captioned from the mean of its pieces' embeddings. A clip
that cannot be used is left out and named with its reason. Every process captions its own share
of the clips on its own devices; the captions are gathered and every process scores them all.
"""
import dataclasses
import json
import os
from collections.abc import Iterator, Mapping, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tensorflow as tf
import tqdm

from clap_jax import audio as audio_lib
from clap_jax import caption
from clap_jax.data import records
from clap_jax.eval import caption_metrics, multihost, sources as sources_lib
from clap_jax.eval import tasks as tasks_lib
from clap_jax.eval.tasks import CAPTIONING, Task

CAPTIONS_FILE = "captions.jsonl"


def settings() -> ml_collections.ConfigDict:
  """The evaluator's config block (launch/eval.py's `captioning`, a training run's entry)."""
  tasks = {name: t for name, t in tasks_lib.TASKS.items() if t.kind == CAPTIONING}
  c = ml_collections.ConfigDict()
  c.tasks = tuple(tasks)
  c.data_dir = "data"  # relative source roots and shard patterns are found here
  c.sources = ml_collections.ConfigDict({name: dict(t.source) for name, t in tasks.items()})
  c.beam_size = 5  # generate_caption's defaults
  c.max_length = 67
  c.temperature = 1.0
  c.batch_size = 32  # clips captioned together
  c.long_mode = "windows"  # clip longer than the model's: one of clap_jax.audio.LONG_MODES
  return c


@dataclasses.dataclass
class CaptioningResult:
  task: Task
  metrics: dict[str, float] = dataclasses.field(default_factory=dict)
  missing: dict[str, str] = dataclasses.field(default_factory=dict)  # metric -> why not computed
  skipped: str | None = None  # why, when the task's data is missing
  num_items: int = 0
  unusable: list[str] = dataclasses.field(default_factory=list)  # "clip: reason", left out
  captions: list[dict] = dataclasses.field(default_factory=list)  # {item_id, caption, references}


def from_settings(model_config: ml_collections.ConfigDict, config: ml_collections.ConfigDict, *,
                  tokenizer, tasks: Sequence[str | Task] | None = None,
                  sources: Mapping | None = None, progress: bool = True) -> "CaptioningEvaluator":
  """The evaluator of a `settings()` block; `tasks` / `sources` replace or add to the block's."""
  return CaptioningEvaluator(
      model_config, config.tasks if tasks is None else tasks, tokenizer=tokenizer,
      sources={**config.sources.to_dict(), **(sources or {})}, data_dir=config.data_dir,
      beam_size=config.beam_size, max_length=config.max_length, temperature=config.temperature,
      batch_size=config.batch_size, long_mode=config.long_mode, progress=progress)


class CaptioningEvaluator:
  """Captions and scores a fixed list of captioning tasks; the jitted decoder is built once."""

  def __init__(self, model_config: ml_collections.ConfigDict, tasks: Sequence[str | Task], *,
               tokenizer, sources: Mapping[str, Mapping | sources_lib.Source] | None = None,
               data_dir: str = ".", beam_size: int = 5, max_length: int = 67,
               temperature: float = 1.0, batch_size: int = 32, long_mode: str = "windows",
               progress: bool = True):
    audio_lib.check_long_mode(long_mode)
    self.tasks = [tasks_lib.get(t) if isinstance(t, str) else t for t in tasks]
    other = [t.name for t in self.tasks if t.kind != CAPTIONING]
    if other:
      raise ValueError(f"{other}: not captioning tasks")
    unknown = set(sources or {}) - set(tasks_lib.TASKS) - {t.name for t in self.tasks}
    if unknown:
      raise ValueError(f"sources given for unknown tasks: {sorted(unknown)}")
    self.model_config, self.tokenizer = model_config, tokenizer
    self.sources, self.data_dir = dict(sources or {}), data_dir
    self.options = {"beam_size": beam_size, "max_length": max_length, "temperature": temperature}
    self.batch_size, self.long_mode, self.progress = batch_size, long_mode, progress
    self._captioner = None

  def run(self, variables) -> Iterator[tuple[str, float]]:
    """('task/metric', value) for every metric computed (big_vision's evaluator protocol)."""
    for name, result in self.evaluate(variables).items():
      for metric, value in result.metrics.items():
        yield f"{name}/{metric}", value

  def evaluate(self, variables) -> dict[str, CaptioningResult]:
    captioner = self._with_variables(variables)
    results = {}
    for task in self.tasks:
      source, reason = sources_lib.open_or_reason(task, self.sources.get(task.name), self.data_dir)
      # Data absent or malformed in any process's copy skips the task in all (zeroshot.py).
      reason = multihost.common_reason(reason)
      if reason is None:
        results[task.name] = self._evaluate_task(captioner, task, source)
      else:
        results[task.name] = CaptioningResult(task, skipped=reason)
    return results

  def _with_variables(self, variables) -> caption.Captioner:
    # One Captioner, so its jitted functions compile once; later evaluations swap the variables.
    if self._captioner is None:
      self._captioner = caption.Captioner(self.model_config, variables, self.tokenizer,
                                          long_audio=self.long_mode)
    else:
      self._captioner.variables = jax.tree.map(jnp.asarray, variables)
    return self._captioner

  def _evaluate_task(self, captioner, task: Task, source: sources_lib.Source) -> CaptioningResult:
    records, unusable = [], []
    bar = tqdm.tqdm(desc=task.name, unit="clip", total=source.size,
                    disable=not self.progress or jax.process_index() != 0)
    chunk, error = [], None
    try:
      for key_item in source.local_items(jax.process_index(), jax.process_count()):
        chunk.append(key_item)
        if len(chunk) == self.batch_size:
          records += self._caption_chunk(captioner, chunk, unusable)
          bar.update(len(chunk))
          chunk = []
      if chunk:
        records += self._caption_chunk(captioner, chunk, unusable)
        bar.update(len(chunk))
    # This process's share is malformed or unreadable: all give up (any error: the others would
    # otherwise wait at the next gather for ever).
    except Exception as e:  # pylint: disable=broad-exception-caught
      error = sources_lib.failure_reason(e)
    bar.close()
    error = multihost.common_reason(error)
    if error is not None:
      return CaptioningResult(task, skipped=error)
    records = sorted(map(json.loads, multihost.gather_strings(records)), key=lambda r: r["key"])
    unusable = multihost.gather_strings(unusable)
    if not records:
      return CaptioningResult(task, skipped=f"none of its {len(unusable)} clips could be used, "
                              f"e.g. {unusable[0]}", unusable=unusable)
    metrics, missing = caption_metrics.score({str(r["key"]): r["caption"] for r in records},
                                             {str(r["key"]): r["references"] for r in records})
    captions = [{k: r[k] for k in ("item_id", "caption", "references")} for r in records]
    return CaptioningResult(task, metrics, missing, num_items=len(records), unusable=unusable,
                            captions=captions)

  def _caption_chunk(self, captioner, chunk, unusable: list[str]) -> list[str]:
    """(key, Item)s -> JSON records {key, item_id, caption, references} of the usable ones; the
    others are added to `unusable`."""
    embedded = []
    for key, item in chunk:
      if not item.captions:
        raise sources_lib.SourceError(f"{item.item_id}: a captioning clip needs reference captions")
      pieces = [item.audio] if isinstance(item.audio, str) else list(item.audio)
      try:
        embedding = captioner.audio_embeddings(pieces, sample_rate=item.rate).mean(axis=0)
      except audio_lib.AudioError as e:  # a file's message names it; pieces are named here
        unusable.append(str(e) if isinstance(item.audio, str) else f"{item.item_id}: {e}")
        tqdm.tqdm.write(f"left out {unusable[-1]}")
        continue
      embedded.append((key, item, embedding))
    if not embedded:
      return []
    captions = captioner.captions_of(np.stack([e for _, _, e in embedded]), **self.options)
    return [json.dumps({"key": key, "item_id": item.item_id, "caption": text,
                        "references": list(item.captions)})
            for (key, item, _), text in zip(embedded, captions)]


# Results -----------------------------------------------------------------------------------------

def write(results: Mapping[str, CaptioningResult], out_dir: str | os.PathLike, *,
          model_name: str) -> dict:
  """results.json, results.md and captions.jsonl (one line per clip) into `out_dir`; returns
  the JSON content. `out_dir` may be on object storage (gs://...): tf.io.gfile writes."""
  out_dir = os.fspath(out_dir)
  tf.io.gfile.makedirs(out_dir)
  content = to_json(results, model_name)
  records.write_text(os.path.join(out_dir, "results.json"), json.dumps(content, indent=1))
  records.write_text(os.path.join(out_dir, "results.md"), markdown(results, model_name))
  records.write_text(os.path.join(out_dir, CAPTIONS_FILE), "".join(
      json.dumps({"task": name, **record}) + "\n"
      for name, result in results.items() for record in result.captions))
  return content


def to_json(results: Mapping[str, CaptioningResult], model_name: str) -> dict:
  tasks = {}
  for name, r in results.items():
    entry = {"title": r.task.title, "group": r.task.group, "kind": r.task.kind,
             "in_paper": r.task.in_paper, "metrics": r.metrics, "num_items": r.num_items}
    for field in ("missing", "skipped", "unusable"):
      if getattr(r, field):
        entry[field] = getattr(r, field)
    if r.task.note:
      entry["note"] = r.task.note
    tasks[name] = entry
  return {"model": model_name, "tasks": tasks}


def markdown(results: Mapping[str, CaptioningResult], model_name: str) -> str:
  """One row per task, one column per metric ('-': not computed, with why below)."""
  lines = [f"# Captioning results: {model_name}", "",
           "| task | clips | " + " | ".join(caption_metrics.METRICS) + " |",
           "|---" * (len(caption_metrics.METRICS) + 2) + "|"]
  for name, r in results.items():
    if r.skipped is not None:
      lines.append(f"| {name} | 0 | " + " | ".join("-" for _ in caption_metrics.METRICS) + " |")
      continue
    cells = [f"{r.metrics[m]:.4f}" if m in r.metrics else "-" for m in caption_metrics.METRICS]
    lines.append(f"| {name} | {r.num_items} | " + " | ".join(cells) + " |")
  notes = [f"- {name}: skipped: {r.skipped}" for name, r in results.items() if r.skipped]
  notes += [f"- {name}: {metric} not computed: {why}" for name, r in results.items()
            for metric, why in r.missing.items()]
  notes += [f"- {name}: {r.task.note}" for name, r in results.items() if r.task.note]
  notes += [f"- {name}: left out {clip}" for name, r in results.items() for clip in r.unusable]
  if notes:
    lines += ["", *notes]
  return "\n".join(lines) + "\n"
