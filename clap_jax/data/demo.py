"""Synthetic captioned sounds for the CPU demo: eight kinds of tones, chirps, noise and clicks.

Every example is drawn afresh with random pitch, onset, length, loudness, rate and background
noise, and captioned by one of several phrasings ("a tone sweeping upward again and again", ...).
A model can only match audio to text by learning what the words describe. The zero-shot prompts
are the kinds' first phrasings ("rising chirps"); the evaluation clips are drawn with a seed that
training never uses. (A tiny text tower trained on 32 captions does not carry over to a new
phrasing such as "the sound of rising chirps".) The kinds differ in spectral shape and time
pattern, not in absolute pitch (random, a nuisance), which HTSAT's pooled features see only with
difficulty.

Every example is a pure function of (seed, global example index), so the global batch of a step
is the same whatever the number of processes feeding it.
"""
import itertools

import numpy as np

# label -> (zero-shot label, training captions)
_KINDS = (
    ("a steady tone", ("a steady tone", "a flat beep held the whole time",
                       "a tone that stays at one pitch", "a constant hum")),
    ("a beeping tone", ("a beeping tone", "a tone pulsing on and off", "short beeps in a row",
                        "a tone chopped into pulses")),
    ("rising chirps", ("rising chirps", "a tone sweeping upward again and again",
                       "whistles going up in pitch", "quick upward sweeps")),
    ("falling chirps", ("falling chirps", "a tone sweeping downward again and again",
                        "whistles going down in pitch", "quick downward sweeps")),
    ("hissing noise", ("hissing noise", "a burst of static", "a rush of noise",
                       "noise like steam escaping")),
    ("clicks", ("clicks", "a series of sharp clicks", "a rapid ticking", "clicking like a clock")),
    ("a warbling tone", ("a warbling tone", "a wobbling whistle", "a tone with fast vibrato",
                         "a siren-like warble")),
    ("a buzz", ("a buzz", "a harsh buzzing sound", "a rough electric buzz",
                "a nasal droning buzz")),
)
LABELS = tuple(label for label, _ in _KINDS)
CAPTIONS = tuple(captions for _, captions in _KINDS)  # every phrasing of each kind
PROMPT = "{}"  # the label itself


def caption(rng: np.random.Generator, label: int) -> str:
  captions = _KINDS[label][1]
  return captions[rng.integers(len(captions))]


def _tone(rng, freq: np.ndarray, sample_rate: int, harmonics: int = 1) -> np.ndarray:
  """A tone following the instantaneous frequency `freq` (Hz per sample), with 1/k harmonics."""
  phase = 2 * np.pi * np.cumsum(freq) / sample_rate + rng.uniform(0, 2 * np.pi)
  nyquist = sample_rate / 2
  wave = sum(np.sin(k * phase) / k * (k * freq < nyquist) for k in range(1, harmonics + 1))
  return wave / np.abs(wave).max()


def clip(rng: np.random.Generator, label: int, sample_rate: int, samples: int) -> np.ndarray:
  """One (samples,) float32 waveform of kind `label`."""
  kind = LABELS[label]
  t = np.arange(samples) / sample_rate
  base = np.exp(rng.uniform(np.log(250.0), np.log(sample_rate / 8)))  # Hz
  gate = np.ones(samples)
  if kind in ("a steady tone", "a beeping tone"):
    wave = _tone(rng, np.full(samples, base), sample_rate)
    if kind == "a beeping tone":  # on/off at 4-8 Hz
      gate = np.sin(2 * np.pi * rng.uniform(4, 8) * t + rng.uniform(0, 2 * np.pi)) > 0
  elif kind in ("rising chirps", "falling chirps"):
    # Sweeps over a factor of 3-6 in 0.1-0.25 s, one after the other.
    period, span = rng.uniform(0.1, 0.25), rng.uniform(3.0, 6.0)
    position = (t / period + rng.uniform()) % 1.0  # 0 -> 1 within each sweep
    position = position if kind == "rising chirps" else 1 - position
    wave = _tone(rng, base / np.sqrt(span) * span ** position, sample_rate)
  elif kind == "hissing noise":
    spectrum = np.fft.rfft(rng.normal(size=samples))
    freqs = np.fft.rfftfreq(samples, 1 / sample_rate)
    spectrum[freqs < base] = 0  # everything above a random cut-off
    wave = np.fft.irfft(spectrum, samples)
    wave /= np.abs(wave).max() + 1e-9
  elif kind == "clicks":
    wave = np.zeros(samples)
    period = int(sample_rate / rng.uniform(8, 25))
    wave[rng.integers(period)::period] = 1.0
  elif kind == "a warbling tone":  # vibrato of a fifth to an octave at 5-10 Hz
    depth = rng.uniform(0.3, 0.6)
    wobble = np.sin(2 * np.pi * rng.uniform(5, 10) * t + rng.uniform(0, 2 * np.pi))
    wave = _tone(rng, base * 2 ** (depth * wobble), sample_rate)
  else:  # a buzz: a low tone rich in harmonics
    wave = _tone(rng, np.full(samples, base / 2), sample_rate, harmonics=20)
  # Onset and length vary; the sound always fills at least 60% of the clip.
  length = int(samples * rng.uniform(0.6, 1.0))
  start = rng.integers(0, samples - length + 1)
  envelope = np.zeros(samples)
  envelope[start:start + length] = np.hanning(length) ** 0.25
  wave = wave * gate * envelope * rng.uniform(0.2, 0.9)
  return (wave + rng.normal(size=samples) * rng.uniform(0.0, 0.01)).astype(np.float32)


def example(seed: int, index: int, sample_rate: int, samples: int) -> tuple[np.ndarray, str, int]:
  """Example `index` of the stream `seed`: (waveform, caption, label)."""
  rng = np.random.default_rng([seed, index])
  label = int(rng.integers(len(LABELS)))
  return clip(rng, label, sample_rate, samples), caption(rng, label), label


def train_batches(*, batch_size: int, sample_rate: int, clip_samples: int, tokenizer, seed: int,
                  start_step: int = 0, process_index: int = 0, process_count: int = 1):
  """An endless iterator of this process's share of each global batch of `batch_size`:
  {audio (b, clip_samples) float32, input_ids, attention_mask (b, L) int32, label (b,) int32}."""
  if batch_size % process_count:
    raise ValueError(f"global batch {batch_size} does not split over {process_count} processes")
  local = batch_size // process_count
  for step in itertools.count(start_step):
    first = step * batch_size + process_index * local
    audio, captions, labels = zip(*(example(seed, first + i, sample_rate, clip_samples)
                                    for i in range(local)))
    yield {"audio": np.stack(audio), **tokenizer(list(captions)),
           "label": np.asarray(labels, np.int32)}


def eval_set(*, num_clips: int, sample_rate: int, clip_samples: int, seed: int):
  """Held-out clips (a seed no training stream uses): (audio (N, clip), labels (N,))."""
  audio, _, labels = zip(*(example(seed, i, sample_rate, clip_samples) for i in range(num_clips)))
  return np.stack(audio), np.asarray(labels, np.int32)
