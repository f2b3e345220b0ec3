"""Every config file loads, passes the schema, and (shrunk by its 'smoke' argument) trains two
steps and evaluates; unknown or mistyped keys are clear errors."""
import importlib.util
import pathlib
import re
import subprocess
import sys

import pytest

from clap_jax import config_utils, train
import multidevice

# The training configs (configs/ also holds evaluation configs, tested with the evaluator).
CONFIGS = [pathlib.Path(multidevice.REPO) / "configs" / f"{name}.py"
           for name in ("demo", "fsdd", "pretrain")]


def load(path: pathlib.Path, arg=None):
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads_and_is_known(path):
  config_utils.check(load(path))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_smoke_steps(path, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # a relative workdir, as in the README's demo command
  results = train.main(load(path, "smoke"), "run")
  assert 0.0 <= results["demo/top1"] <= 1.0
  assert (tmp_path / "run" / "checkpoints" / "2").is_dir()
  assert list((tmp_path / "run").glob("events.out.tfevents.*"))


def test_unknown_key_in_config_is_named():
  config = config_utils.base()
  config.optim.lrr = 1.0
  with pytest.raises(ValueError, match=r"unknown config keys: optim\.lrr"):
    config_utils.check(config)


@pytest.mark.parametrize("override, message", [
    ("--config.optim.lrr=1", r'unknown config key config\.optim\.lrr: .*Did you mean "lr"'),
    ("--config.optim.lr=fast", "bad command line: .*could not convert string to float: 'fast'"),
])
def test_bad_command_line_override(override, message):
  result = subprocess.run(
      [sys.executable, "launch/train.py", "--config", "configs/demo.py", override],
      cwd=multidevice.REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode != 0
  assert re.search(message, result.stderr), result.stderr[-2000:]
  assert "Traceback" not in result.stderr
