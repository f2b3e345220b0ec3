"""configs/captioning.py through the one training loop: 'local' learns to caption the demo's sounds
(held-out CIDEr-D far above the untrained model's), a run killed with SIGKILL and resumed ends
with the uninterrupted run's parameters, the recipe refuses frozen parts without weights, and
init.audio_from / init.decoder_from put a CLAP's audio encoder and a clapcap's GPT-2 in place."""
import importlib.util
import pathlib
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from clap_jax import convert, weights
from clap_jax.eval import registry
from clap_jax.models import config as model_config
from clap_jax.train import ConfigError, checkpoint, loop as train, objectives
import multidevice
import trees
from test_resume import finish, saved_steps, wait_for_checkpoint

CONFIG = pathlib.Path(multidevice.REPO) / "configs" / "captioning.py"


def load(arg=None):
  spec = importlib.util.spec_from_file_location("captioning", CONFIG)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def test_local_learns_to_caption(tmp_path):
  """CIDEr-D of 64 held-out clips against their kind's four phrasings, before and after 400
  steps (the README's Performance section has the figures)."""
  config = load("local")
  mesh = jax.make_mesh((1, 1), ("data", "fsdp"), (jax.sharding.AxisType.Auto,) * 2)
  run = train.build(config, mesh)
  (untrained,) = registry.from_config(config, run.objective, mesh)
  before = untrained.run(run.init())["demo/CIDEr-D"]
  results = train.main(config, tmp_path / "run")
  after = results["demo/CIDEr-D"]
  print(f"demo/CIDEr-D before {before:.3f}, after {after:.3f}; {results}")
  assert after > 0.5 and after > 10 * before


STEPS, EVERY = 12, 3
ARGS = ["--config", "configs/captioning.py:local", f"--config.total_steps={STEPS}",
        f"--config.checkpoint.every_steps={EVERY}", "--config.input.global_batch=4",
        "--config.evals.captioning.tasks=()", "--config.log.every_steps=1000"]


def start(workdir) -> subprocess.Popen:
  return subprocess.Popen([sys.executable, "launch/train.py", "--workdir", str(workdir), *ARGS],
                          cwd=multidevice.REPO, env=multidevice.env(1), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def test_kill_9_and_resume_equals_an_uninterrupted_run(tmp_path):
  finish(start(tmp_path / "straight"))
  assert saved_steps(tmp_path / "straight")[-1] == STEPS
  process = start(tmp_path / "killed")
  wait_for_checkpoint(tmp_path / "killed", process)
  process.send_signal(signal.SIGKILL)
  process.wait(timeout=60)
  killed_at = saved_steps(tmp_path / "killed")[-1]
  assert killed_at < STEPS, "the run ended before it was killed; nothing was resumed"
  output = finish(start(tmp_path / "killed"))
  assert f"resuming at step {killed_at} of {STEPS}" in output
  got = checkpoint.load_inference_variables(tmp_path / "killed")[1]
  want = checkpoint.load_inference_variables(tmp_path / "straight")[1]
  trees.assert_trees_close(got, want, atol=1e-6)


def test_recipe_needs_weights_for_its_frozen_parts():
  config = load()
  config.input.train = "/data/shards/*.tfrecord"
  with pytest.raises(ConfigError, match="freezes the audio encoder, but neither init.clap_from "
                     "nor init.audio_from"):
    objectives.check_inputs(config)
  config.init.audio_from = "CLAP_weights_2023.pth"
  with pytest.raises(ConfigError, match="freezes the GPT-2, but neither .*decoder_from"):
    objectives.check_inputs(config)
  config.init.decoder_from = "clapcap_weights_2023.pth"
  objectives.check_inputs(config)


def test_audio_from_a_clap_and_decoder_from_a_clapcap(tmp_path):
  """A CLAP workdir's audio encoder (tower, batch statistics, projection) and a converted
  clapcap's GPT-2 land in clapcap's `clap` and `gpt`; the mapper stays as initialised."""
  config = load("smoke")
  config.total_steps, config.optim.lr = 1, 0.0  # the parameters stay as initialised
  config.evals.captioning.tasks = ()
  config.optim.frozen = "^model/(clap|gpt)/"  # the recipe's (the audio encoder's statistics stay)
  mesh = jax.make_mesh((1, 1), ("data", "fsdp"), (jax.sharding.AxisType.Auto,) * 2)
  clap = load_clap_source(config, tmp_path)
  other = config.copy_and_resolve_references()
  other.seed = 1
  source = _variables(train.build(other, mesh).init())
  fresh = _variables(train.build(config, mesh).init())
  convert.save_variables(source, tmp_path / "clapcap", config.model)
  config.init.audio_from = str(tmp_path / "clap")
  config.init.decoder_from = str(tmp_path / "clapcap")
  train.main(config, tmp_path / "run")
  _, got = checkpoint.load_inference_variables(tmp_path / "run")
  trees.assert_trees_equal(got["params"]["clap"], clap["params"]["audio_encoder"])
  trees.assert_trees_equal(got["batch_stats"]["clap"], clap["batch_stats"]["audio_encoder"])
  trees.assert_trees_equal(got["params"]["gpt"], source["params"]["gpt"])
  trees.assert_trees_equal(got["params"]["clap_project"], fresh["params"]["clap_project"])
  assert not np.array_equal(source["params"]["clap_project"]["prefix_const"],
                            fresh["params"]["clap_project"]["prefix_const"])


def load_clap_source(config, tmp_path) -> dict:
  """A converted CLAP whose audio encoder has clapcap's shapes, random (BatchNorm statistics
  moved off their initial values), saved in tmp_path/clap."""
  clap_config = model_config.small()
  clap_config.audio, clap_config.embed_dim = config.model.audio, config.model.embed_dim
  clap = weights.random_variables(clap_config, seed=7)
  clap["batch_stats"] = jax.tree.map(lambda x: np.asarray(x) + 0.5, clap["batch_stats"])
  convert.save_variables(clap, tmp_path / "clap", clap_config)
  return clap


def _variables(state):
  return jax.tree.map(np.asarray, {"params": state["params"]["model"],
                                   "batch_stats": state["batch_stats"]})
