"""A searchable index folder of audio embeddings (written by clap_jax.embed), and top-k search.

The folder:
  index.json        what the embeddings are: model fingerprint, embed_dim, clip, long_audio
  {part}.npy        (n, D) float32 un-normalised embeddings, one row per id of the part
  {part}.json       {"ids": [n ids], "bad": [[id, reason], ...]}: written after the .npy, under a
                    temporary name then renamed, so it is the part's commit record: a part
                    without it (a killed run) does not exist for readers and is written again.

    ix = index.load("/data/clotho_index")          # ids, embeddings (N, D), bad, info
    scores, rows = index.top_k(queries, ix.embeddings, k=10)   # cosine, best first
"""
import dataclasses
import functools
import hashlib
import json
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

INFO_FILE = "index.json"
FORMAT_VERSION = 1
# Index rows scored at a time on the device: bounds its memory to chunk x queries scores.
DEVICE_CHUNK = 1 << 16


@dataclasses.dataclass(frozen=True)
class Index:
  ids: list[str]
  embeddings: np.ndarray  # (N, D) un-normalised, row i is ids[i]
  bad: list[tuple[str, str]]  # (id, reason) of the items that could not be embedded
  info: dict


def write_json(path: pathlib.Path, value) -> None:
  """Under a temporary name, then renamed: a reader sees the whole file or none."""
  tmp = path.with_name(path.name + ".partial")
  tmp.write_text(json.dumps(value, indent=1))
  os.replace(tmp, path)


def write_part(directory: str | os.PathLike, name: str, ids: list[str], embeddings: np.ndarray,
               bad: list[tuple[str, str]]) -> None:
  """Commits one part: the embeddings first, the ids (the commit record) last."""
  directory = pathlib.Path(directory)
  embeddings = np.asarray(embeddings, np.float32)
  if embeddings.ndim != 2 or embeddings.shape[0] != len(ids):
    raise ValueError(f"{name}: {len(ids)} ids for embeddings of shape {embeddings.shape}")
  tmp = directory / f"{name}.npy.partial"
  with open(tmp, "wb") as f:
    np.save(f, embeddings)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, directory / f"{name}.npy")
  write_json(directory / f"{name}.json", {"ids": list(ids), "bad": [list(b) for b in bad]})


def part_records(directory: str | os.PathLike) -> list[tuple[pathlib.Path, dict]]:
  """(path of the .json, its record) of every committed part, by name."""
  directory = pathlib.Path(directory)
  paths = sorted(p for p in directory.glob("*.json") if p.name != INFO_FILE)
  return [(p, json.loads(p.read_text())) for p in paths]


def done_ids(directory: str | os.PathLike) -> set[str]:
  """Ids already embedded or found unusable, by any process of any run."""
  if not pathlib.Path(directory).is_dir():
    return set()
  return {i for _, r in part_records(directory) for i in r["ids"] + [b[0] for b in r["bad"]]}


def load(directory: str | os.PathLike, mmap: bool = False) -> Index:
  """Every committed part, concatenated in part-name order; an id twice is an error. `mmap`:
  the parts are memory-mapped and copied once, into the concatenation."""
  directory = pathlib.Path(directory)
  info_path = directory / INFO_FILE
  if not info_path.is_file():
    raise FileNotFoundError(f"{directory}: no {INFO_FILE}; not an index written by clap_jax.embed")
  info = json.loads(info_path.read_text())
  ids, arrays, bad = [], [], []
  for path, record in part_records(directory):
    array = np.load(path.with_suffix(".npy"), mmap_mode="r" if mmap else None)
    if array.shape[0] != len(record["ids"]):
      raise ValueError(f"{path}: {len(record['ids'])} ids for {array.shape[0]} embeddings")
    ids += record["ids"]
    arrays.append(array)
    bad += [tuple(b) for b in record["bad"]]
  seen = set()
  twice = [i for i in ids + [b[0] for b in bad] if i in seen or seen.add(i)]
  if twice:
    raise ValueError(f"{directory}: ids stored more than once: {twice[:5]}")
  embeddings = (np.concatenate(arrays) if arrays
                else np.zeros((0, info["embed_dim"]), np.float32))
  return Index(ids, embeddings, bad, info)


def fingerprint(variables) -> str:
  """A digest of a model's arrays: an index is resumed and searched with the model that made it."""
  digest = hashlib.blake2b(digest_size=16)
  for leaf in jax.tree.leaves(variables):
    digest.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
  return digest.hexdigest()


def normalise(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float32)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def top_k(queries: np.ndarray, embeddings: np.ndarray, k: int, *, device: bool = False,
          chunk: int = DEVICE_CHUNK) -> tuple[np.ndarray, np.ndarray]:
  """(Q, D) queries against (N, D) embeddings -> (scores (Q, k), rows (Q, k)): cosine similarity,
  best first; equal scores in row order. k is capped at N. `device`: scored on the default
  device, `chunk` index rows at a time (large indexes); else in numpy."""
  queries, n = normalise(queries), embeddings.shape[0]
  k = min(k, n)
  if device:
    return _device_top_k(queries, embeddings, k, chunk)
  scores = queries @ normalise(embeddings).T  # (Q, N)
  # Sorting by (-score, row) is argsort's stable order of the negated scores.
  rows = np.argsort(-scores, axis=1, kind="stable")[:, :k]
  return np.take_along_axis(scores, rows, axis=1), rows


def _device_top_k(queries: np.ndarray, embeddings: np.ndarray, k: int, chunk: int):
  n = embeddings.shape[0]
  chunk = min(chunk, n)
  best_scores = jnp.full((queries.shape[0], k), -jnp.inf, jnp.float32)
  best_rows = jnp.zeros((queries.shape[0], k), jnp.int32)
  q = jnp.asarray(queries)
  for start in range(0, n, chunk):
    part = normalise(embeddings[start:start + chunk])
    valid = part.shape[0]
    part = np.pad(part, ((0, chunk - valid), (0, 0)))  # one shape: one compilation
    best_scores, best_rows = _merge_chunk(q, jnp.asarray(part), best_scores, best_rows,
                                          start, valid, k)
  return np.asarray(best_scores), np.asarray(best_rows)


@functools.partial(jax.jit, static_argnums=(6,))
def _merge_chunk(queries, part, best_scores, best_rows, start, valid, k):
  """The running top-k merged with one chunk's rows [start, start + valid)."""
  scores = jnp.dot(queries, part.T, precision=jax.lax.Precision.HIGHEST)  # (Q, chunk)
  scores = jnp.where(jnp.arange(part.shape[0]) < valid, scores, -jnp.inf)
  scores = jnp.concatenate([best_scores, scores], axis=1)
  rows = jnp.concatenate([best_rows, jnp.broadcast_to(
      start + jnp.arange(part.shape[0], dtype=jnp.int32), (queries.shape[0], part.shape[0]))], axis=1)
  # lax.top_k keeps the lower position among equals; earlier rows sit at lower positions.
  top, where = jax.lax.top_k(scores, k)
  return top, jnp.take_along_axis(rows, where, axis=1)
