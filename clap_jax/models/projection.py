"""The projection head that maps each tower's output into the shared embedding space."""
import flax.linen as nn
import jax
import jax.numpy as jnp


class Projection(nn.Module):
  """msclap's Projection: LayerNorm(e1 + Dropout(Linear2(gelu(e1)))), e1 = Linear1(x), no biases."""
  features: int
  dropout: float = 0.5
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    embed1 = nn.Dense(self.features, use_bias=False, dtype=self.dtype, name="linear1")(x)
    embed2 = nn.Dense(self.features, use_bias=False, dtype=self.dtype, name="linear2")(
        nn.gelu(embed1, approximate=False))
    embed2 = nn.Dropout(self.dropout, deterministic=not train)(embed2)
    # torch LayerNorm's epsilon (flax defaults to 1e-6).
    return nn.LayerNorm(epsilon=1e-5, dtype=self.dtype, name="layer_norm")(embed1 + embed2)
