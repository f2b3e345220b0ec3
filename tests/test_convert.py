"""The converter: strict about parameters, tolerant of recomputable buffers, safe to load."""
import subprocess
import sys

import numpy as np
import pytest
import safetensors.numpy
import torch

from clap_jax import convert
from clap_jax.convert.tensors import ConversionError
from clap_jax.models import config as model_config
from reference import build_reference, state_dict_numpy
import trees

BUFFER_PARTS = ("spectrogram_extractor", "logmel_extractor", "attn_mask", "relative_position_index",
                ".attn.bias", ".attn.masked_bias", "position_ids")


def _is_buffer(key):
  return any(key.endswith(p) if p.startswith(".attn") else p in key for p in BUFFER_PARTS)


@pytest.fixture(scope="module")
def config():
  return model_config.tiny()


@pytest.fixture(scope="module")
def state(config):
  return state_dict_numpy(build_reference(config, seed=1))


def test_converts_and_places_known_parameters(config, state):
  variables = convert.convert_state_dict(state, config)
  params = variables["params"]
  np.testing.assert_array_equal(params["logit_scale"], state["logit_scale"])
  np.testing.assert_array_equal(params["audio_encoder"]["projection"]["linear1"]["kernel"],
                                state["audio_encoder.projection.linear1.weight"].T)
  np.testing.assert_array_equal(params["caption_encoder"]["projection"]["layer_norm"]["scale"],
                                state["caption_encoder.projection.layer_norm.weight"])
  np.testing.assert_array_equal(variables["batch_stats"]["audio_encoder"]["htsat"]["bn0"]["var"],
                                state["audio_encoder.base.htsat.bn0.running_var"])


def test_missing_unused_and_misshapen_keys_are_named(config, state):
  missing = dict(state)
  del missing["caption_encoder.projection.linear2.weight"]
  with pytest.raises(ConversionError, match="caption_encoder.projection.linear2.weight"):
    convert.convert_state_dict(missing, config)
  extra = dict(state, **{"audio_encoder.adapter.weight": np.zeros(3, np.float32)})
  with pytest.raises(ConversionError, match="unused keys: audio_encoder.adapter.weight"):
    convert.convert_state_dict(extra, config)
  wrong = dict(state)
  wrong["audio_encoder.projection.linear2.weight"] = np.zeros((5, 5), np.float32)
  with pytest.raises(ConversionError, match="linear2"):
    convert.convert_state_dict(wrong, config)


def test_recomputable_buffers_may_be_absent_but_are_checked_when_present(config, state):
  stripped = {k: v for k, v in state.items() if not _is_buffer(k)}
  assert len(stripped) < len(state)
  trees.assert_trees_equal(convert.convert_state_dict(state, config),
                           convert.convert_state_dict(stripped, config))
  corrupted = dict(state)
  mask_key = next(k for k in state if k.endswith("attn_mask"))
  corrupted[mask_key] = state[mask_key] + 1.0
  with pytest.raises(ConversionError, match=mask_key.replace(".", r"\.")):
    convert.convert_state_dict(corrupted, config)


def test_pth_with_module_prefix_and_safetensors_files(config, state, tmp_path):
  expected = convert.convert_state_dict(state, config)
  pth = tmp_path / "ddp.pth"
  torch.save({"model": {"module." + k: torch.from_numpy(np.array(v)) for k, v in state.items()},
              "epoch": 3}, pth)
  safe = tmp_path / "weights.safetensors"
  safetensors.numpy.save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(safe))
  for path in (pth, safe):
    trees.assert_trees_equal(convert.convert_checkpoint(path, config), expected)


class _RunsCode:
  """Unpickling it creates the file `marker` (what a malicious checkpoint's code could do)."""

  def __init__(self, marker):
    self.marker = str(marker)

  def __reduce__(self):
    return (open, (self.marker, "w"))


def test_a_checkpoint_that_would_run_code_is_refused_and_does_not_run(tmp_path):
  marker = tmp_path / "payload_ran"
  path = tmp_path / "evil.pth"
  torch.save({"model": {"x": torch.zeros(1)}, "payload": _RunsCode(marker)}, path)
  torch.load(path, weights_only=False)  # the payload is live: an unrestricted load runs it
  assert marker.exists()
  marker.unlink()
  with pytest.raises(ConversionError, match="weights-only"):
    convert.load_state_dict(path)
  assert not marker.exists(), "loading the checkpoint ran its code"
  with pytest.raises(FileNotFoundError, match="nope.pth"):
    convert.load_state_dict(tmp_path / "nope.pth")


def test_saved_tree_reloads_without_torch(config, state, tmp_path):
  """A fresh process loads the converted tree and never imports torch."""
  variables = convert.convert_state_dict(state, config)
  convert.save_variables(variables, tmp_path / "tree", config)
  script = (
      "import sys\n"
      "from clap_jax import convert\n"
      f"config, variables = convert.load_variables({str(tmp_path / 'tree')!r})\n"
      "assert 'torch' not in sys.modules\n"
      "print(config.audio.embed_dim, float(variables['params']['logit_scale']))\n")
  out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                       timeout=300)
  assert out.stdout.split() == [str(config.audio.embed_dim), str(float(state["logit_scale"]))]
  trees.assert_trees_equal(convert.load_variables(tmp_path / "tree")[1], variables)
