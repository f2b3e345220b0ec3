"""Two processes (jax.distributed over gloo on 127.0.0.1, two CPU devices each) train exactly as
one process with four devices: each process feeds its half of every global batch."""
import socket
import subprocess
import sys

import jax
import numpy as np

from clap_jax.train import checkpoint
import multidevice

# Adam's eps is raised as in test_train.test_eight_devices_equal_one: with 1e-8, gradients that are
# zero in exact arithmetic but 1e-10 in float32 turn into +-lr updates in either run.
ARGS = ["--config", "configs/demo.py:smoke", "--config.total_steps=3",
        "--config.input.global_batch=8", "--config.evals.zeroshot.tasks=()", "--config.log.every_steps=1",
        "--config.optim.eps=1e-3"]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _train(workdir, devices: int, extra=()) -> subprocess.Popen:
  return subprocess.Popen(
      [sys.executable, "launch/train.py", "--workdir", str(workdir), *ARGS, *extra],
      cwd=multidevice.REPO, env=multidevice.env(devices), stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True)


def _wait(process) -> str:
  output, _ = process.communicate(timeout=900)
  assert process.returncode == 0, output[-3000:]
  return output


def test_two_processes_equal_one(tmp_path):
  address = f"127.0.0.1:{_free_port()}"
  workers = [_train(tmp_path / "two", 2, [f"--coordinator_address={address}",
                                           "--num_processes=2", f"--process_id={i}"])
             for i in range(2)]
  single = _train(tmp_path / "one", 4)
  outputs = [_wait(p) for p in workers]
  _wait(single)
  assert "mesh {'data': 4, 'fsdp': 1}, 2 process(es)" in outputs[0]
  two = checkpoint.load_inference_variables(tmp_path / "two")[1]
  one = checkpoint.load_inference_variables(tmp_path / "one")[1]
  # Same global batches and computations; the collectives sum in another order: 1e-5 relative
  # (BatchNorm's running variances are ~100), 1e-6 absolute.
  for a, b in zip(jax.tree.leaves(two), jax.tree.leaves(one)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
