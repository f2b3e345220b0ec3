"""Checkpoints of a training workdir (orbax), preemption, and the model of a finished run.

`{workdir}/checkpoints/{step}/` holds two items:
  state  the train state (params, batch_stats, opt_state, step, rng), saved from its shards;
  meta   JSON: the step, the data position (the next global batch to read) and the whole config.
Orbax writes a step under a temporary name and renames it when complete (after every process has
written its shards), so a run killed mid-save leaves the previous step as the latest; leftovers
are removed on the next start.

Resume order: the latest complete step's state is restored into the shardings of the new run's
mesh (which may differ), then the data iterator restarts at the saved position, and the step's
randomness is `fold_in(rng, step)`: the resumed run continues exactly as if never stopped. A
complete step can still be unreadable (a data file truncated by a full disk or a bad copy):
`resume.restore_latest` then falls back to an older step and sets the unreadable one aside
(`{workdir}/unreadable_checkpoints/`), so that the run can write that step again.
"""
import json
import signal

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from jax.experimental import multihost_utils


def _directory(workdir) -> epath.Path:
  # gs:// works (epath -> tf.io.gfile, TensorStore's gcs driver); TF's ram:// does not: epath has
  # no ram:// path class and TensorStore no ram driver (its memory:// is a store of its own).
  path = epath.Path(workdir)
  if "://" not in str(workdir):  # orbax needs absolute local paths (gs:// etc. already are)
    path = path.absolute()
  return path / "checkpoints"


class Checkpointer:
  """Saves every `every_steps` (and when forced), keeps the last `keep`, asynchronously."""

  def __init__(self, workdir, config: ml_collections.ConfigDict):
    self.every_steps = config.every_steps
    self._manager = ocp.CheckpointManager(
        _directory(workdir), item_names=("state", "meta"),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=config.keep, create=True, cleanup_tmp_directories=True,
            enable_async_checkpointing=config.get("async_save", True)))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def steps(self) -> list[int]:
    """The complete steps, newest first."""
    return sorted(self._manager.all_steps(), reverse=True)

  def set_aside(self, step: int) -> epath.Path | None:
    """Moves `step` out of the checkpoints (kept, for inspection) -> where it now is (on process
    0, which moves it; None on the others)."""
    target = None
    if jax.process_index() == 0:
      target = self._manager.directory.parent / "unreadable_checkpoints" / str(step)
      suffix = 0
      while target.exists():  # a step set aside before under the same number
        suffix += 1
        target = target.with_name(f"{step}.{suffix}")
      target.parent.mkdir(parents=True, exist_ok=True)
      (self._manager.directory / str(step)).rename(target)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f"set aside checkpoint {step}")
    self._manager.reload()
    return target

  def due(self, step: int) -> bool:
    return step % self.every_steps == 0

  def save(self, step: int, state: dict, meta: dict) -> None:
    """Starts writing `state` (the write continues in the background)."""
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)

  def restore(self, step: int, abstract_state, shardings) -> tuple[dict, dict]:
    """-> (state placed as `shardings`, meta) of `step`."""
    target = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                          abstract_state, shardings)
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
    return restored["state"], restored["meta"]

  def saved_config(self, step: int) -> ml_collections.ConfigDict:
    """The config the run that saved `step` was started with."""
    meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    return ml_collections.ConfigDict(json.loads(meta["config"]))

  def wait(self) -> None:
    """Blocks until background writes are done (before exiting, or to read them back)."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()


class BestCheckpoint:
  """The state with the best Zero-Shot score so far, in `{workdir}/best/`: a workdir of its own
  (`launch/eval.py --checkpoint {workdir}/best` evaluates it), one step kept, its meta holding
  `zero_shot_score`. A resumed run continues from the score saved there."""

  def __init__(self, workdir):
    self._manager = ocp.CheckpointManager(
        _directory(f"{workdir}/best"), item_names=("state", "meta"),
        options=ocp.CheckpointManagerOptions(create=True, cleanup_tmp_directories=True,
                                             enable_async_checkpointing=False))
    step = self._manager.latest_step()
    self.step, self.score = step, None
    if step is not None:
      meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
      self.score = meta["meta"]["zero_shot_score"]

  def consider(self, step: int, state: dict, meta: dict, score: float | None) -> bool:
    """Saves `state` if `score` beats the best so far -> whether it did."""
    if score is None or (self.score is not None and score <= self.score):
      return False
    if step in self._manager.all_steps():  # a resumed run evaluating a step it already kept
      return False
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        meta=ocp.args.JsonSave({**meta, "zero_shot_score": score})), force=True)
    self._manager.wait_until_finished()
    # Only this one is kept, even where an older run's best has a higher step number.
    for old in self._manager.all_steps():
      if old != step:
        self._manager.delete(old)
    self.step, self.score = step, score
    return True

  def close(self) -> None:
    self._manager.close()


def load_inference_variables(workdir, step: int | None = None
                             ) -> tuple[ml_collections.ConfigDict, dict]:
  """-> (model config, {'params', 'batch_stats'}) of a training workdir's latest (or `step`)
  checkpoint, as host numpy arrays. Only the model's arrays are read, not the optimizer state."""
  manager = ocp.CheckpointManager(
      _directory(workdir), options=ocp.CheckpointManagerOptions(read_only=True),
      item_handlers={"state": ocp.PyTreeCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()})
  step = manager.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f"{_directory(workdir)}: no complete checkpoint")
  meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
  config = ml_collections.ConfigDict(json.loads(meta["config"]))
  saved = manager.item_metadata(step)["state"].tree
  wanted = {"params": {"model": saved["params"]["model"]}, "batch_stats": saved["batch_stats"]}
  target = jax.tree.map(lambda m: np.zeros(m.shape, m.dtype), wanted)
  restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
      item=target, restore_args=jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray),
                                             target),
      partial_restore=True)))["state"]
  manager.close()
  return config.model, {"params": restored["params"]["model"],
                        "batch_stats": restored["batch_stats"]}


class Preemption:
  """Whether the run must save and stop now.

  One process: SIGTERM (a scheduler's preemption notice) or SIGINT (Ctrl-C) sets a flag that the
  loop reads after each step. Several processes: they must all stop at the same step, so jax's
  preemption service (started by jax.distributed.initialize, listening for SIGTERM) picks the
  step, and the handlers are left to it.
  """

  def __init__(self):
    self.signal = None
    self._multiprocess = jax.process_count() > 1
    if not self._multiprocess:
      self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}

  def _handle(self, signum, frame):
    del frame
    self.signal = signal.Signals(signum).name

  def reached(self, step: int) -> bool:
    if self._multiprocess:
      if multihost_utils.reached_preemption_sync_point(step):
        self.signal = "SIGTERM"
    return self.signal is not None

  def restore_handlers(self) -> None:
    if not self._multiprocess:
      for s, handler in self._previous.items():
        signal.signal(s, handler)
