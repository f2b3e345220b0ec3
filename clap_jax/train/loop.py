"""The training loop, for every objective and every mesh: `main(config, workdir)`.

Order of events: mesh -> objective and optimizer -> the state's shardings (from its shapes, by the
config's rules) -> restore the newest readable checkpoint of `workdir`, or initialise (already
sharded) and load pretrained weights -> the jitted step -> loop: read this process's share of the
batch, step, log, checkpoint, evaluate (and keep the state of the best Zero-Shot score,
`config.checkpoint.keep_best`); stop at `total_steps`, on preemption (after saving) or on a
non-finite loss (without saving: the last good checkpoint stays the latest).

`workdir` may be on object storage (gs://...): the checkpoints go through orbax (epath), the
TensorBoard events through tf.io.gfile.
"""
import dataclasses
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tensorflow as tf
import tqdm
from jax.experimental import multihost_utils

from clap_jax import data, sharding
from clap_jax.data.reader import hide_gpus_from_tensorflow
from clap_jax.eval import registry
from clap_jax.text import text_columns
from clap_jax.train import checkpoint, init as init_lib, objectives, optim, resume
from clap_jax.train import step as step_lib, summary


TEXT_COLUMNS = ("input_ids", "attention_mask", "target_mask")  # (B, L) columns of the tokens


class NonFiniteLoss(FloatingPointError):
  pass


def trim_text(batch: dict, lengths) -> dict:
  """Drops the token columns past the end of every caption of the global batch, down to the
  shortest of `lengths` that holds them. All processes agree: the bucket grows with the longest
  caption, so the largest of the processes' own buckets is the global batch's."""
  length = text_columns(batch["attention_mask"], lengths)
  if jax.process_count() > 1:
    length = int(multihost_utils.process_allgather(np.int32(length)).max())
  return {**batch, **{k: batch[k][:, :length] for k in TEXT_COLUMNS if k in batch}}


def _initial_state(objective, tx, rng):
  init_rng, train_rng = jax.random.split(rng)
  params, batch_stats = objective.init(init_rng)
  return {"step": jnp.zeros((), jnp.int32), "rng": train_rng, "params": params,
          "batch_stats": batch_stats, "opt_state": tx.init(params)}


def _meta(config, step: int) -> dict:
  # Batches are a pure function of (input seed, position): the position is the data's state.
  return {"step": step, "data": {"seed": config.input.seed, "next_batch": step},
          "config": config.to_json()}


# What tf.summary.scalar writes (a float32 tensor marked for TensorBoard's scalars plugin);
# tf.summary.scalar itself lives in the tensorboard package, which is not a dependency.
_SCALAR = tf.compat.v1.SummaryMetadata(
    plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="scalars"))


class _Log:
  """Metrics to stdout (a progress bar) and TensorBoard (process 0 only)."""

  def __init__(self, workdir, config, first_step: int):
    self.main = jax.process_index() == 0
    self.writer = None
    if self.main:
      hide_gpus_from_tensorflow()  # the accelerators are JAX's, not the summary ops'
      self.writer = tf.summary.create_file_writer(workdir)
    self.bar = tqdm.tqdm(total=config.total_steps, initial=first_step, disable=not self.main,
                         dynamic_ncols=True)
    self.global_batch = config.input.global_batch
    self.mark = None  # (step, time) the rates are measured from

  def step(self, step: int, metrics: dict | None) -> None:
    self.bar.update(step - self.bar.n)
    now = time.perf_counter()
    if self.mark is None:  # the first step compiles; rates count from its end
      self.mark = (step, now)
    if metrics is None or step == self.mark[0]:
      return
    (first, start) = self.mark
    seconds = (now - start) / (step - first)
    self.mark = (step, now)
    metrics = {**{k: float(v) for k, v in metrics.items()}, "step_time": seconds,
               "examples_per_second": self.global_batch / seconds}
    self.scalars(step, metrics, "train/")
    self.bar.set_postfix(loss=f"{metrics['loss']:.4f}", acc=f"{metrics['accuracy']:.3f}",
                         ex_s=f"{metrics['examples_per_second']:.1f}")

  def scalars(self, step: int, metrics: dict, prefix: str) -> None:
    if self.main:
      with self.writer.as_default(step=step):
        for name, value in metrics.items():
          tf.summary.write(prefix + name, tf.constant(value, tf.float32), metadata=_SCALAR)
      self.writer.flush()

  def message(self, text: str) -> None:
    if self.main:
      self.bar.write(text)

  def summary(self, text: str) -> None:
    """After the progress bar: the run's closing lines."""
    self.bar.close()
    if self.main:
      print(text, flush=True)

  def close(self) -> None:
    self.bar.close()
    if self.main:
      self.writer.close()


def _best_keeper(config, evaluators, workdir):
  """(the keeper of the best checkpoint, the evaluator whose score picks it), or None when
  config.checkpoint.keep_best is off."""
  name = config.checkpoint.keep_best
  if not name:
    return None
  chosen = [e for e in evaluators if e.name == name]
  if not chosen:
    raise ValueError(f"checkpoint.keep_best={name!r}: no such evaluator with tasks in config.evals "
                     f"({sorted(e.name for e in evaluators)})")
  return checkpoint.BestCheckpoint(workdir), chosen[0]


def _evaluate(evaluator, step, state, config, best, log) -> dict:
  values = evaluator.run(state)
  if best is not None and evaluator is best[1]:
    score = evaluator.zero_shot_score(values)
    if best[0].consider(step, state, _meta(config, step), score):
      log.message(f"step {step}: Zero-Shot score {score:.4f}, the best so far: saved to best/")
    if score is not None:
      values = {**values, "zero_shot_score": score}
  return values


def _check_finite(step: int, metrics: dict, ckpt: checkpoint.Checkpointer, workdir) -> None:
  """Stops the run at a non-finite loss (or gradient, which would spoil the next parameters)."""
  loss, grad_norm = float(metrics["loss"]), float(metrics["grad_norm"])
  if not (np.isfinite(loss) and np.isfinite(grad_norm)):
    ckpt.wait()
    raise NonFiniteLoss(
        f"loss {loss}, gradient norm {grad_norm} at step {step}: training stopped without "
        f"saving; the last good checkpoint is step {ckpt.latest_step()} in {workdir}/checkpoints")


@dataclasses.dataclass
class Setup:
  """What a run is made of, before any data: also used by tests and benchmarks."""
  mesh: jax.sharding.Mesh
  objective: object
  abstract_state: dict  # ShapeDtypeStructs
  state_shardings: dict
  batch_sharding: jax.sharding.NamedSharding
  init: Callable[[], dict]  # jitted: a fresh state, created sharded
  train_step: Callable[[dict, dict], tuple[dict, dict]]  # jitted, donates the state


def build(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh | None = None) -> Setup:
  mesh = sharding.make_mesh(config.mesh) if mesh is None else mesh
  objective = objectives.get(config, mesh)
  rng = jax.random.PRNGKey(config.seed)
  abstract_params = jax.eval_shape(objective.init, rng)[0]
  tx, schedule = optim.make(config.optim, abstract_params, config.total_steps)
  init = lambda: _initial_state(objective, tx, rng)
  abstract_state = jax.eval_shape(init)
  state_shardings = sharding.shardings(abstract_state, config.sharding.rules, mesh,
                                       config.sharding.min_size)
  batch_sharding = sharding.batch_sharding(mesh)
  train_step = jax.jit(
      step_lib.make_train_step(objective, tx, schedule, config.optim.accum_steps,
                               optim.trained_mask(abstract_params, config.optim.frozen)),
      in_shardings=(state_shardings, batch_sharding), out_shardings=(state_shardings, None),
      donate_argnums=(0,))
  return Setup(mesh, objective, abstract_state, state_shardings, batch_sharding,
               jax.jit(init, out_shardings=state_shardings), train_step)


def main(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains (or resumes) in `workdir`; returns the final evaluation's metrics (may be empty)."""
  workdir = os.fspath(workdir)
  objectives.check_inputs(config)
  started = time.perf_counter()
  ckpt = checkpoint.Checkpointer(workdir, config.checkpoint)
  run = build(config)
  restored = resume.restore_latest(ckpt, config, workdir, run.abstract_state, run.state_shardings)
  if restored is None:
    state = run.init()
    if config.init.clap_from or config.init.audio_from or config.init.decoder_from:
      variables = init_lib.initialise(
          {"params": state["params"]["model"], "batch_stats": state["batch_stats"]},
          config.init, config.model)
      state = jax.device_put(
          {**state, "params": {**state["params"], "model": variables["params"]},
           "batch_stats": variables["batch_stats"]}, run.state_shardings)
    next_batch = 0
  else:
    _, state, meta = restored
    next_batch = meta["data"]["next_batch"]
  evaluators = registry.from_config(config, run.objective, run.mesh)
  best = _best_keeper(config, evaluators, workdir)

  step = first_step = int(state["step"])
  log = _Log(workdir, config, step)
  log.message(f"{'resuming at' if restored is not None else 'starting at'} step {step} of "
              f"{config.total_steps}; mesh {dict(run.mesh.shape)}, {jax.process_count()} process(es)")
  batches = run.objective.batches(next_batch)
  preemption = checkpoint.Preemption()
  previous = None  # (step, metrics) of the last step, checked once the next one is queued
  try:
    while step < config.total_steps:
      local = {k: v for k, v in next(batches).items() if k in run.objective.batch_keys}
      if "attention_mask" in local:
        local = trim_text(local, config.input.text_lengths)
      batch = data.to_global(local, run.batch_sharding)
      state, metrics = run.train_step(state, batch)
      step += 1
      if previous is not None:
        _check_finite(*previous, ckpt, workdir)
      previous = (step, metrics)
      log.step(step, metrics if step % config.log.every_steps == 0 else None)
      preempted = preemption.reached(step)
      if ckpt.due(step) or step == config.total_steps or preempted:
        _check_finite(step, metrics, ckpt, workdir)
        ckpt.save(step, state, _meta(config, step))
      if preempted:
        log.message(f"{preemption.signal}: saved step {step}, stopping; rerun to resume")
        return {}
      for evaluator in evaluators:
        if evaluator.due(step):
          log.scalars(step, _evaluate(evaluator, step, state, config, best, log), "eval/")
    results = {}
    for evaluator in evaluators:
      results.update(_evaluate(evaluator, step, state, config, best, log))
    log.scalars(step, results, "eval/")
    ckpt.wait()
    log.summary(summary.text(config, workdir, first_step=int(first_step), step=step,
                             seconds=time.perf_counter() - started, results=results,
                             checkpoint_step=ckpt.latest_step()))
    return results
  finally:
    ckpt.wait()
    ckpt.close()
    if best is not None:
      best[0].close()
    preemption.restore_handlers()
    log.close()
