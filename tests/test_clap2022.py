"""CLAP 2022 (CNN14 + BERT) against msclap's PyTorch model: tokens, conversion, embeddings."""
import csv

import jax
import numpy as np
import pytest
import torch

from clap_jax import audio as audio_lib
from clap_jax import text_bert
from clap_jax.convert.clap2022 import convert_2022
from clap_jax.convert.tensors import ConversionError
from clap_jax.models import config as model_config
from clap_jax.models.clap import CLAP
from clap_jax.models.cnn14 import Cnn14
from reference import state_dict_numpy
from reference_2022 import build_reference_2022, msclap_tokens, slow_tokenizer
from trees import assert_trees_close

OVER_LONG = " ".join(["a dog barks at the mailman while rain falls on the roof"] * 12)  # 144 tokens
TEXTS = ["a dog barks twice!", "", "Ünïcödé — 鳥が鳴く 🐦 café naïve", "!!!", OVER_LONG]


def _unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def tokenizer():
  return text_bert.BertTokenizer.load()  # the vocabulary shipped in clap_jax/assets


def _compare(config, waveforms_by_name, texts, tokenizer, atol=1e-5):
  """Converts a random reference and runs both on the same waveforms and tokens; asserts the
  unit-normalised embeddings agree within `atol` and the clipwise probabilities within 1e-4;
  returns the errors. (The issue asks for 1e-4; both towers measure under 4e-7, and 1e-5 still
  catches BERT with tanh-approximated GELU, 7.6e-5 off at full size.)"""
  reference = build_reference_2022(config, seed=3)
  variables = convert_2022(state_dict_numpy(reference), config)
  model = CLAP(config)
  audio_tower = jax.jit(lambda v, w: model.apply(v, w, method=lambda m, w: m.audio_encoder(w)))
  tokens = tokenizer(texts)
  ours_text = model.apply(variables, tokens["input_ids"], tokens["attention_mask"],
                          method=CLAP.encode_text)
  torch_tokens = {k: torch.from_numpy(v.astype(np.int64)) for k, v in tokens.items()}
  torch_tokens["token_type_ids"] = torch.zeros_like(torch_tokens["input_ids"])  # msclap's, one text
  with torch.no_grad():
    ref_text = reference.caption_encoder(torch_tokens).numpy()
  errors = {"text": np.abs(_unit(ours_text) - _unit(ref_text)).max()}
  for name, waveforms in waveforms_by_name.items():
    ours, ours_clipwise = audio_tower(variables, waveforms)
    with torch.no_grad():
      ref, ref_clipwise = (x.numpy() for x in reference.audio_encoder(torch.from_numpy(waveforms)))
    errors[name] = np.abs(_unit(ours) - _unit(ref)).max()
    errors[name + " clipwise"] = np.abs(np.asarray(ours_clipwise) - ref_clipwise).max()
  for name, error in errors.items():
    assert error <= (1e-4 if "clipwise" in name else atol), (name, errors)
  return errors


def test_tokens_match_msclap_preprocess_text(tokenizer, shared_data):
  """Real Clotho captions and edge cases, against transformers' pure-Python WordPiece called as
  CLAPWrapper.preprocess_text calls it (on ../shared's copy of the vocabulary)."""
  with open(shared_data / "audio/clotho/captions.csv", newline="") as f:
    captions = [row[f"caption_{i}"] for row in csv.DictReader(f) for i in (1, 2)]
  texts = captions + TEXTS + ["\tTabs,\u00a0no-break spaces\u200b and ÀÉÎ accents\n"]
  slow = slow_tokenizer(shared_data / "tokenizers/bert-base-uncased")
  ours = tokenizer(texts)
  for row, (text, ref) in enumerate(zip(texts, msclap_tokens(slow, texts))):
    assert not ref["token_type_ids"].any(), text  # one segment: all zeros, as the model assumes
    if text is OVER_LONG:
      # msclap pads to 100 but does not truncate; ours keeps [CLS], 98 tokens and [SEP].
      assert ref["input_ids"].shape[0] > 100
      ref = slow(text, max_length=100, padding="max_length", truncation=True)
    np.testing.assert_array_equal(ours["input_ids"][row], ref["input_ids"], err_msg=text)
    np.testing.assert_array_equal(ours["attention_mask"][row], ref["attention_mask"], err_msg=text)
  assert ours["input_ids"].shape == (len(texts), 100)
  assert tokenizer([])["input_ids"].shape == (0, 100)


def test_tiny_model_matches_reference_for_short_exact_and_long_audio(tokenizer):
  config = model_config.tiny_2022()
  rng = np.random.default_rng(0)
  waveforms = {length: (0.1 * rng.standard_normal((2, n))).astype(np.float32)
               for length, n in [("1.5 s", 66150), ("5 s", config.audio.clip_samples),
                                 ("12 s", 529200)]}
  _compare(config, waveforms, TEXTS, tokenizer)


@pytest.mark.slow
def test_full_model_matches_reference_on_real_audio_and_texts(tokenizer, shared_data):
  """clap_2022 at full size: real clips raw (1.5 s speech, 5 s ESC-50 and a stereo Freesound clip,
  12 s of Clotho) and repeat-padded to 5 s, real captions and the edge-case texts."""
  config = model_config.clap_2022()
  a = config.audio
  load = lambda path: audio_lib.load_audio(shared_data / "audio" / path, a.sample_rate)
  speech = load("alsa/Front_Left.wav")
  esc50 = sorted((shared_data / "audio/esc50/audio").glob("*.wav"))
  waveforms = {
      "short (raw)": speech[None],
      "exact": np.stack([audio_lib.load_audio(esc50[0], a.sample_rate),
                         audio_lib.load_audio(esc50[3], a.sample_rate),
                         load("freesound_cc0/149024__foxen10__horse_whinny.wav"),
                         audio_lib.repeat_pad(speech, a.clip_samples)]),
      "long (12 s raw)": load("clotho/audio/01 barreau bunker original.wav")[None, :529200],
  }
  with open(shared_data / "audio/clotho/captions.csv", newline="") as f:
    captions = [row["caption_1"] for row in csv.DictReader(f)]
  errors = _compare(config, waveforms, captions + TEXTS, tokenizer)
  print({k: float(v) for k, v in errors.items()})


@pytest.fixture(scope="module")
def tiny_state():
  return state_dict_numpy(build_reference_2022(model_config.tiny_2022(), seed=1))


def test_converter_places_parameters_and_statistics(tiny_state):
  variables = convert_2022(tiny_state, model_config.tiny_2022())
  params, stats = variables["params"], variables["batch_stats"]["audio_encoder"]["cnn14"]
  np.testing.assert_array_equal(params["audio_encoder"]["cnn14"]["conv_block2"]["conv1"]["kernel"],
                                tiny_state["audio_encoder.base.conv_block2.conv1.weight"]
                                .transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(stats["conv_block6"]["bn2"]["var"],
                                tiny_state["audio_encoder.base.conv_block6.bn2.running_var"])
  query = params["caption_encoder"]["bert"]["layer_1"]["attention"]["self"]["query"]
  np.testing.assert_array_equal(query["kernel"], tiny_state[
      "caption_encoder.base.encoder.layer.1.attention.self.query.weight"].T)
  np.testing.assert_array_equal(params["logit_scale"], tiny_state["logit_scale"])


def test_converter_is_strict_about_parameters_and_checks_buffers(tiny_state):
  config = model_config.tiny_2022()
  convert = lambda state: convert_2022(state, config)

  def changed(**entries):
    return {**{k: v for k, v in tiny_state.items() if k not in entries},
            **{k: v for k, v in entries.items() if v is not None}}
  bert = "caption_encoder.base."
  cases = {
      "missing parameters: audio_encoder.base.conv_block3.bn1.running_mean":
          changed(**{"audio_encoder.base.conv_block3.bn1.running_mean": None}),
      "unused keys: caption_encoder.base.encoder.layer.2.output.dense.weight":
          changed(**{bert + "encoder.layer.2.output.dense.weight": np.zeros((32, 64), np.float32)}),
      "caption_encoder.base.pooler.dense.weight: shape":
          changed(**{bert + "pooler.dense.weight": np.zeros((32, 31), np.float32)}),
      "audio_encoder.base.fc1.weight: shape":
          changed(**{"audio_encoder.base.fc1.weight": np.zeros((32, 33), np.float32)}),
      "position_ids: buffer differs":
          changed(**{bert + "embeddings.position_ids": np.arange(128)[None] + 1}),
      "logmel_extractor.melW: buffer differs":
          changed(**{"audio_encoder.base.logmel_extractor.melW":
                     tiny_state["audio_encoder.base.logmel_extractor.melW"] * 1.01}),
  }
  for message, state in cases.items():
    with pytest.raises(ConversionError, match=message.replace(".", r"\.")):
      convert(state)
  # Buffers older transformers saved are accepted when they hold what the model recomputes.
  convert(changed(**{bert + "embeddings.position_ids": np.arange(128)[None],
                     bert + "embeddings.token_type_ids": np.zeros((1, 128), np.int64)}))


def test_cut_token_columns_change_no_embedding(tokenizer):
  """BERT masks padded keys exactly, so encoders may drop the columns after the longest text
  (clap_jax.text.text_columns), as they do for causal GPT-2."""
  config = model_config.tiny_2022()
  model = CLAP(config)
  tokens = tokenizer(["a dog barks", "", "rain on a tin roof at night"])
  variables = model.init(jax.random.key(0), tokens["input_ids"], tokens["attention_mask"],
                         method=CLAP.encode_text)  # the text tower alone
  encode = jax.jit(lambda v, ids, mask: model.apply(v, ids, mask, method=CLAP.encode_text))
  cut = lambda n: encode(variables, tokens["input_ids"][:, :n], tokens["attention_mask"][:, :n])
  np.testing.assert_allclose(cut(16), cut(100), atol=1e-6)


def test_tiny_model_trains_with_batch_statistics(tokenizer):
  """Train mode: dropout, SpecAugment and remat run, gradients are finite and every batch norm's
  running statistics move."""
  config = model_config.tiny_2022()
  config.audio.spec_augment = config.audio.remat = config.text.remat = True
  model = CLAP(config)
  waveforms = (0.1 * np.random.default_rng(0).standard_normal((2, 22050))).astype(np.float32)
  tokens = tokenizer(["a dog barks", "rain"])
  args = (waveforms, tokens["input_ids"][:, :8], tokens["attention_mask"][:, :8])
  variables = jax.jit(model.init)(jax.random.key(0), *args)

  def loss(params):
    (audio, text, _), updates = model.apply(
        {"params": params, "batch_stats": variables["batch_stats"]}, *args, train=True,
        rngs={"dropout": jax.random.key(1)}, mutable=["batch_stats"])
    return -jax.numpy.sum(_unit_jax(audio) * _unit_jax(text)), updates

  grads, updates = jax.jit(jax.grad(loss, has_aux=True))(variables["params"])
  assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))
  moved = jax.tree.map(lambda a, b: bool(np.any(a != b)), updates["batch_stats"],
                       variables["batch_stats"])
  assert all(jax.tree.leaves(moved)), moved


def _unit_jax(x):
  return x / jax.numpy.linalg.norm(x, axis=-1, keepdims=True)


def test_batch_norm_in_training_moves_statistics_as_torch():
  """Train mode with dropout and SpecAugment off: CNN14's embedding and all thirteen batch norms'
  running statistics after one step equal msclap's with its batch norms training (torch moves the
  running variance by the unbiased batch variance: a factor 24 / 23 in the last block here)."""
  config = model_config.tiny_2022()
  a = config.audio
  a.conv_dropout = a.fc_dropout = 0.0
  a.spec_augment = False
  reference = build_reference_2022(config, seed=3)
  # Copied: state_dict_numpy's arrays share memory with the tensors torch is about to update.
  variables = jax.tree.map(np.copy, convert_2022(state_dict_numpy(reference), config))
  cnn14 = reference.audio_encoder.base
  for module in cnn14.modules():  # the rest stays in eval mode: no dropout, no SpecAugment
    if isinstance(module, torch.nn.BatchNorm2d):
      module.train()
  waveforms = (0.1 * np.random.default_rng(0).standard_normal((3, a.sample_rate))).astype(np.float32)
  with torch.no_grad():
    expected = cnn14(torch.from_numpy(waveforms))["embedding"].numpy()
  moved = convert_2022(state_dict_numpy(reference), config)["batch_stats"]["audio_encoder"]["cnn14"]
  ours, updates = Cnn14(a).apply(
      {"params": variables["params"]["audio_encoder"]["cnn14"],
       "batch_stats": variables["batch_stats"]["audio_encoder"]["cnn14"]},
      waveforms, train=True, mutable=["batch_stats"])
  np.testing.assert_allclose(ours["embedding"], expected, rtol=1e-4, atol=1e-5)
  assert len(jax.tree.leaves(moved)) == 26
  assert_trees_close(updates["batch_stats"], moved, rtol=1e-5, atol=1e-7)
