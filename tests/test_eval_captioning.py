"""Captioning evaluation: the metrics against pycocoevalcap called directly (and a BLEU worked by
hand), and the task end to end on real Clotho clips with a tiny random clapcap: through the
evaluator registry, the evaluator itself (bad clips, clips in pieces, written files) and
launch/eval.py."""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest

from clap_jax import audio as audio_lib
from clap_jax import caption, text, weights
from clap_jax.data import sources as data_sources
from clap_jax.data.items import Item
from clap_jax.eval import caption_metrics, captioning, registry, sources, tasks
from clap_jax.models import config as model_config
from clap_jax.models.clapcap import ClapCap

REPO = pathlib.Path(__file__).resolve().parents[1]
pytest.importorskip("pycocoevalcap")
needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="the PTB tokenizer needs Java")
SCORED = ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D")  # those that run without Stanford CoreNLP


@pytest.fixture(scope="module")
def clotho(shared_data):
  """The 7 shared Clotho clips as Items, 5 captions each."""
  return list(data_sources.clotho(shared_data / "audio/clotho/captions.csv",
                                  shared_data / "audio/clotho/audio"))


def _package_scores(candidates, references) -> dict[str, float]:
  """pycocoevalcap as its COCOEvalCap runs it."""
  from pycocoevalcap.bleu.bleu import Bleu
  from pycocoevalcap.cider.cider import Cider
  from pycocoevalcap.meteor.meteor import Meteor
  from pycocoevalcap.rouge.rouge import Rouge
  from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
  tokenizer = PTBTokenizer()
  gts = tokenizer.tokenize({k: [{"caption": r} for r in refs] for k, refs in references.items()})
  res = tokenizer.tokenize({k: [{"caption": c}] for k, c in candidates.items()})
  return {"BLEU-4": Bleu(4).compute_score(gts, res)[0][3],
          "METEOR": Meteor().compute_score(gts, res)[0],
          "ROUGE-L": Rouge().compute_score(gts, res)[0],
          "CIDEr-D": Cider().compute_score(gts, res)[0]}


@needs_java
def test_metrics_equal_the_package_and_spider_needs_spice(clotho):
  """Candidates: each clip's first caption, one of them reworded, one empty; references: the
  other four."""
  candidates = {item.item_id: item.captions[0] for item in clotho}
  candidates[clotho[1].item_id] = "A bell is rung several times."
  candidates[clotho[2].item_id] = ""
  references = {item.item_id: list(item.captions[1:]) for item in clotho}
  metrics, missing = caption_metrics.score(candidates, references)
  expected = _package_scores(candidates, references)
  assert {m: metrics[m] for m in SCORED} == expected
  assert 0.05 < metrics["BLEU-4"] < 0.9 and metrics["CIDEr-D"] > 0.1
  if "SPICE" in missing:  # no Stanford CoreNLP here: named, and no SPIDEr
    assert "stanford-corenlp-3.6.0" in missing["SPICE"] and "SPICE" in missing["SPIDEr"]
    assert "SPICE" not in metrics and "SPIDEr" not in metrics
  else:
    assert metrics["SPIDEr"] == pytest.approx((metrics["CIDEr-D"] + metrics["SPICE"]) / 2)


@needs_java
def test_bleu4_by_hand():
  """'a dog barks at the cat' against 'a dog barks at a cat' (after PTB tokenisation: case and
  the full stop dropped): 1- to 4-gram precisions 5/6, 3/5, 2/4, 1/3, equal lengths (no brevity
  penalty): BLEU-4 = (5/6 * 3/5 * 2/4 * 1/3) ** (1/4) = 12 ** -0.25."""
  metrics, _ = caption_metrics.score({"c": "A dog barks at the cat."}, {"c": ["a dog barks at a cat"]})
  assert metrics["BLEU-4"] == pytest.approx(12 ** -0.25, rel=1e-6)


def test_without_java_nothing_is_scored_and_each_metric_says_why(monkeypatch):
  monkeypatch.setattr(caption_metrics.shutil, "which", lambda name: None)
  metrics, missing = caption_metrics.score({"c": "a dog"}, {"c": ["a dog barks"]})
  assert metrics == {} and set(missing) == set(caption_metrics.METRICS)
  assert all("needs Java" in why for why in missing.values())
  with pytest.raises(ValueError, match="different clips"):
    caption_metrics.score({"c": "a dog"}, {"d": ["a dog barks"]})


def test_registry_holds_the_two_captioning_tasks():
  assert tasks.paper_tasks((tasks.CAPTIONING,)) == ["audiocaps_captioning", "clotho_captioning"]
  assert len(tasks.paper_tasks()) == 22  # the zero-shot default is unchanged
  with pytest.raises(ValueError, match="not captioning tasks"):
    captioning.CaptioningEvaluator(model_config.tiny_clapcap(), ["clotho"], tokenizer=None)


@pytest.fixture(scope="module")
def tiny():
  config = model_config.tiny_clapcap()
  return config, weights.random_variables(config, seed=0)


@needs_java
def test_registry_captioning_entry_runs_on_clotho(tiny, shared_data):
  config, variables = tiny
  entry = registry.defaults("captioning")
  entry.tasks = ("clotho_captioning",)
  entry.data_dir = str(shared_data)
  entry.sources.clotho_captioning.update(root="audio/clotho", captions="captions.csv", audio="audio")
  entry.beam_size, entry.max_length, entry.batch_size = 2, 12, 8
  run_config = types.SimpleNamespace(total_steps=10, tokenizer=str(text.GPT2_FILES))
  objective = types.SimpleNamespace(model=ClapCap(config))
  evaluator = registry.Evaluator("captions", entry, run_config, objective, mesh=None)
  values = evaluator.run({"params": {"model": variables["params"]},
                          "batch_stats": variables["batch_stats"]})
  assert set(values) == {f"clotho_captioning/{m}" for m in SCORED} | (
      {"clotho_captioning/SPICE", "clotho_captioning/SPIDEr"}
      if not caption_metrics.unavailable() else set())
  assert all(np.isfinite(v) for v in values.values())


@needs_java
def test_evaluator_captions_leaves_out_bad_clips_and_writes(tiny, clotho, tmp_path):
  """Files and a clip in pieces (as shards store them) are captioned as the Captioner captions
  them; an unreadable file is left out and named; results.json, results.md, captions.jsonl."""
  config, variables = tiny
  broken = tmp_path / "broken.wav"
  broken.write_bytes(b"RIFF not really")
  waveform = audio_lib.load_audio(clotho[0].audio, config.audio.sample_rate)
  pieces = audio_lib.clip_windows(waveform, config.audio.clip_samples)
  items = [clotho[0], Item("in_pieces", tuple(pieces), rate=config.audio.sample_rate,
                           captions=clotho[0].captions),
           Item("broken.wav", str(broken), captions=("a b c",)), clotho[3]]
  evaluator = captioning.CaptioningEvaluator(
      config, ["clotho_captioning"], tokenizer=text.Tokenizer.load(), beam_size=3, max_length=10,
      batch_size=2, sources={"clotho_captioning": sources.ListSource(items)}, progress=False)
  results = evaluator.evaluate(variables)
  result = results["clotho_captioning"]
  assert result.num_items == 3 and len(result.unusable) == 1
  assert "broken.wav: not a readable audio file" in result.unusable[0]
  expected = caption.Captioner(config, variables, text.Tokenizer.load()).caption(
      [clotho[0].audio, clotho[3].audio], beam_size=3, max_length=10)
  assert [c["caption"] for c in result.captions] == [expected[0], expected[0], expected[1]]
  assert set(SCORED) <= set(result.metrics)
  content = captioning.write(results, tmp_path / "out", model_name="tiny random")
  assert json.loads((tmp_path / "out/results.json").read_text()) == content
  task = content["tasks"]["clotho_captioning"]
  assert task["num_items"] == 3 and task["unusable"] == result.unusable
  lines = [json.loads(l) for l in (tmp_path / "out/captions.jsonl").read_text().splitlines()]
  assert [l["item_id"] for l in lines] == [clotho[0].item_id, "in_pieces", clotho[3].item_id]
  assert lines[2]["references"] == list(clotho[3].captions) and lines[0]["task"] == "clotho_captioning"
  md = (tmp_path / "out/results.md").read_text()
  assert "| clotho_captioning | 3 |" in md and "left out" in md
  for metric, why in result.missing.items():
    assert f"{metric} not computed: {why}" in md


def test_a_malformed_or_absent_captioning_task_is_skipped_with_its_reason(tiny, tmp_path):
  """Opening a task's data: a Clotho CSV without its caption columns is reported as malformed,
  an absent folder as absent; neither is a crash, and nothing is captioned."""
  config, variables = tiny
  (tmp_path / "clotho").mkdir()
  (tmp_path / "clotho/clotho_captions_evaluation.csv").write_text("file,caption\na.wav,a dog\n")
  evaluator = captioning.CaptioningEvaluator(
      config, ["clotho_captioning", "audiocaps_captioning"], tokenizer=text.Tokenizer.load(),
      data_dir=str(tmp_path), progress=False)
  results = evaluator.evaluate(variables)
  assert results["clotho_captioning"].skipped == (
      f"malformed data: {tmp_path}/clotho/clotho_captions_evaluation.csv: no column "
      "['file_name', 'caption_1'] (columns: ['file', 'caption'])")
  assert results["audiocaps_captioning"].skipped == f"{tmp_path}/audiocaps is absent"
  assert not results["clotho_captioning"].metrics and not results["clotho_captioning"].captions


@needs_java
def test_launch_eval_captions_clotho_with_a_random_tiny_clapcap(shared_data, tmp_path):
  out = tmp_path / "out"
  result = subprocess.run(
      [sys.executable, str(REPO / "launch/eval.py"), "--config", "configs/captioning_eval.py:shared,tiny",
       f"--config.captioning.data_dir={shared_data}", "--config.captioning.max_length=8",
       "--checkpoint", "random", "--workdir", str(out)],
      cwd=REPO, capture_output=True, text=True, timeout=600,
      env={**os.environ, "PYTHONPATH": str(REPO)})  # this checkout's clap_jax
  assert result.returncode == 0, result.stderr[-3000:]
  task = json.loads((out / "results.json").read_text())["tasks"]["clotho_captioning"]
  assert task["num_items"] == 7 and set(SCORED) <= set(task["metrics"])
  assert set(task.get("missing", {})) == set(caption_metrics.unavailable())
  lines = (out / "captions.jsonl").read_text().splitlines()
  assert len(lines) == 7 and all(len(json.loads(l)["references"]) == 5 for l in lines)
  assert "| clotho_captioning | 7 |" in result.stdout
