"""End to end on real clips from ../shared/data with a randomly initialised tiny CLAP (the plumbing,
not the accuracy): ESC-50 with its 50 classes, FSDD spoken digits and Clotho retrieval; and
launch/eval.py as a user runs it, on a converted-weights folder."""
import dataclasses
import json
import pathlib
import subprocess
import sys

import jax
import matplotlib.image
import numpy as np
import pytest
from jax.sharding import Mesh

from clap_jax import audio, convert, text
from clap_jax.eval import zeroshot as evaluator, report, sources, tasks
from clap_jax.models import config as model_configs
from clap_jax.models.clap import CLAP

REPO = pathlib.Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _tiny_clap():
  config = model_configs.tiny()
  a, t = config.audio, config.text
  variables = jax.jit(CLAP(config).init)(
      {"params": jax.random.key(0), "dropout": jax.random.key(1)},
      np.zeros((1, a.clip_samples), np.float32), np.zeros((1, t.context_length), np.int32),
      np.ones((1, t.context_length), np.int32))
  return config, jax.tree.map(np.asarray, variables)


def test_shared_tasks_table_and_plots(shared_data, gpt2_tokenizer_dir, tmp_path):
  config, variables = _tiny_clap()
  spec = {"esc50": {"root": "audio/esc50", "meta": "meta/esc50_subset.csv"},
          "clotho": {"root": "audio/clotho", "captions": "captions.csv", "audio": "audio"}}
  # Two takes of every digit keep the run short; a broken file is left out and named.
  fsdd = sources.open_source(tasks.get("fsdd"), {"root": "fsdd-dev"}, str(shared_data))
  broken = tmp_path / "3_broken_0.wav"
  broken.write_bytes(b"RIFF\x00\x01 not audio")
  spec["fsdd"] = sources.ListSource(fsdd.items[::50] + [sources.Item("broken", str(broken), labels=(3,))])
  results = evaluator.evaluate(
      CLAP(config), variables, ["esc50", "fsdd", "clotho", "fsd50k"],
      Mesh(np.array(jax.devices()), ("data",)), tokenizer=text.Tokenizer.load(gpt2_tokenizer_dir),
      batch_size=4, sources=spec, data_dir=str(shared_data), progress=False)

  assert [results[n].num_items for n in ("esc50", "fsdd", "clotho")] == [6, 20, 7]
  (unusable,) = results["fsdd"].unusable
  assert unusable.startswith(f"{broken}: not a readable audio file")
  assert results["fsd50k"].skipped  # no FSD50K here: reported, not an error
  assert results["esc50"].scores.shape == (6, 50) and results["fsdd"].scores.shape == (20, 10)
  assert results["clotho"].scores.shape == (7, 35)
  for result in (results["esc50"], results["fsdd"]):
    top1, top5 = result.metrics["top1"], result.metrics["top5"]
    assert 0 <= top1 <= top5 <= 1
  assert set(results["clotho"].metrics) == {f"{d}/{m}" for d in ("a2t", "t2a")
                                            for m in ("R@1", "R@5", "R@10", "mAP@10")}
  # 7 clips: every clip is within the top 10 of any caption.
  assert results["clotho"].metrics["t2a/R@10"] == 1.0

  content = report.write(results, tmp_path, model_name="tiny-random")
  assert json.loads((tmp_path / "results.json").read_text()) == content
  assert content["tasks"]["fsd50k"]["skipped"].endswith("is absent")
  assert content["tasks"]["fsdd"]["unusable"] == results["fsdd"].unusable
  assert "unusable" not in content["tasks"]["esc50"]
  table = (tmp_path / "results.md").read_text()
  assert f"Clips left out (1, not in the metrics):\n- fsdd: {results['fsdd'].unusable[0]}" in table
  assert "| | ESC50 | FSDD | Clotho T2A | Clotho A2T | FSD50K |" in table
  assert f"| tiny-random | {results['esc50'].metrics['top1']:.4f} |" in table
  for name in ("esc50_confusion", "fsdd_confusion", "clotho_recall"):
    image = matplotlib.image.imread(tmp_path / f"{name}.png")
    assert image.shape[0] > 200 and image.shape[1] > 200


def _windows(waveform: np.ndarray, clip: int) -> list[np.ndarray]:
  """The evaluator's contract for a clip longer than the model's: non-overlapping windows, the
  last one aligned to the end; a shorter one repeat-padded."""
  if len(waveform) <= clip:
    return [audio.repeat_pad(waveform, clip)]
  starts = list(range(0, len(waveform) - clip, clip)) + [len(waveform) - clip]
  return [waveform[s:s + clip] for s in starts]


def _ranks(scores: np.ndarray) -> np.ndarray:
  """(Q, M) -> per query, the 0-based rank of each candidate (by descending score)."""
  return np.argsort(np.argsort(-scores, axis=1, kind="stable"), axis=1, kind="stable")


def _retrieval_by_hand(scores: np.ndarray, owner: np.ndarray) -> dict[str, float]:
  """The Clotho protocol, written out per query (no ties in a random model's float64 scores)."""
  out = {}
  for direction, s in (("a2t", scores), ("t2a", scores.T)):
    relevant = (owner[None, :] == np.arange(scores.shape[0])[:, None])
    relevant = relevant if direction == "a2t" else relevant.T
    ranks = _ranks(s)
    for k in (1, 5, 10):
      out[f"{direction}/R@{k}"] = np.mean([(r[rel] < k).any() for r, rel in zip(ranks, relevant)])
    aps = []
    for r, rel in zip(ranks, relevant):
      hits = np.sort(r[rel])  # ranks of the relevant candidates, best first
      aps.append(sum((i + 1) / (h + 1) for i, h in enumerate(hits) if h < 10) / min(len(hits), 10))
    out[f"{direction}/mAP@10"] = np.mean(aps)
  return out


def test_scores_and_metrics_match_the_official_model(shared_data, gpt2_tokenizer_dir):
  """Real clips (5 s ESC-50 at 44.1 kHz, sub-second FSDD digits at 8 kHz, 15.7-29.5 s Clotho
  clips, longer than the model's 7 s), two prompt templates, a padded last batch: the evaluator's
  scores are msclap's on the same waveforms (for Clotho the mean of its embeddings of each clip's
  windows), and its metrics are recomputed from msclap's scores: top-k with scikit-learn,
  retrieval by hand."""
  torch = pytest.importorskip("torch")
  sklearn_metrics = pytest.importorskip("sklearn.metrics")
  from reference import build_reference, state_dict_numpy  # pylint: disable=g-import-not-at-top
  config = model_configs.tiny()
  official = build_reference(config, seed=3)
  variables = convert.convert_state_dict(state_dict_numpy(official), config)
  fsdd = sources.open_source(tasks.get("fsdd"), {"root": "fsdd-dev"}, str(shared_data))
  spec = {"esc50": {"root": "audio/esc50", "meta": "meta/esc50_subset.csv"},
          "fsdd": sources.ListSource(fsdd.items[::101]),
          "clotho": {"root": "audio/clotho", "captions": "captions.csv", "audio": "audio"}}
  templates = {"esc50": ("this is a sound of {}", "a recording of {}")}
  tokenizer = text.Tokenizer.load(gpt2_tokenizer_dir)
  results = evaluator.evaluate(CLAP(config), variables, ["esc50", "fsdd", "clotho"],
                               Mesh(np.array(jax.devices()), ("data",)), tokenizer=tokenizer,
                               batch_size=4, sources=spec, data_dir=str(shared_data),
                               templates=templates, progress=False)

  def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)

  def official_text(strings):
    tokens = tokenizer(strings)
    with torch.no_grad():
      return official.caption_encoder({k: torch.from_numpy(v.astype(np.int64))
                                       for k, v in tokens.items()}).double().numpy()

  def official_audio(item):
    """-> (the mean of msclap's embeddings of the clip's windows, the number of windows)."""
    windows = _windows(audio.load_audio(item.audio, config.audio.sample_rate),
                       config.audio.clip_samples)
    with torch.no_grad():
      embeddings = official.audio_encoder(torch.from_numpy(np.stack(windows)))[0]
    return embeddings.double().numpy().mean(axis=0), len(windows)

  for name in ("esc50", "fsdd", "clotho"):
    task = dataclasses.replace(tasks.get(name), templates=templates.get(name, tasks.get(name).templates))
    items = sources.open_source(task, spec[name], str(shared_data)).items
    embeddings, windows = zip(*(official_audio(item) for item in items))
    clips = unit(np.stack(embeddings))
    result = results[name]
    if name == "clotho":
      assert min(windows) >= 3  # clips of 15.7 s and more
      owner = np.array([i for i, item in enumerate(items) for _ in item.captions])
      scores = clips @ unit(official_text([c for item in items for c in item.captions])).T
      np.testing.assert_allclose(result.scores, scores, atol=2e-6)
      np.testing.assert_array_equal(result.targets, owner)
      want = _retrieval_by_hand(scores, owner)
      assert result.metrics.keys() == want.keys()
      for metric, value in want.items():
        assert result.metrics[metric] == pytest.approx(value, abs=1e-12), metric
      continue
    prompts = task.prompts()
    texts = official_text([p for per_class in prompts for p in per_class])
    classes = unit(unit(texts).reshape(len(prompts), len(task.templates), -1).mean(axis=1))
    scores = clips @ classes.T
    assert result.scores.shape == (len(items), len(prompts))
    np.testing.assert_allclose(result.scores, scores, atol=2e-6)
    labels = np.array([item.labels[0] for item in items])
    for k in (1, 5):
      want = sklearn_metrics.top_k_accuracy_score(labels, scores, k=k, labels=range(len(prompts)))
      assert result.metrics[f"top{k}"] == pytest.approx(want, abs=1e-12), (name, k)


def test_per_class_ap_chart(tmp_path):
  task = tasks.get("nsynth_qualities")
  rng = np.random.default_rng(0)
  targets = (rng.random((30, 10)) < 0.3).astype(np.int8)
  targets[:, 5] = 0  # a class without positives is left out of the chart and of the mean
  scores = rng.normal(size=(30, 10))
  from clap_jax.eval import metrics
  result = evaluator.TaskResult(task, {"mAP": metrics.mean_average_precision(targets, scores)},
                                num_items=30, scores=scores, targets=targets)
  path = report.plot(result, tmp_path)
  assert path == str(tmp_path / "nsynth_qualities_ap.png") and matplotlib.image.imread(path).shape[0] > 200


def test_launch_eval_on_a_converted_folder(shared_data, tmp_path):
  config, variables = _tiny_clap()
  convert.save_variables(variables, tmp_path / "weights", config)
  out = tmp_path / "out"
  result = subprocess.run(
      [sys.executable, str(REPO / "launch/eval.py"), "--config", "configs/zeroshot.py:shared,tiny",
       "--config.tasks=('esc50', 'audiocaps')", f"--config.data_dir={shared_data}",
       "--checkpoint", str(tmp_path / "weights"), "--workdir", str(out), "--name", "converted"],
      cwd=REPO, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  content = json.loads((out / "results.json").read_text())
  assert content["model"] == "converted" and content["tasks"]["esc50"]["num_items"] == 6
  assert "audiocaps is absent" in content["tasks"]["audiocaps"]["skipped"]
  assert (out / "esc50_confusion.png").is_file() and "| converted |" in result.stdout
