"""launch/make_shards.py as a user runs it: a smoke run, and a run killed midway then completed."""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

from test_data_writer import read_examples

REPO = pathlib.Path(__file__).resolve().parents[1]


def _command(*flags):
  return [sys.executable, str(REPO / "launch/make_shards.py"), *flags]


def test_smoke_esc50_with_worker_processes(shared_data, gpt2_tokenizer_dir, tmp_path):
  result = subprocess.run(_command(
      "--source=esc50", f"--input={shared_data / 'audio/esc50'}", "--esc50_meta=meta/esc50_subset.csv",
      f"--out_dir={tmp_path}", f"--tokenizer={gpt2_tokenizer_dir}", "--shard_mb=1", "--num_workers=2"),
      capture_output=True, text=True, timeout=300, check=True)
  assert "6 examples in" in result.stdout and "0 rejected" in result.stdout
  summary = json.loads((tmp_path / "clips-summary.json").read_text())
  assert summary["examples"] == 6 and summary["tasks"] == ["esc50"] and len(summary["shards"]) >= 2
  assert sorted(e["labels"][0] for e in read_examples(tmp_path)) == [0, 5, 9, 11, 22, 43]


def test_killed_run_resumes_without_duplicates(shared_data, gpt2_tokenizer_dir, tmp_path):
  digits = tmp_path / "digits"
  digits.mkdir()
  for f in sorted((shared_data / "fsdd-dev").glob("*_nicolas_*.wav"))[:60]:
    shutil.copy(f, digits)
  (digits / "3_broken_0.wav").write_text("not audio")
  out = tmp_path / "out"
  command = _command("--source=folder", f"--input={digits}", f"--out_dir={out}",
                     f"--tokenizer={gpt2_tokenizer_dir}", "--shard_mb=0.05", "--num_workers=0")

  # Kill the writer as soon as its first shard is complete, mid-way through the set.
  process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 120
  while not list(out.glob("clips-*.tfrecord")) and process.poll() is None and time.time() < deadline:
    time.sleep(0.005)
  os.kill(process.pid, signal.SIGKILL)
  process.wait(timeout=60)
  planned = len(json.loads((out / "clips-plan.json").read_text())["shards"])
  assert 0 < len(list(out.glob("clips-*.tfrecord"))) < planned
  assert not (out / "clips-summary.json").exists()

  result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
  assert "60 examples" in result.stdout and "1 rejected" in result.stdout
  assert not list(out.glob("*.partial"))
  ids = [e["example_id"] for e in read_examples(out)]
  assert sorted(ids) == sorted(f.name for f in digits.iterdir() if "broken" not in f.name)
  summary = json.loads((out / "clips-summary.json").read_text())
  assert len(summary["shards"]) == planned and sum(summary["shards"].values()) == 60
  rejects = (out / "clips-rejects.jsonl").read_text()
  assert "3_broken_0.wav" in rejects and "not a readable audio file" in rejects
