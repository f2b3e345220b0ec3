"""Host-side audio: decoding, downmixing, resampling and fitting to the clip length."""
import librosa
import numpy as np
import pytest
import soundfile

from clap_jax import audio as audio_lib


def test_load_matches_librosa_mono_resampled(shared_data):
  for path in [shared_data / "audio/freesound_cc0/149024__foxen10__horse_whinny.wav",  # stereo 44.1k
               shared_data / "audio/alsa/Front_Left.wav",                             # 48 kHz
               shared_data / "audio/librosa/sorohanro_-_solo-trumpet-06.hq.ogg"]:    # stereo ogg
    ours = audio_lib.load_audio(path, 44100)
    expected, _ = librosa.load(path, sr=44100, mono=True, res_type="soxr_hq")
    assert ours.dtype == np.float32 and ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_repeat_pad_tiles_then_cuts_as_msclap():
  np.testing.assert_array_equal(audio_lib.repeat_pad(np.arange(3.0), 7), [0, 1, 2, 0, 1, 2, 0])
  np.testing.assert_array_equal(audio_lib.repeat_pad(np.arange(4.0), 4), [0, 1, 2, 3])
  for n in (1, 2, 3, 5, 6, 7, 8, 20):  # into a given row, as the evaluator packs its batches
    row = np.full(7, np.nan)
    audio_lib.repeat_pad(np.arange(float(n)), 7, out=row)
    np.testing.assert_array_equal(row, np.tile(np.arange(float(n)), 7)[:7])
  with pytest.raises(ValueError, match="empty"):
    audio_lib.repeat_pad(np.zeros(0), 7)


def test_clip_windows_cover_long_audio_and_keep_short_audio_whole():
  wave = np.arange(10.0)
  np.testing.assert_array_equal(audio_lib.clip_windows(wave[:3], 4), [[0, 1, 2, 0]])
  np.testing.assert_array_equal(audio_lib.clip_windows(wave[:4], 4), [[0, 1, 2, 3]])
  np.testing.assert_array_equal(audio_lib.clip_windows(wave, 4),
                                [[0, 1, 2, 3], [4, 5, 6, 7], [6, 7, 8, 9]])
  np.testing.assert_array_equal(audio_lib.clip_windows(wave[:8], 4), [[0, 1, 2, 3], [4, 5, 6, 7]])
  starts = {int(audio_lib.clip_windows(wave, 4, "random", np.random.default_rng(s))[0, 0])
            for s in range(200)}
  assert starts == set(range(6))  # msclap: random.randrange(len - clip)
  with pytest.raises(ValueError, match="long_mode"):
    audio_lib.clip_windows(wave, 4, "middle")


def test_bad_arrays_and_files_name_the_problem(tmp_path):
  with pytest.raises(audio_lib.AudioError, match="clip 3: empty"):
    audio_lib.prepare_array(np.zeros(0), 16000, 44100, name="clip 3")
  with pytest.raises(audio_lib.AudioError, match="2 of 5 samples are NaN"):
    audio_lib.prepare_array(np.array([0, np.nan, 1, np.inf, 0]), 16000, 16000)
  with pytest.raises(audio_lib.AudioError, match="expected 1-D samples or 2-D"):
    audio_lib.prepare_array(np.zeros((2, 3, 4)), 16000, 16000)
  with pytest.raises(audio_lib.AudioError, match="invalid sample rate 0"):
    audio_lib.prepare_array(np.zeros(4), 0, 16000)
  fake = tmp_path / "fake.wav"
  fake.write_text("RIFF? no.")
  with pytest.raises(audio_lib.AudioError, match="fake.wav: not a readable audio file"):
    audio_lib.load_audio(fake, 44100)
  silent = tmp_path / "silent.wav"
  soundfile.write(str(silent), np.zeros(100, np.float32), 8000)
  assert audio_lib.load_audio(silent, 8000).shape == (100,)  # silence is valid audio
