"""Reading a PyTorch state dict key by key, so that nothing is silently missed or left over."""
from collections.abc import Mapping

import jax
import numpy as np


class ConversionError(ValueError):
  """A checkpoint does not fit the model: names the offending keys."""


class StateReader:
  """Hands out state-dict entries as numpy arrays and remembers which were used.

  Parameters are taken with `take` (absent -> error naming the key). Buffers the model recomputes
  (STFT kernels, mel filters, window masks, causal masks) go through `check_buffer`: they may be
  absent, but where present they must equal what we compute.
  """

  def __init__(self, state: Mapping[str, np.ndarray], source: str = "checkpoint"):
    self._state = dict(state)
    self._used: set[str] = set()
    self.source = source
    self.missing: list[str] = []
    self.mismatched: list[str] = []

  def take(self, key: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """The array under `key`; records it as missing (and returns None) when absent."""
    if key not in self._state:
      self.missing.append(key)
      return None
    self._used.add(key)
    value = np.asarray(self._state[key])
    if shape is not None and tuple(value.shape) != tuple(shape):
      self.mismatched.append(f"{key}: shape {tuple(value.shape)}, expected {tuple(shape)}")
    return value

  def check_buffer(self, key: str, expected: np.ndarray, atol: float = 1e-5) -> None:
    """Accepts an absent buffer; a present one must match `expected` in shape and value."""
    if key not in self._state:
      return
    self._used.add(key)
    value = np.asarray(self._state[key])
    expected = np.asarray(expected)
    if value.shape != expected.shape:
      self.mismatched.append(f"{key}: buffer shape {value.shape}, expected {expected.shape}")
    elif not np.allclose(value.astype(np.float64), expected.astype(np.float64), atol=atol, rtol=0):
      err = np.max(np.abs(value.astype(np.float64) - expected.astype(np.float64)))
      self.mismatched.append(f"{key}: buffer differs from the recomputed one (max abs {err:.3g})")

  def ignore(self, key: str) -> None:
    """Marks a key that is known to carry no information for this model (if present)."""
    if key in self._state:
      self._used.add(key)

  def unused(self) -> list[str]:
    return sorted(set(self._state) - self._used)

  def raise_if_bad(self) -> None:
    problems = []
    if self.missing:
      problems.append(f"missing parameters: {', '.join(self.missing)}")
    if self.mismatched:
      problems.append(f"wrong shape or value: {'; '.join(self.mismatched)}")
    unused = self.unused()
    if unused:
      problems.append(f"unused keys: {', '.join(unused)}")
    if problems:
      raise ConversionError(f"{self.source} does not fit the model: " + " | ".join(problems))


def linear(reader: StateReader, prefix: str, bias: bool = True,
           features: tuple[int, int] | None = None) -> dict:
  """torch.nn.Linear (out, in) -> flax Dense {'kernel': (in, out), 'bias'}; shapes checked against
  `features` = (in, out) if given."""
  d_in, d_out = features or (None, None)
  params = {"kernel": _t(reader.take(prefix + ".weight", features and (d_out, d_in)))}
  if bias:
    params["bias"] = reader.take(prefix + ".bias", features and (d_out,))
  return params


def layer_norm(reader: StateReader, prefix: str) -> dict:
  """torch LayerNorm {weight, bias} -> flax LayerNorm {scale, bias}."""
  return {"scale": reader.take(prefix + ".weight"), "bias": reader.take(prefix + ".bias")}


def conv2d(reader: StateReader, prefix: str) -> dict:
  """torch Conv2d (O, I, H, W) -> flax Conv {'kernel': (H, W, I, O), 'bias'}."""
  w = reader.take(prefix + ".weight")
  return {"kernel": None if w is None else np.transpose(w, (2, 3, 1, 0)),
          "bias": reader.take(prefix + ".bias")}


def batch_norm(reader: StateReader, prefix: str) -> tuple[dict, dict]:
  """torch BatchNorm -> (flax params {scale, bias}, batch_stats {mean, var})."""
  reader.ignore(prefix + ".num_batches_tracked")  # only used for momentum=None, not here
  params = {"scale": reader.take(prefix + ".weight"), "bias": reader.take(prefix + ".bias")}
  stats = {"mean": reader.take(prefix + ".running_mean"), "var": reader.take(prefix + ".running_var")}
  return params, stats


def projection(reader: StateReader, prefix: str) -> dict:
  """msclap's Projection (two bias-free Linears and a LayerNorm) -> its flax twin."""
  return {"linear1": linear(reader, prefix + ".linear1", bias=False),
          "linear2": linear(reader, prefix + ".linear2", bias=False),
          "layer_norm": layer_norm(reader, prefix + ".layer_norm")}


def check_tree(variables: dict, expected: dict, source: str) -> None:
  """Every leaf of `expected` (the model's abstract variables) is in `variables` with its shape,
  and nothing else."""
  want = {jax.tree_util.keystr(p): v.shape for p, v in jax.tree_util.tree_leaves_with_path(expected)}
  got = {jax.tree_util.keystr(p): np.shape(v)
         for p, v in jax.tree_util.tree_leaves_with_path(variables)}
  problems = [f"not filled: {k}" for k in sorted(set(want) - set(got))]
  problems += [f"not in the model: {k}" for k in sorted(set(got) - set(want))]
  problems += [f"{k}: shape {got[k]}, model expects {want[k]}"
               for k in sorted(set(got) & set(want)) if tuple(got[k]) != tuple(want[k])]
  if problems:
    raise ConversionError(f"{source} does not fit the model: " + "; ".join(problems))


def _t(w):
  return None if w is None else np.ascontiguousarray(w.T)
