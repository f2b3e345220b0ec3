"""The HTSAT front end against torchlibrosa and torch, the reference's own tools."""
import functools
import types

import jax
import numpy as np
import pytest

from clap_jax.models import config as config_lib
from clap_jax.models import frontend
from reference import msclap_models

torch = pytest.importorskip("torch")
torchlibrosa_stft = pytest.importorskip("torchlibrosa.stft")
soundfile = pytest.importorskip("soundfile")

AUDIO = config_lib.clap_2023().audio
# Both sides are float32; in quiet bins of real audio (80+ dB below the frame's peak) their sums
# round differently. torchlibrosa itself is ~1e-3 dB off a float64 computation there.
DB_ATOL = 5e-3


@pytest.fixture(scope="module")
def torch_front_end():
  """The reference's extractors, built as HTSAT_Swin_Transformer builds them."""
  spectrogram = torchlibrosa_stft.Spectrogram(
      n_fft=AUDIO.n_fft, hop_length=AUDIO.hop_length, win_length=AUDIO.n_fft, window="hann",
      center=True, pad_mode="reflect", freeze_parameters=True)
  logmel = torchlibrosa_stft.LogmelFilterBank(
      sr=AUDIO.mel_sample_rate, n_fft=AUDIO.n_fft, n_mels=AUDIO.mel_bins, fmin=AUDIO.fmin,
      fmax=AUDIO.fmax, ref=1.0, amin=1e-10, top_db=None, freeze_parameters=True)

  def log_mel(waveform):
    with torch.no_grad():
      return logmel(spectrogram(torch.from_numpy(waveform)))[:, 0].numpy()

  return types.SimpleNamespace(spectrogram=spectrogram, logmel=logmel, log_mel=log_mel)


# CPUs compute the STFT as a strided conv; other platforms as hop-aligned matmuls. Both are checked.
STFTS = pytest.mark.parametrize("stft", [frontend.stft_conv, frontend.stft_hop_matmuls],
                                ids=["conv", "hop_matmuls"])


@functools.cache
def _log_mel_with(stft):
  return jax.jit(lambda waveform: frontend.log_mel(waveform, AUDIO, stft))


@pytest.mark.parametrize("platform,convolutions,matmuls", [("cpu", 1, 1), ("cuda", 0, 5), ("tpu", 0, 5)])
def test_stft_form_follows_the_platform_compiled_for(platform, convolutions, matmuls):
  """A conv on CPU; elsewhere the 4 hop-aligned matmuls (a strided conv is 3x slower on a GPU)."""
  log_mel = jax.jit(lambda waveform: frontend.log_mel(waveform, AUDIO))
  exported = jax.export.export(log_mel, platforms=(platform,))(
      jax.ShapeDtypeStruct((2, 4000), np.float32))
  text = exported.mlir_module()
  assert text.count("stablehlo.convolution") == convolutions
  assert text.count("stablehlo.dot_general") == matmuls  # the mel filters' one included


def test_recomputed_buffers_equal_torchlibrosa(torch_front_end):
  real, imag = frontend.stft_kernels(AUDIO.n_fft)
  stft = torch_front_end.spectrogram.stft
  np.testing.assert_array_equal(real, stft.conv_real.weight.numpy())
  np.testing.assert_array_equal(imag, stft.conv_imag.weight.numpy())
  mel = frontend.mel_filters(AUDIO.mel_sample_rate, AUDIO.n_fft, AUDIO.mel_bins, AUDIO.fmin,
                             AUDIO.fmax)
  np.testing.assert_array_equal(mel, torch_front_end.logmel.melW.detach().numpy())


@STFTS
def test_log_mel_matches_torchlibrosa_on_real_audio(torch_front_end, shared_data, stft):
  files = sorted((shared_data / "audio" / "esc50" / "audio").glob("*.wav"))
  assert len(files) == 6, files
  waveforms = np.stack([soundfile.read(f, dtype="float32")[0] for f in files])  # 44.1 kHz, 5 s
  ours = np.asarray(_log_mel_with(stft)(waveforms))
  assert ours.shape == (6, frontend.num_frames(220500, AUDIO.hop_length), AUDIO.mel_bins)
  np.testing.assert_allclose(ours, torch_front_end.log_mel(waveforms), rtol=0, atol=DB_ATOL)


@pytest.mark.parametrize("num_samples", [AUDIO.clip_samples, 4000])
@STFTS
def test_log_mel_matches_torchlibrosa_on_random_signals(torch_front_end, num_samples, stft):
  rng = np.random.default_rng(num_samples)
  t = np.arange(num_samples) / AUDIO.sample_rate
  waveforms = np.stack([
      rng.normal(0, 0.1, num_samples),
      0.5 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.normal(size=num_samples),
      np.where(t < t[-1] / 2, 0.0, rng.uniform(-1, 1, num_samples)),  # digital silence, then noise
  ]).astype(np.float32)
  ours = np.asarray(_log_mel_with(stft)(waveforms))
  assert ours.shape == (3, frontend.num_frames(num_samples, AUDIO.hop_length), AUDIO.mel_bins)
  np.testing.assert_allclose(ours, torch_front_end.log_mel(waveforms), rtol=0, atol=DB_ATOL)


@pytest.mark.parametrize("size_in,size_out", [(965, 1024), (689, 1024), (414, 1024), (10, 37),
                                              (3, 8), (1, 5), (1024, 1024)])
def test_resize_matches_torch_bicubic_align_corners(size_in, size_out):
  x = np.random.default_rng(size_in).normal(size=(2, size_in, AUDIO.mel_bins)).astype(np.float32)
  expected = torch.nn.functional.interpolate(
      torch.from_numpy(x[:, None]), (size_out, AUDIO.mel_bins), mode="bicubic",
      align_corners=True)[:, 0].numpy()
  np.testing.assert_allclose(frontend.resize_time(x, size_out), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("frames", [965, 1024, 689])
def test_to_image_matches_reshape_wav2img(frames):
  _, htsat_module = msclap_models()
  x = np.random.default_rng(frames).normal(size=(2, frames, AUDIO.mel_bins)).astype(np.float32)
  owner = types.SimpleNamespace(spec_size=AUDIO.spec_size, freq_ratio=4)
  expected = htsat_module.HTSAT_Swin_Transformer.reshape_wav2img(owner, torch.from_numpy(x[:, None]))
  ours = frontend.to_image(x, AUDIO.spec_size, 4)
  assert ours.shape == (2, 256, 256, 1)
  np.testing.assert_allclose(ours[..., 0], expected[:, 0].numpy(), rtol=0, atol=1e-5)


def test_long_crops_follow_the_reference_range():
  assert frontend.crop_starts(1654, 689, 344) == [0, 344, 688]  # 12 s
  assert frontend.crop_starts(1025, 689, 344) == [0]
  x = np.arange(1654, dtype=np.float32)[None, :, None] * np.ones((2, 1, 3), np.float32)
  crops = frontend.long_crops(x, 689, 344)
  assert crops.shape == (3, 2, 689, 3)
  np.testing.assert_array_equal(crops[:, 0, 0, 0], [0, 344, 688])


def test_random_crop_and_spec_augment_are_seeded_and_bounded():
  x = np.ones((4, 1100, AUDIO.mel_bins), np.float32)
  crop = frontend.random_crop(jax.random.PRNGKey(0), x * np.arange(1100)[:, None], 1024)
  starts = np.asarray(crop[:, 0, 0])
  assert crop.shape == (4, 1024, AUDIO.mel_bins) and ((0 <= starts) & (starts <= 1100 - 1025)).all()

  out = np.asarray(frontend.spec_augment(jax.random.PRNGKey(1), x))
  np.testing.assert_array_equal(out, frontend.spec_augment(jax.random.PRNGKey(1), x))
  dropped_frames = (out == 0).all(axis=2).sum(axis=1)
  dropped_bins = (out == 0).all(axis=1).sum(axis=1)
  assert (dropped_frames <= 2 * 63).all() and (dropped_bins <= 2 * 7).all()
  # Everything zeroed lies in a dropped frame or a dropped bin (whole stripes only).
  stripes = (out == 0).all(axis=2)[:, :, None] | (out == 0).all(axis=1)[:, None, :]
  np.testing.assert_array_equal(out == 0, stripes)
