"""clapcap against msclap's ClapCaptionModel and CLAPWrapper.generate_caption on real clips: the
converter, the mapper's prefix, GPT-2's logits and the captions."""
import jax
import numpy as np
import pytest

from clap_jax import audio as audio_lib
from clap_jax import caption, convert, encode, weights
from clap_jax import text as text_lib
from clap_jax.convert import clapcap as convert_clapcap
from clap_jax.convert.tensors import ConversionError
from clap_jax.models import config as model_config
from clap_jax.models.clapcap import ClapCap
from reference import torch
from reference_clapcap import build_clapcap_reference, clapcap_wrapper, state_dict_numpy

# For the captions, random weights whose captions depend on the clip and stop at varied lengths
# (see reference_clapcap); values reach ~100, so they are compared only through the captions.
NOISE, STOP_SCALE = 0.5, -3.0
RATE = 44100


@pytest.fixture(scope="module")
def config():
  return model_config.tiny_clapcap()


@pytest.fixture(scope="module")
def reference(config):
  """Perturbed as the 2023 reference: for numerical parity and the converter."""
  return build_clapcap_reference(config, seed=0)


@pytest.fixture(scope="module")
def variables(reference, config):
  return convert_clapcap.convert_state_dict(state_dict_numpy(reference), config)


@pytest.fixture(scope="module")
def captioning(config):
  """(reference, variables) for the caption tests."""
  reference = build_clapcap_reference(config, seed=0, noise=NOISE, stop_scale=STOP_SCALE)
  return reference, convert_clapcap.convert_state_dict(state_dict_numpy(reference), config)


@pytest.fixture(scope="module")
def tokenizer(gpt2_tokenizer_dir):
  return text_lib.Tokenizer.load(gpt2_tokenizer_dir)


@pytest.fixture(scope="module")
def clips(shared_data):
  """A 3 s and a 7 s clip (cut from real recordings) and a 15.7 s file."""
  short = audio_lib.load_audio(shared_data / "audio/esc50/audio/1-56234-A-9.wav", RATE)
  long_path = shared_data / "audio/clotho/audio/Tenerife_bazaar_2.wav"
  long = audio_lib.load_audio(long_path, RATE)
  return {"3 s": short[:3 * RATE], "7 s": long[-7 * RATE:], "long": long, "long_path": long_path}


def _torch_prefix(reference, windows: np.ndarray):
  """msclap's generate_caption up to the prefix, the audio embedding averaged over `windows`."""
  with torch.no_grad():
    embedding = reference.clap(torch.from_numpy(windows))[0].mean(0, keepdim=True)
    return reference.clap_project(embedding / embedding.norm(2, -1).reshape(-1, 1))


def _prefix_and_logits(config, variables, waveforms, tokens):
  """-> (mapper prefix, LM logits over prefix and tokens), ours."""
  def run(model, waveforms, tokens):
    return model.prefix(model.audio_embeddings(waveforms)), model(waveforms, tokens)
  fn = jax.jit(lambda v, w, t: ClapCap(config).apply(v, w, t, method=run))
  return tuple(map(np.asarray, fn(variables, waveforms, tokens)))


def test_prefix_and_logits_match_msclap(reference, variables, config, clips):
  waveforms = np.stack([audio_lib.clip_windows(clips[k], config.audio.clip_samples)[0]
                        for k in ("3 s", "7 s")])
  tokens = np.random.default_rng(0).integers(0, config.decoder.vocab_size, (2, 12))
  prefix, logits = _prefix_and_logits(config, variables, waveforms, tokens)
  with torch.no_grad():
    expected_prefix = np.concatenate([_torch_prefix(reference, w[None]).numpy() for w in waveforms])
    expected_logits = reference(torch.from_numpy(waveforms),
                                {"input_ids": torch.from_numpy(tokens)}).logits.numpy()
  assert prefix.shape == (2, config.mapper.prefix_length, config.decoder.n_embd)
  assert logits.shape == (2, config.mapper.prefix_length + 12, config.decoder.vocab_size)
  # Measured 7e-7 and 1e-6 (logits up to 2).
  assert np.abs(prefix - expected_prefix).max() < 1e-4
  assert np.abs(logits - expected_logits).max() < 1e-4


@pytest.fixture(scope="module")
def captioner(captioning, config, tokenizer):
  return caption.Captioner(config, captioning[1], tokenizer)


@pytest.mark.parametrize("beam_size", [1, 5])
def test_captions_equal_generate_caption(captioning, captioner, config, tokenizer, clips, beam_size):
  """In one batch: 3 s (repeat-padded), 7 s, the 15.7 s file cropped where msclap's random crop is
  made to start, and the whole file (windows averaged: msclap's beam search on the mean of the
  windows' embeddings)."""
  reference, _ = captioning
  clip = config.audio.clip_samples
  start = len(clips["long"]) // 3
  crop = clips["long"][start:start + clip]
  ours = captioner.caption([clips["3 s"], clips["7 s"], crop, clips["long_path"]],
                           sample_rate=RATE, beam_size=beam_size)
  wrapper = clapcap_wrapper(reference, config, text_lib.GPT2_FILES, clips, crop_start=start)
  expected = wrapper.generate_caption(["3 s", "7 s", "long"], resample=False, beam_size=beam_size)
  windows = audio_lib.clip_windows(clips["long"], clip)
  assert len(windows) == 3
  expected += [wrapper._generate_beam(embed=_torch_prefix(reference, windows),  # pylint: disable=protected-access
                                      beam_size=beam_size)[0].capitalize()]
  assert ours == expected
  assert len(set(expected)) == 4  # captions depend on the clip
  assert len({len(tokenizer.encode(c.lower())) for c in expected}) > 1  # and end at varied lengths


def test_captioner_inputs_errors_and_embeddings(captioning, captioner, config, clips, tmp_path):
  reference, _ = captioning
  missing = tmp_path / "missing.wav"
  with pytest.raises(audio_lib.AudioError, match="missing.wav: no such file"):
    captioner.caption([missing])
  with pytest.raises(TypeError, match="list of paths or arrays"):
    captioner.caption(clips["long_path"])
  with pytest.raises(ValueError, match="item 0: an array needs `sample_rate`"):
    captioner.caption([clips["3 s"]])
  captions, skipped = captioner.caption([clips["7 s"], missing, clips["3 s"]], sample_rate=RATE,
                                        beam_size=1, skip_errors=True)
  assert captions == captioner.caption([clips["7 s"], clips["3 s"]], sample_rate=RATE, beam_size=1)
  assert [i for i, _ in skipped] == [1] and "missing.wav" in skipped[0][1]
  assert captioner.caption([], beam_size=1) == []
  embeddings = captioner.audio_embeddings([clips["3 s"], clips["7 s"]], sample_rate=RATE)
  windows = np.concatenate([audio_lib.clip_windows(clips[k], config.audio.clip_samples)
                            for k in ("3 s", "7 s")])
  with torch.no_grad():
    expected = reference.clap(torch.from_numpy(windows))[0].numpy()
  np.testing.assert_allclose(embeddings, expected, atol=1e-5)


def test_converter_is_strict_where_msclap_is_not(reference, variables, config):
  state = state_dict_numpy(reference)
  convert = lambda s: convert_clapcap.convert_state_dict(s, config)
  missing = {k: v for k, v in state.items() if k != "clap_project.prefix_const"}
  with pytest.raises(ConversionError, match=r"missing parameters: clap_project\.prefix_const"):
    convert(missing)
  with pytest.raises(ConversionError, match=r"unused keys: clap_project\.transformer\.layers\.0\.attn\.to_keys\.weight"):
    convert({**state, "clap_project.transformer.layers.0.attn.to_keys.weight": np.zeros((64, 64))})
  key = "clap_project.transformer.layers.0.attn.to_keys_values.weight"
  with pytest.raises(ConversionError, match=r"to_keys_values'\]\['kernel'\]: shape \(128, 64\), model expects \(64, 128\)"):
    convert({**state, key: state[key].T})
  untied = dict(state, **{"gpt.lm_head.weight": state["gpt.lm_head.weight"] + 1e-3})
  with pytest.raises(ConversionError, match=r"gpt\.lm_head\.weight: buffer differs"):
    convert(untied)
  # msclap's load_state_dict(strict=False) takes a missing parameter without a word.
  result = reference.load_state_dict({k: torch.from_numpy(v) for k, v in missing.items()}, strict=False)
  assert result.missing_keys == ["clap_project.prefix_const"]


def test_converter_tolerates_old_transformers_buffers_and_no_lm_head(reference, variables, config):
  """The official file was saved with GPT-2's attn.bias/attn.masked_bias buffers (msclap's reason
  for strict=False, microsoft/CLAP#27); without the tied head's copy it is the same model."""
  state = state_dict_numpy(reference)
  n = config.decoder.n_positions
  old = {k: v for k, v in state.items() if k != "gpt.lm_head.weight"}
  for i in range(config.decoder.n_layer):
    old[f"gpt.transformer.h.{i}.attn.bias"] = np.tril(np.ones((n, n), np.uint8))[None, None]
    old[f"gpt.transformer.h.{i}.attn.masked_bias"] = np.array(-1e4, np.float32)
  converted = convert_clapcap.convert_state_dict(old, config)
  jax.tree.map(np.testing.assert_array_equal, converted, variables)


@pytest.mark.slow
def test_full_size_prefix_and_logits(clips):
  """The official sizes (HTSAT, 8-layer mapper, GPT-2 124M) on a real 7 s clip."""
  config = model_config.clapcap()
  reference = build_clapcap_reference(config, seed=1)
  variables = convert_clapcap.convert_state_dict(state_dict_numpy(reference), config)
  waveforms = clips["7 s"][None]
  tokens = np.random.default_rng(1).integers(0, config.decoder.vocab_size, (1, 8))
  prefix, logits = _prefix_and_logits(config, variables, waveforms, tokens)
  with torch.no_grad():
    expected_prefix = _torch_prefix(reference, waveforms).numpy()
    expected_logits = reference(torch.from_numpy(waveforms),
                                {"input_ids": torch.from_numpy(tokens)}).logits.numpy()
  prefix_error = np.abs(prefix - expected_prefix).max()
  logits_error = np.abs(logits - expected_logits).max()
  # Measured 5.3e-5 (prefix) and 1.3e-5 (logits up to 7.6).
  assert prefix_error < 1e-4 and logits_error < 1e-4, (prefix_error, logits_error)


@pytest.fixture(scope="module")
def loaded(captioning, config, tmp_path_factory):
  """encode.load('clapcap') on a converted folder of the captioning reference."""
  directory = tmp_path_factory.mktemp("clapcap_converted")
  convert.save_variables(captioning[1], directory, config)
  return encode.load("clapcap", checkpoint=directory)


def test_encode_load_clapcap_captions_as_generate_caption(captioning, loaded, config, clips):
  reference, _ = captioning
  stereo = np.stack([clips["7 s"], clips["7 s"]])  # (2, n): channels first
  ours = loaded.caption([clips["long_path"], clips["3 s"], stereo], sample_rate=RATE,
                        channels_axis=0)
  start = len(clips["long"]) // 3
  wrapper = clapcap_wrapper(reference, config, text_lib.GPT2_FILES, clips, crop_start=start)
  windows = audio_lib.clip_windows(clips["long"], config.audio.clip_samples)
  expected = [wrapper._generate_beam(embed=_torch_prefix(reference, windows), beam_size=5)[0]  # pylint: disable=protected-access
              .capitalize()] + wrapper.generate_caption(["3 s", "7 s"], resample=False)
  assert ours == expected
  np.testing.assert_allclose(loaded.audio_embeddings([stereo.T], sample_rate=RATE),
                             loaded.audio_embeddings([clips["7 s"]], sample_rate=RATE), atol=1e-6)


def test_encode_load_clapcap_errors_and_skip_errors(loaded, clips, tmp_path):
  bad = tmp_path / "not_audio.wav"
  bad.write_text("not a wav file")
  with pytest.raises(audio_lib.AudioError, match="not_audio.wav: not a readable audio file"):
    loaded.caption([clips["3 s"], bad], sample_rate=RATE, beam_size=1)
  with pytest.raises(audio_lib.AudioError, match="item 1: 1 of 5 samples are NaN"):
    loaded.caption([clips["3 s"], np.array([0, 0, np.nan, 0, 0], np.float32)], sample_rate=RATE)
  captions, skipped = loaded.caption([bad, clips["3 s"]], sample_rate=RATE, beam_size=1,
                                     skip_errors=True)
  assert captions == loaded.caption([clips["3 s"]], sample_rate=RATE, beam_size=1)
  assert [i for i, _ in skipped] == [0] and "not_audio.wav" in skipped[0][1]


def test_weights_load_clapcap_checkpoints(reference, variables, config, tmp_path, monkeypatch):
  """A clapcap .pth goes through convert.clapcap (and its cache); 'random' draws ClapCap's
  variables; a CLAP folder is refused by encode.load('clapcap')."""
  monkeypatch.setenv("CLAP_JAX_CACHE", str(tmp_path / "cache"))
  path = tmp_path / "clapcap_tiny.pth"
  torch.save({"model": reference.state_dict()}, path)
  for cache in (False, True, True):  # the second cached load reads the saved conversion
    loaded_config, loaded_variables = weights.load(path, config, cache=cache)
    assert loaded_config is config
    jax.tree.map(np.testing.assert_array_equal, loaded_variables, variables)
  assert weights.HUB_FILES["clapcap"] == "clapcap_weights_2023.pth"
  # The file's keys say it is clapcap: launch/eval.py's default model (CLAP 2023) gives way to it.
  monkeypatch.setitem(model_config.VERSIONS, "clapcap", model_config.tiny_clapcap)
  state = convert.load_state_dict(path)
  assert convert.checkpoint_version(state) == "clapcap"
  with pytest.raises(ConversionError, match="holds msclap clapcap, not a CLAP model"):
    convert.convert_state_dict(state, model_config.tiny())
  told, _ = weights.load(path, model_config.clap_2023())
  assert convert_clapcap.is_clapcap(told) and told.decoder.n_embd == config.decoder.n_embd
  with pytest.raises(ValueError, match="holds msclap clapcap, not msclap 2023's"):
    encode.load("2023", checkpoint=path)
  _, drawn = weights.load("random", config)
  convert_clapcap.check_variables(drawn, config, "random")
  clap_folder = tmp_path / "clap"
  convert.save_variables(weights.random_variables(model_config.tiny()), clap_folder,
                         model_config.tiny())
  with pytest.raises(ValueError, match="holds a CLAP model, not clapcap"):
    encode.load("clapcap", checkpoint=clap_folder)
