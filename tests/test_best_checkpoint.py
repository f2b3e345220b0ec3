"""The best-Zero-Shot-score checkpoint of a training run (config.checkpoint.keep_best): kept in
{workdir}/best beside the latest ones, with its score in the meta, left alone when the score
drops, read back on resume, and evaluated by launch/eval.py like any workdir."""
import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from clap_jax import schema
from clap_jax.eval import paper, registry, tasks
from clap_jax.train import checkpoint, loop as train

REPO = pathlib.Path(__file__).resolve().parents[1]
# The demo task's top-1 per evaluated step: it rises, then drops at the end.
SCRIPTED = {2: 0.5, 4: 0.8, 6: 0.3}


def test_training_score_is_the_mean_of_the_headline_metrics():
  values = {"esc50/top1": 0.6, "esc50/top5": 0.9, "dcase17_task4/F1": 0.2,
            "dcase17_task4/mAP": 0.7, "clotho/a2t/R@1": 0.1, "clotho/t2a/R@1": 0.3,
            "clotho/a2t/mAP@10": 0.5}
  chosen = [tasks.get(n) for n in ("esc50", "dcase17_task4", "clotho", "fsd50k")]
  assert paper.training_score(values, chosen) == pytest.approx((0.6 + 0.2 + 0.1 + 0.3) / 4)
  assert paper.training_score({}, chosen) is None


def test_best_checkpoint_is_kept_when_the_score_drops(tmp_path, monkeypatch, shared_data):
  config = schema.smoke(schema.training())
  config.total_steps = 6
  config.checkpoint.every_steps = 2
  config.checkpoint.keep_best = "zeroshot"
  config.evals.zeroshot.every_steps = 2

  def scripted_run(self, state):
    return {"demo/top1": SCRIPTED[int(state["step"])]}
  monkeypatch.setattr(registry.Evaluator, "run", scripted_run)
  results = train.main(config, tmp_path)
  assert results["zero_shot_score"] == 0.3

  best = tmp_path / "best"
  assert sorted(p.name for p in (best / "checkpoints").iterdir()) == ["4"]
  keeper = checkpoint.BestCheckpoint(tmp_path)  # as a resumed run reads it
  assert (keeper.step, keeper.score) == (4, 0.8)
  keeper.close()
  meta = json.loads((best / "checkpoints/4/meta/metadata").read_text())
  assert meta["zero_shot_score"] == 0.8 and meta["step"] == 4

  _, best_variables = checkpoint.load_inference_variables(best)
  _, step4 = checkpoint.load_inference_variables(tmp_path, step=4)
  _, last = checkpoint.load_inference_variables(tmp_path)
  assert jax.tree.all(jax.tree.map(np.array_equal, best_variables, step4))
  assert not jax.tree.all(jax.tree.map(np.array_equal, best_variables, last))

  out = tmp_path / "eval"
  result = subprocess.run(
      [sys.executable, "launch/eval.py", "--config", "configs/zeroshot.py:shared",
       "--config.tasks=('esc50',)", f"--config.data_dir={shared_data}", "--config.batch_size=2",
       "--checkpoint", str(best), "--workdir", str(out)],
      cwd=REPO, capture_output=True, text=True, timeout=600,
      env={**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"})
  assert result.returncode == 0, result.stderr[-3000:]
  assert json.loads((out / "results.json").read_text())["tasks"]["esc50"]["num_items"] == 6


def test_keep_best_names_an_evaluator(tmp_path):
  config = schema.smoke(schema.training())
  config.checkpoint.keep_best = "zero_shot"
  with pytest.raises(ValueError, match="keep_best='zero_shot': no such evaluator"):
    train.main(config, tmp_path)


def _keep_best_in_this_process(workdir: str) -> dict:
  """One process of a two-process run: the scripted scores of SCRIPTED's steps, each step's state
  (a weight of value `step`, sharded over both processes' devices) offered to the keeper."""
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
  sharding = NamedSharding(Mesh(np.array(jax.devices()), ("data",)), P("data"))
  keeper = checkpoint.BestCheckpoint(workdir)
  kept = []
  for step, score in SCRIPTED.items():
    weight = np.full(8, step, np.float32)
    state = {"params": {"model": {"w": jax.make_array_from_callback((8,), sharding,
                                                                    lambda i: weight[i])}},
             "batch_stats": {"mean": np.zeros(2, np.float32)}, "step": step}
    meta = {"step": step, "config": json.dumps({"model": {"name": "toy"}})}
    kept.append(keeper.consider(step, state, meta, score))
  keeper.close()
  return {"kept": kept, "best": [keeper.step, keeper.score]}


def test_two_processes_keep_the_same_best_step(tmp_path):
  """Both processes write their shards of the best state and agree on it; the kept step reads
  back whole, as launch/eval.py reads a workdir (checkpoint.load_inference_variables)."""
  import multidevice
  from test_eval_sharded import _free_port
  port = _free_port()
  procs = [subprocess.Popen(
      [sys.executable, __file__, str(tmp_path), str(i), "2", str(port)], env=multidevice.env(2),
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for i in range(2)]
  outputs = multidevice.finish(procs, timeout=120)
  reports = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
  assert reports[0] == reports[1] == {"kept": [True, True, False], "best": [4, 0.8]}
  assert sorted(p.name for p in (tmp_path / "best/checkpoints").iterdir()) == ["4"]
  config, variables = checkpoint.load_inference_variables(tmp_path / "best")
  assert config.name == "toy"
  np.testing.assert_array_equal(variables["params"]["w"], np.full(8, 4, np.float32))
  meta = json.loads((tmp_path / "best/checkpoints/4/meta/metadata").read_text())
  assert meta["zero_shot_score"] == 0.8 and meta["step"] == 4


if __name__ == "__main__":
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=f"127.0.0.1:{sys.argv[4]}",
                             num_processes=int(sys.argv[3]), process_id=int(sys.argv[2]))
  print(json.dumps(_keep_best_in_this_process(sys.argv[1])))
