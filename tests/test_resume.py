"""Preemption and resumption through launch/train.py: a run killed with SIGKILL, or stopped with
SIGTERM, or whose latest checkpoint is damaged, and restarted in the same workdir ends with the
parameters of an uninterrupted run."""
import pathlib
import shutil
import signal
import subprocess
import sys

import pytest

from clap_jax.train import checkpoint
import multidevice
from test_checkpoint import truncate_largest_data_file
import trees

STEPS, EVERY = 40, 4
ARGS = ["--config", "configs/demo.py:smoke", f"--config.total_steps={STEPS}",
        f"--config.checkpoint.every_steps={EVERY}", "--config.input.global_batch=8",
        "--config.evals.zeroshot.tasks=()", "--config.log.every_steps=1000"]


def start(workdir) -> subprocess.Popen:
  return subprocess.Popen([sys.executable, "launch/train.py", "--workdir", str(workdir), *ARGS],
                          cwd=multidevice.REPO, env=multidevice.env(1), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen) -> str:
  return multidevice.finish([process], timeout=600)[0]


def saved_steps(workdir) -> list[int]:
  directory = pathlib.Path(workdir) / "checkpoints"
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit()) if directory.is_dir() else []


def wait_for_checkpoint(workdir, process: subprocess.Popen) -> None:
  multidevice.poll_until(lambda: saved_steps(workdir), process, timeout=300)


def final_params(workdir):
  return checkpoint.load_inference_variables(workdir)[1]


@pytest.fixture(scope="module")
def straight_workdir(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("straight")
  finish(start(workdir))
  assert saved_steps(workdir)[-1] == STEPS
  return workdir


@pytest.fixture(scope="module")
def straight(straight_workdir):
  return final_params(straight_workdir)


def assert_same(got, want):
  """Same machine, same computations: equal up to 1e-6 (in practice bit for bit)."""
  trees.assert_trees_close(got, want, atol=1e-6)


def test_kill_9_and_resume(straight, tmp_path):
  process = start(tmp_path)
  wait_for_checkpoint(tmp_path, process)
  process.send_signal(signal.SIGKILL)
  process.wait(timeout=60)
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


def test_truncated_latest_checkpoint_falls_back_to_the_previous(straight_workdir, straight,
                                                              tmp_path):
  """The newest step's largest data file halved (a full disk): the rerun names it, resumes from
  the step before and ends with the uninterrupted run's parameters."""
  workdir = tmp_path / "run"
  shutil.copytree(straight_workdir, workdir)
  truncate_largest_data_file(workdir / "checkpoints" / str(STEPS))
  output = finish(start(workdir))
  assert f"checkpoint step {STEPS} in {workdir} is unreadable" in output, output[-3000:]
  assert f"resuming from step {STEPS - EVERY}" in output
  assert f"resuming at step {STEPS - EVERY} of {STEPS}" in output
  assert (workdir / "unreadable_checkpoints" / str(STEPS)).is_dir()
  assert_same(final_params(workdir), straight)
