"""The audio tower's supervised multi-task pretraining model: HTSAT with one linear head per task.

Parameters are `htsat/...` (the same tree as CLAP's `audio_encoder/htsat/...`, so the pretrained
tower initialises CLAP by a subtree copy, `init.audio_from`) and `head_{task}/{kernel,bias}`.
"""
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from clap_jax.models.htsat import HTSAT


class AudioTasks(nn.Module):
  """Waveforms (B, N) -> {task: logits (B, num_labels)}, every head on every example (the heads
  are a few small matrices; the loss picks each example's own head)."""
  config: ml_collections.ConfigDict  # a clap_jax.models.config (its `audio` and `dtype`)
  tasks: Sequence[tuple[str, int]]  # (name, num_labels) per head

  def setup(self):
    self.htsat = HTSAT(self.config.audio, dtype=jnp.dtype(self.config.dtype),
                       remat=self.config.audio.get("remat", False))
    # Heads in float32: their logits feed the losses directly.
    self.heads = {name: nn.Dense(num_labels, name=f"head_{name}",
                                 kernel_init=nn.initializers.truncated_normal(0.02))
                  for name, num_labels in self.tasks}

  def __call__(self, waveforms: jax.Array, train: bool = False) -> dict[str, jax.Array]:
    latent = self.htsat(waveforms, train=train)["latent_output"]  # (B, embed_dim * 8)
    return {name: head(latent) for name, head in self.heads.items()}
