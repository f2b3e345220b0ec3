"""Reading audio files and fitting waveforms to the model's clip length (host-side numpy)."""
import os
from typing import Literal

import librosa
import numpy as np
import soundfile


# What becomes of a clip longer than the model's: 'windows' covers it with consecutive clips (their
# embeddings averaged, or several training examples); 'random' takes one window at a random offset.
LONG_MODES = ("windows", "random")


def check_long_mode(mode: str, name: str = "long_mode") -> None:
  if mode not in LONG_MODES:
    raise ValueError(f"{name} must be one of {LONG_MODES}, got {mode!r}")


class AudioError(ValueError):
  """An audio input that cannot be used; the message names the file (or item) and the reason."""


def load_audio(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
  """Decodes `path` to a mono float32 waveform at `sample_rate`.

  Channels are averaged (msclap concatenates them, a known defect). Raises AudioError naming the
  file for a missing, unreadable, empty or non-finite file.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise AudioError(f"{path}: no such file")
  try:
    data, rate = soundfile.read(path, dtype="float32", always_2d=True)
  except (soundfile.LibsndfileError, RuntimeError, TypeError) as e:
    raise AudioError(f"{path}: not a readable audio file ({e})") from None
  return prepare_array(data.mean(axis=1), rate, sample_rate, name=path)


def prepare_array(waveform, rate: int, sample_rate: int, name: str = "array") -> np.ndarray:
  """Checks a 1-D (or (samples, channels)) waveform, downmixes it and resamples it to `sample_rate`."""
  waveform = np.asarray(waveform, dtype=np.float32)
  if waveform.ndim == 2:
    waveform = waveform.mean(axis=1)
  if waveform.ndim != 1:
    raise AudioError(f"{name}: expected a 1-D waveform or (samples, channels), got shape {waveform.shape}")
  if waveform.size == 0:
    raise AudioError(f"{name}: empty (no samples)")
  if not np.all(np.isfinite(waveform)):
    bad = np.count_nonzero(~np.isfinite(waveform))
    raise AudioError(f"{name}: {bad} of {waveform.size} samples are NaN or infinite")
  if rate is None or rate <= 0:
    raise AudioError(f"{name}: invalid sample rate {rate!r}")
  if rate != sample_rate:
    waveform = librosa.resample(waveform, orig_sr=rate, target_sr=sample_rate, res_type="soxr_hq")
  return waveform  # float32: soxr keeps its input's dtype


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
  if long_mode == "random":
    rng = rng if rng is not None else np.random.default_rng()
    start = int(rng.integers(0, n - clip_samples))  # msclap: random.randrange(n - clip)
    return [waveform[start:start + clip_samples]]
  check_long_mode(long_mode)
  starts = list(range(0, n - clip_samples, clip_samples)) + [n - clip_samples]
  return [waveform[s:s + clip_samples] for s in starts]
