"""Zero-shot metrics against scikit-learn and against retrieval cases worked out by hand."""
import numpy as np
import pytest
from sklearn import metrics as skm

from clap_jax.eval import metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_topk_accuracy_matches_sklearn(seed):
  rng = np.random.default_rng(seed)
  scores = rng.normal(size=(97, 12))
  labels = rng.integers(0, 12, size=97)
  got = metrics.topk_accuracy(scores, labels, ks=(1, 5))
  assert got["top1"] == pytest.approx(skm.accuracy_score(labels, scores.argmax(1)))
  assert got["top5"] == pytest.approx(skm.top_k_accuracy_score(labels, scores, k=5, labels=range(12)))


def test_topk_accuracy_ties_count_against_the_model():
  # Constant scores: a collapsed model must not look perfect.
  assert metrics.topk_accuracy(np.zeros((4, 3)), np.array([0, 1, 2, 0]), ks=(1,)) == {"top1": 0.0}
  scores = np.array([[0.7, 0.7, 0.1], [0.9, 0.2, 0.2]])
  got = metrics.topk_accuracy(scores, np.array([0, 0]), ks=(1, 2, 5))
  assert got == {"top1": 0.5, "top2": 1.0}  # k=5 > 3 classes is left out


@pytest.mark.parametrize("seed", [0, 1])
def test_average_precision_matches_sklearn_with_ties(seed):
  rng = np.random.default_rng(seed)
  targets = rng.random((60, 7)) < 0.3
  # Rounded scores make many ties, which sklearn groups into one threshold.
  scores = np.round(rng.random((60, 7)), 1)
  for c in range(7):
    assert metrics.average_precision(targets[:, c], scores[:, c]) == pytest.approx(
        skm.average_precision_score(targets[:, c], scores[:, c]))
  assert metrics.mean_average_precision(targets, scores) == pytest.approx(
      skm.average_precision_score(targets, scores, average="macro"))


def test_mean_average_precision_skips_classes_without_positives():
  targets = np.array([[1, 0], [0, 0], [1, 0]])
  scores = np.array([[0.9, 0.1], [0.5, 0.2], [0.1, 0.3]])
  ap = metrics.per_class_average_precision(targets, scores)
  assert ap[0] == pytest.approx(skm.average_precision_score(targets[:, 0], scores[:, 0]))
  assert np.isnan(ap[1])
  assert metrics.mean_average_precision(targets, scores) == pytest.approx(ap[0])


def test_retrieval_by_hand_with_ties_and_several_captions():
  # 3 clips, 2 captions each: caption m describes clip owner[m].
  owner = np.array([0, 0, 1, 1, 2, 2])
  similarity = np.array([
      # c0   c1   c2   c3   c4   c5
      [0.9, 0.1, 0.8, 0.0, 0.0, 0.0],  # clip 0: own captions ranked 1st and 3rd
      [0.5, 0.5, 0.5, 0.2, 0.0, 0.0],  # clip 1: c2 ties with c0, c1 -> pessimistic rank 3
      [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # clip 2: all tied -> its captions ranked 5th and 6th
  ])
  got = metrics.retrieval(similarity, owner, ks=(1, 5, 10))
  # Audio-to-text R@k: any own caption in the top k.
  assert got["a2t/R@1"] == pytest.approx(1 / 3)
  assert got["a2t/R@5"] == pytest.approx(3 / 3)
  # AP@10 (two relevant each): clip 0 ranks 1, 3 -> (1/1 + 2/3) / 2; clip 1 ranks 3, 4 ->
  # (1/3 + 2/4) / 2; clip 2 ranks 5, 6 -> (1/5 + 2/6) / 2.
  expected = np.mean([(1 + 2 / 3) / 2, (1 / 3 + 2 / 4) / 2, (1 / 5 + 2 / 6) / 2])
  assert got["a2t/mAP@10"] == pytest.approx(expected)
  # Text-to-audio: each caption's own clip among 3, ranked by the caption's column:
  # c0 -> clip 0 first; c1 -> clip 0 (.1) after clip 1 (.5): 2; c2 -> clip 1 (.5) after clip 0 (.8): 2;
  # c3 -> clip 1 first; c4, c5 -> clip 2 tied with both others: 3.
  ranks = np.array([1, 2, 2, 1, 3, 3])
  assert got["t2a/R@1"] == pytest.approx(np.mean(ranks <= 1))
  assert got["t2a/R@5"] == 1.0
  assert got["t2a/mAP@10"] == pytest.approx(np.mean(1 / ranks))


def test_map_at_k_truncates_and_normalises_by_min_relevant_k():
  ranked = np.zeros((1, 12), bool)
  ranked[0, [0, 11]] = True  # second relevant item is outside the top 10
  assert metrics.map_at_k(ranked, 10) == pytest.approx(1 / 2)
  assert metrics.map_at_k(ranked[:, :3], 2) == pytest.approx(1 / 1)  # min(#rel=1, k=2) = 1


def test_confusion_matrix_matches_sklearn():
  rng = np.random.default_rng(0)
  labels, predictions = rng.integers(0, 5, 40), rng.integers(0, 5, 40)
  np.testing.assert_array_equal(metrics.confusion_matrix(labels, predictions, 5),
                                skm.confusion_matrix(labels, predictions, labels=range(5)))
