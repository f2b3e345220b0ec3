"""The shard format shared by the writer and the reader: file names, the Example schema, the summary.

A shard set is `{prefix}-{i:05d}-of-{n:05d}.tfrecord` files plus, beside them, `{prefix}-summary.json`
(per-shard counts and what the reader needs to know: rate, longest clip, tokenizer length, tasks).
Each record is a `tf.train.Example`:
  audio           bytes   int16 little-endian PCM, mono, at `sample_rate` (float = int16 / 32768)
  audio_length    int64   samples in `audio`
  captions        bytes[] C caption texts
  input_ids       int64[] (C, context_length) token ids, flattened
  attention_mask  int64[] (C, context_length), flattened
  labels          int64[] class indices (possibly none)
  task            bytes   task name ('' when none)
  example_id      bytes   stable id: the item id, with '#k' for the k-th window of a long clip

Paths are strings handled by tf.io.gfile, so a shard set can live on object storage (gs://...) as
well as on a local disk; pathlib would fold 'gs://b' into 'gs:/b'.
"""
import glob as glob_lib
import json
import os
import re
from typing import Iterator

import numpy as np
import tensorflow as tf

FORMAT_VERSION = 1
PCM_SCALE = 32768.0  # soundfile's int16 <-> float convention, so 16-bit sources round-trip exactly
_SHARD_RE = re.compile(r"^(?P<prefix>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.tfrecord$")


def shard_name(prefix: str, index: int, count: int) -> str:
  return f"{prefix}-{index:05d}-of-{count:05d}.tfrecord"


def is_url(path: str | os.PathLike) -> bool:
  """Whether `path` names a file system of tf.io.gfile's (gs://, ram://), not a local path."""
  return "://" in os.fspath(path)


def glob(pattern: str | os.PathLike) -> list[str]:
  """The files matching `pattern`, sorted: tf.io.gfile's matches for a URL; for a local path,
  Python's glob's, whose matches tf.io.gfile's would change (hidden files, './' prefixes)."""
  pattern = os.fspath(pattern)
  return sorted(tf.io.gfile.glob(pattern) if is_url(pattern) else glob_lib.glob(pattern))


def summary_path(out_dir: str | os.PathLike, prefix: str) -> str:
  return os.path.join(out_dir, f"{prefix}-summary.json")


def rejects_path(out_dir: str | os.PathLike, prefix: str) -> str:
  return os.path.join(out_dir, f"{prefix}-rejects.jsonl")


def summary_of_shard(path: str | os.PathLike) -> str:
  """The summary file that describes shard `path`."""
  folder, name = os.path.split(os.fspath(path))
  match = _SHARD_RE.match(name)
  if match is None:
    raise ValueError(f"{path}: not a shard name ({{prefix}}-00000-of-00001.tfrecord)")
  return summary_path(folder, match["prefix"])


def to_pcm16(waveform: np.ndarray) -> np.ndarray:
  """float32 in [-1, 1] -> int16; louder samples (resampling overshoot) are clipped."""
  return np.clip(np.round(waveform * PCM_SCALE), -32768, 32767).astype("<i2")


def encode_example(*, pcm: np.ndarray, captions, input_ids: np.ndarray, attention_mask: np.ndarray,
                   labels, task: str, example_id: str) -> bytes:
  """Serialises one example; `input_ids`/`attention_mask` are (C, context_length)."""
  def ints(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=np.asarray(values).reshape(-1)))

  def texts(values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))

  feature = dict(
      audio=tf.train.Feature(bytes_list=tf.train.BytesList(value=[pcm.astype("<i2").tobytes()])),
      audio_length=ints([pcm.shape[0]]),
      captions=texts(captions),
      input_ids=ints(input_ids),
      attention_mask=ints(attention_mask),
      labels=ints(list(labels)),
      task=texts([task]),
      example_id=texts([example_id]),
  )
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


PARSE_SPEC = dict(
    audio=tf.io.FixedLenFeature([], tf.string),
    audio_length=tf.io.FixedLenFeature([], tf.int64),
    captions=tf.io.RaggedFeature(tf.string),
    input_ids=tf.io.RaggedFeature(tf.int64),
    attention_mask=tf.io.RaggedFeature(tf.int64),
    labels=tf.io.RaggedFeature(tf.int64),
    task=tf.io.FixedLenFeature([], tf.string),
    example_id=tf.io.FixedLenFeature([], tf.string),
)


def write_json(path: str | os.PathLike, value) -> None:
  """Writes JSON under a temporary name and renames it, so a reader never sees half a file."""
  write_text(path, json.dumps(value, indent=1, sort_keys=True))


def write_text(path: str | os.PathLike, content: str) -> None:
  """Writes `content` under a temporary name and renames it (atomic on a local disk; on object
  storage the rename is a copy, and the object appears whole when it is complete anyway)."""
  tmp = os.fspath(path) + ".partial"
  with tf.io.gfile.GFile(tmp, "w") as f:
    f.write(content)
  tf.io.gfile.rename(tmp, os.fspath(path), overwrite=True)


def read_json(path: str | os.PathLike):
  with tf.io.gfile.GFile(os.fspath(path)) as f:
    return json.load(f)


def read_shard(path: str) -> Iterator[tuple[str, np.ndarray, tuple[int, ...], tuple[str, ...]]]:
  """(clip id, float32 audio, labels, captions) of each record of one shard, in order: the
  evaluator's exact pass over whole clips (a clip's windows are records '{clip}#{k}')."""
  for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
    example = tf.io.parse_single_example(record, PARSE_SPEC)
    audio = np.frombuffer(example["audio"].numpy(), "<i2").astype(np.float32) / PCM_SCALE
    yield (example["example_id"].numpy().decode().split("#")[0], audio,
           tuple(int(l) for l in example["labels"].numpy()),
           tuple(c.decode() for c in example["captions"].numpy()))
