"""What the evaluator's processes exchange: host arrays to and from global arrays, strings and flags
gathered from every process (no-ops with one process), their common verdict on a task, and a loop
they run in step."""
from collections.abc import Callable, Iterator
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


def gather_flags(flags) -> np.ndarray:
  """This process's booleans (k,) -> (processes, k): every process's, in every process."""
  flags = np.asarray(flags, bool)
  if jax.process_count() == 1:
    return flags[None]
  return np.asarray(multihost_utils.process_allgather(flags)).reshape(jax.process_count(), -1)


def common_reason(reason: str | None) -> str | None:
  """This process's reason to give a task up (None: it has none) -> one verdict, the same in every
  process: None if no process has a reason, else the first process's, naming that process unless
  every process gave the same. Every process must call it at the same point (it gathers)."""
  reasons = gather_strings([reason or ""])
  given = [(index, r) for index, r in enumerate(reasons) if r]
  if not given:
    return None
  index, first = given[0]
  return first if len(set(reasons)) == 1 else f"process {index}: {first}"


class GivenUp(Exception):
  """A task every process gives up together, for one reason (its message)."""


def in_lockstep(items: Iterator, reason_of: Callable[[Exception], str]) -> Iterator:
  """This process's `items`, in step with every other process's: yields the next item (None once
  this one has run out but another has not) until all have run out. If `next()` fails in any
  process, with any error, all raise GivenUp with `reason_of` that error (common_reason): the
  others must hear of it, or they would wait in their next collective for ever. Gathers once per
  item, so every process must run the same loop."""
  while True:
    try:
      item, error = next(items, None), None
    except Exception as e:  # pylint: disable=broad-exception-caught
      item, error = None, reason_of(e)
    more, failed = gather_flags([item is not None, error is not None]).any(axis=0)
    if failed:
      raise GivenUp(common_reason(error))
    if not more:
      return
    yield item
