"""The optimizer: AdamW with linear warmup and cosine decay, gradient clipping, frozen parameters.

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


def schedule(config: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
  """0 -> lr over `warmup_steps`, then cosine to lr * end_lr_ratio at `total_steps`."""
  warmup = min(config.warmup_steps, total_steps)
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


def make(config: ml_collections.ConfigDict, params, total_steps: int):
  """-> (optax transformation, learning-rate schedule) for `params` (arrays or shapes)."""
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
  return tx, lr
