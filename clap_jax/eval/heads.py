"""Held-out evaluation of the multi-task heads (audio pretraining): per task, top-1 accuracy of
its head on its held-out shards (single-label) or mAP (multi-label).

`HeadsEvaluator(model, tasks, mesh, ...).run(variables)` yields ('fsdd_digit/top1', value) pairs,
the protocol of the zero-shot evaluator. Every process reads its share of the shards; logits,
labels and masks are gathered, so every process scores every clip once.
"""
from collections.abc import Iterator, Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils

from clap_jax import data, sharding
from clap_jax.eval import metrics


class HeadsEvaluator:
  """`model`: clap_jax.models.audio_tasks.AudioTasks; `tasks`: TaskSpecs of its heads to evaluate,
  each with `heldout` shards; `batch_size`: global, split over the mesh."""

  def __init__(self, model, tasks: Sequence, mesh: jax.sharding.Mesh, *, batch_size: int,
               clip_samples: int):
    missing = [t.name for t in tasks if not t.heldout]
    if missing:
      raise ValueError(f"tasks {missing} are to be evaluated but have no held-out shards "
                       "(config.tasks.<name>.heldout)")
    self.tasks = list(tasks)
    self.batch_size, self.clip_samples = batch_size, clip_samples
    self.batch_sharding = sharding.batch_sharding(mesh)
    self._logits = jax.jit(lambda variables, audio: model.apply(variables, audio, train=False))

  def run(self, variables) -> Iterator[tuple[str, float]]:
    for task in self.tasks:
      logits, labels = self._heldout_pass(variables, task)
      if task.multi_label:
        yield f"{task.name}/mAP", metrics.mean_average_precision(labels, logits)
      else:
        labelled = labels >= 0
        yield f"{task.name}/top1", metrics.topk_accuracy(logits[labelled], labels[labelled],
                                                         ks=(1,))["top1"]

  def _heldout_pass(self, variables, task) -> tuple[np.ndarray, np.ndarray]:
    """-> logits (N, num_labels), labels (N,) or (N, num_labels) multi-hot, of every clip."""
    logits, labels = [], []
    for batch in data.eval_batches(task.heldout.split(","), batch_size=self.batch_size,
                                   clip_samples=self.clip_samples,
                                   num_labels=task.num_labels if task.multi_label else None):
      step = data.to_global({k: batch[k] for k in ("audio", "label", "mask")}, self.batch_sharding)
      step["logits"] = self._logits(variables, step.pop("audio"))[task.name]
      gathered = multihost_utils.process_allgather(step, tiled=True)
      logits.append(gathered["logits"][gathered["mask"]])
      labels.append(gathered["label"][gathered["mask"]])
    return np.concatenate(logits), np.concatenate(labels)
