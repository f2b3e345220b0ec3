"""The audio tower's multi-task pretraining (CLAP 2023's first stage): HTSAT with a head per task.

Tasks are data in the config, keyed by name (`config.tasks.<name>`, in sorted-name order, which is
also the `task` index of the batches):
  num_labels   the head's outputs
  multi_label  True: sigmoid BCE over the head (mean over its classes); False: softmax CE
  weight       the task's loss weight
  train        its training shards (a glob pattern, or ','-separated patterns)
  heldout      its held-out shards for the periodic evaluation ('' : none)
Batches come from `clap_jax.data.multitask_batches` (`input.kind = 'multitask'`), which mixes tasks
by `input.sampling` (and `input.temperature`).
"""
import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from clap_jax import data
from clap_jax.eval import registry
from clap_jax.train import ConfigError
from clap_jax.models.audio_tasks import AudioTasks

_TASK_KEYS = {"num_labels", "multi_label", "weight", "train", "heldout"}


@dataclasses.dataclass(frozen=True)
class TaskSpec:
  name: str
  num_labels: int
  multi_label: bool
  weight: float
  train: str
  heldout: str


def tasks_of(config: ml_collections.ConfigDict) -> list[TaskSpec]:
  """The config's tasks in batch order (sorted names); a missing or unknown key is an error."""
  if not config.tasks:
    raise ValueError("objective 'audio_multitask' needs config.tasks (see configs/audio_pretrain.py)")
  specs = []
  for name in sorted(config.tasks):
    keys = set(config.tasks[name])
    if keys != _TASK_KEYS:
      raise ValueError(f"config.tasks.{name}: missing keys {sorted(_TASK_KEYS - keys)}, "
                       f"unknown keys {sorted(keys - _TASK_KEYS)}")
    specs.append(TaskSpec(name=name, **config.tasks[name]))
  return specs


def tasks_config(specs: Sequence[tuple[str, int, bool]], data_dir) -> ml_collections.ConfigDict:
  """`config.tasks` for (name, num_labels, multi_label) triples, weight 1, with shards at
  {data_dir}/{name}/train/*.tfrecord and {data_dir}/{name}/heldout/*.tfrecord."""
  return ml_collections.ConfigDict({
      name: {"num_labels": num_labels, "multi_label": multi_label, "weight": 1.0,
             "train": f"{data_dir}/{name}/train/*.tfrecord",
             "heldout": f"{data_dir}/{name}/heldout/*.tfrecord"}
      for name, num_labels, multi_label in specs})


def task_sources(config: ml_collections.ConfigDict, split: str = "train") -> list[data.TaskSource]:
  """The tasks' shards of `split` ('train' or 'heldout') for clap_jax.data.multitask_batches."""
  return [data.TaskSource(t.name, getattr(t, split).split(","), t.num_labels, t.multi_label)
          for t in tasks_of(config)]


def routed_loss(logits: dict[str, jax.Array], batch: dict, tasks: Sequence[TaskSpec]
                ) -> tuple[jax.Array, dict]:
  """Each example's loss on its own task's head only -> (loss, metrics).

  logits: per task name (B, num_labels); batch: `task` (B,) (an index in `tasks`), `label` (B,)
  (-1: none), `labels` (B, K) multi-hot. loss = sum_i w_{t_i} loss_i / B. An example of another
  task (or a single-label one without a label) is selected out by `where`, so it gives head t no
  gradient at all.
  """
  task, label = batch["task"], batch["label"]
  per_example = jnp.zeros(task.shape, jnp.float32)
  correct = jnp.zeros(task.shape, bool)
  counted = jnp.zeros(task.shape, bool)  # examples with an accuracy: single-label, labelled
  metrics = {}
  for t, spec in enumerate(tasks):
    z = logits[spec.name].astype(jnp.float32)
    mine = task == t
    if spec.multi_label:
      loss = optax.sigmoid_binary_cross_entropy(z, batch["labels"][:, :z.shape[-1]]).mean(-1)
    else:
      mine &= label >= 0
      # Other examples' labels may lie past this head: class 0 stands in for them.
      loss = optax.softmax_cross_entropy_with_integer_labels(z, jnp.where(mine, label, 0))
      correct |= mine & (jnp.argmax(z, -1) == label)
      counted |= mine
    per_example = jnp.where(mine, spec.weight * loss, per_example)
    metrics[f"loss/{spec.name}"] = jnp.where(mine, loss, 0.0).sum() / jnp.maximum(mine.sum(), 1)
  loss = per_example.mean()
  accuracy = correct.sum() / jnp.maximum(counted.sum(), 1)
  return loss, {"loss": loss, "accuracy": accuracy, **metrics}


class AudioMultitask:
  """Config keys: `model` (its `audio` and `dtype`), `tasks` (above). SpecAugment is the model's
  own (`model.audio.spec_augment`); mixup would blend examples of different tasks, so is refused."""
  batch_keys = ("audio", "task", "label", "labels")

  def __init__(self, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh):
    if config.augment.mixup_alpha:
      raise ValueError("objective 'audio_multitask' takes no mixup (augment.mixup_alpha = 0)")
    self.config = config
    self.mesh = mesh
    self.tasks = tasks_of(config)
    self.model = AudioTasks(config.model, tuple((t.name, t.num_labels) for t in self.tasks))

  @staticmethod
  def default_evals() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({"heads": registry.defaults("heads")})

  @staticmethod
  def check_inputs(config: ml_collections.ConfigDict) -> None:
    if config.input.kind != "multitask":
      raise ConfigError(f"input.kind {config.input.kind!r}: objective 'audio_multitask' reads "
                       "'multitask'")
    missing = [t.name for t in tasks_of(config) if not t.train]
    if missing:
      raise ConfigError(f"config.tasks {missing}: no train shards (config.tasks.<name>.train)")

  def batches(self, start_step: int):
    """This process's share of each global batch, from global batch `start_step` on."""
    c = self.config.input
    return data.multitask_batches(
        task_sources(self.config, "train"), clip_samples=self.config.model.audio.clip_samples,
        shuffle_buffer=c.shuffle_buffer, sampling=c.sampling,
        temperature=c.temperature if c.sampling == "temperature" else None,
        batch_size=c.global_batch, seed=c.seed, start_step=start_step,
        process_index=jax.process_index(), process_count=jax.process_count())

  def example_batch(self, batch_size: int) -> dict[str, np.ndarray]:
    """Zeros shaped as a training batch (for initialisation and benchmarks)."""
    max_labels = max(t.num_labels for t in self.tasks)
    return {"audio": np.zeros((batch_size, self.config.model.audio.clip_samples), np.float32),
            "task": np.zeros((batch_size,), np.int32), "label": np.zeros((batch_size,), np.int32),
            "labels": np.zeros((batch_size, max_labels), np.float32)}

  def init(self, rng: jax.Array) -> tuple[dict, dict]:
    """-> (params {'model'}, batch_stats), freshly initialised."""
    params_rng, dropout_rng = jax.random.split(rng)
    variables = self.model.init({"params": params_rng, "dropout": dropout_rng},
                                self.example_batch(1)["audio"])
    return {"model": variables["params"]}, variables["batch_stats"]

  def loss(self, params: dict, batch_stats: dict, batch: dict, rng: jax.Array):
    """Training-mode loss on a global batch -> (loss, (metrics, updated batch_stats))."""
    logits, updates = self.model.apply(
        {"params": params["model"], "batch_stats": batch_stats}, batch["audio"], train=True,
        rngs={"dropout": rng}, mutable=["batch_stats"])
    loss, metrics = routed_loss(logits, batch, self.tasks)
    return loss, (metrics, updates["batch_stats"])

  def constrain(self, params: dict) -> dict:
    return params  # no parameter has a bounded range here
