"""Host-side batching of the zero-shot evaluator: clips' windows packed into fixed-shape local
batches, window embeddings summed back per clip, and the threads that keep the devices fed."""
import collections
import concurrent.futures
from collections.abc import Iterable, Iterator

import numpy as np

from clap_jax import audio as audio_lib
from clap_jax.data.items import Item
from clap_jax.eval import sources as sources_lib
from clap_jax.eval.tasks import RETRIEVAL, Task


class Rows:
  """Packs windows into fixed-shape local batches: audio (b, clip), key, windows (the clip's window
  count), mask, and labels (b, C) multi-hot or caption tokens (b, C, L)."""

  def __init__(self, task: Task, max_captions: int, size: int, clip_samples: int, tokenizer):
    self.task, self.max_captions, self.size = task, max_captions, size
    self.clip_samples, self.tokenizer = clip_samples, tokenizer

  def batches(self, loaded) -> Iterator[dict[str, np.ndarray]]:
    rows = []
    for key, item, windows in loaded:
      if key >= 2 ** 31:
        raise ValueError(f"{self.task.name}: clip key {key} does not fit int32")
      fields = self._clip_fields(item)
      rows.extend((key, window, len(windows), fields) for window in windows)
      while len(rows) >= self.size:
        yield self._batch(rows[:self.size])
        rows = rows[self.size:]
    if rows:
      yield self._batch(rows)

  def empty(self) -> dict[str, np.ndarray]:
    return self._batch([])

  def _clip_fields(self, item: Item) -> dict[str, np.ndarray]:
    if self.task.kind == RETRIEVAL:
      tokens = self.tokenizer(list(item.captions))
      count = len(item.captions)
      pad = ((0, self.max_captions - count), (0, 0))
      return {"caption_ids": np.pad(tokens["input_ids"], pad),
              "caption_attention": np.pad(tokens["attention_mask"], pad),
              "caption_valid": np.arange(self.max_captions) < count}
    labels = np.zeros(len(self.task.labels), np.int8)
    labels[list(item.labels)] = 1
    return {"labels": labels}

  def _batch(self, rows) -> dict[str, np.ndarray]:
    n = self.size
    batch = {"audio": np.zeros((n, self.clip_samples), np.float32),
             "key": np.zeros(n, np.int32), "windows": np.zeros(n, np.int32),
             "mask": np.zeros(n, bool)}
    if self.task.kind == RETRIEVAL:
      length = self.tokenizer.context_length
      batch.update(caption_ids=np.zeros((n, self.max_captions, length), np.int32),
                   caption_attention=np.zeros((n, self.max_captions, length), np.int32),
                   caption_valid=np.zeros((n, self.max_captions), bool))
    else:
      batch["labels"] = np.zeros((n, len(self.task.labels)), np.int8)
    for i, (key, window, windows, fields) in enumerate(rows):
      audio_lib.repeat_pad(window, self.clip_samples, out=batch["audio"][i])
      batch["key"][i], batch["windows"][i], batch["mask"][i] = key, windows, True
      for name, value in fields.items():
        batch[name][i] = value
    return batch


class Clips:
  """Sums window embeddings per clip key and keeps each clip's other fields."""

  def __init__(self):
    self.sums, self.seen, self.windows, self.fields = {}, collections.Counter(), {}, {}

  def add(self, gathered: dict[str, np.ndarray]) -> int:
    """Adds one gathered global batch; returns how many new clips it started."""
    new = 0
    for i in np.flatnonzero(gathered["mask"]):
      key = int(gathered["key"][i])
      embedding = gathered["embedding"][i].astype(np.float64)
      if key in self.sums:
        self.sums[key] += embedding
      else:
        new += 1
        self.sums[key] = embedding
        self.windows[key] = int(gathered["windows"][i])
        self.fields[key] = {k: v[i] for k, v in gathered.items()
                            if k not in ("embedding", "key", "windows", "mask")}
      self.seen[key] += 1
    return new

  def finish(self, name: str) -> dict[str, np.ndarray]:
    if not self.sums:
      raise sources_lib.SourceError(f"{name}: the source yielded no clips")
    wrong = {k: (self.seen[k], self.windows[k]) for k in self.sums if self.seen[k] != self.windows[k]}
    if wrong:
      raise AssertionError(f"{name}: clips seen a wrong number of times (seen, windows): "
                           f"{dict(list(wrong.items())[:5])}")
    keys = sorted(self.sums)
    out = {"key": np.array(keys),
           "embedding": np.stack([self.sums[k] / self.seen[k] for k in keys])}
    for field in self.fields[keys[0]]:
      out[field] = np.stack([self.fields[k][field] for k in keys])
    return out


def bounded_map(fn, items: Iterable, workers: int) -> Iterator:
  """map(fn, items) on a thread pool, in order, with at most 2 * workers results in flight."""
  with concurrent.futures.ThreadPoolExecutor(max(workers, 1)) as pool:
    pending = collections.deque()
    for item in items:
      pending.append(pool.submit(fn, item))
      if len(pending) > 2 * workers:
        yield pending.popleft().result()
    while pending:
      yield pending.popleft().result()


def ahead(iterator: Iterator, size: int) -> Iterator:
  """Yields `iterator`'s items, computing up to `size` of them ahead in a background thread."""
  with concurrent.futures.ThreadPoolExecutor(1) as thread:
    pending = collections.deque(thread.submit(next, iterator) for _ in range(size))
    while True:
      item = pending.popleft().result()
      pending.append(thread.submit(next, iterator))
      yield item
