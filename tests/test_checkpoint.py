"""Checkpoints that are complete but do not read back (a data file truncated, as a full disk or a
bad copy leaves it): resume names the step, falls back to the newest one that reads, sets the
damaged one aside so the run can write that step again, and stops when none reads."""
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clap_jax import schema
from clap_jax.train import checkpoint, resume


def _config():
  config = schema.smoke(schema.training())
  config.checkpoint.keep = 5
  config.checkpoint.async_save = False
  return config


def _state(step: int) -> dict:
  # Random (incompressible) and large enough that OCDBT writes it to a data file of its own.
  return {"w": jax.random.normal(jax.random.key(step), (256, 256)), "step": jnp.int32(step)}


def _save(workdir, config, steps) -> None:
  ckpt = checkpoint.Checkpointer(workdir, config.checkpoint)
  for step in steps:
    ckpt.save(step, _state(step), {"step": step, "data": {"next_batch": step},
                                   "config": config.to_json()})
  ckpt.close()


def truncate_largest_data_file(step_dir: pathlib.Path) -> pathlib.Path:
  """Halves the largest file of the step's array data."""
  files = [p for p in (step_dir / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
  assert files, f"no OCDBT data file under {step_dir}"
  largest = max(files, key=lambda p: p.stat().st_size)
  os.truncate(largest, largest.stat().st_size // 2)
  return largest


def _restore(workdir, config):
  ckpt = checkpoint.Checkpointer(workdir, config.checkpoint)
  abstract = jax.eval_shape(lambda: _state(0))
  shardings = jax.tree.map(lambda _: jax.sharding.SingleDeviceSharding(jax.devices()[0]),
                           abstract)
  return ckpt, resume.restore_latest(ckpt, config, workdir, abstract, shardings)


def test_truncated_latest_step_falls_back_and_is_set_aside(tmp_path, capsys):
  config = _config()
  _save(tmp_path, config, [1, 2, 3])
  truncate_largest_data_file(tmp_path / "checkpoints" / "3")
  ckpt, (step, state, meta) = _restore(tmp_path, config)
  out = capsys.readouterr().out
  assert step == 2 and meta["step"] == 2
  np.testing.assert_array_equal(state["w"], _state(2)["w"])
  assert f"checkpoint step 3 in {tmp_path} is unreadable" in out, out
  assert "resuming from step 2" in out, out
  assert (tmp_path / "unreadable_checkpoints" / "3" / "state").is_dir()
  assert ckpt.steps() == [2, 1]
  # The resumed run writes step 3 again (orbax refuses a step that exists).
  ckpt.save(3, _state(3), {"step": 3, "data": {"next_batch": 3}, "config": config.to_json()})
  ckpt.wait()
  assert ckpt.steps() == [3, 2, 1]
  ckpt.close()


def test_every_step_unreadable_stops_and_moves_nothing(tmp_path):
  config = _config()
  _save(tmp_path, config, [1, 2])
  for step in (1, 2):
    truncate_largest_data_file(tmp_path / "checkpoints" / str(step))
  with pytest.raises(resume.UnreadableCheckpoints, match=r"step 2: .*; step 1: .*Nothing was moved"):
    _restore(tmp_path, config)
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == \
      ["1", "2"]
  assert not (tmp_path / "unreadable_checkpoints").exists()


def test_truncated_meta_counts_as_unreadable(tmp_path, capsys):
  config = _config()
  _save(tmp_path, config, [1, 2])
  meta = tmp_path / "checkpoints" / "2" / "meta" / "metadata"
  os.truncate(meta, meta.stat().st_size // 2)
  ckpt, (step, _, _) = _restore(tmp_path, config)
  ckpt.close()
  assert step == 1
  assert "checkpoint step 2" in capsys.readouterr().out


def test_no_checkpoint_is_a_fresh_start(tmp_path):
  ckpt, restored = _restore(tmp_path, _config())
  ckpt.close()
  assert restored is None
