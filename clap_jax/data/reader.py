"""tf.data input pipelines over shard sets: an endless seeded training stream and an exact eval pass.

Every JAX process reads a disjoint share: whole shards when there are at least as many shards as
processes, else every `process_count`-th record. `batch_size` is the global batch; each process
yields its `batch_size // process_count` rows as numpy, and `to_global` assembles the global
`jax.Array`s.

Training determinism: the stream is a function of (seed, process share, step). Epoch e shuffles
the shard order with seed (seed, e) and the record buffer with a seed drawn from (seed, e); the
random window and the caption of the example at stream position i come from
stateless draws keyed by (seed, process, i). Restarting at `start_step` opens epoch
`start_step * local_batch // examples_per_process` and skips the records before the step within it
(raw records, before any decoding), so a resumed run sees the batches it would have seen.

Task-balanced sampling over several shard sets (`multitask.multitask_batches`) sits on
`train_examples`: one such stream per task, each opened at its own position.
"""
import dataclasses
import math
import os
from typing import Iterator, Literal, Sequence

import jax
import numpy as np
import tensorflow as tf

from clap_jax.data import records

AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass(frozen=True)
class ShardSet:
  """Shard files with their example counts and what their summaries say about the examples."""
  files: tuple[str, ...]
  counts: tuple[int, ...]
  sample_rate: int
  max_samples: int  # longest stored clip
  context_length: int
  max_captions: int
  tasks: tuple[str, ...]
  labelled: bool

  @classmethod
  def find(cls, pattern_or_files: str | Sequence[str]) -> "ShardSet":
    """Shards matching a glob pattern (or a list of files/patterns, local or gs://...), described
    by their summaries."""
    patterns = [pattern_or_files] if isinstance(pattern_or_files, (str, os.PathLike)) else pattern_or_files
    files = sorted({f for p in patterns for f in records.glob(p)})
    if not files:
      raise FileNotFoundError(f"no shard matches {pattern_or_files!r}")
    summaries = {}
    for f in files:
      path = records.summary_of_shard(f)
      if path not in summaries:
        if not tf.io.gfile.exists(path):
          raise FileNotFoundError(f"{f}: its summary {path} is missing (written last by make_shards)")
        summaries[path] = records.read_json(path)
    for key in ("sample_rate", "context_length"):
      values = {s[key] for s in summaries.values()}
      if len(values) > 1:
        raise ValueError(f"shards of {pattern_or_files!r} disagree on {key}: {sorted(values)}")
    first = next(iter(summaries.values()))
    counts = tuple(summaries[records.summary_of_shard(f)]["shards"][os.path.basename(f)] for f in files)
    return cls(files=tuple(files), counts=counts, sample_rate=first["sample_rate"],
               max_samples=max(s["max_samples"] for s in summaries.values()),
               context_length=first["context_length"],
               max_captions=max(s["max_captions"] for s in summaries.values()),
               tasks=tuple(sorted({t for s in summaries.values() for t in s["tasks"]})),
               labelled=any(s["labelled"] for s in summaries.values()))

  def share(self, process_index: int, process_count: int) -> tuple[list[str], tuple[int, int] | None, int]:
    """-> (files this process reads, (count, index) record sharding or None, its example count)."""
    if len(self.files) >= process_count:
      return (list(self.files[process_index::process_count]), None,
              sum(self.counts[process_index::process_count]))
    total = sum(self.counts)
    return (list(self.files), (process_count, process_index),
            total // process_count + (process_index < total % process_count))


def train_batches(pattern_or_files: str | Sequence[str], *, batch_size: int, clip_samples: int,
                  seed: int, start_step: int = 0, process_index: int | None = None,
                  process_count: int | None = None, caption_choice: Literal["random", "first"] = "random",
                  shuffle_buffer: int = 256, num_labels: int | None = None,
                  task_names: Sequence[str] | None = None, cycle_length: int = 16) -> Iterator[dict[str, np.ndarray]]:
  """Endless per-process training batches (numpy), deterministic given (seed, start_step).

  `batch_size` is the global batch and `start_step` counts global steps.

  Fields, with B = batch_size // process_count:
    audio          (B, clip_samples) float32: a random window of a long clip; a short clip is
                   tiled and cut (msclap's repeat padding)
    audio_length   (B,) int32   samples of real audio in `audio` before the tiling
    input_ids      (B, L) int32 one caption per example ('random' with the seed, or 'first')
    attention_mask (B, L) int32
    label          (B,) int32 (-1: none) or, with `num_labels`, (B, num_labels) float32 multi-hot;
                   only for shards with labels
    task           (B,) int32 index in `task_names` (default: the sorted task names of the
                   shards); only for shards with tasks
    example_id     (B,) bytes
  The shuffle buffer holds raw records: about shuffle_buffer * 0.9 MB for 10 s clips.
  """
  hide_gpus_from_tensorflow()
  shards = ShardSet.find(pattern_or_files)
  process_index, process_count, local_batch = process_share(batch_size, process_index, process_count)
  position = start_step * local_batch
  examples = train_examples(shards, seed=seed, position=position, process_index=process_index,
                             process_count=process_count, clip_samples=clip_samples,
                             caption_choice=caption_choice, shuffle_buffer=shuffle_buffer,
                             num_labels=num_labels, task_names=task_names,
                            cycle_length=cycle_length)
  return numpy_batches(examples.batch(local_batch, drop_remainder=True))


def eval_batches(pattern_or_files: str | Sequence[str], *, batch_size: int, clip_samples: int,
                 process_index: int | None = None, process_count: int | None = None,
                 num_labels: int | None = None,
                 task_names: Sequence[str] | None = None,
                 cycle_length: int = 16) -> Iterator[dict[str, np.ndarray]]:
  """One pass in which every example appears exactly once across processes.

  All processes yield the same number of batches (what a collective step needs); rows past the
  data are zeros with `mask` False. Fields as `train_batches` (the first clip_samples of each
  example, short ones tiled as in training; the first caption in `input_ids`) plus:
    mask                    (B,) bool
    captions_input_ids      (B, C, L) int32, all captions, C = most captions of any example
    captions_attention_mask (B, C, L) int32
    caption_mask            (B, C) bool
  """
  hide_gpus_from_tensorflow()
  shards = ShardSet.find(pattern_or_files)
  process_index, process_count, local_batch = process_share(batch_size, process_index, process_count)
  files, record_shard, count = shards.share(process_index, process_count)
  steps = max(math.ceil(shards.share(i, process_count)[2] / local_batch) for i in range(process_count))
  parse = _Parser(shards, clip_samples=clip_samples, num_labels=num_labels, task_names=task_names)

  def example(serialized):
    features = tf.io.parse_single_example(serialized, records.PARSE_SPEC)
    out = parse.common(features, start=tf.constant(0, tf.int64), caption=0)
    out.update(parse.all_captions(features), mask=tf.constant(True))
    return out

  examples = _records(files, record_shard, cycle_length).map(example, num_parallel_calls=AUTOTUNE)
  padding = tf.data.Dataset.from_tensors(
      tf.nest.map_structure(lambda s: tf.zeros(s.shape, s.dtype), examples.element_spec))
  examples = examples.concatenate(padding.repeat(steps * local_batch - count))
  return numpy_batches(examples.batch(local_batch, drop_remainder=True))


def to_global(batch: dict[str, np.ndarray], mesh_or_sharding) -> dict:
  """Per-process numpy batch -> global `jax.Array`s (batch axis split over a Mesh's axes).

  Pass a `jax.sharding.Sharding` for any other layout. Text fields (`example_id`) cannot be
  jax.Arrays and stay per-process numpy.
  """
  if isinstance(mesh_or_sharding, jax.sharding.Mesh):
    mesh = mesh_or_sharding
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(mesh.axis_names))
  else:
    sharding = mesh_or_sharding
  return {k: jax.make_array_from_process_local_data(sharding, v) if v.dtype.kind in "biuf" else v
          for k, v in batch.items()}


def hide_gpus_from_tensorflow() -> None:
  """TensorFlow only runs the input pipeline; the accelerators belong to JAX. Called by the
  pipeline builders (not at import), before TensorFlow touches a device."""
  try:
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError:  # devices already initialised: TensorFlow saw them before we could hide them
    pass


def process_share(batch_size, process_index=None, process_count=None) -> tuple[int, int, int]:
  """-> (process index, process count, this process's rows of a global batch of `batch_size`)."""
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  if batch_size % process_count:
    raise ValueError(f"batch_size {batch_size} is not divisible by {process_count} processes")
  return process_index, process_count, batch_size // process_count


def _records(files, record_shard, cycle_length, order_seed=None) -> tf.data.Dataset:
  """Serialised records of `files` (in a seeded order), interleaved, deterministic."""
  names = tf.constant(files)
  if order_seed is not None:
    names = tf.random.experimental.stateless_shuffle(names, seed=order_seed)
  ds = tf.data.Dataset.from_tensor_slices(names).interleave(
      tf.data.TFRecordDataset, cycle_length=min(cycle_length, len(files)), block_length=1,
      num_parallel_calls=AUTOTUNE, deterministic=True)
  return ds.shard(*record_shard) if record_shard else ds


def train_examples(shards: ShardSet, *, seed, position, process_index, process_count, clip_samples,
                   caption_choice, shuffle_buffer, num_labels, task_names, cycle_length) -> tf.data.Dataset:
  """Parsed training examples of this process from stream position `position` on, endlessly."""
  if caption_choice not in ("random", "first"):
    raise ValueError(f"caption_choice must be 'random' or 'first', got {caption_choice!r}")
  files, record_shard, count = shards.share(process_index, process_count)
  if count == 0:
    raise ValueError(f"process {process_index} of {process_count} has no examples in {shards.files}")
  first_epoch, offset = divmod(position, count)
  parse = _Parser(shards, clip_samples=clip_samples, num_labels=num_labels, task_names=task_names)

  def epoch_records(epoch):
    epoch_seed = tf.stack([tf.constant(seed, tf.int64), epoch])
    buffer_seed = tf.random.stateless_uniform([], seed=epoch_seed, minval=None, maxval=None,
                                              dtype=tf.int64)
    return _records(files, record_shard, cycle_length, order_seed=epoch_seed).shuffle(
        shuffle_buffer, seed=buffer_seed)

  def example(index, serialized):
    features = tf.io.parse_single_example(serialized, records.PARSE_SPEC)
    key = tf.random.experimental.stateless_fold_in(
        tf.constant([seed, process_index], tf.int64), index)
    window_key, caption_key = tf.unstack(tf.random.experimental.stateless_split(key, 2))
    length = features["audio_length"]
    start = tf.random.stateless_uniform([], seed=window_key, minval=0,
                                        maxval=tf.maximum(length - clip_samples, 1), dtype=tf.int64)
    captions = tf.size(features["input_ids"], tf.int64) // shards.context_length
    caption = (tf.random.stateless_uniform([], seed=caption_key, minval=0, maxval=captions,
                                           dtype=tf.int64) if caption_choice == "random" else 0)
    out = parse.common(features, start=tf.where(length > clip_samples, start, 0), caption=caption)
    return out

  stream = tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max).flat_map(epoch_records)
  return (stream.skip(offset).enumerate(start=position)
          .map(example, num_parallel_calls=AUTOTUNE, deterministic=True))


class _Parser:
  """Turns parsed features into the model's fields (tf ops, run inside tf.data maps)."""

  def __init__(self, shards: ShardSet, *, clip_samples, num_labels, task_names):
    self.shards = shards
    self.clip_samples = clip_samples
    self.num_labels = num_labels
    self.task_table = None
    if shards.tasks:
      names = list(task_names if task_names is not None else shards.tasks)
      missing = set(shards.tasks) - set(names)
      if missing:
        raise ValueError(f"tasks {sorted(missing)} of the shards are not in task_names {names}")
      self.task_table = tf.lookup.StaticHashTable(
          tf.lookup.KeyValueTensorInitializer(names, tf.range(len(names), dtype=tf.int32)), -1)

  def common(self, features, *, start, caption) -> dict:
    """The fields of both modes: a clip from `start`, caption number `caption`, labels, task."""
    length = features["audio_length"]
    take = tf.minimum(length - start, self.clip_samples)
    pcm = tf.io.decode_raw(tf.strings.substr(features["audio"], 2 * start, 2 * take), tf.int16)
    wave = tf.cast(pcm, tf.float32) / records.PCM_SCALE
    repeats = -(-self.clip_samples // tf.cast(take, tf.int32))
    audio = tf.ensure_shape(tf.tile(wave, [repeats])[:self.clip_samples], [self.clip_samples])
    tokens = self._tokens(features)
    out = dict(audio=audio, audio_length=tf.cast(take, tf.int32),
               input_ids=tokens["input_ids"][caption], attention_mask=tokens["attention_mask"][caption],
               example_id=features["example_id"])
    if self.shards.labelled:
      out["label"] = self._label(features["labels"])
    if self.task_table is not None:
      out["task"] = self.task_table.lookup(features["task"])
    return out

  def all_captions(self, features) -> dict:
    tokens = self._tokens(features)
    count = tf.shape(tokens["input_ids"])[0]
    pad = [[0, self.shards.max_captions - count], [0, 0]]
    shape = [self.shards.max_captions, self.shards.context_length]
    return dict(captions_input_ids=tf.ensure_shape(tf.pad(tokens["input_ids"], pad), shape),
                captions_attention_mask=tf.ensure_shape(tf.pad(tokens["attention_mask"], pad), shape),
                caption_mask=tf.range(self.shards.max_captions) < count)

  def _tokens(self, features) -> dict:
    # (C * L,) int64 -> (C, L) int32
    return {k: tf.cast(tf.reshape(features[k], [-1, self.shards.context_length]), tf.int32)
            for k in ("input_ids", "attention_mask")}

  def _label(self, labels):
    if self.num_labels is not None:
      hot = tf.reduce_sum(tf.one_hot(labels, self.num_labels, dtype=tf.float32), axis=0)
      return tf.ensure_shape(tf.minimum(hot, 1.0), [self.num_labels])
    check = tf.debugging.assert_less_equal(
        tf.size(labels), 1, message="an example has several labels: pass num_labels for multi-hot")
    with tf.control_dependencies([check]):
      return tf.cast(tf.concat([labels, [-1]], axis=0)[0], tf.int32)


def numpy_batches(ds: tf.data.Dataset) -> Iterator[dict[str, np.ndarray]]:
  options = tf.data.Options()
  options.deterministic = True
  return ds.prefetch(AUTOTUNE).with_options(options).as_numpy_iterator()
