"""Every config file loads, passes the schema, and (shrunk by its 'smoke' argument) trains two
steps and evaluates; unknown or mistyped keys are clear errors."""
import importlib.util
import pathlib
import re
import subprocess
import sys

import pytest

from clap_jax import schema
from clap_jax.train import loop as train
import multidevice

# The training configs (configs/ also holds evaluation configs, tested with the evaluator).
CONFIGS = [pathlib.Path(multidevice.REPO) / "configs" / f"{name}.py"
           for name in ("demo", "fsdd", "pretrain", "captioning")]
# What each config's smoke evaluation reports, and its range.
HEADLINE = {"captioning": ("demo/CIDEr-D", 10.0)}


def load(path: pathlib.Path, arg=None):
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads_and_is_known(path):
  config = load(path)
  assert config.is_locked and config.model.is_locked  # the schema's: unknown keys fail to load
  assert set(config.keys()) == set(schema.training(config.objective).keys())


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_smoke_steps(path, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # a relative workdir, as in the README's demo command
  results = train.main(load(path, "smoke"), "run")
  metric, highest = HEADLINE.get(path.stem, ("demo/top1", 1.0))
  assert 0.0 <= results[metric] <= highest
  assert (tmp_path / "run" / "checkpoints" / "2").is_dir()
  assert list((tmp_path / "run").glob("events.out.tfevents.*"))


def test_unknown_key_in_config_is_named():
  config = schema.training()
  with pytest.raises(AttributeError, match=r"lrr.*Did you mean.*lr"):
    config.optim.lrr = 1.0
  with pytest.raises(AttributeError, match=r"fsdx"):
    config.evals.zeroshot.templates.fsdx = ("{}",)


@pytest.mark.parametrize("launcher, config, override, message", [
    ("train", "configs/demo.py", "--config.optim.lrr=1",
     r'unknown config key config\.optim\.lrr: .*Did you mean "lr".*\(known under optim: .*\blr\b'),
    ("train", "configs/demo.py", "--config.optim.lr=fast",
     "bad command line: .*could not convert string to float: 'fast'"),
    ("eval", "configs/zeroshot.py", "--config.templates.fsdx=('{}',)",
     r"unknown config key config\.templates\.fsdx: .*\(known under templates: .*\bfsdd\b"),
    ("eval", "configs/zeroshot.py:shared", "--config.sources.esc50.rot=/x",
     r"unknown config key config\.sources\.esc50\.rot: .*\(known under sources\.esc50: .*\broot\b"),
])
def test_bad_command_line_override(launcher, config, override, message):
  """One line naming the key and the known ones, for training and evaluation configs."""
  result = subprocess.run(
      [sys.executable, f"launch/{launcher}.py", "--config", config, override],
      cwd=multidevice.REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode != 0
  assert re.search(message, result.stderr), result.stderr[-2000:]
  assert "Traceback" not in result.stderr


def test_missing_training_input_is_one_line_before_building(tmp_path):
  result = subprocess.run(
      [sys.executable, "launch/train.py", "--config", "configs/pretrain.py",
       f"--workdir={tmp_path / 'run'}"], cwd=multidevice.REPO, capture_output=True, text=True,
      timeout=300)
  assert result.returncode != 0
  assert "input.train is missing" in result.stderr and "Traceback" not in result.stderr
  assert not (tmp_path / "run" / "checkpoints").exists() or not any((tmp_path / "run" / "checkpoints").iterdir())


def test_default_workdir_is_per_config():
  spec = importlib.util.spec_from_file_location("launch_train", pathlib.Path(multidevice.REPO) / "launch" / "train.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  assert module.default_workdir("configs/demo.py") == "workdirs/demo"
  assert module.default_workdir("configs/pretrain.py:smoke") == "workdirs/pretrain_smoke"
  assert module.default_workdir("configs/zeroshot.py:shared,tiny") == "workdirs/zeroshot_shared_tiny"


def test_resume_with_another_model_is_refused_by_name(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  config = load(CONFIGS[0], "smoke")
  config.evals.zeroshot.tasks = ()
  train.main(config, "run")
  changed = load(CONFIGS[0], "smoke")
  changed.evals.zeroshot.tasks = ()
  changed.total_steps = 3
  changed.model.embed_dim = 48
  from clap_jax.train import ConfigError
  with pytest.raises(ConfigError, match=r"model\.embed_dim.*arrays"):
    train.main(changed, "run")


def test_readme_config_keys_exist():
  """Every `--config.a.b=` the README shows is a key of the config it is given with."""
  readme = (pathlib.Path(multidevice.REPO) / "README.md").read_text()
  joined = readme.replace("\\\n", " ")  # a command's continuation lines are part of it
  commands = re.findall(r"python launch/(?:train|eval)\.py[^\n]*", joined)
  seen = 0
  for command in commands:
    file = re.search(r"--config (configs/\S+?\.py)(?::(\S+))?(?=\s)", command)
    path, arg = (file.group(1), file.group(2)) if file else ("configs/demo.py", None)
    config = load(pathlib.Path(multidevice.REPO) / path, arg)
    for key in re.findall(r"--config\.([\w.]+)=", command):
      node = config
      for part in key.split("."):
        assert part in node, f"README: --config.{key} is not a key of {path}"
        node = node[part]
      seen += 1
  for key in re.findall(r"`((?:init|input|optim|model|evals)\.[\w.]+)`", readme):
    if key.endswith(".py"):
      continue  # a file name (`optim.py`), not a key
    node = schema.training()
    for part in key.split("."):
      assert part in node, f"README names {key}, which the schema does not have"
      node = node[part]
  assert seen >= 2


def test_ci_runs_the_readme_test_command():
  """`.ci/run` is the README's test command (which prints the ten slowest tests)."""
  repo = pathlib.Path(multidevice.REPO)
  ci = (repo / ".ci" / "run").read_text().strip().splitlines()[-1]
  readme = (repo / "README.md").read_text()
  assert ci in readme.splitlines(), ci
  assert "pytest" in ci and "--durations=10" in ci, ci
