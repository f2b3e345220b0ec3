"""Preemption and resumption through launch/train.py: a run killed with SIGKILL, or stopped with
SIGTERM, and restarted in the same workdir ends with the parameters of an uninterrupted run."""
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from clap_jax.train import checkpoint
import multidevice

STEPS, EVERY = 40, 4
ARGS = ["--config", "configs/demo.py:smoke", f"--config.total_steps={STEPS}",
        f"--config.checkpoint.every_steps={EVERY}", "--config.input.global_batch=8",
        "--config.evals.zeroshot.tasks=()", "--config.log.every_steps=1000"]


def start(workdir) -> subprocess.Popen:
  return subprocess.Popen([sys.executable, "launch/train.py", "--workdir", str(workdir), *ARGS],
                          cwd=multidevice.REPO, env=multidevice.env(1), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen) -> str:
  output, _ = process.communicate(timeout=600)
  assert process.returncode == 0, output[-3000:]
  return output


def saved_steps(workdir) -> list[int]:
  directory = pathlib.Path(workdir) / "checkpoints"
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit()) if directory.is_dir() else []


def wait_for_checkpoint(workdir, process: subprocess.Popen) -> None:
  while not saved_steps(workdir):
    assert process.poll() is None, process.communicate()[0][-3000:]
    time.sleep(0.02)


def final_params(workdir):
  return jax.tree.leaves(checkpoint.load_inference_variables(workdir)[1])


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("straight")
  finish(start(workdir))
  assert saved_steps(workdir)[-1] == STEPS
  return final_params(workdir)


def assert_same(got, want):
  """Same machine, same computations: equal up to 1e-6 (in practice bit for bit)."""
  for a, b in zip(got, want):
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_kill_9_and_resume(straight, tmp_path):
  process = start(tmp_path)
  wait_for_checkpoint(tmp_path, process)
  process.send_signal(signal.SIGKILL)
  process.wait()
  killed_at = saved_steps(tmp_path)[-1]
  assert killed_at < STEPS, "the run ended before it was killed; nothing was resumed"
  output = finish(start(tmp_path))
  assert f"resuming at step {killed_at} of {STEPS}" in output
  assert_same(final_params(tmp_path), straight)


def test_sigterm_saves_exits_cleanly_and_resumes(straight, tmp_path):
  process = start(tmp_path)
  wait_for_checkpoint(tmp_path, process)
  process.send_signal(signal.SIGTERM)
  output = finish(process)  # exit status 0
  stopped_at = saved_steps(tmp_path)[-1]
  assert f"SIGTERM: saved step {stopped_at}, stopping" in output
  assert stopped_at < STEPS
  output = finish(start(tmp_path))
  assert f"resuming at step {stopped_at} of {STEPS}" in output
  assert_same(final_params(tmp_path), straight)
