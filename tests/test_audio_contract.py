"""The audio input contract (clap_jax.audio): every item reads as its canonical float32 mono
waveform at its rate, or is refused naming the item, what is wrong and what is accepted.

The canonical waveform is computed here by hand (integer PCM / 2**(bits - 1), channels averaged
in float64) and resampled by librosa; integer scaling is checked once more against libsndfile's
own reading of the same samples as WAV files.
"""
import tracemalloc
import wave

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import librosa
import ml_dtypes
import numpy as np
import pytest
import soundfile
import torch

from clap_jax import audio as audio_lib
from clap_jax import encode
from clap_jax import text as text_lib
from clap_jax.models import config as model_config
from clap_jax.models.clap import CLAP

RATE = 44100  # the model's
RATES = st.sampled_from([8000, 16000, 22050, 44100, 48000]) | st.floats(100, 200_000)
DTYPES = ("float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64",
          "uint8", "uint16", "uint32", "uint64")
# What each container holds without changing the samples (JAX without x64 narrows 64-bit types).
CONTAINER_DTYPES = {
    "numpy": DTYPES, "pair": DTYPES,
    "jax": ("float16", "bfloat16", "float32", "int8", "int16", "int32", "uint8", "uint16",
            "uint32"),
    "torch": ("float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64",
              "uint8"),
}
AMBIGUOUS = "which axis holds the channels"


def _pcm(dtype: str, frames: int, channels: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """-> (frames, channels) samples of `dtype` over its whole range, and their float64 values."""
  rng = np.random.default_rng(seed)
  dt = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(dtype)
  if dt.kind in "iu":
    info = np.iinfo(dt)
    samples = rng.integers(info.min, info.max, (frames, channels), dtype=dt, endpoint=True)
    full = 2.0 ** (info.bits - 1)
    return samples, (samples.astype(np.float64) - (full if dt.kind == "u" else 0.0)) / full
  samples = rng.uniform(-2, 2, (frames, channels)).astype(dt)  # past full scale: clipped audio
  return samples, samples.astype(np.float64)


def _container(samples: np.ndarray, container: str, rate):
  """-> (the item, the rate to pass beside it)."""
  if container == "jax":
    return jnp.asarray(samples), rate
  if container == "torch":
    if samples.dtype == ml_dtypes.bfloat16:
      return torch.from_numpy(samples.astype(np.float32)).to(torch.bfloat16), rate
    return torch.from_numpy(np.ascontiguousarray(samples)), rate
  if container == "pair":
    return (samples, rate), None
  return samples, rate


def _resampled(mono: np.ndarray, rate) -> np.ndarray:
  mono = mono.astype(np.float32)
  return mono if rate == RATE else librosa.resample(mono, orig_sr=rate, target_sr=RATE,
                                                    res_type="soxr_hq")


@st.composite
def items(draw, max_frames: int | None = 600):
  """-> (item, rate to pass, channels_axis to pass, canonical waveform at RATE or None where the
  contract refuses the item (its layout is ambiguous))."""
  container = draw(st.sampled_from(sorted(CONTAINER_DTYPES)))
  dtype = draw(st.sampled_from(CONTAINER_DTYPES[container]))
  channels = draw(st.integers(1, 10))
  layout = draw(st.sampled_from(["1d", "first", "last"] if channels == 1 else ["first", "last"]))
  explicit = layout != "1d" and draw(st.booleans())
  rate = draw(RATES)
  frames = draw(st.integers(1, max_frames or int(9 * rate)))
  samples, values = _pcm(dtype, frames, channels, draw(st.integers(0, 2**32 - 1)))
  array = {"1d": samples[:, 0], "first": samples.T.copy(), "last": samples}[layout]
  item, passed_rate = _container(array, container, rate)
  channels_axis = {"first": 0, "last": 1}[layout] if explicit else None
  inferable = array.ndim == 1 or any(array.shape[c] <= audio_lib.MAX_INFERRED_CHANNELS
                                     and array.shape[1 - c] >= audio_lib.MIN_INFERRED_FRAMES
                                     for c in (0, 1))
  refused = not explicit and not inferable
  expected = None if refused else _resampled(values.mean(axis=1), rate)
  return item, passed_rate, channels_axis, expected


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(items())
def test_every_array_reads_as_its_canonical_waveform_or_is_refused(case):
  item, rate, channels_axis, expected = case
  if expected is None:
    with pytest.raises(audio_lib.AudioError, match=AMBIGUOUS):
      audio_lib.open_audio(item, RATE, rate=rate, channels_axis=channels_axis)
    return
  ours = audio_lib.open_audio(item, RATE, rate=rate, channels_axis=channels_axis).waveform()
  assert ours.dtype == np.float32 and ours.shape == expected.shape
  np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-6)


@hypothesis.settings(max_examples=100, deadline=None)
@hypothesis.given(rate=st.sampled_from([8000, 44100, 48000]) | st.floats(4000, 96_000),
                  frames=st.integers(1, 5000), clip=st.integers(64, 3000), block=st.integers(1, 2000), long_mode=st.sampled_from(["windows", "random"]),
                  seed=st.integers(0, 2**32 - 1))
def test_streamed_windows_equal_those_of_the_whole_waveform(rate, frames, clip, block, long_mode,
                                                             seed):
  """Decoding, resampling and cutting block by block changes no sample."""
  mono = np.random.default_rng(seed).uniform(-1, 1, frames).astype(np.float32)
  whole = _resampled(mono, rate)
  expected = audio_lib.window_views(whole, clip, long_mode, np.random.default_rng(seed))
  opened = audio_lib.open_audio(mono, RATE, rate=rate)
  assert opened.samples == whole.shape[0]
  assert sum(b.shape[0] for b in opened.blocks(block)) == whole.shape[0]
  streamed = list(opened.windows(clip, long_mode, np.random.default_rng(seed), block_frames=block))
  assert len(streamed) == len(expected)
  for ours, theirs in zip(streamed, expected):
    np.testing.assert_array_equal(ours, theirs)


def test_integer_pcm_scales_as_libsndfile_reads_the_same_samples(tmp_path):
  """int16 / int32 / uint8 arrays equal libsndfile's float reading of WAVs holding those samples."""
  rng = np.random.default_rng(0)
  for dtype, subtype in (("int16", "PCM_16"), ("int32", "PCM_32")):
    info = np.iinfo(dtype)
    pcm = rng.integers(info.min, info.max, (500, 2), dtype=dtype, endpoint=True)
    path = tmp_path / f"{dtype}.wav"
    soundfile.write(path, pcm, 8000, subtype=subtype)
    expected = soundfile.read(path, dtype="float32")[0]
    for channel in range(2):
      np.testing.assert_array_equal(audio_lib.prepare_array(pcm[:, channel], 8000, 8000),
                                    expected[:, channel], err_msg=dtype)
  pcm = rng.integers(0, 255, 500, dtype=np.uint8, endpoint=True)
  path = tmp_path / "uint8.wav"
  with wave.open(str(path), "wb") as f:  # 8-bit WAV is unsigned PCM, written here byte for byte
    f.setnchannels(1)
    f.setsampwidth(1)
    f.setframerate(8000)
    f.writeframes(pcm.tobytes())
  np.testing.assert_array_equal(audio_lib.prepare_array(pcm, 8000, 8000),
                                soundfile.read(path, dtype="float32")[0])


R = 16000
REFUSALS = [  # (item, rate, what the message says after "item 7: ")
    (np.zeros(0, np.float32), R, r"empty \(shape \(0,\), no samples\); a waveform needs"),
    (np.zeros((2, 0), np.int16), R, r"empty .*at least one sample"),
    (np.array([0, np.nan, 1, np.inf, 0], np.float32), R,
     r"2 of 5 samples are NaN or infinite; audio must be finite"),
    (np.array([[0.1, -np.inf]] + [[0.1, 0.2]] * 99), R, r"1 of 200 samples are NaN or infinite"),
    (np.full(100, 32767.0), R,
     r"peak 32767 is far above full scale .*integer PCM stored as floats\? pass the integer"),
    (np.zeros((2, 3, 100)), R, r"shape \(2, 3, 100\): expected 1-D .*one clip per item"),
    (np.zeros(()), R, r"shape \(\): expected 1-D samples"),
    (np.zeros((10, 100)), R, r"shape \(10, 100\): " + AMBIGUOUS + r"\? pass channels_axis=0"),
    (np.zeros((4, 5)), R, r"shape \(4, 5\): " + AMBIGUOUS),
    (np.zeros(100, bool), R, r"dtype bool is not audio; pass float samples .* or signed"),
    (np.zeros(100, np.complex64), R, r"dtype complex64 is not audio"),
    (np.array(["a", "b"]), R, r"dtype <U1 is not audio"),
    (np.array([0.1, None]), R, r"dtype object is not audio"),
    ([0.0, 0.1, 0.2], R, r"a list is not audio; pass a path, a numpy or JAX array"),
    (0.5, R, r"a float is not audio"),
    (b"RIFF", R, r"a bytes is not audio"),
    (np.zeros(100), None, r"an array needs `sample_rate`: pass its rate, or a \(waveform, "),
    (np.zeros(100), 0, r"invalid sample rate 0; a rate is a positive number"),
    (np.zeros(100), -16000, r"invalid sample rate -16000"),
    (np.zeros(100), float("nan"), r"invalid sample rate nan"),
    (np.zeros(100), float("inf"), r"invalid sample rate inf"),
    (np.zeros(100), True, r"invalid sample rate True"),
    (np.zeros(100), "16000", r"invalid sample rate '16000'"),
    ((np.zeros(100), 0), None, r"invalid sample rate 0"),
    ((np.zeros(100),), None, r"a tuple must be \(waveform, sample_rate\), got a tuple of 1"),
    ((np.zeros(100), R, 2), None, r"a tuple must be \(waveform, sample_rate\), got a tuple of 3"),
    (("clip.wav", R), None, r"a file carries its own sample rate: pass the path alone"),
]


@pytest.mark.parametrize("item,rate,message", REFUSALS)
def test_refusals_name_the_item_the_problem_and_what_is_accepted(item, rate, message):
  with pytest.raises(audio_lib.AudioError, match="item 7: " + message):
    audio_lib.open_audio(item, RATE, rate=rate, name="item 7")


def test_valid_edge_cases_are_audio():
  """Silence, clipping, a single sample, a non-integer rate, 9+ channels with `channels_axis`."""
  for array, rate, axis in [(np.zeros(1000, np.float32), 16000, None),
                            (np.full(1000, 64.0), 16000, None),  # at MAX_PEAK: taken
                            (np.array([0.5], np.float32), 48000, None),
                            (np.array([[0.5, -0.5]]), 8000, 1),
                            (np.ones(999, np.int16), 22050.5, None),
                            (np.zeros((12, 100), np.float32), 8000, 0)]:
    waveform = audio_lib.prepare_array(array, rate, RATE, channels_axis=axis)
    assert waveform.dtype == np.float32 and waveform.shape[0] >= 1 and np.all(np.isfinite(waveform))
  with pytest.raises(ValueError, match="channels_axis must be 0 .*, 1 .* or None"):
    audio_lib.open_audio(np.zeros((2, 100)), RATE, rate=RATE, channels_axis=2)


# Files -------------------------------------------------------------------------------------------

LOSSLESS = ["WAV PCM_U8", "WAV PCM_16", "WAV PCM_24", "WAV PCM_32", "WAV DOUBLE", "FLAC PCM_16",
            "FLAC PCM_24", "AIFF PCM_16"]
LOSSY = ["OGG VORBIS", "OGG OPUS", "MP3 MPEG_LAYER_III"]
EXTENSIONS = {"WAV": "wav", "FLAC": "flac", "AIFF": "aiff", "OGG": "ogg", "MP3": "mp3"}


def _grid_signal(frames: int, channels: int, seed: int = 0) -> np.ndarray:
  """(frames, channels) float32 on the 8-bit PCM grid (k / 128), so every lossless format holds
  exactly these samples."""
  rng = np.random.default_rng(seed)
  t = np.arange(frames) / 22050
  tone = 0.3 * np.sin(2 * np.pi * 440 * t)[:, None] * np.linspace(0.5, 1, channels)
  noise = 0.05 * rng.standard_normal((frames, channels))
  return (np.round((tone + noise) * 128) / 128).astype(np.float32)


def _write_formats(directory, signal: np.ndarray, rate: int) -> dict[str, str]:
  """-> {"CONTAINER SUBTYPE": path} of `signal` in each format, and a float WAV ("WAV FLOAT", the
  reference); the lossy formats hold its first two channels (MP3 holds no more)."""
  paths = {}
  for name in ["WAV FLOAT"] + LOSSLESS + LOSSY:
    container, subtype = name.split()
    file_rate = 48000 if subtype == "OPUS" else rate  # Opus runs at 48 kHz
    path = str(directory / f"{container}_{subtype}.{EXTENSIONS[container]}".lower())
    soundfile.write(path, signal[:, :2] if name in LOSSY else signal, file_rate, format=container,
                    subtype=subtype)
    paths[name] = path
  return paths


def test_lossless_files_of_every_format_read_as_the_float_wav(tmp_path):
  signal = _grid_signal(22050, 6)  # 6 channels, 1 s at 22.05 kHz
  paths = _write_formats(tmp_path, signal, 22050)
  expected = _resampled(signal.astype(np.float64).mean(axis=1), 22050)
  for name in ["WAV FLOAT"] + LOSSLESS:
    np.testing.assert_allclose(audio_lib.load_audio(paths[name], RATE), expected, rtol=0,
                               atol=1e-6, err_msg=name)
  for name in LOSSY:  # their own decoding, downmixed and resampled by librosa
    decoded, _ = librosa.load(paths[name], sr=RATE, mono=True, res_type="soxr_hq")
    np.testing.assert_allclose(audio_lib.load_audio(paths[name], RATE), decoded, rtol=0,
                               atol=1e-6, err_msg=name)


def test_streamed_files_equal_their_whole_decoding(tmp_path):
  signal = _grid_signal(5000, 2)
  path = tmp_path / "a.flac"
  soundfile.write(path, signal, 16000)
  opened = audio_lib.open_audio(path, RATE)
  whole = opened.waveform()
  np.testing.assert_allclose(whole, _resampled(signal.astype(np.float64).mean(axis=1), 16000),
                             rtol=0, atol=1e-6)
  for block in (1, 7, 1000, 10_000):
    streamed = list(opened.windows(3000, block_frames=block))
    expected = audio_lib.window_views(whole, 3000)
    assert len(streamed) == len(expected) == 5
    for ours, theirs in zip(streamed, expected):
      np.testing.assert_array_equal(ours, theirs)


def test_bad_files_are_refused_with_their_path(tmp_path):
  nan = tmp_path / "nan.wav"
  soundfile.write(nan, np.r_[np.zeros(70_000), np.nan, np.zeros(10)].astype(np.float32), 8000,
                  subtype="FLOAT")
  with pytest.raises(audio_lib.AudioError,
                     match=r"nan.wav: 1 samples in frames 65536-70010 of 70011 are NaN"):
    audio_lib.load_audio(nan, RATE)
  loud = tmp_path / "loud.wav"
  soundfile.write(loud, np.full(100, 1000.0, np.float32), 8000, subtype="FLOAT")
  with pytest.raises(audio_lib.AudioError, match=r"loud.wav: peak 1000 is far above full scale"):
    audio_lib.load_audio(loud, RATE)
  truncated = tmp_path / "truncated.wav"
  soundfile.write(truncated, _grid_signal(10_000, 1), 8000, subtype="PCM_16")
  truncated.write_bytes(truncated.read_bytes()[:10_000])  # libsndfile counts the frames left
  np.testing.assert_array_equal(audio_lib.load_audio(truncated, 8000),
                                soundfile.read(truncated, dtype="float32")[0])


def test_a_file_decoding_to_another_length_than_its_header_is_refused(tmp_path, monkeypatch):
  path = tmp_path / "a.wav"
  soundfile.write(path, np.zeros(1000, np.float32), 8000)
  info = soundfile.info(str(path))
  monkeypatch.setattr(audio_lib.soundfile, "info", lambda _: type(
      "Info", (), {"frames": info.frames + 5, "samplerate": info.samplerate})())
  with pytest.raises(audio_lib.AudioError,
                     match=r"a.wav: decoded 1000 frames, its header says 1005"):
    audio_lib.load_audio(path, RATE)


# Embeddings (the tiny model) ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def clap() -> encode.ClapEncoder:
  config = model_config.tiny()
  model = CLAP(config)
  waveform = np.zeros((1, config.audio.clip_samples), np.float32)
  variables = jax.jit(lambda: model.init(jax.random.key(0), waveform, method=CLAP.encode_audio))()
  variables["params"]["logit_scale"] = jnp.float32(0.0)
  return encode.ClapEncoder(config, variables, text_lib.Tokenizer.load(text_lib.GPT2_FILES))


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _embedding(clap, item, **kwargs) -> np.ndarray:
  return _unit(clap.audio_embeddings([item], **kwargs)[0])


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(items(max_frames=None))
def test_embedding_equals_the_canonical_arrays_or_is_refused(clap, case):
  """Over dtype x layout x rate x length (up to 9 s, two windows) x channels x container: the
  item embeds as the waveform it reads as, and that is the canonical one. Compared as waveforms,
  not embeddings: a clip of a few samples, repeated to the clip length, is so ill-conditioned that
  a one-ulp difference in its samples moves the embedding by more than any tolerance would allow."""
  item, rate, channels_axis, expected = case
  if expected is None:
    with pytest.raises(audio_lib.AudioError, match=AMBIGUOUS):
      clap.audio_embeddings([item], sample_rate=rate, channels_axis=channels_axis)
    return
  waveform = audio_lib.open_audio(item, RATE, rate=rate, channels_axis=channels_axis).waveform()
  np.testing.assert_allclose(waveform, expected, rtol=0, atol=1e-6)
  ours = _embedding(clap, item, sample_rate=rate, channels_axis=channels_axis)
  np.testing.assert_allclose(ours, _embedding(clap, waveform, sample_rate=RATE), rtol=0, atol=1e-6)


def _sine(rate: int = 16000, seconds: float = 3.0) -> np.ndarray:
  return (0.5 * np.sin(2 * np.pi * 440 * np.arange(int(rate * seconds)) / rate)).astype(np.float32)


def test_int16_array_is_scaled_regression(clap, tmp_path):
  """scipy.io.wavfile.read returns int16: it embeds as the float sound (was cosine -0.14)."""
  import scipy.io.wavfile  # pylint: disable=g-import-not-at-top
  path = tmp_path / "sine.wav"
  soundfile.write(path, _sine(), 16000, subtype="PCM_16")
  rate, pcm = scipy.io.wavfile.read(path)
  assert pcm.dtype == np.int16
  reference = _embedding(clap, soundfile.read(path, dtype="float32")[0], sample_rate=16000)
  np.testing.assert_allclose(_embedding(clap, pcm, sample_rate=rate), reference, atol=1e-5)
  np.testing.assert_allclose(_embedding(clap, (pcm, rate)), reference, atol=1e-5)
  np.testing.assert_allclose(_embedding(clap, path), reference, atol=1e-5)
  # The tolerance tells sounds apart: the same tone 20 dB quieter is another embedding.
  assert np.abs(_embedding(clap, _sine() * 0.1, sample_rate=16000) - reference).max() > 1e-3


def test_channels_first_stereo_regression(clap, tmp_path):
  """librosa.load(mono=False) returns (2, n): read as 2 channels, not n channels of 2 samples."""
  path = tmp_path / "stereo.wav"
  left, right = _sine(), 0.5 * _sine()[::-1]
  soundfile.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
  channels_first, rate = librosa.load(path, sr=None, mono=False)
  assert channels_first.shape == (2, 48000)
  reference = _embedding(clap, (left + right) / 2, sample_rate=16000)
  for item, axis in [(channels_first, None), (channels_first, 0), (channels_first.T, None),
                     (channels_first.T, 1), (path, None)]:
    np.testing.assert_allclose(_embedding(clap, item, sample_rate=rate, channels_axis=axis),
                               reference, atol=1e-5)
  single = _embedding(clap, channels_first[:, :1], sample_rate=rate, channels_axis=0)  # 1 frame
  assert np.abs(single - reference).max() > 1e-3


def test_files_of_every_format_embed_as_the_float_wav(clap, tmp_path):
  signal = _grid_signal(22050, 2)
  paths = _write_formats(tmp_path, signal, 22050)
  embeddings = _unit(clap.audio_embeddings([paths[n] for n in ["WAV FLOAT"] + LOSSLESS]))
  for name, embedding in zip(LOSSLESS, embeddings[1:]):
    np.testing.assert_allclose(embedding, embeddings[0], atol=1e-5, err_msg=name)
  for name in LOSSY:  # as their own decoding, given as an array
    decoded, _ = librosa.load(paths[name], sr=RATE, mono=True, res_type="soxr_hq")
    np.testing.assert_allclose(_embedding(clap, paths[name]),
                               _embedding(clap, decoded, sample_rate=RATE), atol=1e-5, err_msg=name)


def test_unusable_items_are_named_or_skipped(clap):
  good = _sine()
  items = [good, np.zeros((4, 5)), (good, 16000), [0.1, 0.2], np.full(10, np.nan)]
  with pytest.raises(audio_lib.AudioError, match=r"item 1: shape \(4, 5\)"):
    clap.audio_embeddings(items, sample_rate=16000)
  embeddings, skipped = clap.audio_embeddings(items, sample_rate=16000, skip_errors=True)
  assert [i for i, _ in skipped] == [1, 3, 4]
  assert "item 3: a list is not audio" in skipped[1][1] and "NaN" in skipped[2][1]
  np.testing.assert_allclose(_unit(embeddings), [_embedding(clap, good, sample_rate=16000)] * 2,
                             atol=1e-5)
  for single in (good, "clip.wav", (good, 16000), jnp.asarray(good), torch.from_numpy(good)):
    with pytest.raises(TypeError, match="a list of items"):
      clap.audio_embeddings(single, sample_rate=16000)


@pytest.fixture
def stub(clap) -> encode.ClapEncoder:
  """`clap` with its audio tower replaced by statistics of each window, for host-side tests."""
  stub = encode.ClapEncoder(clap.config, clap.variables, clap.tokenizer)
  stub._encode_audio = lambda variables, x: np.stack(  # pylint: disable=protected-access
      [x.mean(1), x.max(1), x[:, 0], x[:, -1], x[:, 1000]], axis=1)
  return stub


def test_a_long_file_failing_midway_leaves_the_other_items_whole(stub, tmp_path):
  """Its first windows were encoded (a batch) before its NaN was decoded: they are dropped."""
  path = tmp_path / "late_nan.wav"
  samples = np.random.default_rng(0).uniform(-0.5, 0.5, 8000 * 300).astype(np.float32)
  samples[-10] = np.nan  # 5 minutes: 43 windows, the NaN in the last block
  soundfile.write(path, samples, 8000, subtype="FLOAT")
  good = _sine()
  embeddings, skipped = stub.audio_embeddings([good, path, good * 0.5], sample_rate=16000,
                                              skip_errors=True)
  assert [i for i, _ in skipped] == [1] and "late_nan.wav: 1 samples in frames" in skipped[0][1]
  np.testing.assert_array_equal(
      embeddings, stub.audio_embeddings([good, good * 0.5], sample_rate=16000))


def test_an_hour_long_file_is_embedded_in_bounded_memory(stub, tmp_path):
  """The host side of a 1-hour file (8 kHz int16 WAV: 635 MB once decoded at 44.1 kHz as float32)
  peaks at the same traced memory as a 5-minute one; the model is stubbed with window statistics
  (its share is one batch, whatever the file's length), which equal those of the whole decoding."""

  def write(path, minutes):
    rng = np.random.default_rng(minutes)
    with soundfile.SoundFile(path, "w", 8000, 1, "PCM_16") as f:
      for _ in range(minutes):
        f.write(rng.integers(-8000, 8000, 8000 * 60, dtype=np.int16))

  peaks = {}
  for minutes in (5, 60):  # 5 minutes: 43 windows, more than a batch
    path = tmp_path / f"{minutes}.wav"
    write(path, minutes)
    tracemalloc.start()
    embedding = stub.audio_embeddings([path])[0]
    peaks[minutes] = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
  print(f"traced host peaks: {peaks[5] / 2**20:.1f} MiB (5 min), {peaks[60] / 2**20:.1f} MiB (1 h)")
  assert peaks[60] < 1.05 * peaks[5] and peaks[60] < 128 * 2**20
  whole, _ = librosa.load(path, sr=RATE, res_type="soxr_hq")
  windows = audio_lib.clip_windows(whole, stub.config.audio.clip_samples)
  assert len(windows) == 515
  expected = stub._encode_audio(None, windows).mean(0)  # pylint: disable=protected-access
  np.testing.assert_allclose(embedding, expected, rtol=1e-5, atol=1e-8)


# The other entry points: the shard writer and the evaluator --------------------------------------

def test_shard_writer_stores_the_canonical_samples(gpt2_tokenizer_dir, tmp_path):
  from clap_jax.data import records, sources, writer  # pylint: disable=g-import-not-at-top
  from test_data_writer import read_examples  # pylint: disable=g-import-not-at-top
  signal = _grid_signal(11025, 6)  # 0.5 s at 22.05 kHz
  paths = _write_formats(tmp_path, signal, 22050)
  lossless = ["WAV FLOAT"] + LOSSLESS
  items = [sources.Item(item_id=name, audio=paths[name], captions=("a tone",))
           for name in lossless]
  writer.write_shards(items, tmp_path / "out",
                      writer.WriterConfig(tokenizer=str(gpt2_tokenizer_dir)), progress=False)
  expected = records.to_pcm16(_resampled(signal.astype(np.float64).mean(axis=1), 22050)) / 32768
  examples = {e["example_id"]: e for e in read_examples(tmp_path / "out")}
  assert sorted(examples) == sorted(lossless)
  for name in lossless:  # within one step of int16 (float rounding of the channel mean)
    np.testing.assert_allclose(examples[name]["audio"], expected, rtol=0, atol=1.01 / 32768,
                               err_msg=name)


def test_evaluator_scores_every_reading_of_a_clip_alike():
  from clap_jax.eval import sources, tasks  # pylint: disable=g-import-not-at-top
  from test_eval_sharded import SAMPLE_RATE, toy_evaluator  # pylint: disable=g-import-not-at-top
  pcm = np.random.default_rng(0).integers(-20000, 20000, (2000, 2), dtype=np.int16)
  canonical = (pcm.astype(np.float64).mean(axis=1) / 32768).astype(np.float32)
  readings = {"int16 (n, 2)": pcm, "int16 (2, n)": pcm.T.copy(), "float64 (n, 2)": pcm / 32768.0}
  task = tasks.Task("toy_readings", "Toy", "Toy", tasks.SINGLE_LABEL, ("a", "b", "c"),
                    {"kind": "none"})
  items = [sources.Item(name, (array,), SAMPLE_RATE, labels=(0,)) for name, array in
           [("canonical", canonical), *readings.items(), ("ambiguous", np.zeros((4, 5), np.int16))]]
  ev, variables = toy_evaluator([task], {task.name: sources.ListSource(items)})
  result = ev.evaluate(variables)[task.name]
  (unusable,) = result.unusable
  assert unusable.startswith("ambiguous: shape (4, 5): " + AMBIGUOUS)
  assert result.num_items == 1 + len(readings)
  for name, row in zip(readings, result.scores[1:]):
    np.testing.assert_allclose(row, result.scores[0], atol=1e-6, err_msg=name)
