"""The audio tower's multi-task pretraining (configs/audio_pretrain.py): each example's loss reaches
its own task's head only, the config's sampling reaches the batches, the config trains and
evaluates per task, its tower initialises CLAP unchanged, and on real speech (FSDD: digit and
speaker from the same files) it learns both tasks far above chance.

The sampler's proportions themselves are tested in tests/test_data_multitask.py.
"""
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clap_jax import data, text
from clap_jax.train import checkpoint, init as pretrained, loop as train, objectives
from clap_jax.data import sources, writer
from clap_jax.train.objectives import audio_multitask
from test_configs import load
from test_data_multitask import TASKS, task_dirs  # noqa: F401 (a fixture)
from test_learning_fsdd import HELD_OUT_TAKES, WORDS
import multidevice

REPO = pathlib.Path(multidevice.REPO)
CONFIG = REPO / "configs" / "audio_pretrain.py"
SPECS = [audio_multitask.TaskSpec(name, classes, multi_label, weight, "", "")
         for (name, _, classes, multi_label), weight in zip(TASKS, (1.0, 2.0, 0.5))]


def _mixed_batch(rng: np.random.Generator, size: int, tasks=(0, 1, 2)) -> dict:
  """A batch as multitask_batches gives it, every example of a task in `tasks`."""
  max_labels = max(s.num_labels for s in SPECS)
  task = np.resize(np.array(tasks, np.int32), size)
  label = np.full(size, -1, np.int32)
  labels = np.zeros((size, max_labels), np.float32)
  for i, t in enumerate(task):
    if SPECS[t].multi_label:
      labels[i, rng.choice(SPECS[t].num_labels, 2, replace=False)] = 1
    else:
      label[i] = rng.integers(SPECS[t].num_labels)
      labels[i, label[i]] = 1
  return {"task": task, "label": label, "labels": labels}


def _heads_loss(heads: dict, latent: jax.Array, batch: dict) -> jax.Array:
  logits = {name: latent @ w["kernel"] + w["bias"] for name, w in heads.items()}
  return audio_multitask.routed_loss(logits, batch, SPECS)[0]


def test_each_example_trains_only_its_own_head():
  """Per example of a mixed batch: a zero gradient (exactly) on every other task's head, a
  non-zero one on its own; and the batch's gradient is the mean of the examples' gradients."""
  rng = np.random.default_rng(0)
  heads = {s.name: {"kernel": rng.normal(size=(16, s.num_labels)).astype(np.float32),
                    "bias": rng.normal(size=(s.num_labels,)).astype(np.float32)} for s in SPECS}
  latent = rng.normal(size=(9, 16)).astype(np.float32)
  batch = _mixed_batch(rng, 9)
  # One example per call: (9, 1, ...) -> per-example gradients (9, ...).
  singles = jax.tree.map(lambda x: x[:, None], {"latent": latent, **batch})
  per_example = jax.vmap(lambda e: jax.grad(_heads_loss)(
      heads, e["latent"], {k: e[k] for k in batch}))(singles)
  for i, t in enumerate(batch["task"]):
    for u, spec in enumerate(SPECS):
      norm = sum(float(jnp.abs(g[i]).sum()) for g in jax.tree.leaves(per_example[spec.name]))
      assert (norm > 0) == (u == t), (i, t, spec.name, norm)
  whole = jax.grad(_heads_loss)(heads, latent, batch)
  mean = jax.tree.map(lambda g: g.mean(0), per_example)
  for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(mean)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_routed_loss_weights_and_metrics():
  logits = {s.name: jnp.zeros((4, s.num_labels)) for s in SPECS}
  batch = _mixed_batch(np.random.default_rng(1), 4, tasks=(0, 1, 2, 1))
  loss, metrics = audio_multitask.routed_loss(logits, batch, SPECS)
  # zero logits: CE = log(classes), BCE = log 2 per class
  expected = (1.0 * np.log(5) + 2.0 * np.log(10) + 0.5 * np.log(2) + 2.0 * np.log(10)) / 4
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  np.testing.assert_allclose(metrics["loss/digits"], np.log(10), rtol=1e-6)
  assert set(metrics) == {"loss", "accuracy", "loss/birds", "loss/digits", "loss/tags"}


def local_config(dirs: dict, arg: str = "smoke"):
  """configs/audio_pretrain.py's `arg` variant on the synthetic tasks of test_data_multitask."""
  config = load(CONFIG, arg)
  config.tasks = audio_multitask.tasks_config(
      [(name, classes, multi_label) for name, _, classes, multi_label in TASKS], "")
  for name in config.tasks:
    config.tasks[name].train = config.tasks[name].heldout = str(dirs[name] / "clips-*.tfrecord")
  config.evals.heads.tasks = tuple(config.tasks)
  return config


def test_config_loads_and_is_known():
  for arg in (None, "local", "smoke"):
    config = load(CONFIG, arg)
    assert config.is_locked  # the schema's: an unknown key in the file would have failed to load
    assert set(config.evals.heads.tasks) == set(config.tasks)
  assert len(audio_multitask.tasks_of(load(CONFIG))) == 22


def test_config_sampling_reaches_the_batches(task_dirs):  # noqa: F811
  """Task shares over many batches of the training loop's own input match the config's law."""
  config = local_config(task_dirs)
  config.input.global_batch = 64
  config.input.sampling, config.input.temperature = "temperature", 2.0
  batches = objectives.get(config, None).batches(start_step=0)
  tasks = np.concatenate([next(batches)["task"] for _ in range(40)])
  want = data.sampling_probabilities([count for _, count, _, _ in TASKS], "temperature", 2.0)
  sigma = np.sqrt(want * (1 - want) / tasks.size)
  np.testing.assert_array_less(np.abs(np.bincount(tasks, minlength=3) / tasks.size - want),
                               4 * sigma)


def test_config_trains_evaluates_and_initialises_clap(task_dirs, tmp_path):  # noqa: F811
  """Two steps of the smoke config through the loop, evaluated per task; then its tower goes into
  configs/pretrain.py's model (init.audio_from) unchanged, and nothing else does."""
  results = train.main(local_config(task_dirs), tmp_path / "tasks")
  assert set(results) == {"birds/top1", "digits/top1", "tags/mAP"}
  assert all(0.0 <= v <= 1.0 for v in results.values())
  _, trained = checkpoint.load_inference_variables(tmp_path / "tasks")

  clap_config = load(REPO / "configs" / "pretrain.py", "smoke")
  clap_config.init.audio_from = str(tmp_path / "tasks")
  run = train.build(clap_config)
  state = run.init()
  fresh = {"params": state["params"]["model"], "batch_stats": state["batch_stats"]}
  loaded = pretrained.initialise(fresh, clap_config.init, clap_config.model)
  for collection in ("params", "batch_stats"):
    want = jax.tree.map(np.asarray, trained[collection]["htsat"])
    got = loaded[collection]["audio_encoder"]["htsat"]
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_array_equal(a, b)
  for part in ("caption_encoder", "logit_scale"):
    for a, b in zip(jax.tree.leaves(loaded["params"][part]), jax.tree.leaves(fresh["params"][part])):
      np.testing.assert_array_equal(a, b)


def test_task_config_errors_are_named():
  config = load(CONFIG, "smoke")
  config.tasks.fsdd_digit.num_label = 3
  with pytest.raises(ValueError, match=r"tasks\.fsdd_digit: .*unknown keys \['num_label'\]"):
    objectives.get(config, None)
  config = load(CONFIG, "smoke")
  config.augment.mixup_alpha = 0.5
  with pytest.raises(ValueError, match="no mixup"):
    objectives.get(config, None)


# Real speech ------------------------------------------------------------------------------------

SPEAKERS = ("jackson", "nicolas")


def write_fsdd_tasks(root: pathlib.Path, out: pathlib.Path, sample_rate: int) -> None:
  """Two tasks from the same FSDD files: {out}/fsdd_digit and {out}/fsdd_speaker, each with
  train (takes 5-49) and heldout (takes 0-4)."""
  items = {}
  for path in sorted(root.glob("*.wav")):
    digit, speaker, take = path.stem.split("_")
    split = "heldout" if int(take) in HELD_OUT_TAKES else "train"
    for task, label, caption in (
        ("fsdd_digit", int(digit), f"a man saying the number {WORDS[int(digit)]}"),
        ("fsdd_speaker", SPEAKERS.index(speaker), f"{speaker} speaking")):
      items.setdefault((task, split), []).append(sources.Item(
          item_id=path.name, audio=str(path), captions=(caption,), labels=(label,), task=task))
  for (task, split), task_items in items.items():
    writer.write_shards(task_items, out / task / split, writer.WriterConfig(
        tokenizer=str(text.GPT2_FILES), prefix=task, sample_rate=sample_rate, shard_mb=4),
        progress=False)


@pytest.mark.slow
def test_fsdd_tasks_far_above_chance(shared_data, tmp_path):
  config = load(CONFIG, "local")
  write_fsdd_tasks(shared_data / "fsdd-dev", tmp_path / "shards", config.model.audio.sample_rate)
  config.tasks = audio_multitask.tasks_config(
      [(name, t.num_labels, t.multi_label) for name, t in config.tasks.items()], tmp_path / "shards")
  results = train.main(config, tmp_path / "run")
  print(f"FSDD held-out, per task: {results}")
  assert results["fsdd_digit/top1"] >= 0.5  # chance: 0.1
  assert results["fsdd_speaker/top1"] >= 0.9  # chance: 0.5
