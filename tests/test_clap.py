"""CLAP end to end against the official PyTorch model: converted weights give the same numbers."""
import jax
import numpy as np
import pytest
import torch

from clap_jax import audio as audio_lib
from clap_jax import convert
from clap_jax import encode
from clap_jax import text as text_lib
from clap_jax.models import config as model_config
from clap_jax.models.clap import CLAP
from reference import build_reference, state_dict_numpy

TEXTS = ["a dog barks twice!", "", "rain on a tin roof", "Ünïcödé — 鳥が鳴く 🐦", "!!!"]


def _unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _compare(config, waveforms_by_length, texts, tokenizer, atol):
  """Converts a random reference, runs both on the same inputs and returns the max errors."""
  reference = build_reference(config, seed=3)
  variables = convert.convert_state_dict(state_dict_numpy(reference), config)
  model = CLAP(config)
  encoder = encode.ClapEncoder(config, variables, tokenizer)
  encode_audio = jax.jit(lambda v, w: model.apply(v, w, method=CLAP.encode_audio))
  tokens = tokenizer(texts)
  ours_text = model.apply(variables, tokens["input_ids"], tokens["attention_mask"],
                          method=CLAP.encode_text)
  with torch.no_grad():
    ref_text = reference.caption_encoder(
        {k: torch.from_numpy(v.astype(np.int64)) for k, v in tokens.items()}).numpy()
  errors = {"text": np.abs(_unit(ours_text) - _unit(ref_text)).max()}
  for name, waveforms in waveforms_by_length.items():
    ours = encode_audio(variables, waveforms)
    with torch.no_grad():
      ref = reference.audio_encoder(torch.from_numpy(waveforms))[0].numpy()
    errors[name] = np.abs(_unit(ours) - _unit(ref)).max()
    ours_sim = encoder.similarity(ours, ours_text)
    ref_sim = (reference.logit_scale.exp() * torch.from_numpy(_unit(ref_text)) @
               torch.from_numpy(_unit(ref)).T).T.detach().numpy()
    errors[name + " similarity"] = np.abs(np.asarray(ours_sim) - ref_sim).max()
  for name, error in errors.items():
    assert error <= atol * (100 if "similarity" in name else 1), (name, error, errors)
  return errors


@pytest.fixture(scope="module")
def tokenizer(gpt2_tokenizer_dir):
  return text_lib.Tokenizer.load(gpt2_tokenizer_dir)


def test_tiny_model_matches_reference_for_short_exact_and_long_audio(tokenizer):
  config = model_config.tiny()
  rng = np.random.default_rng(0)
  clip = config.audio.clip_samples
  waveforms = {length: (0.1 * rng.standard_normal((2, n))).astype(np.float32)
               for length, n in [("3 s", 132300), ("7 s", clip), ("12 s", 529200)]}
  _compare(config, waveforms, TEXTS, tokenizer, atol=1e-4)


@pytest.mark.slow
def test_full_model_matches_reference_on_real_audio(tokenizer, shared_data):
  """The 2023 model at full size on prepared real clips (48 kHz speech, 44.1 kHz ESC-50, a long
  Clotho clip given whole to the model, which takes HTSAT's long-input path)."""
  config = model_config.clap_2023()
  a = config.audio
  short = audio_lib.load_audio(shared_data / "audio/alsa/Front_Left.wav", a.sample_rate)
  dog = audio_lib.load_audio(next((shared_data / "audio/esc50/audio").glob("*.wav")), a.sample_rate)
  clotho = audio_lib.load_audio(next((shared_data / "audio/clotho/audio").glob("*.wav")),
                                a.sample_rate)
  waveforms = {
      "prepared short + 5 s": np.stack([audio_lib.repeat_pad(short, a.clip_samples),
                                        audio_lib.repeat_pad(dog, a.clip_samples)]),
      "long (12 s raw)": clotho[None, :529200],
  }
  errors = _compare(config, waveforms, TEXTS, tokenizer, atol=1e-4)
  print({k: float(v) for k, v in errors.items()})

