"""Audio in: the one input contract of clap_jax, and fitting waveforms to the model's clip length.

Every entry point (`encode`, the shard writer, the evaluator) reads audio through `open_audio`,
so an item means the same everywhere. An item is one of:

  a path (str or os.PathLike)  any file libsndfile decodes (WAV, FLAC, Ogg Vorbis/Opus, AIFF,
                               MP3, ...), at its own rate and channel count.
  an array                     a numpy array, a JAX array or (when torch is imported) a torch
                               tensor, at the rate given beside it (`rate=`, `sample_rate=` in
                               `encode`).
  (array, sample_rate)         a tuple: the array at its own rate, whatever rate the call gives.

Samples: float16 / bfloat16 / float32 / float64 are taken as they are (full scale is 1.0; louder
samples are kept, as msclap keeps them); signed integers are PCM scaled by their full range
(int16 / 32768, int32 / 2**31, ...), unsigned integers are offset PCM ((uint8 - 128) / 128, ...),
the conventions of libsndfile, so an int16 array embeds as the 16-bit WAV of the same samples.
Layout: 1-D is mono; 2-D has a channel axis, given as `channels_axis` (0: channels first, as
librosa returns them; 1: channels last, as soundfile does) or inferred only when one axis has at
most MAX_INFERRED_CHANNELS (8) entries and the other at least MIN_INFERRED_FRAMES (64), so 9 or
more channels, or fewer than 64 frames, need `channels_axis`. Channels are averaged (msclap
concatenates them, a known defect). Any positive, finite rate (not only integers) is resampled to
the model's: soxr HQ, librosa's default, with librosa's output length ceil(frames * ratio).

Refused with an AudioError naming the item (its path, or the caller's name such as "item 3"), what
is wrong and what would be accepted: a missing file or one libsndfile cannot read; an empty
waveform; NaN or infinite samples; a peak above MAX_PEAK (integer PCM stored as floats, e.g.
int16 values in a float array); other dtypes (bool, complex, strings, objects); Python lists;
arrays of 3 or more dimensions; a 2-D shape whose channel axis cannot be inferred; a missing,
zero, negative or non-finite rate. Silence, clipping and a single sample are valid audio.

A long file is never held whole unless asked (`Audio.waveform`): `Audio.windows` decodes,
downmixes and resamples it block by block and keeps only the window being cut.
"""
import dataclasses
import math
import numbers
import os
import sys
from collections.abc import Callable, Iterator
from typing import Literal

import numpy as np
import soundfile
import soxr

# A 2-D array's channel axis is inferred only where its shape allows one reading: one axis of at
# most MAX_INFERRED_CHANNELS entries against one of at least MIN_INFERRED_FRAMES (a (9, 1) array
# could as well be 9 samples as 9 channels of one).
MAX_INFERRED_CHANNELS = 8
MIN_INFERRED_FRAMES = 64
# Far above any mix's headroom and below the full scale of every integer PCM (8-bit: 128), so a
# float array holding integer sample values is refused instead of embedded 40-90 dB too loud.
MAX_PEAK = 64.0
BLOCK_FRAMES = 1 << 16  # source frames decoded and resampled at a time


# What becomes of a clip longer than the model's: 'windows' covers it with consecutive clips (their
# embeddings averaged, or several training examples); 'random' takes one window at a random offset.
LONG_MODES = ("windows", "random")


def check_long_mode(mode: str, name: str = "long_mode") -> None:
  if mode not in LONG_MODES:
    raise ValueError(f"{name} must be one of {LONG_MODES}, got {mode!r}")


class AudioError(ValueError):
  """An audio input that cannot be used; the message names the file (or item) and the reason."""


@dataclasses.dataclass(frozen=True)
class Audio:
  """An accepted item, checked but not decoded: `samples` mono float32 samples at `sample_rate`.

  `source(block_frames)` yields the mono float32 blocks at `source_rate`; `whole` is the waveform
  itself where it needs no conversion (a 1-D float32 array already at `sample_rate`).
  """
  name: str
  samples: int
  sample_rate: int
  source_rate: float
  source: Callable[[int], Iterator[np.ndarray]]
  whole: np.ndarray | None = None

  def blocks(self, block_frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
    """Mono float32 blocks at `sample_rate`, `samples` in all."""
    if self.source_rate == self.sample_rate:
      yield from self.source(block_frames)
      return
    # One stream over the blocks gives the same samples as resampling the whole waveform at once.
    stream = soxr.ResampleStream(self.source_rate, self.sample_rate, 1, dtype="float32",
                                 quality="HQ")
    emitted = 0
    for block in self.source(block_frames):
      out = stream.resample_chunk(block)[:self.samples - emitted]
      emitted += out.shape[0]
      yield out
    out = stream.resample_chunk(np.zeros(0, np.float32), last=True)[:self.samples - emitted]
    yield out
    if emitted + out.shape[0] < self.samples:  # librosa zero-pads soxr's output to `samples`
      yield np.zeros(self.samples - emitted - out.shape[0], np.float32)

  def waveform(self) -> np.ndarray:
    """(samples,) float32: the whole waveform, decoded at once."""
    if self.whole is not None:
      return self.whole
    out = np.zeros(self.samples, np.float32)
    filled = 0
    for block in self.blocks():
      out[filled:filled + block.shape[0]] = block
      filled += block.shape[0]
    return out

  def windows(self, clip_samples: int, long_mode: Literal["windows", "random"] = "windows",
              rng: np.random.Generator | None = None,
              block_frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
    """Those of `window_views(self.waveform(), ...)`, cut as the blocks arrive: a short waveform
    whole and unpadded, a long one as (clip_samples,) views, holding one window at a time."""
    if self.samples <= clip_samples:
      yield self.waveform()
      return
    starts = window_starts(self.samples, clip_samples, long_mode, rng)
    yield from _cut(self.blocks(block_frames), starts, clip_samples)


def open_audio(item, sample_rate: int, *, rate: float | None = None,
               channels_axis: int | None = None, name: str | None = None) -> Audio:
  """Checks one item against the contract above; -> the `Audio` that decodes it at `sample_rate`.

  `rate`: the rate of a bare array (a pair's own rate wins; a file has its own). `channels_axis`:
  where a 2-D array's channels are (None: inferred). `name`: how messages call the item (default:
  its path, or "array"). Raises AudioError, or ValueError for an invalid `channels_axis`.
  """
  if channels_axis not in (None, 0, 1, -1, -2):
    raise ValueError(f"channels_axis must be 0 (channels first), 1 (channels last) or None "
                     f"(inferred), got {channels_axis!r}")
  if isinstance(item, (str, os.PathLike)):
    return _open_file(os.fspath(item), sample_rate, name or os.fspath(item))
  name = name or "array"
  if isinstance(item, tuple):
    if len(item) != 2 or not _is_number(item[1]):
      raise AudioError(f"{name}: a tuple must be (waveform, sample_rate), got a tuple of "
                       f"{len(item)}: {_describe(item)}")
    item, rate = item
    if isinstance(item, (str, os.PathLike)):
      raise AudioError(f"{name}: a file carries its own sample rate: pass the path alone, not "
                       f"({os.fspath(item)!r}, {rate!r})")
  array = _as_array(item, name)
  if rate is None:
    raise AudioError(f"{name}: an array needs `sample_rate`: pass its rate, or a "
                     f"(waveform, sample_rate) pair")
  if not _is_number(rate) or not (math.isfinite(rate) and rate > 0):
    raise AudioError(f"{name}: invalid sample rate {rate!r}; a rate is a positive number of "
                     f"samples per second")
  pcm = _pcm_scale(array.dtype, name)
  if array.size == 0:
    raise AudioError(f"{name}: empty (shape {array.shape}, no samples); a waveform needs at least "
                     f"one sample")
  channel_axis = _channel_axis(array.shape, channels_axis, name)
  if pcm is None:
    _check_floats(array, name)
  frames_first = array if channel_axis != 0 else array.T  # a view: (frames,) or (frames, channels)
  frames = frames_first.shape[0]

  def source(block_frames):
    for start in range(0, frames, block_frames):
      block = _to_float32(frames_first[start:start + block_frames], pcm)
      yield block if channel_axis is None else block.mean(axis=1)

  whole = array if (array.dtype == np.float32 and array.ndim == 1 and rate == sample_rate) else None
  return Audio(name, resampled_length(frames, rate, sample_rate), sample_rate, float(rate), source,
               whole)


def resampled_length(frames: int, rate: float, sample_rate: int) -> int:
  """Samples after resampling `frames` at `rate`: librosa's ceil(frames * ratio) (it zero-pads
  soxr's output to that length)."""
  return frames if rate == sample_rate else int(np.ceil(frames * (float(sample_rate) / rate)))


def load_audio(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
  """Decodes `path` to a mono float32 waveform at `sample_rate` (whole; see `open_audio`)."""
  return open_audio(path, sample_rate).waveform()


def prepare_array(waveform, rate: float, sample_rate: int, name: str = "array",
                  channels_axis: int | None = None) -> np.ndarray:
  """An array at `rate` -> a mono float32 waveform at `sample_rate` (whole; see `open_audio`).
  A 1-D float32 array already at `sample_rate` is returned as it is, not copied."""
  return open_audio(waveform, sample_rate, rate=rate, channels_axis=channels_axis,
                    name=name).waveform()


def repeat_pad(waveform: np.ndarray, clip_samples: int, out: np.ndarray | None = None) -> np.ndarray:
  """Tiles a short waveform and cuts it to `clip_samples`, as msclap does; into `out` if given
  (by hand: np.tile has no `out`, and the evaluator packs its batches this way, one copy a clip)."""
  if waveform.shape[0] == 0:
    raise ValueError("repeat_pad: the waveform is empty")
  out = np.empty(clip_samples, waveform.dtype) if out is None else out
  filled = min(waveform.shape[0], clip_samples)
  out[:filled] = waveform[:filled]
  while filled < clip_samples:  # doubling the filled prefix, which is whole periods
    step = min(filled, clip_samples - filled)
    out[filled:filled + step] = out[:step]
    filled += step
  return out


def clip_windows(waveform: np.ndarray, clip_samples: int,
                 long_mode: Literal["windows", "random"] = "windows",
                 rng: np.random.Generator | None = None) -> np.ndarray:
  """(N,) -> (K, clip_samples): the clips whose embeddings stand for the waveform.

  Short or exact clips are repeat-padded (K = 1). A longer clip is either covered by
  non-overlapping windows, the last one aligned to the end ('windows', deterministic; the
  embeddings are averaged by the caller), or cut once at a random start ('random', msclap's
  behaviour, seeded through `rng`).
  """
  windows = window_views(waveform, clip_samples, long_mode, rng)
  out = np.empty((len(windows), clip_samples), waveform.dtype)
  for row, window in zip(out, windows):
    repeat_pad(window, clip_samples, out=row)
  return out


def window_views(waveform: np.ndarray, clip_samples: int,
                 long_mode: Literal["windows", "random"] = "windows",
                 rng: np.random.Generator | None = None) -> list[np.ndarray]:
  """`clip_windows` without copying: views into `waveform`; a short one is left unpadded for
  `repeat_pad` to write where it is needed."""
  n = waveform.shape[0]
  if n <= clip_samples:
    return [waveform]
  return [waveform[s:s + clip_samples] for s in window_starts(n, clip_samples, long_mode, rng)]


def window_starts(n: int, clip_samples: int, long_mode: Literal["windows", "random"] = "windows",
                  rng: np.random.Generator | None = None) -> list[int]:
  """Where the windows of an `n`-sample waveform (n > clip_samples) start, in order."""
  if long_mode == "random":
    rng = rng if rng is not None else np.random.default_rng()
    return [int(rng.integers(0, n - clip_samples))]  # msclap: random.randrange(n - clip)
  check_long_mode(long_mode)
  return list(range(0, n - clip_samples, clip_samples)) + [n - clip_samples]


def _cut(blocks: Iterator[np.ndarray], starts: list[int],
         clip_samples: int) -> Iterator[np.ndarray]:
  """Blocks of one waveform -> its windows at `starts` (ascending), keeping only the blocks the
  next window overlaps."""
  pending, offset, filled, i = [], 0, 0, 0  # `pending` holds samples [offset, offset + filled)
  for block in blocks:
    pending.append(block)
    filled += block.shape[0]
    while i < len(starts) and offset + filled >= starts[i] + clip_samples:
      buffer = np.concatenate(pending) if len(pending) > 1 else pending[0]
      begin = starts[i] - offset
      yield buffer[begin:begin + clip_samples]
      i += 1
      keep = starts[i] - offset if i < len(starts) else buffer.shape[0]
      pending, offset, filled = [buffer[keep:]], offset + keep, buffer.shape[0] - keep
    if i == len(starts):
      return  # the rest is decoded for nothing ('random' takes one window)
    while len(pending) > 1 and offset + pending[0].shape[0] <= starts[i]:
      offset += pending[0].shape[0]  # wholly before the next window: never needed again
      filled -= pending.pop(0).shape[0]


def _open_file(path: str, sample_rate: int, name: str) -> Audio:
  if not os.path.exists(path):
    raise AudioError(f"{name}: no such file")
  try:
    info = soundfile.info(path)
  except (soundfile.LibsndfileError, RuntimeError, TypeError) as e:
    raise AudioError(f"{name}: not a readable audio file ({e}); libsndfile reads WAV, FLAC, Ogg, "
                     f"AIFF, MP3 and more") from None
  if info.frames == 0:
    raise AudioError(f"{name}: empty (no samples); a file needs at least one sample")

  def source(block_frames):
    decoded = 0
    try:
      with soundfile.SoundFile(path) as f:
        while (block := f.read(block_frames, dtype="float32", always_2d=True)).shape[0]:
          last = decoded + block.shape[0] - 1
          _check_floats(block, name, f"frames {decoded}-{last} of {info.frames}")
          decoded += block.shape[0]
          yield block.mean(axis=1)
    except (soundfile.LibsndfileError, RuntimeError) as e:
      raise AudioError(f"{name}: not a readable audio file ({e})") from None
    if decoded != info.frames:
      raise AudioError(f"{name}: decoded {decoded} frames, its header says {info.frames}: a "
                       f"damaged file")
  return Audio(name, resampled_length(info.frames, info.samplerate, sample_rate), sample_rate,
               float(info.samplerate), source)


def _is_number(x) -> bool:
  return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _describe(x) -> str:
  text = repr(x)
  return text if len(text) <= 60 else text[:57] + "..."


def _as_array(item, name: str) -> np.ndarray:
  torch = sys.modules.get("torch")  # a tensor exists only if torch was imported
  if torch is not None and isinstance(item, torch.Tensor):
    item = item.detach().cpu()
    return (item.float() if item.dtype == torch.bfloat16 else item).numpy()  # numpy has no bfloat16
  if isinstance(item, (list, tuple)) or not hasattr(item, "__array__"):
    raise AudioError(f"{name}: a {type(item).__name__} is not audio; pass a path, a numpy or JAX "
                     f"array or a torch tensor, or a (waveform, sample_rate) pair")
  return np.asarray(item)


def _pcm_scale(dtype: np.dtype, name: str) -> tuple[float, float] | None:
  """-> (offset, full scale) of integer PCM, None for floats (taken as they are)."""
  if dtype.kind == "f" or dtype.name == "bfloat16":
    return None
  if dtype.kind in "iu":
    full = 2.0 ** (8 * dtype.itemsize - 1)
    return (full if dtype.kind == "u" else 0.0), full
  raise AudioError(f"{name}: dtype {dtype} is not audio; pass float samples (taken as they are) or "
                   f"signed or unsigned integer PCM (scaled by its full range)")


def _channel_axis(shape: tuple[int, ...], channels_axis: int | None, name: str) -> int | None:
  if len(shape) == 1:
    return None
  if len(shape) != 2:
    raise AudioError(f"{name}: shape {shape}: expected 1-D samples or 2-D samples and channels; "
                     f"pass one clip per item")
  if channels_axis is not None:
    return channels_axis % 2
  for channels, frames in ((0, 1), (1, 0)):
    if shape[channels] <= MAX_INFERRED_CHANNELS and shape[frames] >= MIN_INFERRED_FRAMES:
      return channels
  raise AudioError(f"{name}: shape {shape}: which axis holds the channels? pass channels_axis=0 "
                   f"(channels first, as librosa's (2, n)) or 1 (channels last, as soundfile's "
                   f"(n, 2)); it is inferred only when one axis has at most "
                   f"{MAX_INFERRED_CHANNELS} entries and the other at least {MIN_INFERRED_FRAMES}")


def _to_float32(block: np.ndarray, pcm: tuple[float, float] | None) -> np.ndarray:
  if pcm is None:
    return block.astype(np.float32, copy=False)
  offset, full = pcm
  # Up to 16 bits every step is exact in float32; wider integers are scaled in float64.
  exact = np.float32 if full <= 2.0 ** 15 else np.float64
  return ((block.astype(exact) - exact(offset)) * exact(1 / full)).astype(np.float32, copy=False)


def _check_floats(samples: np.ndarray, name: str, where: str | None = None) -> None:
  """NaN, infinite and far too loud float samples are refused (integer PCM is always in range).
  `where`: which part of the item `samples` is (a file's block); None: all of it."""
  flat = samples.ravel(order="K")  # a view of any dense array, transposed ones included
  blocks = [flat[start:start + BLOCK_FRAMES] for start in range(0, flat.shape[0], BLOCK_FRAMES)]
  bad = sum(np.count_nonzero(~np.isfinite(b)) for b in blocks)  # no array-sized temporaries
  if bad:
    count = f"{bad} of {samples.size} samples" if where is None else f"{bad} samples in {where}"
    raise AudioError(f"{name}: {count} are NaN or infinite; audio must be finite")
  peak = max(float(np.max(np.abs(b))) for b in blocks)
  if peak > MAX_PEAK:
    raise AudioError(f"{name}: peak {peak:g} is far above full scale (1.0; at most {MAX_PEAK:g} "
                     f"is taken): integer PCM stored as floats? pass the integer array, or divide "
                     f"by its full scale (32768 for 16-bit)")
