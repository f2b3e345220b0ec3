"""HTSAT against msclap's torch module with converted random weights, the converter's checks, and
training-mode behaviour."""
import re

import jax
import numpy as np
import pytest

from clap_jax.convert.htsat import htsat_variables
from clap_jax.convert.tensors import ConversionError, StateReader
from clap_jax.models import config as config_lib
from clap_jax.models import frontend
from clap_jax.models.htsat import HTSAT
from reference import build_reference, state_dict_numpy
import trees

torch = pytest.importorskip("torch")
soundfile = pytest.importorskip("soundfile")

PREFIX = "audio_encoder.base.htsat."
# Measured on CPU: ~5e-7 (tiny) and ~7e-7 (full size) for every output.
ATOL = 1e-5


class Pair:
  """A reference HTSAT and its conversion, with a jitted apply (one compile per input shape)."""

  def __init__(self, config):
    self.config = config
    self.torch = build_reference(config, seed=0).audio_encoder.base.htsat
    self.state = {PREFIX + k: v for k, v in state_dict_numpy(self.torch).items()}
    reader = StateReader(self.state)
    self.variables = htsat_variables(reader, PREFIX, config.audio)
    reader.raise_if_bad()
    self.apply = jax.jit(HTSAT(config.audio).apply)

  def assert_parity(self, waveforms):
    with torch.no_grad():
      expected = self.torch(torch.from_numpy(waveforms))
    ours = self.apply(self.variables, waveforms)
    a, b = self.config.audio, len(waveforms)
    assert ours["latent_output"].shape == (b, a.embed_dim * 2 ** (len(a.depths) - 1))
    assert ours["clipwise_output"].shape == (b, a.num_classes)
    np.testing.assert_allclose(ours["clipwise_output"], expected["clipwise_output"].numpy(),
                               rtol=0, atol=ATOL)
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)
    np.testing.assert_allclose(unit(np.asarray(ours["latent_output"])),
                               unit(expected["latent_output"].numpy()), rtol=0, atol=ATOL)
    np.testing.assert_allclose(ours["latent_output"], expected["latent_output"].numpy(),
                               rtol=1e-5, atol=ATOL)


@pytest.fixture(scope="module")
def tiny():
  return Pair(config_lib.tiny())


def _signals(num_samples: int) -> np.ndarray:
  rng = np.random.default_rng(num_samples)
  t = np.arange(num_samples) / 44100
  return np.stack([
      rng.normal(0, 0.1, num_samples),
      np.sin(2 * np.pi * 300 * t * (1 + t)) * np.minimum(1, t) + 0.01 * rng.normal(size=num_samples),
  ]).astype(np.float32)


@pytest.mark.parametrize("seconds", [3, 7, 12])  # resized up, exactly 7 s (965 frames), long path
def test_tiny_matches_reference(tiny, seconds):
  tiny.assert_parity(_signals(seconds * 44100))


def test_tiny_matches_reference_on_real_audio(tiny, shared_data):
  clip = sorted((shared_data / "audio" / "clotho" / "audio").glob("*.wav"))[0]
  waveform = soundfile.read(clip, dtype="float32")[0]  # 44.1 kHz mono, > 15 s
  tiny.assert_parity(np.stack([waveform[:12 * 44100], waveform[-12 * 44100:]]))


@pytest.mark.slow
def test_full_size_matches_reference():
  Pair(config_lib.clap_2023()).assert_parity(_signals(308700))


def _convert(state):
  reader = StateReader(state)
  htsat_variables(reader, PREFIX, config_lib.tiny().audio)
  reader.raise_if_bad()


@pytest.mark.parametrize("key", ["layers.1.blocks.0.attn.qkv.weight", "bn0.running_var",
                                 "head.bias"])
def test_converter_rejects_a_missing_key(tiny, key):
  state = dict(tiny.state)
  del state[PREFIX + key]
  with pytest.raises(ConversionError, match=r"missing parameters: .*" + re.escape(PREFIX + key)):
    _convert(state)


def test_converter_rejects_an_unused_key(tiny):
  state = dict(tiny.state, **{PREFIX + "layers.0.blocks.0.attn.rescale": np.ones(3, np.float32),
                              PREFIX + "layers.3.blocks.1.attn_mask": np.zeros((1, 64, 64))})
  with pytest.raises(ConversionError, match=r"unused keys: .*layers\.0\.blocks\.0\.attn\.rescale"
                                            r".*layers\.3\.blocks\.1\.attn_mask"):
    _convert(state)


@pytest.mark.parametrize("key,shape", [("layers.2.blocks.1.mlp.fc1.weight", (255, 64)),
                                       ("tscam_conv.weight", (10, 128, 2, 2)),
                                       ("head.weight", (527, 527))])
def test_converter_rejects_a_wrong_shape(tiny, key, shape):
  state = dict(tiny.state, **{PREFIX + key: np.zeros(shape, np.float32)})
  with pytest.raises(ConversionError, match=re.escape(PREFIX + key)):
    _convert(state)


@pytest.mark.parametrize("key", ["layers.1.blocks.1.attn_mask",
                                 "layers.0.blocks.0.attn.relative_position_index",
                                 "logmel_extractor.melW"])
def test_converter_rejects_a_wrong_buffer_and_accepts_an_absent_one(tiny, key):
  state = dict(tiny.state)
  state[PREFIX + key] = state[PREFIX + key] + 1
  with pytest.raises(ConversionError, match=re.escape(PREFIX + key) + ": buffer differs"):
    _convert(state)
  del state[PREFIX + key]
  _convert(state)


def _small_config():
  """Two stages on a 128x128 image: the train-mode paths at half the tiny model's compile time."""
  config = config_lib.tiny()
  a = config.audio
  a.spec_size, a.mel_bins, a.depths, a.num_heads = 128, 32, (2, 2), (1, 2)
  a.drop_rate = a.attn_drop_rate = 0.1  # drop_path_rate is 0.1 already
  a.spec_augment = True
  return config


def _random_variables(model, seed=0):
  """Variables of `model` drawn in numpy (no compiled init); positive bn0 variances."""
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), np.zeros((1, 44100), np.float32))
  rng = np.random.default_rng(seed)
  draw = lambda s: (0.1 * rng.normal(size=s.shape)).astype(s.dtype)
  return {"params": jax.tree.map(draw, shapes["params"]),
          "batch_stats": jax.tree.map(lambda s: np.abs(draw(s)) + 1, shapes["batch_stats"])}


def _train_step(config, variables, remat: bool):
  """Jitted (waveforms, rng) -> (grads, (outputs, batch_stats)) of a train-mode forward."""
  model = HTSAT(config.audio, remat=remat)

  def loss(params, waveforms, rng):
    out, updates = model.apply({**variables, "params": params}, waveforms, train=True,
                               rngs={"dropout": rng}, mutable=["batch_stats"])
    return out["clipwise_output"].sum(), (out, updates["batch_stats"])

  grad = jax.jit(jax.grad(loss, has_aux=True))
  return lambda waveforms, rng: grad(variables["params"], waveforms, rng)


def test_train_mode_is_random_seeded_and_rematerialisable():
  """Dropout, drop path, SpecAugment and the random crop of a long input act in train mode, draw
  from the 'dropout' rng, and give the same gradients with remat."""
  config = _small_config()
  variables = _random_variables(HTSAT(config.audio))
  x = _signals(8 * 44100)  # more than 512 frames: one random crop per example
  step = _train_step(config, variables, remat=False)
  (grads, (out, stats)), (_, (same, _)), (_, (other, _)) = (
      step(x, jax.random.PRNGKey(k)) for k in (1, 1, 2))
  assert out["latent_output"].shape == (2, 2 * config.audio.embed_dim)
  np.testing.assert_array_equal(out["latent_output"], same["latent_output"])
  assert np.abs(out["latent_output"] - other["latent_output"]).max() > 1e-4
  # bn0 normalises with batch statistics and moves its running ones as torch's BatchNorm does
  # (towards the unbiased variance) on the same log-mel frames.
  bn0 = torch.nn.BatchNorm1d(config.audio.mel_bins)
  with torch.no_grad():
    bn0.running_mean.copy_(torch.from_numpy(variables["batch_stats"]["bn0"]["mean"]))
    bn0.running_var.copy_(torch.from_numpy(variables["batch_stats"]["bn0"]["var"]))
    bn0(torch.from_numpy(np.array(frontend.log_mel(x, config.audio))).flatten(0, 1))
  trees.assert_trees_close(stats["bn0"], {"mean": bn0.running_mean.numpy(),
                                          "var": bn0.running_var.numpy()}, rtol=1e-5)

  remat_grads, _ = _train_step(config, variables, remat=True)(x, jax.random.PRNGKey(1))
  trees.assert_trees_close(grads, remat_grads, rtol=1e-4, atol=1e-6)


def test_eval_mode_needs_no_rng_and_repeats_itself(tiny):
  x = _signals(12 * 44100)  # the long path's fixed crops (compiled by the parity test)
  np.testing.assert_array_equal(tiny.apply(tiny.variables, x)["latent_output"],
                                tiny.apply(tiny.variables, x)["latent_output"])


@pytest.mark.parametrize("platform,scans", [("cpu", 1), ("cuda", 0), ("tpu", 0)])
def test_long_stages_run_one_clip_at_a_time_only_on_cpu(tiny, platform, scans):
  """Inference on CPU scans the long-token stages over the batch; other platforms, compiled for
  without a device (jax.export), keep the batch whole. On CPU the scan gives each clip's own
  embedding, bit for bit."""
  apply = jax.jit(HTSAT(tiny.config.audio).apply)
  exported = jax.export.export(apply, platforms=(platform,))(
      tiny.variables, jax.ShapeDtypeStruct((2, 7 * 44100), np.float32))
  assert exported.mlir_module().count("stablehlo.while") == scans
  x = _signals(7 * 44100)
  alone = np.concatenate([apply(tiny.variables, x[i:i + 1])["latent_output"] for i in range(2)])
  np.testing.assert_array_equal(apply(tiny.variables, x)["latent_output"], alone)
