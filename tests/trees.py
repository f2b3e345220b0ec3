"""Comparisons of whole parameter trees that cannot pass vacuously: a `zip` over two leaf lists
stops at the shorter and passes on two empty trees, these check the structure first."""
import jax
import numpy as np


def leaf_pairs(got, want) -> list[tuple]:
  """[(path, got leaf, want leaf)] of two trees of the same structure, with at least one leaf."""
  got_paths = jax.tree_util.tree_flatten_with_path(got)[0]
  want_paths = jax.tree_util.tree_flatten_with_path(want)[0]
  got_names = [jax.tree_util.keystr(p) for p, _ in got_paths]
  want_names = [jax.tree_util.keystr(p) for p, _ in want_paths]
  if got_names != want_names:
    raise AssertionError(
        f"trees differ: only in the first {sorted(set(got_names) - set(want_names))[:5]}, only in "
        f"the second {sorted(set(want_names) - set(got_names))[:5]} (or the order differs)")
  assert got_names, "both trees are empty: nothing compared"
  return [(name, a, b) for name, (_, a), (_, b) in zip(got_names, got_paths, want_paths)]


def assert_trees_close(got, want, rtol: float = 0.0, atol: float = 0.0, scaled_atol: float = 0.0
                       ) -> int:
  """Every leaf of `got` close to the same leaf of `want` -> the number of leaves compared.
  `scaled_atol`: an absolute tolerance per leaf, as a fraction of that leaf's largest |value|
  (float32 rounding of a sum is relative to its terms, not to a small result)."""
  pairs = leaf_pairs(got, want)
  for name, a, b in pairs:
    a, b = np.asarray(a), np.asarray(b)
    scale = float(np.max(np.abs(b))) if b.size and b.dtype.kind == "f" else 0.0
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol + scaled_atol * scale, err_msg=name)
  return len(pairs)


def assert_trees_equal(got, want) -> int:
  pairs = leaf_pairs(got, want)
  for name, a, b in pairs:
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)
  return len(pairs)
