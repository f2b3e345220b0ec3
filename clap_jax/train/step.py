"""The train step: a pure function (state, batch) -> (state, metrics), jitted by the loop.

The state is a dict: `step` (int32), `rng` (the run's key), `params` ({'model', ...}),
`batch_stats` and `opt_state`. Randomness of a step is `fold_in(rng, step)`: a resumed run draws
the same dropout, stochastic depth, SpecAugment and mixup as an uninterrupted one. Each device
draws only its own shard of those random arrays (jax's partitionable threefry), and the values do
not depend on the mesh, so one device and eight give the same step.
"""
import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from clap_jax import sharding
from clap_jax.train import optim


def _microbatches(batch: dict, count: int, mesh) -> dict:
  """(B, ...) -> (count, B / count, ...). Microbatch j takes examples j, j + count, ..., so each
  device keeps an equal part of every microbatch and nothing moves between devices."""
  def split(x):
    if x.shape[0] % count:
      raise ValueError(f"batch {x.shape[0]} does not split into {count} microbatches")
    x = x.reshape(x.shape[0] // count, count, *x.shape[1:]).swapaxes(0, 1)
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, P(None, sharding.BATCH_AXES)))
  return jax.tree.map(split, batch)


def make_train_step(objective, tx: optax.GradientTransformation, schedule, accum_steps: int,
                    trained_mask):
  """-> train_step(state, batch) -> (state, metrics). With `accum_steps` > 1 the step is that of
  the mean of the microbatches' losses: the gradient is the mean over microbatches, and the
  contrastive loss of each sees only its microbatch.

  BatchNorm under accumulation: each microbatch is normalised by its own statistics (as it would
  be as a batch of its own), and the running averages move once per step, as without
  accumulation: to the mean of the microbatches' updates, each made from the step's averages.
  Their mean is then exactly the whole batch's; their variance is the mean variance within a
  microbatch, which leaves out the spread of the microbatch means. (Updating once per
  microbatch instead would make the averages forget `accum_steps` times faster per step.)

  `trained_mask` (bools like params): the gradients of frozen parameters are replaced by zeros at
  once, so that nothing uses them (not even the accumulation) and XLA never computes them."""
  value_and_grad = jax.value_and_grad(objective.loss, has_aux=True)

  def grad_fn(*args):
    out, grads = value_and_grad(*args)
    return out, jax.tree.map(lambda g, t: g if t else jnp.zeros_like(g), grads, trained_mask)

  def train_step(state: dict, batch: dict):
    rng = jax.random.fold_in(state["rng"], state["step"])
    params = state["params"]
    if accum_steps == 1:
      (_, (metrics, batch_stats)), grads = grad_fn(params, state["batch_stats"], batch, rng)
    else:
      def accumulate(carry, xs):
        grads, stats_sum = carry
        index, micro = xs
        (_, (metrics, batch_stats)), g = grad_fn(params, state["batch_stats"], micro,
                                                 jax.random.fold_in(rng, index))
        return (jax.tree.map(jnp.add, grads, g), jax.tree.map(jnp.add, stats_sum, batch_stats)), \
            metrics
      zeros = jax.tree.map(jnp.zeros_like, (params, state["batch_stats"]))
      micro = _microbatches(batch, accum_steps, objective.mesh)
      (grads, batch_stats), metrics = jax.lax.scan(
          accumulate, zeros, (jnp.arange(accum_steps), micro))
      grads, batch_stats = jax.tree.map(lambda x: x / accum_steps, (grads, batch_stats))
      metrics = jax.tree.map(jnp.mean, metrics)
    # The loss is what a reduce-on-plateau schedule watches (optim.py); other schedules ignore it.
    updates, opt_state = tx.update(grads, state["opt_state"], params, value=metrics["loss"])
    params = objective.constrain(optax.apply_updates(params, updates))
    metrics = {**metrics, "learning_rate": schedule(state["step"]) * optim.lr_scale(opt_state),
               "grad_norm": optax.tree.norm(grads)}
    return {**state, "step": state["step"] + 1, "params": params, "batch_stats": batch_stats,
            "opt_state": opt_state}, metrics

  return train_step
