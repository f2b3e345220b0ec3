"""Embedding a whole collection into an index folder (clap_jax.index), resumably.

    clap = encode.load("2023", checkpoint="CLAP_weights_2023.pth")
    summary = embed.embed_collection(clap, embed.ListCollection(sources.folder("/data/sounds")),
                                     "/data/sounds_index")

Every process embeds its own share of the collection (`Collection.local_items`) on its local
devices, each batch split over them; processes never wait for each other. Results are committed
in parts of `part_size` clips (clap_jax.index.write_part); a run started again on the same folder
skips every id a committed part holds, so a killed run resumes without embedding a clip twice or
losing one (a clip is done once its part is committed; what a killed run had not committed is
embedded again). An item that cannot be used (missing, unreadable, NaN samples, ...) is skipped
and recorded in its part's `bad` list with the reason, never retried and never fatal.
A clip's embedding is the mean of its windows' embeddings, as `ClapEncoder.audio_embeddings`
computes it.
"""
import dataclasses
import itertools
import json
import os
import pathlib
import time
from collections.abc import Iterator, Sequence

import jax
import numpy as np
import tqdm
from jax.sharding import NamedSharding, PartitionSpec as P

from clap_jax import audio as audio_lib
from clap_jax import encode
from clap_jax import index as index_lib
from clap_jax.data.items import Item
from clap_jax.eval import batching
from clap_jax.eval.sources import ListSource, Source


class ListCollection(ListSource):
  """Items known up front (a folder, a manifest): process p takes the p-th contiguous block.
  Ids must be unique: they are what a resumed run skips."""

  def __init__(self, items: Sequence[Item]):
    super().__init__(items)
    seen = set()
    twice = [i.item_id for i in self.items if i.item_id in seen or seen.add(i.item_id)]
    if twice:
      raise ValueError(f"item ids must be unique; repeated: {twice[:5]}")


class ShardCollection(Source):
  """Shards of launch/make_shards.py: process p reads whole shards p, p + P, ...; a clip's windows
  (records '{clip}#{k}') are one item at the shards' rate, keyed by the global position of its
  first record."""

  def __init__(self, pattern: str | Sequence[str]):
    from clap_jax.data import ShardSet  # pylint: disable=g-import-not-at-top (TensorFlow)
    self.shards = ShardSet.find(pattern)
    self.offsets = np.cumsum((0,) + self.shards.counts)

  def local_items(self, process_index, process_count):
    from clap_jax.data import records  # pylint: disable=g-import-not-at-top
    for index in range(process_index, len(self.shards.files), process_count):
      grouped = itertools.groupby(enumerate(records.read_shard(self.shards.files[index])),
                                  key=lambda r: r[1][0])
      for clip_id, windows in grouped:
        windows = list(windows)
        yield (int(self.offsets[index]) + windows[0][0],
               Item(clip_id, tuple(audio for _, (_, audio, _, _) in windows),
                    rate=self.shards.sample_rate))


def shard_collection(pattern: str) -> ShardCollection:
  """The shards matching `pattern`, local or on object storage (gs://...)."""
  from clap_jax.data import records  # pylint: disable=g-import-not-at-top (TensorFlow)
  if not records.glob(pattern):
    raise FileNotFoundError(f"no shard matches {pattern}")
  return ShardCollection(pattern)


@dataclasses.dataclass
class Summary:
  embedded: int = 0  # by this run in this process
  already_done: int = 0  # skipped: committed by an earlier run
  bad: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (id, reason), this run
  windows: int = 0
  seconds: float = 0.0


def index_info(encoder: encode.ClapEncoder) -> dict:
  a = encoder.config.audio
  return {"format": index_lib.FORMAT_VERSION, "embed_dim": int(encoder.config.embed_dim),
          "sample_rate": int(a.sample_rate), "clip_samples": int(a.clip_samples),
          "long_audio": encoder.long_audio, "dtype": str(encoder.config.dtype),
          "model": encoder.fingerprint}


def embed_collection(encoder: encode.ClapEncoder, collection: Source, out_dir: str | os.PathLike,
                     *, batch_size: int = 64, part_size: int = 1024, workers: int = 4,
                     devices: Sequence[jax.Device] | None = None, process_index: int | None = None,
                     process_count: int | None = None, progress: bool = True) -> Summary:
  """Embeds this process's share of `collection` into `out_dir` (see the module docstring).

  `batch_size` windows per step over `devices` (default: this process's local devices; it must
  split over them); `workers` decoding threads; process index/count default to JAX's.
  """
  start_time = time.perf_counter()
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  devices = list(jax.local_devices() if devices is None else devices)
  if batch_size % len(devices):
    raise ValueError(f"batch_size {batch_size} does not split over {len(devices)} devices")
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  _check_info(out_dir, index_info(encoder))
  done = index_lib.done_ids(out_dir)
  summary = Summary()
  mesh = jax.sharding.Mesh(np.asarray(devices), ("batch",))
  rows_sharding = NamedSharding(mesh, P("batch"))
  variables = jax.device_put(encoder.variables, NamedSharding(mesh, P()))
  # The encoder's own jitted tower: compiled once per encoder, not once per call.
  encode_audio = encoder._encode_audio  # pylint: disable=protected-access
  a = encoder.config.audio
  size = collection.size  # None where unknown (shards: records, not clips)
  local = None if size is None else len(range(*_block(size, process_index, process_count)))
  bar = tqdm.tqdm(desc=f"embed {process_index}/{process_count}", unit="clip", total=local,
                  disable=not progress)

  def pending() -> Iterator[tuple[int, Item]]:
    for key, item in collection.local_items(process_index, process_count):
      if item.item_id in done:
        summary.already_done += 1
        bar.update()
      else:
        yield key, item

  def load(key_item):
    key, item = key_item
    rng = np.random.default_rng(key)  # a 'random' window that does not depend on the sharding
    try:
      return key, item, item.windows(a.sample_rate, a.clip_samples, encoder.long_audio, rng)
    except audio_lib.AudioError as e:
      return key, item, e

  writer = _PartWriter(out_dir, process_index, process_count, part_size, encoder.config.embed_dim)
  batch = np.empty((batch_size, a.clip_samples), np.float32)
  owners = []  # (key, item id, windows of the clip) of each filled row of `batch`
  windows_of = {}  # clip key -> window embeddings so far
  in_flight = None  # (owners, device embeddings) of the batch being encoded

  def collect(flight):
    flight_owners, embeddings = flight
    embeddings = np.asarray(embeddings)
    for row, (key, item_id, count) in enumerate(flight_owners):
      windows_of.setdefault(key, []).append(embeddings[row])
      if len(windows_of[key]) == count:
        writer.add(key, item_id, np.mean(windows_of.pop(key), axis=0))
        summary.embedded += 1
        bar.update()

  def dispatch():
    nonlocal batch, in_flight
    batch[len(owners):] = 0
    started = (list(owners), encode_audio(variables, jax.device_put(batch, rows_sharding)))
    # A fresh buffer: on CPU the device array may share the last one's memory.
    batch = np.empty_like(batch)
    owners.clear()
    if in_flight is not None:  # the host collects the previous batch while this one runs
      collect(in_flight)
    in_flight = started

  for key, item, windows in batching.bounded_map(load, pending(), workers):
    if isinstance(windows, audio_lib.AudioError):
      writer.add_bad(key, item.item_id, str(windows))
      summary.bad.append((item.item_id, str(windows)))
      tqdm.tqdm.write(f"skipped {windows}")
      bar.update()
      continue
    for window in windows:
      audio_lib.repeat_pad(window, a.clip_samples, out=batch[len(owners)])
      owners.append((key, item.item_id, len(windows)))
      summary.windows += 1
      if len(owners) == batch_size:
        dispatch()
  if owners:
    dispatch()
  if in_flight is not None:
    collect(in_flight)
  writer.flush()
  bar.close()
  summary.seconds = time.perf_counter() - start_time
  return summary


class _PartWriter:
  """Buffers finished clips and bad items; commits a part every `part_size` of them. A part is
  named by its process share and its lowest key, which no earlier committed part can hold (that
  clip would have been skipped), so a killed run's uncommitted files are simply overwritten."""

  def __init__(self, out_dir: pathlib.Path, process_index: int, process_count: int,
               part_size: int, embed_dim: int):
    self.out_dir, self.part_size, self.embed_dim = out_dir, part_size, embed_dim
    self.prefix = f"part-{process_index:05d}-of-{process_count:05d}"
    self.keys, self.ids, self.embeddings, self.bad = [], [], [], []

  def add(self, key: int, item_id: str, embedding: np.ndarray):
    self.keys.append(key)
    self.ids.append(item_id)
    self.embeddings.append(embedding)
    self._maybe_flush()

  def add_bad(self, key: int, item_id: str, reason: str):
    self.keys.append(key)
    self.bad.append((item_id, reason))
    self._maybe_flush()

  def _maybe_flush(self):
    if len(self.keys) >= self.part_size:
      self.flush()

  def flush(self):
    if not self.keys:
      return
    embeddings = np.stack(self.embeddings) if self.embeddings else np.zeros((0, self.embed_dim), np.float32)
    index_lib.write_part(self.out_dir, f"{self.prefix}-{min(self.keys):012d}", self.ids,
                         embeddings, self.bad)
    self.keys, self.ids, self.embeddings, self.bad = [], [], [], []


def _block(n: int, process_index: int, process_count: int) -> tuple[int, int]:
  return n * process_index // process_count, n * (process_index + 1) // process_count


def _check_info(out_dir: pathlib.Path, info: dict) -> None:
  """Writes index.json, or checks that the index there was made with the same model and clip."""
  path = out_dir / index_lib.INFO_FILE
  if path.is_file():
    held = json.loads(path.read_text())
    if held != info:
      changed = {k: (held.get(k), info.get(k)) for k in set(held) | set(info)
                 if held.get(k) != info.get(k)}
      raise ValueError(f"{out_dir} holds an index of another model or setting (held, now): "
                       f"{changed}; embed into a new folder")
    return
  index_lib.write_json(path, info)
