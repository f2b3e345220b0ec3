"""HTSAT, CLAP 2023's audio tower, as msclap 1.3.4 builds it (models/htsat.py, tscam mode).

A Swin Transformer over the folded log-mel image with a token-semantic head. Submodule names mirror
the torch module's (`layers_0/blocks_1/attn/qkv` <-> `layers.0.blocks.1.attn.qkv`), so conversion is
a table (clap_jax/convert/htsat.py). Layout is NHWC: image rows are frequency (four 64-bin chunks of
time stacked), columns are time.
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from clap_jax.models import frontend
from clap_jax.models.norm import BatchNorm

_MASKED = -100.0  # the reference's shifted-window mask value (not -inf)
_MIN_TOKENS_PER_EXAMPLE = 256  # CPU eval: stages at least this long run one clip at a time


def relative_position_index(window: int) -> np.ndarray:
  """(w*w, w*w) index into the (2w - 1)^2-row bias table, as Swin registers it."""
  coords = np.stack(np.meshgrid(np.arange(window), np.arange(window), indexing="ij")).reshape(2, -1)
  rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0) + (window - 1)
  return rel[..., 0] * (2 * window - 1) + rel[..., 1]


def shifted_window_mask(height: int, width: int, window: int, shift: int) -> np.ndarray:
  """(n_windows, w*w, w*w) additive mask of the rolled image: -100 between tokens that were not
  neighbours before the roll, 0 otherwise."""
  region = np.zeros((height, width), np.float32)
  bands = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
  for i, (rows, cols) in enumerate((r, c) for r in bands for c in bands):
    region[rows, cols] = i
  windows = region.reshape(height // window, window, width // window, window)
  windows = windows.transpose(0, 2, 1, 3).reshape(-1, window * window)
  return np.where(windows[:, None, :] != windows[:, :, None], _MASKED, 0.0).astype(np.float32)


def stages(config: ml_collections.ConfigDict) -> list[dict]:
  """Per Swin stage: dim, resolution (H, W) in tokens, window and shift (for odd blocks).

  As the reference: a stage whose resolution is no larger than the window attends over the whole
  map in one unshifted window.
  """
  grid = (config.spec_size // config.patch_stride[0], config.spec_size // config.patch_stride[1])
  layout = []
  for i in range(len(config.depths)):
    resolution = (grid[0] // 2 ** i, grid[1] // 2 ** i)
    window, shift = config.window_size, config.window_size // 2
    if min(resolution) <= window:
      window, shift = min(resolution), 0
    layout.append(dict(dim=config.embed_dim * 2 ** i, resolution=resolution, window=window,
                       shift=shift))
  return layout


def _dense(features: int, name: str, dtype, use_bias: bool = True) -> nn.Dense:
  # The reference initialises every Linear with trunc_normal(std=0.02) and zero bias.
  return nn.Dense(features, use_bias=use_bias, dtype=dtype, name=name,
                  kernel_init=nn.initializers.truncated_normal(0.02))


def _layer_norm(name: str | None, dtype) -> nn.LayerNorm:
  return nn.LayerNorm(epsilon=1e-5, dtype=dtype, name=name)  # torch's eps, not flax's 1e-6


class Mlp(nn.Module):
  hidden: int
  drop_rate: float
  dtype: Any

  @nn.compact
  def __call__(self, x, train: bool):
    dim = x.shape[-1]
    x = _dense(self.hidden, "fc1", self.dtype)(x)
    # Exact GELU as torch writes it, 0.5 x (1 + erf(x / sqrt 2)): XLA's erf is one polynomial,
    # where flax's nn.gelu goes through erfc and evaluates both of its branches (a few percent of
    # the forward pass on CPU). Within 1e-6 of nn.gelu.
    x = 0.5 * x * (1 + jax.lax.erf(x * 0.5 ** 0.5))
    x = nn.Dropout(self.drop_rate)(x, deterministic=not train)
    x = _dense(dim, "fc2", self.dtype)(x)
    return nn.Dropout(self.drop_rate)(x, deterministic=not train)


class WindowAttention(nn.Module):
  """Multi-head self-attention inside each window, with a learned relative-position bias."""
  num_heads: int
  window: int
  attn_drop_rate: float
  drop_rate: float
  dtype: Any

  @nn.compact
  def __call__(self, x, mask, train: bool):
    *lead, n, c = x.shape  # (B, n_windows, w*w, C)
    heads, head_dim = self.num_heads, c // self.num_heads
    table = self.param("relative_position_bias_table", nn.initializers.truncated_normal(0.02),
                       ((2 * self.window - 1) ** 2, heads))
    qkv = _dense(3 * c, "qkv", self.dtype)(x).reshape(*lead, n, 3, heads, head_dim)
    # split's gradient is one concatenation; three index slices would be three padded copies summed.
    q, k, v = (t.squeeze(-3) for t in jnp.split(qkv, 3, axis=-3))  # (B, nW, N, h, d)
    logits = jnp.einsum("...qhd,...khd->...hqk", q * head_dim ** -0.5, k)  # (B, nW, h, N, N)
    bias = table[relative_position_index(self.window).reshape(-1)].reshape(n, n, heads)
    logits = logits.astype(jnp.float32) + bias.transpose(2, 0, 1)
    if mask is not None:
      logits = logits + mask[:, None]  # (nW, 1, N, N)
    attn = jax.nn.softmax(logits, axis=-1).astype(self.dtype)
    attn = nn.Dropout(self.attn_drop_rate)(attn, deterministic=not train)
    x = jnp.einsum("...hqk,...khd->...qhd", attn, v).reshape(*lead, n, c)
    x = _dense(c, "proj", self.dtype)(x)
    return nn.Dropout(self.drop_rate)(x, deterministic=not train)


class SwinBlock(nn.Module):
  """(Shifted-)window attention and MLP, both pre-norm residual with stochastic depth."""
  num_heads: int
  resolution: tuple[int, int]
  window: int
  shift: int
  mlp_ratio: float
  drop_rate: float
  attn_drop_rate: float
  drop_path_rate: float
  dtype: Any

  @nn.compact
  def __call__(self, x, train: bool):
    b, length, c = x.shape
    (h, w), win, shift = self.resolution, self.window, self.shift
    y = _layer_norm("norm1", self.dtype)(x).reshape(b, h, w, c)
    if shift:
      y = jnp.roll(y, (-shift, -shift), axis=(1, 2))
    y = y.reshape(b, h // win, win, w // win, win, c).transpose(0, 1, 3, 2, 4, 5)
    y = y.reshape(b, -1, win * win, c)  # (B, H, W, C) -> (B, n_windows, w*w, C)
    mask = shifted_window_mask(h, w, win, shift) if shift else None
    y = WindowAttention(self.num_heads, win, self.attn_drop_rate, self.drop_rate, self.dtype,
                        name="attn")(y, mask, train)
    y = y.reshape(b, h // win, w // win, win, win, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
    if shift:
      y = jnp.roll(y, (shift, shift), axis=(1, 2))
    x = x + self._drop_path(y.reshape(b, length, c), train)
    y = _layer_norm("norm2", self.dtype)(x)
    y = Mlp(int(c * self.mlp_ratio), self.drop_rate, self.dtype, name="mlp")(y, train)
    return x + self._drop_path(y, train)

  def _drop_path(self, x, train: bool):
    """Drops the whole residual branch per example (rng 'dropout'), rescaling the kept ones."""
    if not train or self.drop_path_rate == 0.0:
      return x
    keep = 1.0 - self.drop_path_rate
    kept = jax.random.bernoulli(self.make_rng("dropout"), keep, (x.shape[0], 1, 1))
    return x * (kept / keep).astype(x.dtype)  # a per-example factor: 0 or 1 / keep


class PatchMerging(nn.Module):
  """2x2 neighbourhoods -> one token: (B, H*W, C) -> (B, H*W / 4, 2C)."""
  resolution: tuple[int, int]
  dtype: Any

  @nn.compact
  def __call__(self, x):
    b, _, c = x.shape
    x = x.reshape(b, *self.resolution, c)
    # The reference's concatenation order: (even, even), (odd, even), (even, odd), (odd, odd).
    x = jnp.concatenate([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
    x = _layer_norm("norm", self.dtype)(x.reshape(b, -1, 4 * c))
    return _dense(2 * c, "reduction", self.dtype, use_bias=False)(x)


class Stage(nn.Module):
  """The reference's BasicLayer: `depth` Swin blocks, then PatchMerging except in the last stage."""
  depth: int
  num_heads: int
  resolution: tuple[int, int]
  window: int
  shift: int
  mlp_ratio: float
  drop_rate: float
  attn_drop_rate: float
  drop_path_rates: tuple[float, ...]
  downsample: bool
  remat: bool
  dtype: Any

  @nn.compact
  def __call__(self, x, train: bool):
    block = nn.remat(SwinBlock, static_argnums=(2,)) if self.remat else SwinBlock
    for j in range(self.depth):
      x = block(num_heads=self.num_heads, resolution=self.resolution, window=self.window,
                shift=self.shift if j % 2 else 0, mlp_ratio=self.mlp_ratio,
                drop_rate=self.drop_rate, attn_drop_rate=self.attn_drop_rate,
                drop_path_rate=self.drop_path_rates[j], dtype=self.dtype,
                name=f"blocks_{j}")(x, train)
    if self.downsample:
      x = PatchMerging(self.resolution, self.dtype, name="downsample")(x)
    return x


class PatchEmbed(nn.Module):
  """Conv patches + LayerNorm: (B, S, S, 1) -> (B, S/4 * S/4, C) in row-major token order."""
  embed_dim: int
  patch_size: int
  patch_stride: tuple[int, int]
  dtype: Any

  @nn.compact
  def __call__(self, x):
    pad = [((self.patch_size - s) // 2,) * 2 for s in self.patch_stride]
    x = nn.Conv(self.embed_dim, (self.patch_size, self.patch_size), strides=self.patch_stride,
                padding=pad, dtype=self.dtype, name="proj")(x)
    x = x.reshape(x.shape[0], -1, x.shape[-1])
    return _layer_norm("norm", self.dtype)(x)


class HTSAT(nn.Module):
  """Waveforms at 44.1 kHz (B, N) -> {'latent_output': (B, embed_dim * 2 ** (stages - 1)),
  'clipwise_output': (B, num_classes) after sigmoid}.

  Inputs of more than spec_size * freq_ratio (1024) frames are, in eval mode, encoded as fixed
  689-frame crops whose outputs are averaged; in train mode one random 1024-frame crop is taken
  (rng 'dropout', like dropout, stochastic depth and SpecAugment).
  """
  config: ml_collections.ConfigDict  # the `audio` part of clap_jax.models.config
  dtype: Any = jnp.float32  # compute dtype; parameters and the front end stay float32
  remat: bool = False  # rematerialise Swin blocks in the backward pass (training memory)

  def setup(self):
    cfg = self.config
    self.freq_ratio = cfg.spec_size // cfg.mel_bins
    self.bn0 = BatchNorm()
    self.patch_embed = PatchEmbed(cfg.embed_dim, cfg.patch_size, tuple(cfg.patch_stride), self.dtype)
    self.pos_drop = nn.Dropout(cfg.drop_rate)
    rates = np.linspace(0.0, cfg.drop_path_rate, sum(cfg.depths)).tolist()
    self.layout = stages(cfg)
    layers = []
    for i, (depth, heads, stage) in enumerate(zip(cfg.depths, cfg.num_heads, self.layout)):
      first = sum(cfg.depths[:i])
      layers.append(Stage(
          depth=depth, num_heads=heads, resolution=stage["resolution"], window=stage["window"],
          shift=stage["shift"], mlp_ratio=cfg.mlp_ratio, drop_rate=cfg.drop_rate,
          attn_drop_rate=cfg.attn_drop_rate, drop_path_rates=tuple(rates[first:first + depth]),
          downsample=i < len(cfg.depths) - 1, remat=self.remat, dtype=self.dtype))
    self.layers = layers  # named layers_0 ... like the torch ModuleList
    self.norm = _layer_norm(None, self.dtype)
    # The token-semantic conv spans one frequency group (c_freq_bin rows) and 3 time steps.
    rows = self.layout[-1]["resolution"][0] // self.freq_ratio
    self.tscam_conv = nn.Conv(cfg.num_classes, (rows, 3), padding=((0, 0), (1, 1)),
                              dtype=self.dtype)

  def __call__(self, waveform: jax.Array, train: bool = False) -> dict[str, jax.Array]:
    cfg = self.config
    x = frontend.log_mel(waveform, cfg)  # (B, N) -> (B, T, mel_bins)
    x = self.bn0(x, use_running_average=not train)
    if train and cfg.spec_augment:
      x = frontend.spec_augment(self.make_rng("dropout"), x)
    frames = cfg.spec_size * self.freq_ratio
    if x.shape[1] > frames:
      if train:
        x = frontend.random_crop(self.make_rng("dropout"), x, frames)
      else:
        crops = frontend.long_crops(x, cfg.long_crop_frames, cfg.long_crop_hop)  # (n, B, crop, F)
        n, b = crops.shape[:2]
        out = self.encode_image(self._image(crops.reshape(n * b, *crops.shape[2:])), train)
        return {k: v.reshape(n, b, -1).mean(axis=0) for k, v in out.items()}
    return self.encode_image(self._image(x), train)

  def _image(self, x):
    return frontend.to_image(x, self.config.spec_size, self.freq_ratio).astype(self.dtype)

  def _embed(self, image, stages: int, train: bool):
    """Patch embedding and the first `stages` stages: (B, S, S, 1) -> (B, tokens, C)."""
    x = self.pos_drop(self.patch_embed(image), deterministic=not train)  # (B, S/4 * S/4, C)
    for layer in self.layers[:stages]:
      x = layer(x, train)
    return x

  def _per_example_stages(self, batch: int, train: bool) -> int:
    """How many leading stages run one example at a time (a scan over the batch).

    On CPU, a stage with at least 256 tokens a clip (the first three of CLAP 2023's four) keeps
    the cores busy with one clip's matmuls, and batched its activations fall out of cache: stage 0's
    MLP hidden layer alone is 6 MB a clip, and stage 2's batched window attention ran several times
    slower than the same work one clip at a time. The last stage (64 tokens) is bound by reading its
    weights and gains from the batch. In training and at init the whole batch goes through every
    stage; on other platforms too (encode_image lowers the scan for CPUs only).
    """
    if batch == 1 or train or self.is_initializing():
      return 0
    tokens = [stage["resolution"][0] * stage["resolution"][1] for stage in self.layout]
    return sum(1 for n in tokens if n >= _MIN_TOKENS_PER_EXAMPLE)

  def encode_image(self, image: jax.Array, train: bool = False) -> dict[str, jax.Array]:
    """The reference's forward_features: (B, S, S, 1) folded log-mel -> outputs."""
    early = self._per_example_stages(image.shape[0], train)
    if early:
      body = lambda module, carry, example: (carry, module._embed(example[None], early, False)[0])
      per_example = lambda image: nn.scan(
          body, variable_broadcast="params", split_rngs={"params": False})(self, None, image)[1]
      # Decided when lowering, for the platform compiled for (as frontend.log_mel's STFT form).
      x = jax.lax.platform_dependent(image, cpu=per_example,
                                     default=lambda image: self._embed(image, early, False))
    else:
      x = self._embed(image, 0, train)
    for layer in self.layers[early:]:
      x = layer(x, train)
    x = self.norm(x)
    (rows, cols), c = self.layout[-1]["resolution"], x.shape[-1]
    # Token-semantic regrouping: the freq_ratio row groups (time chunks of the fold) go back to
    # the time axis: (B, rows, cols, C) -> (B, rows / freq_ratio, freq_ratio * cols, C).
    group = rows // self.freq_ratio
    x = x.reshape(-1, self.freq_ratio, group, cols, c).transpose(0, 2, 1, 3, 4)
    x = x.reshape(-1, group, self.freq_ratio * cols, c)
    latent = x.mean(axis=(1, 2))
    logits = self.tscam_conv(x).mean(axis=(1, 2))  # (B, 1, time, classes) -> (B, classes)
    return {"latent_output": latent.astype(jnp.float32),
            "clipwise_output": jax.nn.sigmoid(logits.astype(jnp.float32))}
