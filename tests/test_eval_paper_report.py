"""Our results beside the paper's Table 2: every row with our number (or why not), the paper's, the
benchmark and the difference; the Zero-Shot score over the tasks that ran, computed by hand here;
the plot; and launch/eval.py on the shared data listing all 26 paper tasks."""
import json
import os
import pathlib
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest

from clap_jax.eval import paper, report, tasks
from clap_jax.eval.zeroshot import TaskResult

REPO = pathlib.Path(__file__).resolve().parents[1]


def _results():
  esc50 = TaskResult(tasks.get("esc50"), {"top1": 0.5, "top5": 0.9}, num_items=6)
  dcase = TaskResult(tasks.get("dcase17_task4"), {"F1": 0.3, "mAP": 0.4}, num_items=9)
  clotho = TaskResult(tasks.get("clotho"), {"a2t/R@1": 0.2, "a2t/mAP@10": 0.25, "t2a/R@1": 0.1,
                                            "t2a/mAP@10": 0.15}, num_items=7)
  absent = TaskResult(tasks.get("fsd50k"), skipped="FSD50K is absent")
  return {r.task.name: r for r in (esc50, dcase, clotho, absent)}


def test_every_table2_row_with_ours_beside_it():
  rows = paper.comparison(_results())
  assert len(rows) == 30 and len({r["task"] for r in rows}) == 26
  by = {(r["task"], r["metric"]): r for r in rows}
  assert by["ESC50", "accuracy"]["ours"] == 0.5 and by["ESC50", "accuracy"]["paper"] == 0.939
  assert by["ESC50", "accuracy"]["difference"] == pytest.approx(0.5 - 0.939)
  assert by["DCASE17 Task 4", "F1"]["ours"] == 0.3  # F1, not the mAP beside it
  assert by["Clotho audio-to-text", "mAP@10"]["ours"] == 0.25
  assert by["Clotho text-to-audio", "R@1"]["ours"] == 0.1 and by["Clotho text-to-audio", "R@1"]["clips"] == 7
  assert by["ESC50 Actions", "mAP"]["benchmark"] == 0.045
  assert by["FSD50K", "mAP"]["ours"] is None and by["FSD50K", "mAP"]["skipped"] == "FSD50K is absent"
  assert by["US8K", "accuracy"]["skipped"] == "not run: not in config.tasks"
  assert "clapcap" in by["Clotho captioning", "SPIDEr"]["skipped"]


def test_zero_shot_score_over_the_tasks_that_ran():
  scores = paper.zero_shot_scores(paper.comparison(_results()))
  # Ran: ESC50 0.5, DCASE17 0.3, Clotho a2t R@1 0.2, Clotho t2a R@1 0.1 (retrieval counts by R@1).
  assert scores["table2"]["tasks"] == 26 and scores["table2"]["ran"] == 4
  assert scores["table2"]["ours"] == pytest.approx((0.5 + 0.3 + 0.2 + 0.1) / 4)
  assert scores["table2"]["paper"] == pytest.approx((0.939 + 0.466 + 0.229 + 0.157) / 4)
  assert scores["table1"]["tasks"] == 16 and scores["table1"]["ran"] == 2  # ESC50, DCASE17
  assert scores["table1"]["ours"] == pytest.approx(0.4)
  assert scores["table1"]["paper"] == pytest.approx((0.939 + 0.466) / 2)
  assert paper.zero_shot_scores(paper.comparison({}))["table1"] == {
      "tasks": 16, "ran": 0, "ours": None, "paper": None}


def test_table1_is_the_papers_16_tasks():
  assert len(paper.table1_tasks()) == 16 and "AudioSet" not in paper.table1_tasks()
  table2 = {r["task"] for r in paper.table2()}
  assert set(paper.table1_tasks()) <= table2


def test_report_writes_the_comparison_and_its_plot(tmp_path):
  results = _results()
  results.pop("clotho")
  for r in results.values():  # the per-task plots need scores; this test is about the paper's
    r.skipped = r.skipped or "none"
  results["esc50"].skipped = None
  rng = np.random.default_rng(0)
  results["esc50"].scores = rng.random((6, 50))
  results["esc50"].targets = np.eye(50)[[1, 2, 3, 4, 5, 6]]
  content = report.write(results, tmp_path, model_name="m")
  assert json.loads((tmp_path / "results.json").read_text()) == content
  assert content["paper"]["zero_shot_score"]["table2"]["ran"] == 1
  table = (tmp_path / "results.md").read_text()
  assert "| ESC50 | accuracy | 0.5000 | 6 | 0.9390 | 0.9480 ([6] WavCaps) | -0.4390 |  |" in table
  assert "- Table 2's tasks: 1 of 26 ran: m 0.5000, MS-CLAP 2023 0.9390" in table
  image = matplotlib.image.imread(tmp_path / "paper.png")
  assert image.shape[0] > 300 and image.shape[1] > 300


def test_launch_eval_lists_all_26_tasks(shared_data, tmp_path):
  """`launch/eval.py --config configs/zeroshot.py:shared,tiny --checkpoint random` (FSDD cut to 10
  clips): the tasks with data here run, each other is skipped with its reason."""
  fsdd = tmp_path / "fsdd"
  fsdd.mkdir()
  for path in sorted((shared_data / "fsdd-dev").glob("*_jackson_0.wav")):
    (fsdd / path.name).symlink_to(path)
  out = tmp_path / "out"
  result = subprocess.run(
      [sys.executable, "launch/eval.py", "--config", "configs/zeroshot.py:shared,tiny",
       f"--config.data_dir={shared_data}", f"--config.sources.fsdd.root={fsdd}",
       "--checkpoint", "random", "--workdir", str(out)],
      cwd=REPO, capture_output=True, text=True, timeout=600,
      env={**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"})
  assert result.returncode == 0, result.stderr[-3000:]
  content = json.loads((out / "results.json").read_text())
  rows = content["paper"]["rows"]
  assert len({r["task"] for r in rows}) == 26
  ran = {r["task"] for r in rows if r["ours"] is not None}
  assert ran == {"ESC50", "ESC50 Actions", "Clotho audio-to-text", "Clotho text-to-audio"}
  assert all(r["skipped"] for r in rows if r["task"] not in ran)
  assert content["tasks"]["fsdd"]["num_items"] == 10
  scores = content["paper"]["zero_shot_score"]
  assert (scores["table2"]["ran"], scores["table1"]["ran"]) == (4, 2)
  assert "## Beside the paper" in result.stdout and (out / "paper.png").is_file()
