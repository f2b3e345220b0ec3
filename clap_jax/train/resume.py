"""Resuming a workdir: from which step, and with which config.

The newest step that reads back is resumed; a newer one that does not (a data file truncated by a
full disk or a bad copy) is named and set aside, never skipped silently, and a workdir whose steps
all fail to read stops the run rather than restarting it from scratch.

A config that differs from the one the run was started with: what changed is printed, and a
change of the trained arrays' structure is refused by name (the restore would otherwise fail deep
in Orbax, or a second config would silently continue the first's run)."""
import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from clap_jax import sharding
from clap_jax.train import ConfigError, checkpoint, objectives


class UnreadableCheckpoints(RuntimeError):
  pass


def _everywhere(ok: bool) -> bool:
  """Whether `ok` holds on every process (one process's failed read fails the step for all)."""
  if jax.process_count() == 1:
    return ok
  return bool(multihost_utils.process_allgather(np.int32(ok)).min())


def _say(text: str) -> None:
  if jax.process_index() == 0:
    print(text, flush=True)


def restore_latest(ckpt: checkpoint.Checkpointer, config: ml_collections.ConfigDict, workdir,
                   abstract_state, shardings) -> tuple[int, dict, dict] | None:
  """-> (step, state placed as `shardings`, meta) of the newest step of `ckpt` that reads back;
  None when there is no step. Each step's config is checked against `config` first (a
  ConfigError is not a damaged step). The steps newer than the one restored are set aside once an
  older one has read back, so that a failure of every step (a cause other than damage) moves
  nothing."""
  failed = []  # (step, error)
  for step in ckpt.steps():
    error = None
    try:
      saved = ckpt.saved_config(step)
    except Exception as e:  # orbax and TensorStore raise plain Exceptions for unreadable files
      error = e
    if _everywhere(error is None):
      check_config(saved, config, workdir)
      try:
        state, meta = ckpt.restore(step, abstract_state, shardings)
      except Exception as e:
        error = e
    if not _everywhere(error is None):
      failed.append((step, error))
      _say(f"checkpoint step {step} in {workdir} is unreadable ({_brief(error)}); "
           f"trying an older step")
      continue
    for bad, _ in failed:
      where = ckpt.set_aside(bad)
      _say(f"set aside unreadable step {bad} (now {where}); resuming from step {step}")
    return step, state, meta
  if failed:
    raise UnreadableCheckpoints(
        f"no checkpoint in {workdir}/checkpoints reads back: "
        + "; ".join(f"step {s}: {_brief(e)}" for s, e in failed)
        + ". Nothing was moved; fix or remove them, or use another --workdir")
  return None


def _brief(error) -> str:
  if error is None:  # the read failed on another process
    return "failed on another process"
  text = str(error).splitlines()[0] if str(error) else ""
  return f"{type(error).__name__}: {text[:300]}"


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
