"""The zero-shot evaluator computes float32 products in full float32 on every backend (its lowered
programs ask for HIGHEST precision in every dot), and scores DCASE17 Task 4 with F1 through the
configured decision rule on the model's logits."""
import re

import jax
import numpy as np
import pytest
from jax.sharding import Mesh

from clap_jax import text, weights
from clap_jax.eval import metrics, sources, tasks, zeroshot
from clap_jax.models import config as model_configs
from clap_jax.models.clap import CLAP


@pytest.fixture(scope="module")
def tiny():
  config = model_configs.tiny()
  return config, weights.random_variables(config, seed=0)


def _mesh():
  return Mesh(np.array(jax.devices()[:1]), ("data",))


def test_products_are_full_float32(tiny, gpt2_tokenizer_dir):
  config, variables = tiny
  evaluator = zeroshot.ZeroShotEvaluator(CLAP(config), ["esc50"], _mesh(), batch_size=2,
                                         tokenizer=text.Tokenizer.load(gpt2_tokenizer_dir))
  ids = np.zeros((2, 8), np.int32)
  lowered = [evaluator._encode_audio.lower(variables, np.zeros((2, config.audio.clip_samples), np.float32)),
             evaluator._encode_text.lower(variables, ids, np.ones_like(ids))]
  for hlo in (f.as_text() for f in lowered):
    precisions = re.findall(r"dot_general .*precision = \[(\w+), (\w+)\]", hlo)
    assert len(precisions) > 10 and set(precisions) == {("HIGHEST", "HIGHEST")}


def test_dcase17_f1_follows_the_decision_rule(tiny, gpt2_tokenizer_dir):
  config, variables = tiny
  rng = np.random.default_rng(0)
  task = tasks.get("dcase17_task4")
  items = [sources.Item(f"clip{i}", (rng.normal(0, 0.1, 16000).astype(np.float32),), rate=16000,
                        labels=tuple(sorted(rng.choice(17, size=1 + i % 2, replace=False).tolist())))
           for i in range(6)]

  def evaluate(f1):
    (result,) = zeroshot.evaluate(
        CLAP(config), variables, [task.name], _mesh(), batch_size=2, f1=f1, progress=False,
        tokenizer=text.Tokenizer.load(gpt2_tokenizer_dir),
        sources={task.name: sources.ListSource(items)}).values()
    return result
  result = evaluate({"rule": "top_k", "k": 2, "average": "micro"})
  assert set(result.metrics) == {"F1", "mAP"}
  assert result.metrics["F1"] == pytest.approx(metrics.f1_score(
      result.targets, metrics.decisions(result.scores, "top_k", k=2), "micro"))
  # A threshold on sigmoid(exp(logit_scale) x cosine) between the scores: it marks part of them.
  logits = np.exp(float(variables["params"]["logit_scale"])) * result.scores
  threshold = float(1 / (1 + np.exp(-np.quantile(logits, 0.8))))
  chosen = metrics.decisions(logits, "threshold", threshold=threshold)
  assert 0 < chosen.sum() < chosen.size
  result = evaluate({"rule": "threshold", "threshold": threshold, "average": "macro"})
  assert result.metrics["F1"] == pytest.approx(metrics.f1_score(result.targets, chosen, "macro"))
  # Without the temperature the same threshold would decide otherwise.
  assert not np.array_equal(chosen, metrics.decisions(result.scores, "threshold", threshold=threshold))
