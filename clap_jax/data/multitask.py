"""Task-balanced training batches over several labelled shard sets (multi-task audio pretraining).

Each task is one shard set read as `train_batches` reads it: an endless stream over this process's
share, reshuffled every epoch, its epochs independent of the other tasks'. Every example of a
batch is drawn from task i with probability p_i (`sampling_probabilities`), independently.

Resuming stays exact without reading the data before `start_step`: the task choices are drawn in
chunks of `_CHOICE_CHUNK` stream positions, each chunk as multinomial counts then a random
arrangement of them (together the same law as independent draws). So the number of examples each
task gave before a position costs one multinomial draw per earlier chunk, and each task's stream is
opened at its own position. `tf.data.Dataset.sample_from_datasets` could not do this: its choices
come from a stateful seed, so a restart would have to replay (read and decode) every example.
"""
import dataclasses
from typing import Iterator, Literal, Sequence

import numpy as np
import tensorflow as tf

from clap_jax.data import records
from clap_jax.data.reader import (AUTOTUNE, ShardSet, hide_gpus_from_tensorflow, numpy_batches,
                                  process_share, train_examples)

Sampling = Literal["proportional", "uniform", "temperature"]
_CHOICE_CHUNK = 2**14  # stream positions per draw of task counts


@dataclasses.dataclass(frozen=True)
class TaskSource:
  """One task: its shards (a glob pattern, a list of files/patterns, or a `ShardSet`), its classes
(`num_labels`; 0 for a task of captions alone, whose shards need no labels) and its sampling
weight.

  The shards' own task names (records' `task`) must be `name` or empty.
  """
  name: str
  shards: str | Sequence[str] | ShardSet
  num_labels: int
  multi_label: bool = False
  weight: float = 1.0


def sampling_probabilities(sizes: Sequence[int], sampling: Sampling,
                           temperature: float | None = None,
                           weights: Sequence[float] | None = None) -> np.ndarray:
  """Per-task probabilities from the tasks' example counts (and weights w_i, default 1).

  'proportional': p_i ∝ w_i n_i; 'uniform': p_i ∝ w_i; 'temperature': p_i ∝ w_i n_i^(1/T), which
  is 'proportional' at T = 1 and tends to 'uniform' as T -> inf (T = inf is allowed).
  """
  sizes = np.asarray(sizes, np.float64)
  if sizes.ndim != 1 or not sizes.size or np.any(sizes <= 0):
    raise ValueError(f"sizes must be positive example counts, got {sizes.tolist()}")
  weights = np.ones_like(sizes) if weights is None else np.asarray(weights, np.float64)
  if weights.shape != sizes.shape or not np.all(weights > 0):
    raise ValueError(f"weights must be one positive number per task, got {weights.tolist()}")
  base = _unweighted(sizes, sampling, temperature)
  return base * weights / (base * weights).sum()


def _unweighted(sizes: np.ndarray, sampling: Sampling, temperature: float | None) -> np.ndarray:
  if (temperature is not None) != (sampling == "temperature"):
    raise ValueError(f"temperature is for sampling='temperature' only (got {sampling!r}, "
                     f"temperature={temperature})")
  if sampling == "proportional":
    return sizes / sizes.sum()
  if sampling == "uniform":
    return np.full(sizes.shape, 1 / sizes.size)
  if sampling == "temperature":
    if not temperature > 0:
      raise ValueError(f"temperature must be > 0, got {temperature}")
    logits = np.log(sizes) / temperature  # in logs: n_i^(1/T) overflows for small T
    weights = np.exp(logits - logits.max())
    return weights / weights.sum()
  raise ValueError(f"sampling must be 'proportional', 'uniform' or 'temperature', got {sampling!r}")


def multitask_batches(tasks: Sequence[TaskSource], *, batch_size: int, clip_samples: int, seed: int,
                      start_step: int = 0, sampling: Sampling = "proportional",
                      temperature: float | None = None, process_index: int | None = None,
                      process_count: int | None = None,
                      caption_choice: Literal["random", "first"] = "random",
                      shuffle_buffer: int = 64, cycle_length: int = 4) -> Iterator[dict[str, np.ndarray]]:
  """Endless per-process batches mixing `tasks`, deterministic given (seed, start_step).

  `batch_size` is the global batch, `start_step` counts global steps; task sizes (for the
  probabilities) are the tasks' whole example counts, the same on every process, and each process
  draws its own task choices (tasks' `weight`s scale the probabilities). Fields, with
  B = batch_size // process_count and K = max(1, most task.num_labels):
    audio, audio_length, input_ids, attention_mask, example_id   as `train_batches`
    task        (B,) int32    index of the example's task in `tasks`
    label       (B,) int32    class of a single-label task's example; -1 for multi-label tasks,
                              caption tasks (num_labels 0) and examples without a label
    labels      (B, K) float32  multi-hot of the example's classes (one-hot for single-label tasks),
                              in its own task's class indices; zero past its task's num_labels
    label_mask  (B, K) bool   True on the first num_labels columns of the example's own task
  Per example, `task` says which of these carry its answer: the captions (`input_ids`), `label`
  or `labels[:, :num_labels]`.

  Memory: every task keeps its own shuffle buffer of raw records (about shuffle_buffer * 0.9 MB
  per task for 10 s clips) and reads `cycle_length` of its files at once; hence defaults below
  `train_batches`' for a mix of tens of tasks.
  """
  if not tasks:
    raise ValueError("no tasks given")
  names = [t.name for t in tasks]
  if len(set(names)) != len(names):
    raise ValueError(f"task names repeat: {names}")
  shard_sets = [_task_shards(t) for t in tasks]
  for key in ("sample_rate", "context_length"):
    values = {getattr(s, key) for s in shard_sets}
    if len(values) > 1:
      raise ValueError(f"the tasks' shards disagree on {key}: {sorted(values)}")
  hide_gpus_from_tensorflow()
  process_index, process_count, local_batch = process_share(batch_size, process_index, process_count)
  probabilities = sampling_probabilities([sum(s.counts) for s in shard_sets], sampling, temperature,
                                         [t.weight for t in tasks])
  choices = _TaskChoices(probabilities, seed=seed, process_index=process_index)
  position = start_step * local_batch
  task_positions = choices.counts_before(position)
  max_labels = max(max(t.num_labels for t in tasks), 1)
  streams = []
  for index, (task, shards) in enumerate(zip(tasks, shard_sets)):
    examples = train_examples(
        shards, seed=_task_seed(seed, index), position=int(task_positions[index]),
        process_index=process_index, process_count=process_count, clip_samples=clip_samples,
        caption_choice=caption_choice, shuffle_buffer=shuffle_buffer,
        num_labels=task.num_labels if task.multi_label else None,
        task_names=[task.name] if shards.tasks else None, cycle_length=cycle_length)
    streams.append(examples.map(_task_fields(task, index, max_labels), num_parallel_calls=AUTOTUNE,
                                deterministic=True))
  mixed = tf.data.Dataset.choose_from_datasets(streams, choices.dataset(position))
  return numpy_batches(mixed.batch(local_batch, drop_remainder=True))


class _TaskChoices:
  """The task of each stream position of one process: chunk c is drawn from (seed, process, c)."""

  def __init__(self, probabilities: np.ndarray, *, seed: int, process_index: int):
    self.probabilities = probabilities
    self.seed = seed
    self.process_index = process_index

  def counts_before(self, position: int) -> np.ndarray:
    """(tasks,) int64: how many of the positions before `position` each task got."""
    chunks, offset = divmod(position, _CHOICE_CHUNK)
    counts = sum((self._chunk_counts(self._rng(c)) for c in range(chunks)),
                 np.zeros(len(self.probabilities), np.int64))
    return counts + np.bincount(self.chunk(chunks)[:offset], minlength=len(self.probabilities))

  def chunk(self, chunk: int) -> np.ndarray:
    """(_CHOICE_CHUNK,) int64 task indices."""
    rng = self._rng(chunk)
    tasks = np.repeat(np.arange(len(self.probabilities)), self._chunk_counts(rng))
    return rng.permutation(tasks)

  def dataset(self, position: int) -> tf.data.Dataset:
    """Endless tf.int64 task indices from stream position `position` on."""
    first, offset = divmod(position, _CHOICE_CHUNK)

    def chunk(c):
      return tf.data.Dataset.from_tensor_slices(
          tf.ensure_shape(tf.numpy_function(self.chunk, [c], tf.int64), [_CHOICE_CHUNK]))

    return tf.data.Dataset.range(first, np.iinfo(np.int64).max).flat_map(chunk).skip(offset)

  def _rng(self, chunk: int) -> np.random.Generator:
    # spawn_key (0, ...) keeps these streams apart from the tasks' seeds (`_task_seed`)
    return np.random.default_rng(np.random.SeedSequence(
        self.seed, spawn_key=(0, self.process_index, int(chunk))))

  def _chunk_counts(self, rng: np.random.Generator) -> np.ndarray:
    return rng.multinomial(_CHOICE_CHUNK, self.probabilities)


def _task_seed(seed: int, index: int) -> int:
  """A seed of task `index`'s stream, so tasks of equal shards still shuffle differently."""
  state = np.random.SeedSequence(seed, spawn_key=(1, index)).generate_state(1, np.uint64)[0]
  return int(state >> np.uint64(1))  # int64 for tf


def _task_shards(task: TaskSource) -> ShardSet:
  shards = task.shards if isinstance(task.shards, ShardSet) else ShardSet.find(task.shards)
  if set(shards.tasks) - {task.name}:
    raise ValueError(f"task {task.name!r}: its shards hold tasks {list(shards.tasks)}")
  if task.num_labels < 0:
    raise ValueError(f"task {task.name!r}: num_labels must be >= 0, got {task.num_labels}")
  if not task.num_labels:
    return shards  # captions alone: labels, if any, are not read
  if not shards.labelled:
    raise ValueError(f"task {task.name!r}: its shards carry no labels")
  # The summaries know the largest label; a class past the head would be silently dropped.
  summaries = {records.summary_of_shard(f) for f in shards.files}
  num_classes = max(records.read_json(p)["num_classes"] for p in summaries)
  if num_classes > task.num_labels:
    raise ValueError(f"task {task.name!r}: its shards have labels up to {num_classes - 1}, "
                     f"past num_labels={task.num_labels}")
  return shards


def _task_fields(task: TaskSource, index: int, max_labels: int):
  """-> a tf map from `train_examples`' fields to the shared multi-task fields."""
  mask = tf.range(max_labels) < task.num_labels

  def fields(example):
    example = dict(example)
    if "task" in example:  # the shard's task lookup: -1 is an example of no task in a named set
      check = tf.debugging.assert_equal(
          example.pop("task"), 0, message=f"an example of task {task.name!r}'s shards has no task")
    else:
      check = tf.no_op()
    with tf.control_dependencies([check]):
      label = example.pop("label", None)
      if not task.num_labels:  # captions alone
        labels, label = tf.zeros([max_labels], tf.float32), tf.constant(-1, tf.int32)
      elif task.multi_label:  # (num_labels,) multi-hot
        labels = tf.pad(label, [[0, max_labels - task.num_labels]])
        label = tf.constant(-1, tf.int32)
      else:
        labels = tf.one_hot(label, max_labels, dtype=tf.float32)  # zeros for -1
    return example | dict(task=tf.constant(index, tf.int32), label=label,
                          labels=tf.ensure_shape(labels, [max_labels]), label_mask=mask)

  return fields
