"""Jitted zero-shot evaluation over a device mesh: audio and prompts -> embeddings -> metrics.

    evaluate(model, variables, tasks, mesh, *, tokenizer, batch_size, text_batch_size=None,
             sources=None, data_dir=".", templates=None, long_mode="windows", workers=4,
             progress=True) -> dict[str, TaskResult]

  model      a Flax module with `encode_audio(waveforms)`, `encode_text(input_ids, attention_mask)`
             and `config.audio.{sample_rate, clip_samples}` (clap_jax.models.clap.CLAP).
  variables  its variables: host numpy (placed once, replicated) or jax.Arrays sharded as the
             caller likes (a training state's FSDP layout is used as it is).
  tasks      task names or `tasks.Task`s.
  mesh       the batch is split over all of its axes; `batch_size` is global and must split over
             its devices; every process feeds its devices' share.
  sources    per task name: overrides of the task's source spec, or a ready `sources.Source`.
  templates  per task name: prompt templates replacing the task's (several -> ensembling).
  long_mode  a clip longer than the model's clip: 'windows' averages the embeddings of
             consecutive windows; 'random' takes one window, seeded by the clip's key.

`ZeroShotEvaluator` holds the jitted functions; training builds it once and calls `run(variables)`
for each periodic evaluation, which yields ('esc50/top1', value) pairs.

A clip that cannot be used (unreadable file, NaN samples, ...) is left out, named with the reason
in the task's `unusable` list (all processes' clips) and in a message when it is met; the metrics
cover the other clips. A task none of whose clips can be used is reported as skipped.

Exactly once: every process reads its own share of each task's clips; all processes step together
(one that has run out feeds fully masked batches); embeddings, keys and masks are gathered from
the global arrays, so every process ends with every clip, and each clip is checked to have been
seen exactly as many times as it has windows. A task whose data is absent or malformed in any
process's copy, found when it is opened or mid-run, is skipped by every process with one reason
(naming the process where they differ), so that no process waits for another in a collective.
"""
import dataclasses
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence

import jax
import ml_collections
import numpy as np
import tqdm
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec as P

from clap_jax import audio as audio_lib
from clap_jax import sharding as sharding_lib
from clap_jax import text as text_lib
from clap_jax.eval import batching, metrics, multihost, sources as sources_lib
from clap_jax.eval import tasks as tasks_lib
from clap_jax.eval.tasks import MULTI_LABEL, RETRIEVAL, Task

# Audio batches are decoded, packed and copied to the devices in a background thread, this many
# ahead of the one being encoded: on a GPU the host's part of a batch takes as long as the model's.
_BATCHES_AHEAD = 2


@dataclasses.dataclass
class TaskResult:
  task: Task
  metrics: dict[str, float] = dataclasses.field(default_factory=dict)
  skipped: str | None = None  # why, when the task's data is missing
  num_items: int = 0
  unusable: list[str] = dataclasses.field(default_factory=list)  # "clip: reason", left out
  # For the report's plots: cosine scores (N, C) and multi-hot targets (N, C) for classification;
  # scores (N, M) audio x caption and the caption owners (M,) for retrieval.
  scores: np.ndarray | None = None
  targets: np.ndarray | None = None


def settings() -> ml_collections.ConfigDict:
  """The evaluator's config block (launch/eval.py's config, a training run's 'zeroshot' entry):
  `sources` and `templates` hold every registry task's defaults, so each is settable by flag."""
  c = ml_collections.ConfigDict()
  c.tasks = tuple(tasks_lib.paper_tasks()) + ("fsdd",)
  c.data_dir = "data"  # relative source roots and shard patterns are found here
  # Per task: its source spec (tasks.py; `kind` chooses the reader) and prompt templates
  # (several: ensembling). Label aliases are part of the task, not settings.
  c.sources = ml_collections.ConfigDict(
      {name: {k: v for k, v in task.source.items() if k != "aliases"}
       for name, task in tasks_lib.TASKS.items()})
  c.templates = ml_collections.ConfigDict(
      {name: tuple(task.templates) for name, task in tasks_lib.TASKS.items()})
  c.batch_size = 64  # clips (windows) per step, over all devices
  c.text_batch_size = 256
  c.long_mode = "windows"  # clip longer than the model's: one of clap_jax.audio.LONG_MODES
  c.workers = 8  # audio decoding threads per process
  # F1 tasks (DCASE17 Task 4) need a yes/no per clip and class from the logits
  # (exp(logit_scale) x cosine): clap_jax.eval.metrics.decisions. The paper gives no threshold;
  # a clip's top-1 class does not depend on the logit scale, and most clips have one label.
  c.f1 = ml_collections.ConfigDict({"rule": "top_k", "k": 1, "threshold": 0.5, "average": "micro"})
  return c


def from_settings(model, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, *,
                  tokenizer, tasks=None, sources: Mapping | None = None,
                  progress: bool = True) -> "ZeroShotEvaluator":
  """The evaluator of a `settings()` block; `tasks` / `sources` (ready Sources by task name)
  replace or add to the block's."""
  return ZeroShotEvaluator(
      model, config.tasks if tasks is None else tasks, mesh, tokenizer=tokenizer,
      batch_size=config.batch_size, text_batch_size=config.text_batch_size,
      sources={**config.sources.to_dict(), **(sources or {})}, data_dir=config.data_dir,
      templates={name: tuple(t) for name, t in config.templates.items()},
      long_mode=config.long_mode, workers=config.workers, progress=progress,
      f1=config.f1.to_dict())


def evaluate(model, variables, tasks: Sequence[str | Task], mesh: jax.sharding.Mesh,
             **settings) -> dict[str, TaskResult]:
  """Evaluates `tasks` once; see the module docstring for the arguments."""
  return ZeroShotEvaluator(model, tasks, mesh, **settings).evaluate(variables)


class ZeroShotEvaluator:
  """Zero-shot evaluation of a fixed list of tasks; the jitted encoders are built once."""

  def __init__(self, model, tasks: Sequence[str | Task], mesh: jax.sharding.Mesh, *, tokenizer,
               batch_size: int, text_batch_size: int | None = None,
               sources: Mapping[str, Mapping | sources_lib.Source] | None = None,
               data_dir: str = ".", templates: Mapping[str, Sequence[str]] | None = None,
               long_mode: str = "windows", workers: int = 4, progress: bool = True,
               f1: Mapping | None = None):
    audio_lib.check_long_mode(long_mode)
    self.f1 = {"rule": "top_k", "k": 1, "threshold": 0.5, "average": "micro", **(f1 or {})}
    metrics.decisions(np.zeros((1, 1)), self.f1["rule"], k=1)  # an unknown rule fails here

    tasks = [tasks_lib.get(t) if isinstance(t, str) else t for t in tasks]
    other = [t.name for t in tasks if t.kind not in tasks_lib.ZERO_SHOT]
    if other:
      raise ValueError(f"{other}: not zero-shot tasks (captioning is clap_jax.eval.captioning)")
    templates = dict(templates or {})
    # Settings of registered tasks left out of this run are fine; an unknown name is a typo.
    unknown = (set(templates) | set(sources or {})) - {t.name for t in tasks} - set(tasks_lib.TASKS)
    if unknown:
      raise ValueError(f"templates/sources given for unknown tasks: {sorted(unknown)}")
    self.tasks = [dataclasses.replace(t, templates=tuple(templates[t.name])) if t.name in templates
                  else t for t in tasks]
    self.mesh, self.tokenizer, self.long_mode = mesh, tokenizer, long_mode
    self.sources, self.data_dir = dict(sources or {}), data_dir
    self.workers, self.progress = workers, progress
    self.sample_rate = model.config.audio.sample_rate
    self.clip_samples = model.config.audio.clip_samples
    self.local_batch = sharding_lib.local_batch_size(batch_size, mesh)
    self.text_batch = text_batch_size or batch_size
    sharding_lib.local_batch_size(self.text_batch, mesh)  # checks that it splits
    self._batch_sharding = NamedSharding(mesh, P(mesh.axis_names))

    def full_precision(method):
      # Float32 products in full float32 on every backend, as clap_jax.encode and msclap: GPUs
      # default to TF32 and TPUs to bfloat16 passes. A bfloat16 model (config dtype) stays one.
      def apply(variables, *inputs):
        with jax.default_matmul_precision("float32"):
          return model.apply(variables, *inputs, method=method)
      return jax.jit(apply, out_shardings=self._batch_sharding)
    self._encode_audio = full_precision("encode_audio")
    self._encode_text = full_precision("encode_text")

  def run(self, variables) -> Iterator[tuple[str, float]]:
    """('task/metric', value) for every task that has data (big_vision's evaluator protocol)."""
    for name, result in self.evaluate(variables).items():
      for metric, value in result.metrics.items():
        yield f"{name}/{metric}", value

  def evaluate(self, variables) -> dict[str, TaskResult]:
    variables = self._place(variables)
    results = {}
    for task in self.tasks:
      source, reason = sources_lib.open_or_reason(task, self.sources.get(task.name), self.data_dir)
      # Every process skips the same tasks (or one would wait forever in a collective for the
      # others): data absent or malformed in any process's copy skips the task in all.
      reason = multihost.common_reason(reason)
      if reason is not None:
        results[task.name] = TaskResult(task, skipped=reason)
        continue
      try:
        results[task.name] = self._evaluate_task(variables, task, source)
      except multihost.GivenUp as e:  # malformed data met mid-run, by any process
        results[task.name] = TaskResult(task, skipped=str(e))
    return results

  def _place(self, variables):
    """Host arrays -> replicated global arrays, once (not on every jitted call)."""
    replicated = sharding_lib.replicated(self.mesh)

    def place(x):
      if isinstance(x, jax.Array):
        return x
      x = np.asarray(x)
      return jax.make_array_from_callback(x.shape, replicated, lambda index: x[index])
    return jax.tree.map(place, variables)

  # One task --------------------------------------------------------------------------------------

  def _evaluate_task(self, variables, task: Task, source: sources_lib.Source) -> TaskResult:
    # A SourceError here is about the gathered clips (the audio pass turns its own into
    # multihost.GivenUp): every process reaches it alike.
    try:
      clips, unusable = self._audio_pass(variables, task, source)
      if clips is None:
        return TaskResult(task, skipped=f"none of its {len(unusable)} clips could be used, e.g. "
                          f"{unusable[0]}", unusable=unusable)
      result = self._score(variables, task, clips)
    except sources_lib.SourceError as e:
      raise multihost.GivenUp(sources_lib.failure_reason(e)) from None
    result.unusable = unusable
    return result

  def _score(self, variables, task: Task, clips: dict[str, np.ndarray]) -> TaskResult:
    audio = _normalise(clips["embedding"])
    if task.kind == RETRIEVAL:
      valid = clips["caption_valid"]  # (N, C)
      owner = np.nonzero(valid)[0]
      captions = _normalise(self._text_embeddings(variables, clips["caption_ids"][valid],
                                                  clips["caption_attention"][valid]))
      scores = audio @ captions.T
      return TaskResult(task, metrics.retrieval(scores, owner), num_items=len(audio),
                        scores=scores, targets=owner)
    scores = audio @ self._class_embeddings(variables, task).T
    targets = clips["labels"]
    if task.kind == MULTI_LABEL:
      values = {"mAP": metrics.mean_average_precision(targets, scores)}
      if task.headline == "F1":
        logits = np.exp(_logit_scale(variables)) * scores
        chosen = metrics.decisions(logits, self.f1["rule"], k=self.f1["k"],
                                   threshold=self.f1["threshold"])
        values = {"F1": metrics.f1_score(targets, chosen, self.f1["average"]), **values}
    else:
      counts = targets.sum(axis=1)
      if np.any(counts != 1):
        raise sources_lib.SourceError(
            f"{task.name} is single-label but {int(np.sum(counts != 1))} clips have "
            f"{sorted(set(counts.tolist()) - {1})} labels")
      values = metrics.topk_accuracy(scores, targets.argmax(axis=1), ks=(1, 5))
    return TaskResult(task, values, num_items=len(audio), scores=scores, targets=targets)

  def _class_embeddings(self, variables, task: Task) -> np.ndarray:
    """(C, D): per class, the mean of its normalised prompt embeddings, normalised again."""
    prompts = task.prompts()  # [class][template]
    tokens = self.tokenizer([p for per_class in prompts for p in per_class])
    embeddings = _normalise(self._text_embeddings(variables, tokens["input_ids"],
                                                  tokens["attention_mask"]))
    return _normalise(embeddings.reshape(len(prompts), len(task.templates), -1).mean(axis=1))

  def _text_embeddings(self, variables, input_ids: np.ndarray, attention_mask: np.ndarray):
    """(N, L) tokens, the same in every process -> (N, D) float64 embeddings."""
    n = input_ids.shape[0]
    # Finer buckets than training's: a text-only pass compiles fast, and prompts are short.
    columns = text_lib.text_columns(attention_mask, text_lib.fine_buckets(attention_mask.shape[1]))
    input_ids, attention_mask = input_ids[:, :columns], attention_mask[:, :columns]
    size = self.text_batch
    padded = -(-n // size) * size
    # Padding repeats the last text: an all-padding row would pool at index -1.
    ids, mask = (np.pad(a, ((0, padded - n), (0, 0)), mode="edge") for a in (input_ids, attention_mask))
    outputs = []
    for start in range(0, padded, size):
      chunk = [multihost.to_global(a[start:start + size], self._batch_sharding) for a in (ids, mask)]
      outputs.append(multihost_utils.process_allgather(self._encode_text(variables, *chunk), tiled=True))
    return np.concatenate(outputs)[:n].astype(np.float64)

  # Audio -----------------------------------------------------------------------------------------

  def _audio_pass(self, variables, task: Task, source: sources_lib.Source):
    """Encodes this process's clips in lock-step with the other processes. Returns every clip's
    fields (all processes), ordered by key: embedding (N, D) averaged over windows, and labels
    (N, C) or caption tokens; None if no clip could be used. And the unusable clips with why."""
    process_index, process_count = jax.process_index(), jax.process_count()
    rows = batching.Rows(task, source.max_captions, self.local_batch, self.clip_samples, self.tokenizer)
    unusable = []

    def usable(loaded):
      for key, item, windows in loaded:
        if isinstance(windows, audio_lib.AudioError):
          unusable.append(str(windows))
          tqdm.tqdm.write(f"{task.name}: left out {windows}")
        else:
          yield key, item, windows
    batches = rows.batches(usable(self._windows(source.local_items(process_index, process_count))))
    clips = batching.Clips()
    bar = tqdm.tqdm(desc=task.name, unit="clip", total=source.size,
                    disable=not self.progress or process_index != 0)

    def place(batch):
      return None if batch is None else {k: multihost.local_to_global(v, self._batch_sharding)
                                         for k, v in batch.items()}
    steps = batching.ahead((place(b) for b in itertools.chain(batches, itertools.repeat(None))),
                           _BATCHES_AHEAD)
    pending = None
    try:
      # All processes stop together: when every one has run out, or when any one has failed.
      for step in multihost.in_lockstep(steps, sources_lib.failure_reason):
        step = place(rows.empty()) if step is None else step
        step["embedding"] = self._encode_audio(variables, step.pop("audio"))
        # Gather the previous step while this one runs, so the devices never wait for the host.
        if pending is not None:
          bar.update(clips.add(multihost_utils.process_allgather(pending, tiled=True)))
        pending = step
      if pending is not None:
        bar.update(clips.add(multihost_utils.process_allgather(pending, tiled=True)))
    finally:
      steps.close()
      bar.close()
    unusable = multihost.gather_strings(unusable)  # complete: the loop above ran the loader to its end
    if not clips.sums and unusable:
      return None, unusable
    return clips.finish(task.name), unusable

  def _windows(self, items: Iterable[tuple[int, sources_lib.Item]]):
    """(key, item) -> (key, item, its windows (`audio.Audio.windows`) or the AudioError saying why
    there are none), decoded by a pool of threads."""
    def load(key_item):
      key, item = key_item
      # Seeded by the key, so a 'random' window does not depend on how the data was sharded.
      rng = np.random.default_rng(key)
      try:
        # Kept until packed; a short window is left unpadded for the packer to pad straight
        # into its batch.
        return key, item, item.windows(self.sample_rate, self.clip_samples, self.long_mode, rng)
      except audio_lib.AudioError as e:
        return key, item, e
    return batching.bounded_map(load, items, self.workers)


def _logit_scale(variables) -> float:
  """The model's learned log temperature (replicated: any process's own copy holds it)."""
  value = variables["params"]["logit_scale"]
  if isinstance(value, jax.Array):
    value = value.addressable_data(0)
  return float(np.asarray(value))


def _normalise(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)
