"""GPT-2 as transformers' GPT2Model computes it: the text tower of CLAP 2023.

Submodule names mirror the torch state dict (`h.0.attn.c_attn` -> `h_0/attn/c_attn`), so that
conversion is a table (clap_jax/convert/gpt2.py).
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections


class Attention(nn.Module):
  """Causal multi-head self-attention with one fused q/k/v projection."""
  config: ml_collections.ConfigDict
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, mask, train: bool):
    c = self.config
    qkv = nn.Dense(3 * c.n_embd, dtype=self.dtype, name="c_attn")(x)
    # (B, L, 3 * D) -> 3 x (B, L, heads, D / heads)
    q, k, v = jnp.split(qkv.reshape(*x.shape[:2], 3 * c.n_head, -1), 3, axis=2)
    if train and c.dropout > 0:
      # jax.nn.dot_product_attention has no dropout on the attention weights; torch drops
      # independently per example and head, hence broadcast_dropout=False.
      y = nn.dot_product_attention(
          q, k, v, mask=mask, dropout_rng=self.make_rng("dropout"), dropout_rate=c.dropout,
          broadcast_dropout=False, deterministic=False, dtype=self.dtype,
          force_fp32_for_softmax=True)
    else:
      y = jax.nn.dot_product_attention(q, k, v, mask=mask)
    y = nn.Dense(c.n_embd, dtype=self.dtype, name="c_proj")(y.reshape(x.shape))
    return nn.Dropout(c.dropout, deterministic=not train)(y)


class MLP(nn.Module):
  config: ml_collections.ConfigDict
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    c = self.config
    x = nn.Dense(4 * c.n_embd, dtype=self.dtype, name="c_fc")(x)
    x = nn.gelu(x, approximate=True)  # transformers' gelu_new
    x = nn.Dense(c.n_embd, dtype=self.dtype, name="c_proj")(x)
    return nn.Dropout(c.dropout, deterministic=not train)(x)


class Block(nn.Module):
  config: ml_collections.ConfigDict
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, mask, train: bool):
    eps = self.config.layer_norm_epsilon
    y = nn.LayerNorm(epsilon=eps, dtype=self.dtype, name="ln_1")(x)
    x = x + Attention(self.config, self.dtype, name="attn")(y, mask, train)
    y = nn.LayerNorm(epsilon=eps, dtype=self.dtype, name="ln_2")(x)
    return x + MLP(self.config, self.dtype, name="mlp")(y, train)


class GPT2(nn.Module):
  """Token ids -> final hidden states (B, L, n_embd), after `ln_f`.

  Positions are 0..L-1 whatever the padding (as GPT2Model without position_ids); a query attends
  to the keys at or before it whose attention_mask is 1. Parameters are float32, compute `dtype`.
  """
  config: ml_collections.ConfigDict
  dtype: jnp.dtype = jnp.float32
  remat: bool = False  # recompute each block's activations in the backward pass (saves memory)

  @nn.compact
  def __call__(self, input_ids, attention_mask, train: bool = False):
    c = self.config
    length = input_ids.shape[1]
    if length > c.n_positions:
      raise ValueError(f"{length} tokens, but GPT-2 has only {c.n_positions} positions")
    x = nn.Embed(c.vocab_size, c.n_embd, dtype=self.dtype, name="wte")(input_ids)
    x = x + nn.Embed(c.n_positions, c.n_embd, dtype=self.dtype, name="wpe")(jnp.arange(length))
    x = nn.Dropout(c.dropout, deterministic=not train)(x)
    # (B, L) -> (B, 1, L, L): causal, and padded keys masked.
    causal = jnp.tril(jnp.ones((length, length), bool))
    mask = causal & (attention_mask[:, None, None, :] > 0)
    block = nn.remat(Block, static_argnums=(3,)) if self.remat else Block
    for i in range(c.n_layer):
      x = block(c, self.dtype, name=f"h_{i}")(x, mask, train)
    return nn.LayerNorm(epsilon=c.layer_norm_epsilon, dtype=self.dtype, name="ln_f")(x)
