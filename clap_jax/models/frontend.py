"""HTSAT's audio front end as pure JAX functions: waveform -> log-mel -> the 256x256 Swin image.

Mirrors torchlibrosa's Spectrogram + LogmelFilterBank and msclap's HTSAT.reshape_wav2img. Every
constant (STFT kernels, mel filters, resize matrices) is built in numpy at trace time, so the jitted
model holds them as constants and the converter can check the checkpoint's copies against them.
"""
import functools

import jax
import jax.numpy as jnp
import librosa
import numpy as np

# The front end stays float32 at full matmul precision: a log of a power spectrum turns TF32/bf16
# rounding into decibels of error.
_HIGHEST = jax.lax.Precision.HIGHEST


@functools.cache
def stft_kernels(n_fft: int) -> tuple[np.ndarray, np.ndarray]:
  """torchlibrosa's STFT conv weights (real, imag), each (n_fft // 2 + 1, 1, n_fft) float32."""
  x, y = np.meshgrid(np.arange(n_fft), np.arange(n_fft))
  dft = np.power(np.exp(-2 * np.pi * 1j / n_fft), x * y)  # computed as torchlibrosa does
  window = librosa.util.pad_center(librosa.filters.get_window("hann", n_fft, fftbins=True), size=n_fft)
  bins = n_fft // 2 + 1
  windowed = dft[:, :bins] * window[:, None]
  return (np.real(windowed).T[:, None, :].astype(np.float32),
          np.imag(windowed).T[:, None, :].astype(np.float32))


@functools.cache
def mel_filters(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
  """torchlibrosa's melW: (n_fft // 2 + 1, n_mels) float32."""
  mel = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
  return mel.T.astype(np.float32)


def num_frames(num_samples: int, hop_length: int) -> int:
  """Frames of the centred STFT: 308700 samples at hop 320 -> 965."""
  return num_samples // hop_length + 1


def mel_band(mel_w: np.ndarray) -> slice:
  """The STFT bins some mel filter weighs: the others (CLAP 2023: 0-1 and 448-512) are never used."""
  used = np.flatnonzero(np.any(mel_w != 0, axis=1))
  return slice(int(used[0]), int(used[-1]) + 1)


def log_mel(waveform: jax.Array, config, stft=None) -> jax.Array:
  """Centred, reflect-padded power STFT -> mel -> dB (no top_db). (B, N) -> (B, T, mel_bins).
  `stft`: stft_conv or stft_hop_matmuls; by default the one suited to the platform compiled for."""
  n_fft, hop = config.n_fft, config.hop_length
  x = jnp.pad(waveform.astype(jnp.float32), ((0, 0), (n_fft // 2, n_fft // 2)), mode="reflect")
  mel_w = mel_filters(config.mel_sample_rate, n_fft, config.mel_bins, config.fmin, config.fmax)
  band = mel_band(mel_w)  # bins outside it have zero mel weight: not computing them is exact
  real, imag = (k[band, 0] for k in stft_kernels(n_fft))
  kernel = np.concatenate([real, imag], axis=0).T  # (n_fft, 2 * bins)
  # On CPU the strided conv is both the fastest form and the closest to torchlibrosa; on GPUs the
  # hop-aligned matmuls are faster (bench/ and the README's Performance section).
  def at(fn):
    return functools.partial(fn, kernel=kernel, hop=hop)
  if stft is None:  # chosen when lowering, for the platform compiled for
    spec = jax.lax.platform_dependent(x, cpu=at(stft_conv), default=at(stft_hop_matmuls))
  else:
    spec = stft(x, kernel, hop)
  real, imag = jnp.split(spec, 2, axis=-1)  # (B, T, bins) each
  power = real ** 2 + imag ** 2
  mel = jnp.einsum("btk,km->btm", power, mel_w[band], precision=_HIGHEST)
  return 10.0 * jnp.log10(jnp.maximum(mel, 1e-10))  # ref 1.0 subtracts 10*log10(1) = 0


def stft_conv(x: jax.Array, kernel: np.ndarray, hop: int) -> jax.Array:
  """(B, N) signal, (n_fft, K) kernel -> (B, frames, K): one strided conv, as torchlibrosa computes
  it. Float32 rounding differs by method in quiet bins of real audio (80+ dB below the frame's
  peak); on CPU against torchlibrosa (itself ~3e-3 dB off float64 there) this conv is ~2e-3 dB off,
  one (frames, n_fft) matmul ~2e-2 dB (too long a sum), an rfft ~2e-2 dB (rounding at loud bins
  spreads into quiet ones)."""
  return jax.lax.conv_general_dilated(x[:, :, None], kernel[:, None, :], (hop,), "VALID",
                                      dimension_numbers=("NWC", "WIO", "NWC"), precision=_HIGHEST)


def stft_hop_matmuls(x: jax.Array, kernel: np.ndarray, hop: int) -> jax.Array:
  """The same product as a sum of ceil(n_fft / hop) matmuls: the signal as rows of `hop` samples,
  the kernel cut into pieces of `hop` taps (the last zero-padded); frame t = sum over j of row t + j
  times piece j. No framed copy of the signal, and short sums: on real audio 3.8e-3 dB off
  torchlibrosa on CPU (the conv: 2.0e-3), 4.1e-3 dB off float64 on an H200 (the conv: 3.0e-3)."""
  n_fft = kernel.shape[0]
  frames, pieces = (x.shape[1] - n_fft) // hop + 1, -(-n_fft // hop)
  kernel = np.pad(kernel, ((0, pieces * hop - n_fft), (0, 0))).reshape(pieces, hop, -1)
  rows = frames + pieces - 1  # their samples past the signal meet the kernel's zero padding
  x = jnp.pad(x, ((0, 0), (0, max(0, rows * hop - x.shape[1]))))[:, :rows * hop]
  x = x.reshape(x.shape[0], rows, hop)
  return sum(jnp.einsum("bth,hk->btk", x[:, j:j + frames], kernel[j], precision=_HIGHEST)
             for j in range(pieces))


@functools.cache
def bicubic_matrix(size_in: int, size_out: int) -> np.ndarray:
  """(size_out, size_in) float32 matrix of torch's bicubic resize with align_corners=True.

  Follows ATen's CPU kernel step by step in float32: source position scale * i, Keys' cubic with
  A = -0.75 on the fractional part, taps i-1..i+2 clamped to the border (clamped taps add up).
  """
  f32 = np.float32
  scale = f32(size_in - 1) / f32(size_out - 1) if size_out > 1 else f32(0)
  src = f32(scale) * np.arange(size_out, dtype=f32)
  base = np.floor(src)
  t = (src - base).astype(f32)
  a = f32(-0.75)

  def near(x):  # |x| <= 1
    return ((a + 2) * x - (a + 3)) * x * x + 1

  def far(x):  # 1 < |x| < 2
    return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

  weights = np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=1).astype(f32)
  taps = np.clip(base.astype(np.int64)[:, None] + np.arange(-1, 3)[None, :], 0, size_in - 1)
  matrix = np.zeros((size_out, size_in), np.float32)
  np.add.at(matrix, (np.repeat(np.arange(size_out), 4), taps.ravel()), weights.ravel())
  return matrix


def resize_time(x: jax.Array, frames: int) -> jax.Array:
  """Bicubic (align_corners) resize along time. (B, T, F) -> (B, frames, F).

  The reference resizes (T, F) -> (frames, F) in 2-D; along F the size is kept, where the cubic
  weights are exactly (0, 1, 0, 0), so only the time axis changes.
  """
  if x.shape[1] == frames:
    return x
  matrix = bicubic_matrix(x.shape[1], frames)
  return jnp.einsum("st,btf->bsf", matrix, x, precision=_HIGHEST)


def fold(x: jax.Array, freq_ratio: int) -> jax.Array:
  """reshape_wav2img's fold: time cut into freq_ratio chunks stacked along frequency.

  (B, T, F) -> (B, freq_ratio * F, T // freq_ratio); row r * F + f, column c is frame
  r * T // freq_ratio + c of mel bin f.
  """
  b, t, f = x.shape
  x = x.reshape(b, freq_ratio, t // freq_ratio, f)
  return x.transpose(0, 1, 3, 2).reshape(b, freq_ratio * f, t // freq_ratio)


def to_image(x: jax.Array, spec_size: int, freq_ratio: int) -> jax.Array:
  """(B, T <= spec_size * freq_ratio, F) -> (B, spec_size, spec_size, 1), the Swin input (NHWC)."""
  frames, bins = spec_size * freq_ratio, spec_size // freq_ratio
  if x.shape[1] > frames or x.shape[2] != bins:
    raise ValueError(f"log-mel {x.shape[1:]} does not fold into {spec_size}x{spec_size}: "
                     f"need at most {frames} frames of {bins} bins")
  return fold(resize_time(x, frames), freq_ratio)[..., None]


def crop_starts(frames: int, crop: int, hop: int) -> list[int]:
  """Start frames of the reference's eval crops for long inputs: range(0, T - crop - 1, hop)."""
  return list(range(0, frames - crop - 1, hop))


def long_crops(x: jax.Array, crop: int, hop: int) -> jax.Array:
  """(B, T, F) -> (n_crops, B, crop, F), the fixed crops averaged over in eval mode."""
  starts = crop_starts(x.shape[1], crop, hop)
  if not starts:
    raise ValueError(f"{x.shape[1]} frames give no crop of {crop} frames")
  return jnp.stack([x[:, s:s + crop] for s in starts])


def random_crop(rng: jax.Array, x: jax.Array, crop: int) -> jax.Array:
  """Training crop of a long input, one start per example as the reference's crop_wav draws it
  (uniform in [0, T - crop - 1]). (B, T, F) -> (B, crop, F)."""
  starts = jax.random.randint(rng, (x.shape[0],), 0, x.shape[1] - crop)
  return jax.vmap(lambda e, s: jax.lax.dynamic_slice_in_dim(e, s, crop, axis=0))(x, starts)


def spec_augment(rng: jax.Array, x: jax.Array, time_width: int = 64, time_stripes: int = 2,
                 freq_width: int = 8, freq_stripes: int = 2) -> jax.Array:
  """torchlibrosa's SpecAugmentation: zeroes stripes of time, then of frequency. (B, T, F)."""
  time_rng, freq_rng = jax.random.split(rng)
  x = _drop_stripes(time_rng, x, 1, time_width, time_stripes)
  return _drop_stripes(freq_rng, x, 2, freq_width, freq_stripes)


def _drop_stripes(rng, x, axis, width, stripes):
  """Per example, `stripes` times: width ~ U[0, width), start ~ U[0, size - width), zeroed."""
  size = x.shape[axis]
  width_rng, start_rng = jax.random.split(rng)
  widths = jax.random.randint(width_rng, (x.shape[0], stripes), 0, width)
  starts = jax.random.randint(start_rng, (x.shape[0], stripes), 0, size - widths)
  pos = jnp.arange(size)
  drop = ((pos >= starts[..., None]) & (pos < (starts + widths)[..., None])).any(axis=1)  # (B, size)
  drop = drop[:, :, None] if axis == 1 else drop[:, None, :]
  return jnp.where(drop, 0.0, x).astype(x.dtype)
