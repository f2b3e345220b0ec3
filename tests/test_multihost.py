"""Two processes (jax.distributed over gloo on 127.0.0.1, two CPU devices each) train exactly as
one process with four devices: each process feeds its half of every global batch. With FSDP over
both processes, their checkpoint resumes on another mesh and on the same one."""
import hashlib
import json
import shutil
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from clap_jax.train import checkpoint
import multidevice
import trees

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


def test_two_processes_equal_one(tmp_path):
  address = f"127.0.0.1:{_free_port()}"
  workers = [_train(tmp_path / "two", 2, [f"--coordinator_address={address}",
                                           "--num_processes=2", f"--process_id={i}"])
             for i in range(2)]
  single = _train(tmp_path / "one", 4)
  outputs = multidevice.finish([*workers, single], timeout=900)
  assert "mesh {'data': 4, 'fsdp': 1}, 2 process(es)" in outputs[0]
  two = checkpoint.load_inference_variables(tmp_path / "two")[1]
  one = checkpoint.load_inference_variables(tmp_path / "one")[1]
  # Same global batches and computations; the collectives sum in another order: 1e-5 relative
  # (BatchNorm's running variances are ~100), 1e-6 absolute.
  trees.assert_trees_close(two, one, rtol=1e-5, atol=1e-6)


def test_a_failed_process_ends_the_wait_for_its_peers():
  """multidevice.finish: one process of a group fails, its peer (as one waiting for a dead
  coordinator) would sleep for ever; the wait ends at once, kills the peer and names the failure;
  a group that overruns the deadline is killed too."""
  python = lambda code: subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True)
  start = time.monotonic()
  stuck, failing = python("import time; time.sleep(600)"), python("raise SystemExit('peer died')")
  with pytest.raises(AssertionError, match=r"process 1 exited with 1:\npeer died"):
    multidevice.finish([stuck, failing], timeout=30)
  assert stuck.poll() is not None and time.monotonic() - start < 20
  stuck = python("import time; time.sleep(600)")
  with pytest.raises(AssertionError, match="still running after 1 s, killed"):
    multidevice.finish([stuck], timeout=1)
  assert stuck.poll() is not None


# Each process restores step 5 of a workdir onto the two-process FSDP mesh and reports the whole
# model it can gather, and how many of its arrays it holds only a part of.
_RESTORE = """
import hashlib, json, sys
import jax, ml_collections, numpy as np
from jax.experimental import multihost_utils
jax.distributed.initialize(sys.argv[1], num_processes=2, process_id=int(sys.argv[2]))
from clap_jax.train import checkpoint, loop
ckpt = checkpoint.Checkpointer(sys.argv[3], ml_collections.ConfigDict(
    {"every_steps": 1, "keep": 3, "async_save": False}))
config = ckpt.saved_config(5)
run = loop.build(config)
state, meta = ckpt.restore(5, run.abstract_state, run.state_shardings)
model = {"params": state["params"]["model"], "batch_stats": state["batch_stats"]}
split = sum(not x.is_fully_replicated for x in jax.tree.leaves(model))
full = multihost_utils.process_allgather(model, tiled=True)
digest = hashlib.sha256(b"".join(np.ascontiguousarray(x).tobytes() for x in jax.tree.leaves(full)))
print(json.dumps({"process": jax.process_index(), "digest": digest.hexdigest(), "split": split,
                  "step": meta["step"]}))
"""


def _digest(tree) -> str:
  return hashlib.sha256(b"".join(np.ascontiguousarray(x).tobytes()
                                 for x in jax.tree.leaves(tree))).hexdigest()


def _two_processes(workdir, extra=()) -> list[str]:
  address = f"127.0.0.1:{_free_port()}"
  return multidevice.finish(
      [_train(workdir, 2, [f"--coordinator_address={address}", "--num_processes=2",
                           f"--process_id={i}", *FSDP, *extra]) for i in range(2)], timeout=900)


def _resume_copy(source, target) -> None:
  """`target`: `source` as if its run had stopped after step 3."""
  shutil.copytree(source, target)
  shutil.rmtree(target / "checkpoints" / "5")


# Every array that divides split over the four devices of both processes.
FSDP = ["--config.mesh.data=1", "--config.mesh.fsdp=4", "--config.sharding.min_size=0",
        "--config.total_steps=5", "--config.checkpoint.every_steps=3"]


def test_fsdp_over_two_processes_saves_and_resumes_on_the_same_and_another_mesh(tmp_path):
  """FSDP across processes; the two-process Orbax checkpoint of step 3 resumed by one process on a
  (data=2, fsdp=2) mesh and by two processes again: step 5 as the uninterrupted run's (same mesh:
  1e-6, as test_resume; other mesh: as test_two_processes_equal_one). Then each process restores
  the two-process step 5 itself: both hold parts of the split arrays and gather the same model,
  bit for bit what a single process reads from the files."""
  outputs = _two_processes(tmp_path / "two")
  assert "mesh {'data': 1, 'fsdp': 4}, 2 process(es)" in outputs[0]
  _resume_copy(tmp_path / "two", tmp_path / "other")
  (output,) = multidevice.finish([_train(tmp_path / "other", 4, [
      *FSDP[2:], "--config.mesh.data=2", "--config.mesh.fsdp=2"])], timeout=900)
  assert "resuming at step 3 of 5; mesh {'data': 2, 'fsdp': 2}, 1 process(es)" in output
  _resume_copy(tmp_path / "two", tmp_path / "same")
  outputs = _two_processes(tmp_path / "same")
  assert "resuming at step 3 of 5; mesh {'data': 1, 'fsdp': 4}, 2 process(es)" in outputs[0]

  straight = checkpoint.load_inference_variables(tmp_path / "two")[1]
  trees.assert_trees_close(checkpoint.load_inference_variables(tmp_path / "same")[1], straight,
                           atol=1e-6)
  trees.assert_trees_close(checkpoint.load_inference_variables(tmp_path / "other")[1], straight,
                           rtol=1e-5, atol=1e-6)

  address = f"127.0.0.1:{_free_port()}"
  reports = [json.loads(o.strip().splitlines()[-1]) for o in multidevice.finish(
      [subprocess.Popen([sys.executable, "-c", _RESTORE, address, str(i), str(tmp_path / "two")],
                        cwd=multidevice.REPO, env=multidevice.env(2), stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, text=True) for i in range(2)], timeout=600)]
  assert [r["process"] for r in reports] == [0, 1] and all(r["step"] == 5 for r in reports)
  assert all(r["split"] > 10 for r in reports), reports
  assert reports[0]["digest"] == reports[1]["digest"] == _digest(straight)
