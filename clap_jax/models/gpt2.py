"""GPT-2 as transformers' GPT2Model computes it: the text tower of CLAP 2023, and (with the tied
language-model head of GPT2LMHeadModel and a key/value cache for decoding) clapcap's decoder.

Submodule names mirror the torch state dict (`h.0.attn.c_attn` -> `h_0/attn/c_attn`), so that
conversion is a table (clap_jax/convert/gpt2.py).
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections


def init_cache(config: ml_collections.ConfigDict, batch: int, length: int,
               dtype: jnp.dtype = jnp.float32) -> dict:
  """Zero keys and values for `length` positions: the 'cache' collection that
  `GPT2(..., cache_index=...)` reads and extends."""
  if length > config.n_positions:
    raise ValueError(f"a cache of {length} positions, but GPT-2 has only {config.n_positions}")
  shape = (batch, length, config.n_head, config.n_embd // config.n_head)
  return {f"h_{i}": {"attn": {"key": jnp.zeros(shape, dtype), "value": jnp.zeros(shape, dtype)}}
          for i in range(config.n_layer)}


def _no_cache():
  raise ValueError("decoding reads the 'cache' collection: pass gpt2.init_cache(...) as "
                   "variables['cache'] and apply with mutable=['cache']")


def attention(module: nn.Module, q, k, v, mask, dropout_rate: float) -> jax.Array:
  """Multi-head attention as torch computes it in training: with dropout on the attention weights
  (which jax.nn.dot_product_attention lacks), drawn per example and head (broadcast_dropout=False),
  from `module`'s 'dropout' rng."""
  if dropout_rate > 0:
    return nn.dot_product_attention(
        q, k, v, mask=mask, dropout_rng=module.make_rng("dropout"), dropout_rate=dropout_rate,
        broadcast_dropout=False, deterministic=False, dtype=module.dtype,
        force_fp32_for_softmax=True)
  return jax.nn.dot_product_attention(q, k, v, mask=mask)


class Attention(nn.Module):
  """Causal multi-head self-attention with one fused q/k/v projection."""
  config: ml_collections.ConfigDict
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, mask, train: bool, cache_index=None):
    c = self.config
    qkv = nn.Dense(3 * c.n_embd, dtype=self.dtype, name="c_attn")(x)
    # (B, L, 3 * D) -> 3 x (B, L, heads, D / heads)
    q, k, v = jnp.split(qkv.reshape(*x.shape[:2], 3 * c.n_head, -1), 3, axis=2)
    if cache_index is not None:
      # Decoding: the L new keys/values are written at cache_index; each query sees the cached
      # positions up to its own. (B, L, heads, D / heads) -> (B, capacity, heads, D / heads)
      key, value = self.variable("cache", "key", _no_cache), self.variable("cache", "value", _no_cache)
      key.value = k = jax.lax.dynamic_update_slice_in_dim(key.value, k.astype(key.value.dtype),
                                                          cache_index, axis=1)
      value.value = v = jax.lax.dynamic_update_slice_in_dim(value.value, v.astype(value.value.dtype),
                                                            cache_index, axis=1)
      query_positions = cache_index + jnp.arange(x.shape[1])
      mask = (jnp.arange(k.shape[1])[None, :] <= query_positions[:, None])[None, None]
    y = attention(self, q, k, v, mask, c.dropout if train else 0.0)
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
  def __call__(self, x, mask, train: bool, cache_index=None):
    eps = self.config.layer_norm_epsilon
    y = nn.LayerNorm(epsilon=eps, dtype=self.dtype, name="ln_1")(x)
    x = x + Attention(self.config, self.dtype, name="attn")(y, mask, train, cache_index)
    y = nn.LayerNorm(epsilon=eps, dtype=self.dtype, name="ln_2")(x)
    return x + MLP(self.config, self.dtype, name="mlp")(y, train)


class GPT2(nn.Module):
  """Token ids (and/or embeddings before them) -> final hidden states (B, L, n_embd), after `ln_f`;
  `logits` is GPT2LMHeadModel's head, tied to the token embedding `wte`.

  Positions are 0..L-1 whatever the padding (as GPT2Model without position_ids); a query attends
  to the keys at or before it whose attention_mask is 1. Parameters are float32, compute `dtype`.
  """
  config: ml_collections.ConfigDict
  dtype: jnp.dtype = jnp.float32
  remat: bool = False  # recompute each block's activations in the backward pass (saves memory)

  def setup(self):
    c = self.config
    self.wte = nn.Embed(c.vocab_size, c.n_embd, dtype=self.dtype)
    self.wpe = nn.Embed(c.n_positions, c.n_embd, dtype=self.dtype)
    self.drop = nn.Dropout(c.dropout)
    block = nn.remat(Block, static_argnums=(3,)) if self.remat else Block
    self.h = [block(c, self.dtype) for _ in range(c.n_layer)]  # named h_0, h_1, ...
    self.ln_f = nn.LayerNorm(epsilon=c.layer_norm_epsilon, dtype=self.dtype)

  def __call__(self, input_ids, attention_mask=None, train: bool = False, *, prefix_embeds=None,
               cache_index=None):
    """input_ids (B, L) or None; attention_mask (B, P + L), None for all ones.

    prefix_embeds: (B, P, n_embd) placed before the token embeddings, as GPT2LMHeadModel's
      `inputs_embeds` (clapcap's audio prefix).
    cache_index: decode with the 'cache' collection (`init_cache`): the inputs sit at positions
      cache_index.. and attend to everything cached before them; attention_mask must be None.
    """
    c = self.config
    parts = [] if prefix_embeds is None else [prefix_embeds.astype(self.dtype)]
    if input_ids is not None:
      parts.append(self.wte(input_ids))
    x = jnp.concatenate(parts, axis=1)
    length = x.shape[1]
    if cache_index is None:
      if length > c.n_positions:
        raise ValueError(f"{length} tokens, but GPT-2 has only {c.n_positions} positions")
      positions = jnp.arange(length)
      # (B, L) -> (B, 1, L, L): causal, and padded keys masked.
      mask = jnp.tril(jnp.ones((length, length), bool))[None, None]
      if attention_mask is not None:
        mask = mask & (attention_mask[:, None, None, :] > 0)
    else:
      if attention_mask is not None:
        raise ValueError("decoding with a cache takes no attention_mask")
      positions, mask = cache_index + jnp.arange(length), None  # the blocks mask by position
    x = self.drop(x + self.wpe(positions), deterministic=not train)
    for block in self.h:
      x = block(x, mask, train, cache_index)
    return self.ln_f(x)

  def logits(self, hidden):
    """(..., n_embd) -> (..., vocab_size) next-token logits: hidden @ wte.T."""
    return self.wte.attend(hidden)
