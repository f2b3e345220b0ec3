"""The tf.data reader: batch fields, deterministic restarts, disjoint process shares, exact eval passes."""
import itertools

import jax
import numpy as np
import pytest

from clap_jax import audio
from clap_jax import data
from clap_jax.data import sources, writer
from test_data_writer import assert_restarts_match, read_examples

CLIP = 44100  # a 1 s model clip keeps batches small; the FSDD digits are shorter, ESC-50 longer


@pytest.fixture(scope="module")
def shard_dir(shared_data, gpt2_tokenizer_dir, tmp_path_factory):
  """6 ESC-50 clips (labelled, task 'esc50'), 30 spoken digits (labelled) and a 15.7 s Clotho clip
  cut into two 10 s windows with 5 captions each: 38 examples in several shards."""
  root = shared_data / "audio"
  items = list(sources.esc50(root / "esc50", meta="meta/esc50_subset.csv"))
  items += list(sources.labelled_folder(shared_data / "fsdd-dev"))[::34][:30]
  items += [i for i in sources.clotho(root / "clotho/captions.csv", root / "clotho/audio")
            if i.item_id == "Tenerife_bazaar_2.wav"]
  out = tmp_path_factory.mktemp("shards")
  config = writer.WriterConfig(tokenizer=str(gpt2_tokenizer_dir), shard_mb=0.6)
  summary = writer.write_shards(items, out, config, progress=False)
  assert summary["examples"] == 38 and len(summary["shards"]) >= 5
  return out


@pytest.fixture(scope="module")
def stored(shard_dir):
  return {e["example_id"]: e for e in read_examples(shard_dir)}


def _pattern(shard_dir):
  return str(shard_dir / "clips-*.tfrecord")


def _train(shard_dir, **kw):
  kw = dict(batch_size=8, clip_samples=CLIP, seed=1, process_index=0, process_count=1) | kw
  return data.train_batches(_pattern(shard_dir), **kw)


def test_train_batch_fields(shard_dir, stored):
  batch = next(_train(shard_dir))
  assert batch["audio"].shape == (8, CLIP) and batch["audio"].dtype == np.float32
  assert batch["input_ids"].shape == batch["attention_mask"].shape == (8, 77)
  assert batch["input_ids"].dtype == np.int32
  assert batch["label"].shape == batch["task"].shape == (8,)
  for i, example_id in enumerate(batch["example_id"]):
    example = stored[example_id.decode()]
    source = example["audio"]
    if source.shape[0] <= CLIP:  # repeat-padded like msclap
      np.testing.assert_array_equal(batch["audio"][i], audio.repeat_pad(source, CLIP))
      assert batch["audio_length"][i] == source.shape[0]
    else:  # a window of the stored clip
      windows = np.lib.stride_tricks.sliding_window_view(source, CLIP)
      assert np.any(np.all(windows[:, :32] == batch["audio"][i, :32], axis=1))
      assert batch["audio_length"][i] == CLIP
    assert any(np.array_equal(batch["input_ids"][i], ids) for ids in example["input_ids"])
    assert batch["label"][i] == (example["labels"] or [-1])[0]
    assert batch["task"][i] == (0 if example["task"] == "esc50" else -1)


def test_train_stream_restarts_at_a_step(shard_dir):
  # 38 examples at 8 a step: epochs end inside steps 4 and 9
  reference = assert_restarts_match(lambda **kw: _train(shard_dir, **kw))
  epoch = [i for b in reference[:4] for i in b["example_id"]] + list(reference[4]["example_id"][:6])
  assert len(set(epoch)) == 38  # every example once per epoch
  other_seed = next(_train(shard_dir, seed=2))
  assert list(other_seed["example_id"]) != list(reference[0]["example_id"])


@pytest.mark.parametrize("process_count", [2, 4])
@pytest.mark.parametrize("files", ["all", "three"])  # whole shards per process, or record sharding
def test_train_processes_see_disjoint_shares(shard_dir, process_count, files):
  shards = data.ShardSet.find(_pattern(shard_dir))
  chosen = list(shards.files) if files == "all" else list(shards.files[:3])
  seen = []
  for index in range(process_count):
    count = data.ShardSet.find(chosen).share(index, process_count)[2]
    batches = data.train_batches(chosen, batch_size=4 * process_count, clip_samples=CLIP, seed=0,
                                 process_index=index, process_count=process_count)
    ids = [i for b in itertools.islice(batches, -(-count // 4)) for i in b["example_id"]][:count]
    assert len(set(ids)) == count
    seen.append(set(ids))
  union = set().union(*seen)
  assert sum(map(len, seen)) == len(union)
  expected = sum(c for f, c in zip(shards.files, shards.counts) if f in chosen)
  assert len(union) == expected


@pytest.mark.parametrize("process_count", [1, 2, 4])
@pytest.mark.parametrize("files", ["all", "three"])
def test_eval_sees_every_example_once(shard_dir, stored, process_count, files):
  shards = data.ShardSet.find(_pattern(shard_dir))
  chosen = list(shards.files) if files == "all" else list(shards.files[:3])
  expected = sum(c for f, c in zip(shards.files, shards.counts) if f in chosen)
  ids, steps = [], set()
  for index in range(process_count):
    batches = list(data.eval_batches(chosen, batch_size=4 * process_count, clip_samples=CLIP,
                                     process_index=index, process_count=process_count))
    steps.add(len(batches))
    for b in batches:
      assert b["audio"].shape == (4, CLIP)
      ids += list(b["example_id"][b["mask"]])
      assert not b["audio"][~b["mask"]].any() and not b["example_id"][~b["mask"]].any()
  assert len(steps) == 1  # all processes step together
  assert len(ids) == len(set(ids)) == expected
  assert set(ids) <= {k.encode() for k in stored}


def test_eval_clips_and_all_captions(shard_dir, stored):
  batches = list(data.eval_batches(_pattern(shard_dir), batch_size=8, clip_samples=CLIP,
                                   process_index=0, process_count=1))
  rows = 0
  for b in batches:
    assert b["audio"].shape == (8, CLIP) and b["captions_input_ids"].shape == (8, 5, 77)
    for i in np.flatnonzero(b["mask"]):
      example = stored[b["example_id"][i].decode()]
      np.testing.assert_array_equal(b["audio"][i], audio.repeat_pad(example["audio"][:CLIP], CLIP))
      c = len(example["captions"])
      assert b["caption_mask"][i].sum() == c
      np.testing.assert_array_equal(b["captions_input_ids"][i, :c], example["input_ids"])
      np.testing.assert_array_equal(b["input_ids"][i], example["input_ids"][0])
      rows += 1
  assert rows == 38


def test_multi_hot_labels(shard_dir, stored):
  batch = next(_train(shard_dir, num_labels=50))
  assert batch["label"].shape == (8, 50) and batch["label"].dtype == np.float32
  for row, example_id in zip(batch["label"], batch["example_id"]):
    labels = stored[example_id.decode()]["labels"]
    assert set(np.flatnonzero(row)) == set(labels)


def test_to_global_makes_jax_arrays(shard_dir):
  batch = next(_train(shard_dir))
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
  out = data.to_global(batch, mesh)
  assert isinstance(out["audio"], jax.Array) and out["audio"].shape == (8, CLIP)
  np.testing.assert_array_equal(np.asarray(out["input_ids"]), batch["input_ids"])
  assert isinstance(out["example_id"], np.ndarray)  # text stays per-process


def test_bad_arguments_fail_loudly(shard_dir, tmp_path):
  with pytest.raises(FileNotFoundError, match="no shard"):
    data.ShardSet.find(str(tmp_path / "*.tfrecord"))
  with pytest.raises(ValueError, match="divisible"):
    _train(shard_dir, batch_size=6, process_count=4)
  with pytest.raises(ValueError, match="task_names"):
    _train(shard_dir, task_names=["other"])
