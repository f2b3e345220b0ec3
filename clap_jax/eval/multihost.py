"""What the evaluator's processes exchange: host arrays to and from global arrays, strings and flags
gathered from every process (no-ops with one process)."""
import json

import jax
import numpy as np
from jax.experimental import multihost_utils


def to_global(x: np.ndarray, sharding) -> jax.Array:
  """An array every process holds whole -> a global array split by `sharding`."""
  return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def local_to_global(x: np.ndarray, sharding) -> jax.Array:
  """This process's rows -> its part of a global array (rows of all processes stacked)."""
  return jax.make_array_from_process_local_data(sharding, x)


def gather_strings(strings: list[str]) -> list[str]:
  """Every process's `strings`, in process order, in every process."""
  if jax.process_count() == 1:
    return list(strings)
  data = np.frombuffer(json.dumps(strings).encode(), np.uint8)
  lengths = multihost_utils.process_allgather(np.array(len(data)))
  padded = np.zeros(int(lengths.max()), np.uint8)
  padded[:len(data)] = data
  gathered = multihost_utils.process_allgather(padded)
  return [s for row, n in zip(gathered, lengths) for s in json.loads(row[:n].tobytes())]


def any_process(flag: bool) -> bool:
  if jax.process_count() == 1:
    return flag
  return bool(np.any(multihost_utils.process_allgather(np.array(flag))))
