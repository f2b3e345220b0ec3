"""Zero-shot metrics on host-side numpy scores: ranking (top-k accuracy, retrieval) and mAP.

Ties in ranking metrics count against the model: among equal scores the irrelevant candidates are
ranked first. A collapsed model that gives every candidate the same score must score chance or
worse, not 100%. Average precision follows scikit-learn instead (equal scores form one threshold),
since mAP numbers are compared with the literature, which uses it.
"""
import numpy as np


def rank_relevant(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
  """(Q, M) scores and relevance -> (Q, M) bool relevance in ranked order, best first.

  Ties are broken pessimistically: irrelevant candidates before relevant ones of equal score.
  """
  scores = np.asarray(scores, np.float64)
  relevant = np.asarray(relevant, bool)
  if scores.shape != relevant.shape or scores.ndim != 2:
    raise ValueError(f"scores {scores.shape} and relevant {relevant.shape} must be equal 2-D shapes")
  # lexsort sorts by the last key first: descending score, then irrelevant (False) first.
  order = np.lexsort((relevant, -scores), axis=-1)
  return np.take_along_axis(relevant, order, axis=-1)


def recall_at_k(ranked: np.ndarray, k: int) -> float:
  """Fraction of queries with at least one relevant candidate in the top k (top-k accuracy when
  each query has exactly one relevant candidate)."""
  return float(np.mean(ranked[:, :k].any(axis=-1)))


def map_at_k(ranked: np.ndarray, k: int) -> float:
  """Mean over queries of AP@k = sum_{j<=k} P@j * rel_j / min(#relevant, k) (the Clotho/DCASE
  retrieval protocol; with one relevant item it is 1/rank inside the top k, else 0)."""
  top = ranked[:, :k].astype(np.float64)
  precision = np.cumsum(top, axis=-1) / np.arange(1, top.shape[1] + 1)
  denominator = np.minimum(ranked.sum(axis=-1), k)
  if np.any(denominator == 0):
    raise ValueError("every query needs at least one relevant candidate")
  return float(np.mean((precision * top).sum(axis=-1) / denominator))


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, ks=(1, 5)) -> dict[str, float]:
  """(N, C) scores, (N,) int labels -> {'top1': ..., 'top5': ...}; k above C is left out."""
  scores = np.asarray(scores)
  labels = np.asarray(labels)
  relevant = labels[:, None] == np.arange(scores.shape[1])[None, :]
  ranked = rank_relevant(scores, relevant)
  return {f"top{k}": recall_at_k(ranked, k) for k in ks if k <= scores.shape[1]}


def average_precision(targets: np.ndarray, scores: np.ndarray) -> float:
  """AP of one class: (N,) binary targets and scores, as sklearn.metrics.average_precision_score.

  Precision is taken at each distinct score (ties form one threshold), weighted by the recall gained
  there. NaN when the class has no positive example.
  """
  targets = np.asarray(targets, bool)
  scores = np.asarray(scores, np.float64)
  positives = targets.sum()
  if positives == 0:
    return float("nan")
  order = np.argsort(-scores, kind="stable")
  scores, targets = scores[order], targets[order]
  # The last index of each run of equal scores: the thresholds.
  last = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
  true_positives = np.cumsum(targets)[last]
  precision = true_positives / (last + 1)
  recall_gain = np.diff(np.r_[0, true_positives]) / positives
  return float(np.sum(recall_gain * precision))


def per_class_average_precision(targets: np.ndarray, scores: np.ndarray) -> np.ndarray:
  """(N, C) multi-hot targets and scores -> (C,) AP per class (NaN for a class without positives)."""
  return np.array([average_precision(targets[:, c], scores[:, c]) for c in range(scores.shape[1])])


def mean_average_precision(targets: np.ndarray, scores: np.ndarray) -> float:
  """Macro mAP over the classes that have at least one positive (sklearn's 'macro' average would
  turn a class without positives into a warning and a meaningless 0)."""
  ap = per_class_average_precision(targets, scores)
  if np.all(np.isnan(ap)):
    raise ValueError("no class has a positive example")
  return float(np.nanmean(ap))


def retrieval(similarity: np.ndarray, caption_owner: np.ndarray, ks=(1, 5, 10)) -> dict[str, float]:
  """Audio-caption retrieval with several captions per clip.

  similarity: (N, M) audio x caption scores; caption_owner: (M,) index of the clip each caption
  describes. Audio-to-text: a query clip has its own captions as the relevant set; text-to-audio: a
  query caption has its one clip. Returns {'a2t/R@1', ..., 'a2t/mAP@10', 't2a/R@1', ...}.
  """
  similarity = np.asarray(similarity)
  caption_owner = np.asarray(caption_owner)
  relevant = caption_owner[None, :] == np.arange(similarity.shape[0])[:, None]  # (N, M)
  results = {}
  for direction, (scores, rel) in {"a2t": (similarity, relevant),
                                   "t2a": (similarity.T, relevant.T)}.items():
    ranked = rank_relevant(scores, rel)
    for k in ks:
      results[f"{direction}/R@{k}"] = recall_at_k(ranked, k)
    results[f"{direction}/mAP@{max(ks)}"] = map_at_k(ranked, max(ks))
  return results


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
  """(C, C) counts, rows = true class, columns = predicted class."""
  flat = np.asarray(labels) * num_classes + np.asarray(predictions)
  return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


DECISION_RULES = ("top_k", "threshold")


def decisions(logits: np.ndarray, rule: str, *, k: int = 1, threshold: float = 0.5) -> np.ndarray:
  """(N, C) logits -> (N, C) bool: the classes said present in each clip.

  'top_k': each clip's k highest classes (a rank, so the logits' scale does not matter);
  'threshold': sigmoid(logit) >= threshold, the multi-label reading of Sec. 2.3 of the paper.
  """
  logits = np.asarray(logits, np.float64)
  if rule == "top_k":
    if not 1 <= k <= logits.shape[1]:
      raise ValueError(f"top_k: k={k} with {logits.shape[1]} classes")
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    chosen = np.zeros(logits.shape, bool)
    np.put_along_axis(chosen, top, True, axis=1)
    return chosen
  if rule == "threshold":
    return 1 / (1 + np.exp(-logits)) >= threshold
  raise ValueError(f"unknown decision rule {rule!r}: one of {DECISION_RULES}")


def f1_score(targets: np.ndarray, predicted: np.ndarray, average: str = "micro") -> float:
  """F1 of (N, C) multi-hot decisions against (N, C) targets, as sklearn.metrics.f1_score:
  'micro' pools every (clip, class) decision (the DCASE 2017 Task 4 tagging score); 'macro'
  averages the per-class F1 (0 for a class neither present nor predicted, as sklearn's
  zero_division=0)."""
  targets, predicted = np.asarray(targets, bool), np.asarray(predicted, bool)
  if targets.shape != predicted.shape or targets.ndim != 2:
    raise ValueError(f"targets {targets.shape} and decisions {predicted.shape}: equal 2-D shapes")
  axis = {"micro": None, "macro": 0}
  if average not in axis:
    raise ValueError(f"average {average!r}: one of {sorted(axis)}")
  true_positive = (targets & predicted).sum(axis=axis[average])
  denominator = targets.sum(axis=axis[average]) + predicted.sum(axis=axis[average])
  f1 = np.divide(2 * true_positive, denominator, out=np.zeros(np.shape(denominator)),
                 where=denominator > 0)
  return float(np.mean(f1))
