"""Task-balanced multi-task batches: the sampling law, per-task label fields, restarts, process shares."""
import itertools

import numpy as np
import pytest
import tensorflow as tf

from clap_jax import audio
from clap_jax import data
from clap_jax.data import multitask, sources, writer
from multitask_shards import RATE, TASKS  # conftest's task_dirs: these tasks' shards
from test_data_writer import assert_restarts_match, read_examples

CLIP = 1600  # the clips are 0.1 to 0.3 s at RATE: some are tiled and some cut to CLIP


@pytest.fixture(scope="module")
def stored(task_dirs):
  """task index -> {example_id: stored example}"""
  return {i: {e["example_id"]: e for e in read_examples(task_dirs[name])}
          for i, (name, *_) in enumerate(TASKS)}


def _tasks(task_dirs):
  return [data.TaskSource(name, str(task_dirs[name] / "clips-*.tfrecord"), classes, multi_label)
          for name, _, classes, multi_label in TASKS]


def _batches(task_dirs, **kw):
  kw = dict(batch_size=8, clip_samples=CLIP, seed=1, process_index=0, process_count=1) | kw
  return data.multitask_batches(_tasks(task_dirs), **kw)


def test_sampling_probabilities_by_hand():
  sizes = [24, 12, 6]
  np.testing.assert_allclose(data.sampling_probabilities(sizes, "proportional"), [4 / 7, 2 / 7, 1 / 7])
  np.testing.assert_allclose(data.sampling_probabilities(sizes, "uniform"), [1 / 3] * 3)
  np.testing.assert_allclose(data.sampling_probabilities(sizes, "temperature", 1.0), [4 / 7, 2 / 7, 1 / 7])
  root = np.sqrt(sizes)  # T = 2: p ∝ sqrt(n) = (4.899, 3.464, 2.449) / 10.812
  np.testing.assert_allclose(data.sampling_probabilities(sizes, "temperature", 2.0), root / root.sum())
  np.testing.assert_allclose(data.sampling_probabilities(sizes, "temperature", 2.0),
                             [0.4531, 0.3204, 0.2265], atol=1e-4)
  np.testing.assert_allclose(data.sampling_probabilities(sizes, "temperature", np.inf), [1 / 3] * 3)
  # weights scale each task: 1 * 24, 2 * 12, 1 * 6 over 54; uniform: 1, 2, 1 over 4
  np.testing.assert_allclose(data.sampling_probabilities(sizes, "proportional", weights=[1, 2, 1]),
                             [4 / 9, 4 / 9, 1 / 9])
  np.testing.assert_allclose(data.sampling_probabilities(sizes, "uniform", weights=[1, 2, 1]),
                             [1 / 4, 1 / 2, 1 / 4])
  with pytest.raises(ValueError, match="weights must be one positive number per task"):
    data.sampling_probabilities(sizes, "uniform", weights=[1, 0, 1])
  # small T: (10^9)^100 overflows a float, the ratio 10^100 does not
  np.testing.assert_allclose(data.sampling_probabilities([10**9, 10**8], "temperature", 0.01),
                             [1, 1e-100], rtol=1e-9)
  for args, match in [(([3, 0], "proportional"), "positive"), (([3], "uniform", 2.0), "temperature"),
                      (([3], "temperature"), "temperature"), (([3], "temperature", 0.0), "> 0"),
                      (([3], "balanced"), "sampling must be")]:
    with pytest.raises(ValueError, match=match):
      data.sampling_probabilities(*args)


@pytest.mark.parametrize("sampling, temperature", [("proportional", None), ("uniform", None),
                                                   ("temperature", 2.0)])
def test_task_proportions_match_the_sampling(task_dirs, sampling, temperature):
  # 3200 draws; each task's count is Binomial(N, p_i): allow 4 standard deviations (a fixed seed
  # makes the test deterministic; 4 sd would fail by chance about once in 10^4 seeds per task).
  # The modes' probabilities differ by >= 0.1, well over 4 sd (<= 0.035), so a mode mix-up fails.
  batches = _batches(task_dirs, batch_size=64, sampling=sampling, temperature=temperature)
  tasks = np.concatenate([b["task"] for b in itertools.islice(batches, 50)])
  n = tasks.size
  p = data.sampling_probabilities([count for _, count, *_ in TASKS], sampling, temperature)
  counts = np.bincount(tasks, minlength=len(TASKS))
  assert np.all(np.abs(counts - n * p) <= 4 * np.sqrt(n * p * (1 - p))), (counts / n, p)


def test_fields_belong_to_each_examples_task(task_dirs, stored):
  batch = next(_batches(task_dirs, batch_size=48, sampling="uniform"))
  assert batch["audio"].shape == (48, CLIP) and batch["audio"].dtype == np.float32
  assert batch["task"].dtype == batch["label"].dtype == np.int32
  assert batch["labels"].shape == batch["label_mask"].shape == (48, 10)
  assert batch["labels"].dtype == np.float32 and batch["label_mask"].dtype == bool
  assert set(batch["task"]) == {0, 1, 2}
  for i, task in enumerate(batch["task"]):
    _, _, classes, multi_label = TASKS[task]
    example = stored[task][batch["example_id"][i].decode()]  # KeyError: not of its task
    source = example["audio"]
    if source.shape[0] <= CLIP:
      np.testing.assert_array_equal(batch["audio"][i], audio.repeat_pad(source, CLIP))
    else:
      windows = np.lib.stride_tricks.sliding_window_view(source, CLIP)
      assert np.any(np.all(windows == batch["audio"][i], axis=1))
    np.testing.assert_array_equal(batch["label_mask"][i], np.arange(10) < classes)
    assert set(np.flatnonzero(batch["labels"][i])) == set(example["labels"])
    assert batch["label"][i] == (-1 if multi_label else example["labels"][0])


def test_restarts_at_a_step(task_dirs, monkeypatch):
  # Chunks of 20 choices, so restarts land inside chunks, on their boundary and a few chunks on.
  monkeypatch.setattr(multitask, "_CHOICE_CHUNK", 20)
  choices = multitask._TaskChoices(np.array([0.5, 0.3, 0.2]), seed=1, process_index=0)
  stream = np.concatenate([choices.chunk(c) for c in range(4)])
  for position in (0, 7, 20, 45, 80):
    np.testing.assert_array_equal(choices.counts_before(position),
                                  np.bincount(stream[:position], minlength=3))

  reference = assert_restarts_match(lambda **kw: _batches(task_dirs, **kw))
  # Each task's own stream goes through its examples once per epoch.
  tasks = np.concatenate([b["task"] for b in reference])
  ids = np.concatenate([b["example_id"] for b in reference])
  for t, (_, count, *_) in enumerate(TASKS):
    assert (tasks == t).sum() >= count
    assert len(set(ids[tasks == t][:count])) == count
  other_seed = next(_batches(task_dirs, seed=2))
  assert list(other_seed["example_id"]) != list(reference[0]["example_id"])


def test_processes_see_disjoint_shares(task_dirs, stored):
  seen = []
  for index in range(2):
    shares = [data.ShardSet.find(t.shards).share(index, 2)[2] for t in _tasks(task_dirs)]
    batches = _batches(task_dirs, batch_size=16, sampling="uniform", process_index=index, process_count=2)
    rows = [(t, i) for b in itertools.islice(batches, 12) for t, i in zip(b["task"], b["example_id"])]
    share = set()
    for t, count in enumerate(shares):
      ids = [i for task, i in rows if task == t]
      assert len(ids) >= count and len(set(ids[:count])) == count  # an epoch of its share
      share |= {(t, i.decode()) for i in ids}
    seen.append(share)
  assert not seen[0] & seen[1]
  assert seen[0] | seen[1] == {(t, i) for t, examples in stored.items() for i in examples}


def test_bad_tasks_fail_loudly(task_dirs, gpt2_tokenizer_dir, tmp_path):
  tasks = _tasks(task_dirs)
  kw = dict(batch_size=8, clip_samples=CLIP, seed=0, process_index=0, process_count=1)
  with pytest.raises(ValueError, match="shards hold tasks"):
    data.multitask_batches([data.TaskSource("other", tasks[0].shards, 5)], **kw)
  with pytest.raises(ValueError, match="past num_labels=4"):
    data.multitask_batches([data.TaskSource("birds", tasks[0].shards, 4)], **kw)
  with pytest.raises(ValueError, match="repeat"):
    data.multitask_batches([tasks[0], tasks[0]], **kw)
  with pytest.raises(ValueError, match="divisible"):
    data.multitask_batches(tasks, **kw | dict(batch_size=6, process_count=4))
  # A set named 'birds' by its summary, holding an example of no task: found when it is read.
  clips = task_dirs["birds"].parent / "audio"
  items = [sources.Item(f"{i}", str(clips / f"birds_{i}.wav"), captions=("a bird",), labels=(0,), task=task)
           for i, task in enumerate(["birds", ""] * 4)]
  writer.write_shards(items, tmp_path, writer.WriterConfig(tokenizer=str(gpt2_tokenizer_dir),
                                                           sample_rate=RATE), progress=False)
  batches = data.multitask_batches([data.TaskSource("birds", str(tmp_path / "clips-*.tfrecord"), 5)],
                                   **kw)
  with pytest.raises(tf.errors.InvalidArgumentError, match="has no task"):
    next(batches)
