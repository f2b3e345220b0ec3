"""Several machines splitting one collection (`num_tasks`, `task_index`): disjoint parts of the
same plan whose union is the one-machine run, record for record."""
import pathlib
import shutil
import subprocess
import sys

import pytest

from clap_jax.data import records, sources, writer
from test_data_writer import read_examples

REPO = pathlib.Path(__file__).resolve().parents[1]


def _items(shared_data, tmp_path):
  files = sorted((shared_data / "fsdd-dev").glob("*_jackson_1.wav"))[:8] + sorted(
      (shared_data / "fsdd-dev").glob("*_nicolas_2.wav"))[:8]
  broken = tmp_path / "3_broken_0.wav"
  broken.write_text("not audio")
  return [sources.Item(item_id=f.name, audio=str(f), captions=(f"the digit {f.name[0]}",),
                       labels=(int(f.name[0]),)) for f in [*files, broken]]


def _summary(out_dir):
  summary = records.read_json(records.summary_path(out_dir, "clips"))
  del summary["seconds"]["writing"]  # wall time
  return summary


def test_three_tasks_equal_one_machine(shared_data, gpt2_tokenizer_dir, tmp_path):
  items = _items(shared_data, tmp_path)
  config = writer.WriterConfig(tokenizer=str(gpt2_tokenizer_dir), shard_mb=0.06)
  one = tmp_path / "one"
  writer.write_shards(items, one, config, progress=False)
  shards = sorted(p.name for p in one.glob("clips-*.tfrecord"))
  assert len(shards) >= 6  # every task has shards to write

  split = tmp_path / "split"
  for task in range(3):
    summary = writer.write_shards(items, split, config, progress=False, num_tasks=3, task_index=task)
    written = sorted(p.name for p in split.glob("clips-*.tfrecord"))
    # Task t wrote exactly the shards t mod 3 (added to the earlier tasks'); only the last sums up.
    assert written == sorted(n for i, n in enumerate(shards) if i % 3 <= task)
    assert (summary is None) == (task < 2)
  for name in shards:  # the same bytes: same plan, same items in each shard, same encoding
    assert (split / name).read_bytes() == (one / name).read_bytes(), name
  assert read_examples(split) and [e["example_id"] for e in read_examples(split)] == [
      e["example_id"] for e in read_examples(one)]
  assert _summary(split) == _summary(one)
  rejects = [pathlib.Path(records.rejects_path(d, "clips")).read_text() for d in (split, one)]
  assert rejects[0] == rejects[1] and "3_broken_0.wav" in rejects[0]


def test_task_index_out_of_range_is_refused(gpt2_tokenizer_dir, tmp_path):
  config = writer.WriterConfig(tokenizer=str(gpt2_tokenizer_dir))
  with pytest.raises(ValueError, match="task_index 3: need 0 <= task_index < num_tasks"):
    writer.write_shards([], tmp_path, config, num_tasks=3, task_index=3)


def test_make_shards_task_flags(shared_data, gpt2_tokenizer_dir, tmp_path):
  digits = tmp_path / "digits"
  digits.mkdir()
  for f in sorted((shared_data / "fsdd-dev").glob("*_jackson_4.wav"))[:6]:
    shutil.copy(f, digits)
  out = tmp_path / "out"
  outputs = [subprocess.run(
      [sys.executable, str(REPO / "launch/make_shards.py"), "--source=folder", f"--input={digits}",
       f"--out_dir={out}", f"--tokenizer={gpt2_tokenizer_dir}", "--shard_mb=0.02",
       "--num_workers=0", "--num_tasks=2", f"--task_index={task}"],
      capture_output=True, text=True, timeout=300, check=True).stdout for task in (1, 0)]
  assert "task 1 of 2: its shards are written" in outputs[0]
  assert "6 examples in" in outputs[1] and "0 rejected" in outputs[1]
