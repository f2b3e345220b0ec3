"""Small multi-task shard sets, for the multi-task data tests and the audio-pretraining tests
(conftest's `task_dirs` fixture writes them)."""
import json

import numpy as np
import soundfile

from clap_jax.data import sources, writer

RATE = 8000  # tiny synthetic clips: 0.1 to 0.3 s
# name, examples, classes, multi-label
TASKS = [("birds", 24, 5, False), ("digits", 12, 10, False), ("tags", 6, 7, True)]


def write(root, tokenizer_dir) -> dict:
  """One shard set (several shards) per task under `root`, written by the writer from seeded noise
  clips -> {task name: its folder}."""
  rng = np.random.default_rng(0)
  config = writer.WriterConfig(tokenizer=str(tokenizer_dir), sample_rate=RATE, max_seconds=0.5,
                               shard_mb=0.02)
  dirs = {}
  for name, count, classes, multi_label in TASKS:
    rows = []
    for i in range(count):
      path = root / "audio" / f"{name}_{i}.wav"
      path.parent.mkdir(exist_ok=True)
      soundfile.write(path, rng.uniform(-0.5, 0.5, rng.integers(800, 2400)), RATE, subtype="PCM_16")
      labels = sorted(set(rng.integers(0, classes, 3).tolist())) if multi_label else [i % classes]
      rows.append(dict(audio=path.name, captions=[f"{name} {i}"], labels=labels, task=name))
    manifest = root / f"{name}.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    dirs[name] = root / name
    summary = writer.write_shards(sources.manifest(manifest, root=root / "audio"), dirs[name], config,
                                  progress=False)
    assert summary["examples"] == count and len(summary["shards"]) >= 2
  return dirs
