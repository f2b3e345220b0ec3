"""Batch norm as torch trains it (the CNN14 and HTSAT front ends' BatchNorm layers).

Hand-written because flax's nn.BatchNorm moves the running variance with the biased batch variance,
where torch (whose checkpoints we load and whose training we reproduce) uses the unbiased one.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp


class BatchNorm(nn.Module):
  """Normalises over every axis but the last, with torch's BatchNorm defaults (momentum 0.1, eps
  1e-5). Training: by the batch's mean and biased variance, and the running statistics move
  towards the mean and the unbiased variance (factor n / (n - 1), n values per feature). Eval: by
  the running statistics. Variables as nn.BatchNorm's (params scale, bias; batch_stats mean, var);
  statistics and output in float32."""
  momentum: float = 0.1  # torch's convention: running = (1 - momentum) * running + momentum * batch
  epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x: jax.Array, use_running_average: bool) -> jax.Array:
    features = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (features,))
    bias = self.param("bias", nn.initializers.zeros, (features,))
    running_mean = self.variable("batch_stats", "mean", jnp.zeros, (features,), jnp.float32)
    running_var = self.variable("batch_stats", "var", jnp.ones, (features,), jnp.float32)
    x = x.astype(jnp.float32)
    if use_running_average:
      mean, var = running_mean.value, running_var.value
    else:
      axes = tuple(range(x.ndim - 1))
      mean, var = x.mean(axes), x.var(axes)
      if not self.is_initializing():
        n = x.size // features
        running_mean.value += self.momentum * (mean - running_mean.value)
        running_var.value += self.momentum * (var * n / max(n - 1, 1) - running_var.value)
    return (x - mean) * (jax.lax.rsqrt(var + self.epsilon) * scale) + bias
