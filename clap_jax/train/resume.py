"""Resuming a workdir with a config that differs from the one its run was started with: what
changed is printed, and a change of the trained arrays' structure is refused by name (the restore
would otherwise fail deep in Orbax, or a second config would silently continue the first's run)."""
import jax
import ml_collections
import numpy as np

from clap_jax import sharding
from clap_jax.train import ConfigError, objectives


def flat(config: ml_collections.ConfigDict, prefix: str = "") -> dict:
  """{'a.b.c': value} of every leaf (tuples as lists, as the saved JSON holds them)."""
  out = {}
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      out.update(flat(value, f"{prefix}{key}."))
    else:
      out[prefix + key] = list(value) if isinstance(value, tuple) else value
  return out


def _normalise(value):
  if isinstance(value, (list, tuple)):
    return [_normalise(v) for v in value]
  return value


def changes(saved: ml_collections.ConfigDict, current: ml_collections.ConfigDict) -> list[str]:
  """'key: saved -> current' for each key whose value differs or exists on one side only."""
  old, new = flat(saved), flat(current)
  out = []
  for key in sorted(set(old) | set(new)):
    a, b = _normalise(old.get(key, "<absent>")), _normalise(new.get(key, "<absent>"))
    if a != b:
      out.append(f"{key}: {a!r} -> {b!r}")
  return out


def _param_shapes(config: ml_collections.ConfigDict) -> dict:
  objective = objectives.get(config, None)
  params, batch_stats = jax.eval_shape(objective.init, jax.random.key(0))
  tree = {"params": params, "batch_stats": batch_stats}
  return dict(zip(sharding.tree_names(tree), (np.shape(x) for x in jax.tree.leaves(tree))))


def check_config(saved: ml_collections.ConfigDict, current: ml_collections.ConfigDict,
                 workdir) -> None:
  """Prints the changes (process 0); raises ValueError naming the changed model/objective keys and
  the arrays they change when the saved state cannot hold the current model."""
  changed = changes(saved, current)
  if not changed:
    return
  if jax.process_index() == 0:
    print(f"resuming {workdir} with a changed config:\n  " + "\n  ".join(changed), flush=True)
  structural = [c for c in changed if c.startswith(("model.", "objective:", "loss.kind:", "tasks."))]
  if not structural:
    return
  new = _param_shapes(current)
  try:
    old = _param_shapes(saved)
  except (AttributeError, KeyError, TypeError, ValueError):  # a config of an older schema
    old = {}
  arrays = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
  if arrays:
    keys = ", ".join(c.split(":")[0] for c in structural)
    shown = "; ".join(f"{k}: {old.get(k, 'absent')} -> {new.get(k, 'absent')}" for k in arrays[:5])
    raise ConfigError(
        f"{workdir} holds a run of a different model ({keys} changed; arrays {shown}"
        f"{f' and {len(arrays) - 5} more' if len(arrays) > 5 else ''}): use another --workdir")
