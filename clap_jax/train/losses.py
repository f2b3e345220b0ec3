"""Contrastive losses over the global batch, computed chunk by chunk around a ring of devices.

Each device holds its own rows of the batch (b = B / n audio and text embeddings). The text chunks
travel around the ring of the batch axes (`ppermute`); at every hop a device scores its audio
against the visiting texts, a (b, b) block, and folds it into running statistics. Statistics that
belong to the texts (column log-sum-exp, column max) travel with their chunk and come home on the
last hop. No device ever holds more than one (b, b) block of the (B, B) logits, and the result is
the same as the dense loss on one device.

    loss, metrics = contrastive_loss(audio, text, log_scale, bias, kind=..., mesh=..., axes=...)
"""
import functools
import math

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

KINDS = ("softmax", "sigmoid")


def l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
  """x / max(||x||, eps), as torch.nn.functional.normalize."""
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)


def pair_targets(mix: jax.Array) -> jax.Array:
  """(b,) mixup weights -> (b, b) targets of the local pairs: audio i is mix[i] x clip i +
  (1 - mix[i]) x clip i^1 (pairs 2k, 2k+1, as `mix_pairs` builds it), so it matches caption i
  with weight mix[i] and caption i^1 with the rest. No mixup (mix = 1) gives the identity."""
  b = mix.shape[0]
  index = jnp.arange(b)
  swap = index[:, None] == (index ^ 1)[None, :]
  return jnp.where(index[:, None] == index[None, :], mix[:, None], 0.0) + swap * (1 - mix)[:, None]


def _ring_blocks(audio, text, mix, log_scale, bias, kind, axes):
  """Inside shard_map: local (b, d) audio and text -> (loss sum, matches sum) over the ring."""
  n = jax.lax.axis_size(axes)
  b = audio.shape[0]
  scale = jnp.exp(log_scale)
  targets = pair_targets(mix)  # (b, b): the only non-zero targets are in the home block
  home = scale * audio @ text.T + bias  # (b, b): my audio x my texts
  # The accumulators differ per device; scan needs their initial values typed so.
  varying = lambda x: jax.lax.pcast(x, axes, to="varying")
  row_init = varying(jnp.full((b,), -jnp.inf))
  # Each hop hands a chunk to the previous device: at hop s device i holds chunk (i + s) mod n.
  perm = [(i, (i - 1) % n) for i in range(n)]

  @jax.checkpoint  # the backward pass recomputes each block instead of keeping n of them
  def hop(carry, s):
    chunk, row_acc, row_max, col_acc, col_max = carry
    logits = scale * audio @ chunk.T + bias  # (b, b): my audio x the visiting texts
    row_max = jnp.maximum(row_max, logits.max(axis=1))
    col_max = jnp.maximum(col_max, logits.max(axis=0))
    if kind == "softmax":
      row_acc = jnp.logaddexp(row_acc, jax.nn.logsumexp(logits, axis=1))
      col_acc = jnp.logaddexp(col_acc, jax.nn.logsumexp(logits, axis=0))
    else:
      # Sigmoid: every pair is a binary problem, positive only in the home block (s = 0).
      y = jnp.where(s == 0, targets, 0.0)
      nll = -(y * jax.nn.log_sigmoid(logits) + (1 - y) * jax.nn.log_sigmoid(-logits))
      row_acc = row_acc + jnp.sum(nll, axis=1)
    chunk, col_acc, col_max = jax.lax.ppermute((chunk, col_acc, col_max), axes, perm)
    return (chunk, row_acc, row_max, col_acc, col_max), None

  row_acc0 = row_init if kind == "softmax" else varying(jnp.zeros((b,)))
  carry = (text, row_acc0, row_init, row_init, row_init)
  (_, row_acc, row_max, col_acc, col_max), _ = jax.lax.scan(hop, carry, jnp.arange(n))
  if kind == "softmax":
    # Symmetric cross-entropy with (soft) targets: audio->text over rows, text->audio over columns.
    loss = 0.5 * (jnp.sum(row_acc - jnp.sum(targets * home, axis=1)) +
                  jnp.sum(col_acc - jnp.sum(targets * home, axis=0)))
  else:
    loss = jnp.sum(row_acc)
  # In-batch matching: the true pair scores highest, audio->text and text->audio averaged.
  true_pair = jnp.diagonal(home)
  matches = 0.5 * (jnp.sum(true_pair >= row_max) + jnp.sum(true_pair >= col_max))
  return jax.lax.psum(loss, axes), jax.lax.psum(matches, axes)


def contrastive_loss(audio_embeddings: jax.Array, text_embeddings: jax.Array,
                     log_scale: jax.Array, bias: jax.Array | float = 0.0,
                     mix: jax.Array | None = None, *, kind: str, mesh: jax.sharding.Mesh,
                     axes: tuple[str, ...]) -> tuple[jax.Array, dict]:
  """(B, D) un-normalised embeddings, batch-sharded over `axes` of `mesh` -> (loss, metrics).

  `mix` (B,): mixup weights of the audio (see `pair_targets`; None: no mixup). With mixup the
  per-device batch must be even, so that a pair never straddles two devices.

  kind='softmax': CLIP's symmetric cross-entropy with temperature exp(log_scale), the mean over
    the B audio->text and B text->audio rows.
  kind='sigmoid': SigLIP's pairwise loss, sum over all B x B pairs of -log sigmoid(z (s x + bias))
    with z = +1 for a true pair and -1 otherwise, divided by B.
  Computed in float32 whatever the embeddings' dtype.
  """
  if kind not in KINDS:
    raise ValueError(f"unknown contrastive loss {kind!r}: one of {KINDS}")
  batch = audio_embeddings.shape[0]
  if text_embeddings.shape[0] != batch:
    raise ValueError(f"{batch} audio but {text_embeddings.shape[0]} text embeddings")
  audio = l2_normalize(audio_embeddings.astype(jnp.float32))
  text = l2_normalize(text_embeddings.astype(jnp.float32))
  log_scale = jnp.asarray(log_scale, jnp.float32)
  bias = jnp.asarray(bias, jnp.float32)
  if mix is None:
    mix = jnp.ones((batch,))
  elif (batch // math.prod(mesh.shape[a] for a in axes)) % 2:
    raise ValueError(f"mixup pairs neighbouring examples, but {batch} examples over "
                     f"{dict(mesh.shape)} leave an odd number on each device")
  mix = jnp.asarray(mix, jnp.float32)
  ring = jax.shard_map(
      functools.partial(_ring_blocks, kind=kind, axes=axes), mesh=mesh,
      in_specs=(P(axes), P(axes), P(axes), P(), P()), out_specs=(P(), P()))
  loss, matches = ring(audio, text, mix, log_scale, bias)
  return loss / batch, {"loss": loss / batch, "accuracy": matches / batch,
                        "temperature": 1 / jnp.exp(log_scale)}


def mix_pairs(rng: jax.Array, waveforms: jax.Array, alpha: float) -> tuple[jax.Array, jax.Array]:
  """Mixup of neighbouring clips (2k with 2k+1), one weight per pair ~ Beta(alpha, alpha).

  (B, N) -> (mixed (B, N), mix (B,)) for `contrastive_loss`. HTSAT mixes each clip with the one
  at the mirrored batch position; mixing neighbours instead keeps every pair on one device, so the
  result does not depend on the number of devices.
  """
  batch = waveforms.shape[0]
  if batch % 2:
    raise ValueError(f"mixup pairs neighbouring clips; the batch {batch} is odd")
  mix = jnp.repeat(jax.random.beta(rng, alpha, alpha, (batch // 2,)), 2)  # (B,)
  partners = waveforms.reshape(batch // 2, 2, -1)[:, ::-1].reshape(waveforms.shape)
  w = mix.astype(waveforms.dtype)[:, None]
  return w * waveforms + (1 - w) * partners, mix
