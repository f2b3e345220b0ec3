"""The optimizer: AdamW with gradient clipping and frozen parameters, under one of two schedules:
'cosine' (linear warmup, cosine decay: CLIP's) or 'plateau' (linear warmup to a constant, times
optax's reduce-on-plateau factor: the CLAP 2023 paper's).

Reduce-on-plateau watches the training loss: the step passes each step's loss (`value=`) to the
transformation, which averages it over `plateau.every_steps` steps (one "evaluation") and
multiplies every update by `plateau.factor` after `plateau.patience` evaluations without an
improvement of more than `plateau.rtol` (relative). Its state lives in the optimizer state, so it
is checkpointed and resumed with it.

Frozen parameters (a regex over names such as `model/caption_encoder/gpt2/...`) get no update and
no optimizer state; their gradients are never used, so XLA drops their computation. Clipping and
weight decay see only the trained parameters.
"""
import re

import jax
import jax.numpy as jnp
import ml_collections
import optax

from clap_jax import sharding


SCHEDULES = ("cosine", "plateau")


def schedule(config: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
  """0 -> lr over `warmup_steps`, then cosine to lr * end_lr_ratio at `total_steps` ('cosine'),
  or lr from then on ('plateau': the plateau's factor is applied by `plateau`)."""
  if config.schedule not in SCHEDULES:
    raise ValueError(f"optim.schedule {config.schedule!r}: one of {SCHEDULES}")
  warmup = min(config.warmup_steps, total_steps)
  if config.schedule == "plateau":
    return optax.join_schedules(
        [optax.linear_schedule(0.0, config.lr, max(warmup, 1)), optax.constant_schedule(config.lr)],
        [warmup])
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=config.lr, warmup_steps=warmup,
      decay_steps=max(total_steps, warmup + 1), end_value=config.lr * config.end_lr_ratio)


def trained_mask(params, frozen: str):
  """A tree of bools: False for the parameters whose name `frozen` (a regex, '' for none) finds."""
  pattern = re.compile(frozen) if frozen else None
  mask = [not (pattern and pattern.search(n)) for n in sharding.tree_names(params)]
  if not any(mask):
    raise ValueError(f"optim.frozen={frozen!r} freezes every parameter")
  return jax.tree.unflatten(jax.tree.structure(params), mask)


def clip_by_global_norm(max_norm: float) -> optax.GradientTransformation:
  """optax.clip_by_global_norm as one scalar factor, min(1, max_norm / norm), times each gradient.

  optax divides every element by the norm; XLA on CPU does not copy a division into several
  consumers, so it writes the clipped gradients out as one more pass over all parameters before
  Adam reads them. A multiplication by a scalar fuses into Adam's moment updates instead.
  """
  def update(updates, state, params=None):
    del params
    factor = jnp.minimum(1.0, max_norm / optax.tree.norm(updates))
    return jax.tree.map(lambda g: g * factor.astype(g.dtype), updates), state
  return optax.GradientTransformation(optax.init_empty_state, update)


def plateau(config: ml_collections.ConfigDict) -> optax.GradientTransformationExtraArgs:
  """optax's reduce-on-plateau over `config.plateau`; its update needs `value=` (the loss)."""
  p = config.plateau
  return optax.contrib.reduce_on_plateau(
      factor=p.factor, patience=p.patience, rtol=p.rtol, atol=p.atol, cooldown=p.cooldown,
      accumulation_size=p.every_steps, min_scale=p.min_scale)


def lr_scale(opt_state) -> jax.Array | float:
  """The reduce-on-plateau factor held in `opt_state` (1 without a plateau schedule)."""
  is_plateau = lambda x: isinstance(x, optax.contrib.ReduceLROnPlateauState)
  found = [x for x in jax.tree.leaves(opt_state, is_leaf=is_plateau) if is_plateau(x)]
  return found[0].scale if found else 1.0


def make(config: ml_collections.ConfigDict, params, total_steps: int):
  """-> (optax transformation, learning-rate schedule) for `params` (arrays or shapes). The
  transformation's update takes `value=` (the step's loss), which only 'plateau' reads; the
  learning rate of a step is `schedule(step) * lr_scale(opt_state after the step)`."""
  lr = schedule(config, total_steps)
  # Decay matrices and embeddings only: biases, norm scales and the temperature are not shrunk
  # towards zero (as CLIP and open_clip do).
  decay_mask = lambda p: jax.tree.map(lambda x: x.ndim >= 2, p)
  trained = optax.chain(
      clip_by_global_norm(config.clip_norm),
      optax.adamw(lr, b1=config.b1, b2=config.b2, eps=config.eps,
                  weight_decay=config.weight_decay, mask=decay_mask))
  labels = jax.tree.map(lambda t: "trained" if t else "frozen", trained_mask(params, config.frozen))
  tx = optax.multi_transform({"trained": trained, "frozen": optax.set_to_zero()}, labels)
  if config.schedule == "plateau":
    tx = optax.chain(tx, plateau(config))
  return optax.with_extra_args_support(tx), lr
