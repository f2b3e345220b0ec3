"""BERT as transformers' BertModel computes it (absolute positions, post-norm layers, exact GELU):
the text tower of CLAP 2022.

Submodule names mirror the torch state dict (`encoder.layer.0.attention.self.query` ->
`layer_0/attention/self/query`), so conversion is a table (clap_jax/convert/bert.py). BertModel's
pooler (dense + tanh at [CLS]) is left out: msclap reads the last hidden state at [CLS] instead.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from clap_jax.models import gpt2


def _dense(features: int, name: str, dtype) -> nn.Dense:
  return nn.Dense(features, dtype=dtype, name=name,
                  kernel_init=nn.initializers.normal(0.02))  # BERT's initializer_range


class Embeddings(nn.Module):
  config: ml_collections.ConfigDict
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, input_ids, token_type_ids, train: bool):
    c = self.config
    embed = lambda n, name: nn.Embed(n, c.hidden_size, dtype=self.dtype, name=name,
                                     embedding_init=nn.initializers.normal(0.02))
    x = embed(c.vocab_size, "word_embeddings")(input_ids)
    x = x + embed(c.max_position_embeddings, "position_embeddings")(jnp.arange(input_ids.shape[1]))
    x = x + embed(c.type_vocab_size, "token_type_embeddings")(token_type_ids)
    x = nn.LayerNorm(epsilon=c.layer_norm_eps, dtype=self.dtype, name="LayerNorm")(x)
    return nn.Dropout(c.dropout, deterministic=not train)(x)


class SelfAttention(nn.Module):
  """Bidirectional multi-head attention over the keys whose attention_mask is 1."""
  config: ml_collections.ConfigDict
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, mask, train: bool):
    c = self.config
    # (B, L, D) -> (B, L, heads, D / heads)
    q, k, v = (_dense(c.hidden_size, name, self.dtype)(x).reshape(*x.shape[:2], c.num_heads, -1)
               for name in ("query", "key", "value"))
    return gpt2.attention(self, q, k, v, mask, c.dropout if train else 0.0).reshape(x.shape)


class Output(nn.Module):
  """BertSelfOutput / BertOutput: LayerNorm(residual + Dropout(Dense(x)))."""
  config: ml_collections.ConfigDict
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, residual, train: bool):
    c = self.config
    x = nn.Dropout(c.dropout, deterministic=not train)(_dense(c.hidden_size, "dense", self.dtype)(x))
    return nn.LayerNorm(epsilon=c.layer_norm_eps, dtype=self.dtype, name="LayerNorm")(x + residual)


class Attention(nn.Module):
  config: ml_collections.ConfigDict
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, mask, train: bool):
    y = SelfAttention(self.config, self.dtype, name="self")(x, mask, train)
    return Output(self.config, self.dtype, name="output")(y, x, train)


class Intermediate(nn.Module):
  config: ml_collections.ConfigDict
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    x = _dense(self.config.intermediate_size, "dense", self.dtype)(x)
    return 0.5 * x * (1 + jax.lax.erf(x * 0.5 ** 0.5))  # hidden_act 'gelu': the exact one


class Layer(nn.Module):
  config: ml_collections.ConfigDict
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, mask, train: bool):
    x = Attention(self.config, self.dtype, name="attention")(x, mask, train)
    y = Intermediate(self.config, self.dtype, name="intermediate")(x)
    return Output(self.config, self.dtype, name="output")(y, x, train)


class Bert(nn.Module):
  """Token ids (B, L) -> last hidden states (B, L, hidden_size).

  Positions are 0..L-1; token types default to 0 (one segment, as msclap's tokenizer always gives).
  Padded keys are masked exactly (zero attention weight), so columns after the longest text do not
  change the other positions' states: they may be cut.
  """
  config: ml_collections.ConfigDict
  dtype: jnp.dtype = jnp.float32
  remat: bool = False

  @nn.compact
  def __call__(self, input_ids, attention_mask, token_type_ids=None, train: bool = False):
    c = self.config
    if input_ids.shape[1] > c.max_position_embeddings:
      raise ValueError(f"{input_ids.shape[1]} tokens, but BERT has only "
                       f"{c.max_position_embeddings} positions")
    if token_type_ids is None:
      token_type_ids = jnp.zeros_like(input_ids)
    x = Embeddings(c, self.dtype, name="embeddings")(input_ids, token_type_ids, train)
    mask = (attention_mask > 0)[:, None, None, :]  # (B, L) -> (B, 1, 1, L): keys only
    layer = nn.remat(Layer, static_argnums=(3,)) if self.remat else Layer
    for i in range(c.num_layers):
      x = layer(c, self.dtype, name=f"layer_{i}")(x, mask, train)
    return x
