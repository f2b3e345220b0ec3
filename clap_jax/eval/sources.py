"""Where a task's examples come from: dataset folders, TFDS, or TFRecord shards -> `Item`s.

A source spec is a dict: the task's default (clap_jax/eval/tasks.py) updated by the config.
The folder layouts (`kind` folder, `layout` ...) are read by clap_jax/eval/layouts.py.
`kind` picks the reader; a relative `root` or `pattern` is taken from the config's `data_dir`.
Data that is not there raises `MissingData` (the task is skipped); data that is there but does
not fit the task (an unknown label, a listed file that is absent) raises `SourceError`.

Every process reads only its own share (`Source.local_items`) and an item (all windows of one
clip) is never split between processes; the evaluator gathers the embeddings.
"""
import inspect
import itertools
import os
import pathlib
import re
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from clap_jax.data.items import Item
from clap_jax.eval.tasks import CAPTIONING, RETRIEVAL, Task


class MissingData(Exception):
  """The task's data is not present here: the task is reported as skipped."""


class SourceError(ValueError):
  """The data is present but does not fit the task."""


def failure_reason(error: Exception, where: str = "") -> str:
  """Why a task's data could not be read to the end, as the report says it: SourceError is
  malformed data; anything else (an unreadable file, a decoder's error) is named with its type.
  `where`: what was being read, when the error does not say (TensorFlow's reader errors)."""
  where = f"{where}: " if where else ""
  if isinstance(error, SourceError):
    return f"malformed data: {where}{error}"
  # A tf.data error's text is wrapped in the op's names: '{{function_node ...}} msg [Op:...]'.
  message = re.sub(r"^\{\{function_node [^}]*\}\}\s*|\s*\[Op:\w+\].*$", "", str(error))
  return f"reading failed: {type(error).__name__}: {where}{message}"


class Source:
  """The items of one task. `local_items` yields (key, Item) with `key` a global int that orders
  the items identically in every process."""
  max_captions: int = 0  # captions per item, at most (retrieval)
  size: int | None = None  # number of items, where known without reading them (progress bars)

  def local_items(self, process_index: int, process_count: int) -> Iterator[tuple[int, Item]]:
    raise NotImplementedError


class ListSource(Source):
  """Items known up front (folder layouts, tests): process p takes the p-th contiguous block."""

  def __init__(self, items: Sequence[Item]):
    if not items:
      raise SourceError("the source has no items")
    self.items = list(items)
    self.size = len(self.items)
    self.max_captions = max(len(item.captions) for item in self.items)

  def local_items(self, process_index, process_count):
    n = len(self.items)
    start, stop = n * process_index // process_count, n * (process_index + 1) // process_count
    for key in range(start, stop):
      yield key, self.items[key]


def open_source(task: Task, overrides: Mapping | Source | None = None, data_dir: str = ".") -> Source:
  """The task's source: its default spec updated by `overrides`, or a ready `Source`.

  Overrides naming another `kind` replace the default spec instead of updating it.
  """
  if isinstance(overrides, Source):
    return overrides
  overrides = dict(overrides or {})
  default = task.source.get("kind")
  spec = overrides if overrides.get("kind", default) != default else {**task.source, **overrides}
  kind = spec.pop("kind", None)
  readers = {"folder": _folder, "tfds": _tfds, "shards": _shards}
  if kind not in readers:
    raise ValueError(f"{task.name}: unknown source kind {kind!r}; one of {sorted(readers)}")
  try:
    inspect.signature(readers[kind]).bind(task, data_dir, **spec)
  except TypeError as e:
    raise ValueError(f"{task.name}: bad {kind} source spec {spec}: {e}") from None
  source = readers[kind](task, data_dir, **spec)
  if task.kind in (RETRIEVAL, CAPTIONING) and source.max_captions == 0:
    raise SourceError(f"{task.name}: a {task.kind} task needs captions; the source has none")
  return source


def open_or_reason(task: Task, overrides: Mapping | Source | None, data_dir: str
                   ) -> tuple[Source | None, str | None]:
  """-> (the task's source, None), or (None, why this process cannot read it: absent or
  malformed), for the evaluators to agree on across processes before they run the task."""
  try:
    return open_source(task, overrides, data_dir), None
  except MissingData as e:
    return None, str(e)
  except SourceError as e:  # present but malformed: said, not a crash mid-run
    return None, failure_reason(e)


def _path(data_dir: str, path: str) -> pathlib.Path:
  return pathlib.Path(data_dir).expanduser() / os.path.expanduser(path)


def label_index(task: Task, native: str, aliases: Mapping[str, str], where: str) -> int:
  label = aliases.get(native, native)
  if label not in task.labels:
    raise SourceError(f"{where}: label {native!r} is not one of {task.name}'s {len(task.labels)} labels")
  return task.labels.index(label)


# Folder layouts ------------------------------------------------------------------------------------

def _folder(task: Task, data_dir: str, *, layout: str, root: str, aliases: Mapping | None = None,
            **kwargs):
  """A layout's options named `*_path` are files outside its root, found from `data_dir`."""
  from clap_jax.eval import layouts  # pylint: disable=g-import-not-at-top (it imports this module)
  readers = layouts.READERS
  if layout not in readers:
    raise ValueError(f"{task.name}: unknown folder layout {layout!r}; one of {sorted(readers)}")
  aliases = aliases or {}
  try:
    inspect.signature(readers[layout]).bind(task, root, aliases=aliases, **kwargs)
  except TypeError as e:
    raise ValueError(f"{task.name}: bad options for the {layout} layout {kwargs}: {e}") from None
  root = _path(data_dir, root)
  if not root.is_dir():
    raise MissingData(f"{root} is absent")
  kwargs = {k: _path(data_dir, v) if k.endswith("_path") else v for k, v in kwargs.items()}
  items = list(readers[layout](task, root, aliases=aliases, **kwargs))
  if layout not in layouts.ABSENT_IS_UNUSABLE:
    for item in items:
      if not os.path.isfile(item.audio):
        raise SourceError(f"{task.name}: {item.audio} is listed but absent")
  return ListSource(items)


# TFDS ----------------------------------------------------------------------------------------------

class TfdsSource(Source):
  """A prepared TFDS split, or several joined by '+' ('train+validation+test': all folds), read in
  that order; process p reads the p-th contiguous part of them (`split[a:b]` of each).

  `outside`: what an example whose label is not one of the task's is: 'error', or 'drop' (a task
  defined on part of the dataset's classes, e.g. HEAR's nsynth_pitch on MIDI 21-108)."""

  def __init__(self, task: Task, builder, split: str, label: str, aliases: Mapping[str, str],
               outside: str = "error"):
    if outside not in ("error", "drop"):
      raise ValueError(f"{task.name}: outside={outside!r}, one of 'error', 'drop'")
    self.task, self.builder, self.aliases, self.outside = task, builder, aliases, outside
    self.splits = split.split("+")
    self.label_path = label.split("/")
    self.sizes = [builder.info.splits[s].num_examples for s in self.splits]
    self.size = sum(self.sizes)
    feature = builder.info.features
    for part in self.label_path:
      feature = feature[part]
    # A ClassLabel has names (ids 0..n-1 for unnamed ones); a dict of booleans is multi-label.
    self.names = list(feature.names) if hasattr(feature, "names") else None
    audio = builder.info.features["audio"]
    self.rate = audio.sample_rate
    # Integer audio is 16-bit PCM (soundfile's float convention).
    self.scale = 32768.0 if np.issubdtype(np.dtype(audio.np_dtype), np.integer) else 1.0

  def local_items(self, process_index, process_count):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    start = self.size * process_index // process_count
    stop = self.size * (process_index + 1) // process_count
    for split, offset, (a, b) in _split_slices(self.splits, self.sizes, start, stop):
      ds = self.builder.as_dataset(split=f"{split}[{a}:{b}]", shuffle_files=False)
      for index, example in enumerate(tfds.as_numpy(ds), a):
        item = self._item(example, f"{self.builder.name}/{split}[{index}]")
        if item is not None:
          yield offset + index, item

  def _item(self, example, where: str) -> Item | None:
    value = example
    for part in self.label_path:
      value = value[part]
    if isinstance(value, dict):  # multi-label flags, e.g. NSynth qualities
      natives = [name for name, on in value.items() if on]
    else:
      natives = [self.names[int(value)]]
    if self.outside == "drop" and any(self.aliases.get(n, n) not in self.task.labels for n in natives):
      return None
    labels = tuple(label_index(self.task, n, self.aliases, where) for n in natives)
    audio = np.asarray(example["audio"], np.float32) / self.scale
    return Item(where, (audio,), rate=self.rate, labels=labels)


def _split_slices(splits: Sequence[str], sizes: Sequence[int], start: int, stop: int):
  """Global example range [start, stop) over the joined splits -> (split, its global offset,
  (a, b) within it) for each split the range touches."""
  offset = 0
  for split, size in zip(splits, sizes):
    a, b = max(start - offset, 0), min(stop - offset, size)
    if a < b:
      yield split, offset, (a, b)
    offset += size


def _tfds(task: Task, data_dir: str, *, name: str, split: str, label: str = "label",
          aliases: Mapping | None = None, tfds_dir: str | None = None, outside: str = "error"):
  """`label`: the feature path ('instrument/family'); `tfds_dir`: TFDS's data_dir (default: its
  own, ~/tensorflow_datasets), not the config's `data_dir`; `split`: one or several joined by '+'."""
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise MissingData(f"TFDS {name}: tensorflow_datasets is not installed") from None
  try:
    builder = tfds.builder(name, data_dir=tfds_dir)
  except tfds.core.registered.DatasetNotFoundError:
    raise MissingData(f"TFDS has no dataset {name!r} (not registered)") from None
  if not builder.is_prepared():
    raise MissingData(f"TFDS {name} is not prepared in {builder.data_dir}")
  unknown = set(split.split("+")) - set(builder.info.splits)
  if unknown:
    raise SourceError(f"TFDS {name} has no split {sorted(unknown)}; it has {sorted(builder.info.splits)}")
  return TfdsSource(task, builder, split, label, aliases or {}, outside)


# Shards --------------------------------------------------------------------------------------------

class ShardSource(Source):
  """Shards of launch/make_shards.py. Process p reads whole shards p, p + P, ...: the writer puts
  all windows of a clip in one shard, so no clip is split. A clip's key is the global position
  of its first record; its labels are stored as indices into the task's labels."""

  def __init__(self, task: Task, shards):
    self.task, self.shards = task, shards
    self.max_captions = shards.max_captions
    self.offsets = np.cumsum((0,) + shards.counts)

  def local_items(self, process_index, process_count):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    for index in range(process_index, len(self.shards.files), process_count):
      path = self.shards.files[index]
      try:
        yield from self._shard_items(index, path)
      except tf.errors.DataLossError as e:  # a truncated or corrupted shard
        message = re.sub(r"\{\{.*?\}\}\s*", "", e.message)  # less TF's op context
        raise SourceError(f"{path}: {message}") from None

  def _shard_items(self, index: int, path: str):
    from clap_jax.data import records  # pylint: disable=g-import-not-at-top
    # A clip's windows are consecutive records named '{clip}#{k}'.
    for clip_id, group in itertools.groupby(enumerate(records.read_shard(path)), key=lambda r: r[1][0]):
      windows = list(group)
      position, (_, _, labels, captions) = windows[0]
      if any(not 0 <= l < len(self.task.labels) for l in labels):
        raise SourceError(f"{path}: {clip_id} has labels {labels}, {self.task.name} has "
                          f"{len(self.task.labels)}")
      pieces = tuple(audio for _, (_, audio, _, _) in windows)
      yield int(self.offsets[index]) + position, Item(
          clip_id, pieces, rate=self.shards.sample_rate, labels=labels, captions=captions)


def _shards(task: Task, data_dir: str, *, pattern: str):
  from clap_jax.data import ShardSet, records  # pylint: disable=g-import-not-at-top
  # Shards on object storage (gs://...) are named by their URL, never under data_dir.
  pattern = pattern if records.is_url(pattern) else str(_path(data_dir, pattern))
  if not records.glob(pattern):
    raise MissingData(f"no shard matches {pattern}")
  return ShardSource(task, ShardSet.find(pattern))
