"""CNN14 (PANNs), CLAP 2022's audio tower, as msclap 1.3.4 builds it (models/audio.py).

Six blocks of two 3x3 convolutions with batch norm and ReLU over the log-mel image, then frequency
mean, time max + mean, and fc1. Submodule names mirror the torch module's (`conv_block1.bn2` <->
`conv_block1/bn2`), so conversion is a table (clap_jax/convert/cnn14.py). Layout is NHWC with time
as height and mel bins as width: torch's (B, 1, T, F) is (B, T, F, 1) here.
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from clap_jax.models import frontend
from clap_jax.models.norm import BatchNorm


class ConvBlock(nn.Module):
  """(conv 3x3 -> BN -> ReLU) x 2, then average pooling (floor, as torch's avg_pool2d)."""
  features: int
  pool: tuple[int, int]
  dtype: Any

  @nn.compact
  def __call__(self, x, train: bool):
    for i in (1, 2):
      x = nn.Conv(self.features, (3, 3), padding=((1, 1), (1, 1)), use_bias=False,
                  dtype=self.dtype, name=f"conv{i}")(x)
      x = nn.relu(BatchNorm(name=f"bn{i}")(x, use_running_average=not train).astype(self.dtype))
    if self.pool != (1, 1):
      x = nn.avg_pool(x, self.pool, strides=self.pool)
    return x


class Cnn14(nn.Module):
  """Waveforms (B, N) at 44.1 kHz -> {'embedding': (B, out_emb), 'clipwise_output': (B, classes)
  after sigmoid}. Any length of at least 32 STFT frames (the five poolings halve time each)."""
  config: ml_collections.ConfigDict  # the `audio` part of clap_jax.models.config.clap_2022()
  dtype: Any = jnp.float32  # compute dtype; parameters, the front end and batch norm stay float32
  remat: bool = False

  @nn.compact
  def __call__(self, waveform: jax.Array, train: bool = False) -> dict[str, jax.Array]:
    cfg = self.config
    x = frontend.log_mel(waveform, cfg)  # (B, N) -> (B, T, mel_bins)
    x = BatchNorm(name="bn0")(x, use_running_average=not train)  # over mel bins, as the reference's
    if train and cfg.spec_augment:
      x = frontend.spec_augment(self.make_rng("dropout"), x)
    x = x[..., None].astype(self.dtype)  # (B, T, F, 1)
    block = nn.remat(ConvBlock, static_argnums=(2,)) if self.remat else ConvBlock
    last = len(cfg.channels) - 1
    for i, features in enumerate(cfg.channels):
      x = block(features, (1, 1) if i == last else (2, 2), self.dtype,
                name=f"conv_block{i + 1}")(x, train)
      x = nn.Dropout(cfg.conv_dropout, deterministic=not train)(x)
    x = x.astype(jnp.float32).mean(axis=2)  # (B, T', F', C) -> (B, T', C)
    x = x.max(axis=1) + x.mean(axis=1)  # (B, C)
    x = nn.Dropout(cfg.fc_dropout, deterministic=not train)(x)
    x = nn.relu(nn.Dense(cfg.out_emb, dtype=self.dtype, name="fc1")(x))
    logits = nn.Dense(cfg.num_classes, dtype=self.dtype, name="fc_audioset")(x)
    embedding = nn.Dropout(cfg.fc_dropout, deterministic=not train)(x)
    return {"embedding": embedding.astype(jnp.float32),
            "clipwise_output": jax.nn.sigmoid(logits.astype(jnp.float32))}
