"""clapcap's mapping network, as msclap.models.mapper.TransformerMapper computes it.

The audio embedding becomes `clip_length` embeddings (one Linear), `prefix_length` learned
constants are appended, and a pre-LayerNorm transformer (ReLU MLP of `mlp_ratio`, bias-free query
and key/value projections, no mask, no dropout) runs over both; the outputs at the constants'
positions are the GPT-2 prefix. Names mirror the torch state dict (`clap_project.transformer.
layers.0.attn.to_queries` -> `transformer/layers_0/attn/to_queries`).
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections


class MultiHeadAttention(nn.Module):
  num_heads: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    b, n, d = x.shape
    h = self.num_heads
    queries = nn.Dense(d, use_bias=False, dtype=self.dtype, name="to_queries")(x)
    # One projection, keys first: (B, N, 2 * D) -> (B, N, 2, heads, D / heads)
    keys_values = nn.Dense(2 * d, use_bias=False, dtype=self.dtype, name="to_keys_values")(x)
    keys_values = keys_values.reshape(b, n, 2, h, d // h)
    # Scaled by (D / heads) ** -0.5, softmax over the keys, as msclap's einsums.
    y = jax.nn.dot_product_attention(queries.reshape(b, n, h, d // h), keys_values[:, :, 0],
                                     keys_values[:, :, 1])
    return nn.Dense(d, dtype=self.dtype, name="project")(y.reshape(b, n, d))


class MlpTransformer(nn.Module):
  hidden: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    y = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, name="fc1")(x))
    return nn.Dense(x.shape[-1], dtype=self.dtype, name="fc2")(y)


class TransformerLayer(nn.Module):
  config: ml_collections.ConfigDict
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    c = self.config
    norm = lambda name: nn.LayerNorm(epsilon=c.layer_norm_epsilon, dtype=self.dtype, name=name)
    x = x + MultiHeadAttention(c.num_heads, self.dtype, name="attn")(norm("norm1")(x))
    hidden = int(x.shape[-1] * c.mlp_ratio)
    return x + MlpTransformer(hidden, self.dtype, name="mlp")(norm("norm2")(x))


class Transformer(nn.Module):
  config: ml_collections.ConfigDict
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    for i in range(self.config.num_layers):
      x = TransformerLayer(self.config, self.dtype, name=f"layers_{i}")(x)
    return x


class TransformerMapper(nn.Module):
  """(B, embed_dim) audio embeddings -> (B, prefix_length, dim) GPT-2 prefix embeddings."""
  config: ml_collections.ConfigDict  # the model config's `mapper`
  dim: int  # GPT-2's embedding size
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    c = self.config
    x = nn.Dense(c.clip_length * self.dim, dtype=self.dtype, name="linear")(x)
    x = x.reshape(x.shape[0], c.clip_length, self.dim)
    prefix = self.param("prefix_const", nn.initializers.normal(1.0), (c.prefix_length, self.dim))
    prefix = jnp.broadcast_to(prefix.astype(x.dtype), (x.shape[0], *prefix.shape))
    # (B, clip_length + prefix_length, dim); the outputs at the constants' positions are kept.
    out = Transformer(c, self.dtype, name="transformer")(jnp.concatenate([x, prefix], axis=1))
    return out[:, c.clip_length:]
