"""Turns source `Item`s into TFRecord shards: decoded, resampled, cut, tokenised; parallel and resumable.

The run is planned first: items are ordered (seeded shuffle, so collections mix across shards) and
cut into shards by an estimate of their stored size. The plan is saved beside the shards and a
re-run follows it, so an item belongs to exactly one shard whatever happens. Each shard is written
under a temporary name by one worker process and renamed when complete; a re-run skips every shard
that exists. Unusable items are rejected with a reason, never dropped silently: per shard,
accepted + rejected = planned, and the summary's shard counts are the examples written.

`out_dir` may be on object storage (gs://...): every file goes through tf.io.gfile.
"""
import collections
import contextlib
import dataclasses
import functools
import json
import math
import multiprocessing
import os
import time
import zlib
from typing import Iterable, Literal

import numpy as np
import soundfile
import tensorflow as tf
import tqdm

from clap_jax import audio, text
from clap_jax.data import records
from clap_jax.data.sources import Item


@dataclasses.dataclass(frozen=True)
class WriterConfig:
  tokenizer: str = str(text.GPT2_FILES)  # what `clap_jax.text.from_files` takes (GPT-2 or BERT)
  prefix: str = "clips"
  sample_rate: int = 44100
  max_seconds: float = 10.0
  min_seconds: float = 0.1  # shorter clips are rejected: too little sound to describe
  # A clip longer than max_seconds becomes several examples ('windows', those of
  # `audio.clip_windows`) or one window at a seeded random offset ('random').
  long_mode: Literal["windows", "random"] = "windows"
  shard_mb: float = 256.0
  seed: int = 0  # item order across shards and the 'random' windows

  def __post_init__(self):
    audio.check_long_mode(self.long_mode)
    if not 0 < self.min_seconds <= self.max_seconds:
      raise ValueError(f"need 0 < min_seconds <= max_seconds, got {self.min_seconds}, {self.max_seconds}")

  @property
  def max_samples(self) -> int:
    return round(self.max_seconds * self.sample_rate)


def write_shards(items: Iterable[Item], out_dir: str | os.PathLike, config: WriterConfig, *,
                 num_workers: int = 0, progress: bool = True, num_tasks: int = 1,
                 task_index: int = 0) -> dict | None:
  """Writes (or completes) the shard set of `items` in `out_dir`; returns the summary it writes.

  `num_workers` processes decode and write shards (0: this process). Beside the shards:
  `{prefix}-summary.json`, `{prefix}-rejects.jsonl` (item_id, audio, reason per line),
  `{prefix}-plan.json` and `{prefix}-parts/` (per-shard results, what a re-run resumes from).

  Several machines split one collection with `num_tasks` and `task_index`: each makes the same
  plan (a pure function of the items and the config) and writes the shards whose index is
  `task_index` mod `num_tasks`, into the same `out_dir`. The task that finds every shard done
  writes the summary and the rejects; the others return None (re-run any task to summarise).
  """
  if not 0 <= task_index < num_tasks:
    raise ValueError(f"task_index {task_index}: need 0 <= task_index < num_tasks ({num_tasks})")
  out_dir = os.fspath(out_dir)
  tf.io.gfile.makedirs(out_dir)
  items = list(items)
  # Spawned, not forked: a fork of a process already running TF or JAX threads can deadlock.
  pool = multiprocessing.get_context("spawn").Pool(num_workers) if num_workers > 0 else None
  with pool or contextlib.nullcontext():
    plan = _load_or_make_plan(items, out_dir, config, pool)
    count = len(plan)
    for stale in records.glob(os.path.join(out_dir, f"{config.prefix}-*.partial")):
      tf.io.gfile.remove(stale)  # a shard interrupted mid-write: it will be written again from the start
    own = [i for i in range(count) if i % num_tasks == task_index]
    todo = [(out_dir, config, i, count, plan[i]) for i in own
            if not tf.io.gfile.exists(_shard_path(out_dir, config, i, count))]
    bar = tqdm.tqdm(total=len(own), initial=len(own) - len(todo), unit="shard",
                    disable=not progress)
    results = pool.imap_unordered(_write_shard, todo) if pool else map(_write_shard, todo)
    for _ in results:
      bar.update()
    bar.close()
  done = all(tf.io.gfile.exists(_shard_path(out_dir, config, i, count)) for i in range(count))
  return _summarise(out_dir, config, plan) if done else None


def _shard_path(out_dir: str, config: WriterConfig, index: int, count: int) -> str:
  return os.path.join(out_dir, records.shard_name(config.prefix, index, count))


def _part_path(out_dir: str, config: WriterConfig, index: int) -> str:
  return os.path.join(out_dir, f"{config.prefix}-parts", f"{index:05d}.json")


def encode_item(item: Item, config: WriterConfig, tokenizer) -> tuple[list[bytes], int, int]:
  """-> (serialised examples, source samples, stored samples), both counted at the configured rate.

  Raises `audio.AudioError` naming an unusable item and why.
  """
  captions = tuple(item.captions)
  if not captions or any(not c.strip() for c in captions):
    raise audio.AudioError(f"{item.item_id}: empty caption (captions: {list(captions)!r})")
  source = audio.open_audio(item.audio, config.sample_rate)
  seconds = source.samples / config.sample_rate
  if seconds < config.min_seconds:
    raise audio.AudioError(f"{item.audio}: too short ({seconds:.3f} s < {config.min_seconds} s)")
  rng = np.random.default_rng([config.seed, zlib.crc32(item.item_id.encode())])
  # Decoded window by window and kept as int16: a long source is never held whole as float32.
  windows = [records.to_pcm16(w) for w in source.windows(config.max_samples, config.long_mode, rng)]
  tokens = tokenizer(list(captions))
  examples = []
  for k, pcm in enumerate(windows):
    example_id = item.item_id if len(windows) == 1 else f"{item.item_id}#{k}"
    examples.append(records.encode_example(
        pcm=pcm, captions=captions, input_ids=tokens["input_ids"],
        attention_mask=tokens["attention_mask"], labels=item.labels, task=item.task,
        example_id=example_id))
  return examples, source.samples, sum(w.shape[0] for w in windows)


def _load_or_make_plan(items, out_dir, config, pool) -> list[list[Item]]:
  ids = [item.item_id for item in items]
  repeated = [i for i, n in collections.Counter(ids).items() if n > 1]
  if repeated:
    raise ValueError(f"item ids must be unique; repeated: {repeated[:5]}")
  path = os.path.join(out_dir, f"{config.prefix}-plan.json")
  by_id = dict(zip(ids, items))
  if tf.io.gfile.exists(path):
    saved = records.read_json(path)
    if saved["config"] != dataclasses.asdict(config):
      raise ValueError(f"{path}: written with another config {saved['config']}; "
                       f"use a new output folder or prefix")
    planned = [i for shard in saved["shards"] for i in shard]
    if sorted(planned) != sorted(ids):
      raise ValueError(f"{path}: planned for other items ({len(planned)} planned, {len(ids)} given); "
                       f"use a new output folder or prefix")
    return [[by_id[i] for i in shard] for shard in saved["shards"]]
  order = np.random.default_rng(config.seed).permutation(len(items))
  ordered = [items[i] for i in order]
  estimate = functools.partial(_estimated_bytes, config=config)
  sizes = pool.map(estimate, ordered, chunksize=64) if pool else list(map(estimate, ordered))
  plan, current, current_bytes = [], [], 0
  for item, size in zip(ordered, sizes):
    if current and current_bytes + size > config.shard_mb * 2**20:
      plan.append(current)
      current, current_bytes = [], 0
    current.append(item)
    current_bytes += size
  plan.append(current)
  records.write_json(path, dict(config=dataclasses.asdict(config),
                                shards=[[item.item_id for item in shard] for shard in plan]))
  return plan


def _estimated_bytes(item: Item, config: WriterConfig) -> int:
  """Stored bytes of `item` from its header alone; 0 for a file that will be rejected anyway."""
  try:
    info = soundfile.info(item.audio)
  except (soundfile.LibsndfileError, RuntimeError, TypeError, OSError):
    return 0
  samples = math.ceil(info.frames * config.sample_rate / max(info.samplerate, 1))
  if samples > config.max_samples:
    windows = math.ceil(samples / config.max_samples) if config.long_mode == "windows" else 1
    samples = windows * config.max_samples
  return 2 * samples + 2 * 8 * 77 * len(item.captions)  # int16 audio + int64 ids and mask


@functools.lru_cache(maxsize=1)
def _tokenizer(name: str):
  from clap_jax import text  # pylint: disable=import-outside-toplevel
  return text.from_files(name)


def _write_shard(job) -> None:
  """Writes shard `index` and its part file; the shard's rename is last, marking it complete."""
  out_dir, config, index, count, items = job
  final = _shard_path(out_dir, config, index, count)
  tmp = final + ".partial"
  tokenizer = _tokenizer(config.tokenizer)
  part = dict(shard=os.path.basename(final), examples=0, accepted=[], rejects=[], source_samples=0,
              stored_samples=0, max_captions=0, tasks=[], labelled=0, max_label=-1)
  start = time.time()
  with tf.io.TFRecordWriter(tmp) as writer:
    for item in items:
      try:
        examples, source_samples, stored_samples = encode_item(item, config, tokenizer)
      except audio.AudioError as e:
        part["rejects"].append(dict(item_id=item.item_id, audio=item.audio, reason=str(e)))
        continue
      for example in examples:
        writer.write(example)
      part["examples"] += len(examples)
      part["accepted"].append(item.item_id)
      part["source_samples"] += source_samples
      part["stored_samples"] += stored_samples
      part["max_captions"] = max(part["max_captions"], len(item.captions))
      part["labelled"] += bool(item.labels)
      part["max_label"] = max([part["max_label"], *item.labels])
      if item.task and item.task not in part["tasks"]:
        part["tasks"].append(item.task)
  part["write_seconds"] = time.time() - start
  part_path = _part_path(out_dir, config, index)
  tf.io.gfile.makedirs(os.path.dirname(part_path))
  records.write_json(part_path, part)
  tf.io.gfile.rename(tmp, final, overwrite=True)


def _summarise(out_dir, config, plan) -> dict:
  """Gathers the part files into the summary and the rejects file, checking nothing was lost."""
  count = len(plan)
  parts = [records.read_json(_part_path(out_dir, config, i)) for i in range(count)]
  for shard, part in zip(plan, parts):
    seen = set(part["accepted"]) | {r["item_id"] for r in part["rejects"]}
    if seen != {item.item_id for item in shard}:
      raise RuntimeError(f"{part['shard']}: accepted + rejected items differ from the plan")
  rejects = [r for part in parts for r in part["rejects"]]
  with tf.io.gfile.GFile(records.rejects_path(out_dir, config.prefix), "w") as f:
    f.write("".join(json.dumps(r) + "\n" for r in rejects))
  summary = dict(
      format=records.FORMAT_VERSION,
      config=dataclasses.asdict(config),
      sample_rate=config.sample_rate,
      max_samples=config.max_samples,
      context_length=_context_length(config.tokenizer),
      shards={part["shard"]: part["examples"] for part in parts},
      examples=sum(part["examples"] for part in parts),
      items=dict(planned=sum(map(len, plan)), accepted=sum(len(p["accepted"]) for p in parts),
                 rejected=len(rejects)),
      seconds=dict(source=sum(p["source_samples"] for p in parts) / config.sample_rate,
                   stored=sum(p["stored_samples"] for p in parts) / config.sample_rate,
                   writing=sum(p["write_seconds"] for p in parts)),
      max_captions=max(p["max_captions"] for p in parts),
      tasks=sorted({t for p in parts for t in p["tasks"]}),
      labelled=sum(p["labelled"] for p in parts),
      num_classes=max(p["max_label"] for p in parts) + 1,
  )
  records.write_json(records.summary_path(out_dir, config.prefix), summary)
  return summary


def _context_length(tokenizer_name: str) -> int:
  return int(_tokenizer(tokenizer_name)(["x"])["input_ids"].shape[1])
