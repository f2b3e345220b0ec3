"""clap_jax.encode on real audio files, against the PyTorch model on the same prepared waveforms."""
import re

import numpy as np
import pytest
import soundfile
import torch

from clap_jax import audio as audio_lib
from clap_jax import convert
from clap_jax import encode
from clap_jax.models import config as model_config
from reference import build_reference, state_dict_numpy

AUDIO_SUFFIXES = (".wav", ".ogg")


@pytest.fixture(scope="module")
def reference():
  return build_reference(model_config.tiny(), seed=5)


@pytest.fixture(scope="module")
def clap(reference, gpt2_tokenizer_dir, tmp_path_factory):
  config = model_config.tiny()
  directory = tmp_path_factory.mktemp("converted")
  convert.save_variables(convert.convert_state_dict(state_dict_numpy(reference), config),
                         directory, config)
  return encode.load("2023", checkpoint=directory, tokenizer=gpt2_tokenizer_dir)


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _reference_embedding(reference, path, clip_samples):
  windows = audio_lib.clip_windows(audio_lib.load_audio(path, 44100), clip_samples)
  with torch.no_grad():
    return reference.audio_encoder(torch.from_numpy(windows))[0].numpy().mean(axis=0)


def test_real_audio_of_every_rate_channel_count_and_length(clap, reference, shared_data):
  files = sorted(p for p in (shared_data / "audio").rglob("*") if p.suffix in AUDIO_SUFFIXES)
  files += sorted((shared_data / "fsdd-dev").glob("*.wav"))[:3]  # 8 kHz
  rates = {soundfile.info(str(p)).samplerate for p in files}
  channels = {soundfile.info(str(p)).channels for p in files}
  assert {8000, 22050, 44100, 48000} <= rates and {1, 2} <= channels
  ours = clap.audio_embeddings(files)
  assert ours.shape == (len(files), clap.config.embed_dim)
  expected = np.stack([_reference_embedding(reference, p, clap.config.audio.clip_samples)
                       for p in files])
  np.testing.assert_allclose(_unit(ours), _unit(expected), atol=1e-4)


def test_texts_similarity_and_zero_shot(clap, reference, shared_data):
  labels = ["dog", "rain", "a man speaking", "",
            "a long caption that runs past thirty two tokens, so that the text tower has to use "
            "the full context length rather than one of the shorter column buckets it offers",
            # 17 tokens with a '!' (id 0, also the pad): msclap pools at 15, but the 16-column
            # bucket would cut off <|endoftext|> and move that index.
            "a dog barks! then a cat meows and a bird sings loudly"]
  text = clap.text_embeddings(labels)
  tokens = clap.tokenizer(labels)
  with torch.no_grad():
    expected = reference.caption_encoder(
        {k: torch.from_numpy(v.astype(np.int64)) for k, v in tokens.items()}).numpy()
  np.testing.assert_allclose(_unit(text), _unit(expected), atol=1e-4)
  for i, label in enumerate(labels):  # alone, each text gets its own column bucket
    np.testing.assert_allclose(_unit(clap.text_embeddings([label]))[0], _unit(expected[i]),
                               atol=1e-4, err_msg=label)
  files = sorted((shared_data / "audio/esc50/audio").glob("*.wav"))[:3]
  audio = clap.audio_embeddings(files)
  sim = clap.similarity(audio, text)
  np.testing.assert_allclose(sim, np.exp(clap.logit_scale) * _unit(audio) @ _unit(text).T, rtol=1e-5)
  probs = clap.classify(files, labels[:3], template="this is a sound of {}")
  prompts = clap.text_embeddings([f"this is a sound of {l}" for l in labels[:3]])
  logits = clap.similarity(audio, prompts)
  expected_probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
  np.testing.assert_allclose(probs, expected_probs, rtol=1e-5)


def test_arrays_stereo_and_padding_do_not_change_embeddings(clap):
  clap = encode.ClapEncoder(clap.config, clap.variables, clap.tokenizer)  # fresh jit caches
  rng = np.random.default_rng(0)
  mono = (0.1 * rng.standard_normal(22050)).astype(np.float32)
  stereo = np.stack([mono + 0.05, mono - 0.05], axis=1)
  one = clap.audio_embeddings([mono], sample_rate=22050)
  batch = clap.audio_embeddings([mono, stereo, mono * 0.5], sample_rate=22050)
  np.testing.assert_allclose(batch[0], one[0], atol=1e-5)
  np.testing.assert_allclose(batch[1], one[0], atol=1e-4)  # channels averaged: mean is `mono`
  assert clap._encode_audio._cache_size() == 2  # sizes 1 and 8, each compiled once
  clap.audio_embeddings([mono] * 5, sample_rate=22050)
  assert clap._encode_audio._cache_size() == 2
  with pytest.raises(ValueError, match="item 0: an array needs `sample_rate`"):
    clap.audio_embeddings([mono])


def test_long_audio_windows_are_deterministic_and_random_crops_seedable(clap, shared_data):
  path = next((shared_data / "audio/clotho/audio").glob("*.wav"))
  first, second = clap.audio_embeddings([path]), clap.audio_embeddings([path])
  np.testing.assert_array_equal(first, second)
  seeded = [encode.ClapEncoder(clap.config, clap.variables, clap.tokenizer, long_audio="random",
                               seed=7).audio_embeddings([path]) for _ in range(2)]
  np.testing.assert_array_equal(seeded[0], seeded[1])
  assert np.abs(seeded[0] - first).max() > 1e-4


def _write_bad_files(tmp_path):
  empty = tmp_path / "empty.wav"
  empty.write_bytes(b"")
  text = tmp_path / "notes.wav"
  text.write_text("this is not audio\n")
  nan = tmp_path / "nan.wav"
  soundfile.write(str(nan), np.full(4410, np.nan, np.float32), 44100, subtype="FLOAT")
  silent_zero = tmp_path / "zero_length.wav"
  soundfile.write(str(silent_zero), np.zeros(0, np.float32), 44100)
  return {"missing": tmp_path / "missing.wav", "empty": empty, "text": text, "nan": nan,
          "zero": silent_zero}


def test_bad_files_are_named_or_skipped(clap, shared_data, tmp_path):
  bad = _write_bad_files(tmp_path)
  reasons = {"missing": "no such file", "empty": "not a readable audio file",
             "text": "not a readable audio file", "nan": "NaN", "zero": "empty"}
  for name, path in bad.items():
    with pytest.raises(audio_lib.AudioError, match=str(path.name)) as info:
      clap.audio_embeddings([path])
    assert reasons[name] in str(info.value)
  good = sorted((shared_data / "audio/esc50/audio").glob("*.wav"))[:2]
  items = [good[0], bad["missing"], bad["text"], good[1], bad["nan"]]
  embeddings, skipped = clap.audio_embeddings(items, skip_errors=True)
  assert [i for i, _ in skipped] == [1, 2, 4]
  assert "missing.wav" in skipped[0][1] and "notes.wav" in skipped[1][1]
  np.testing.assert_allclose(embeddings, clap.audio_embeddings(good), atol=1e-5)


def test_products_are_full_float32_on_every_backend(clap):
  """GPUs (TF32) and TPUs (bfloat16 passes) would otherwise round float32 products; msclap doesn't."""
  ids = np.zeros((1, 8), np.int32)
  lowered = [clap._encode_audio.lower(clap.variables, np.zeros((1, clap.config.audio.clip_samples), np.float32)),
             clap._encode_text.lower(clap.variables, ids, np.ones_like(ids))]
  for hlo in (f.as_text() for f in lowered):
    precisions = re.findall(r"dot_general .*precision = \[(\w+), (\w+)\]", hlo)
    assert len(precisions) > 10 and set(precisions) == {("HIGHEST", "HIGHEST")}
