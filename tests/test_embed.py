"""launch/embed.py and clap_jax.embed: a collection embedded exactly once across a kill -9 and a
resume, equal to ClapEncoder.audio_embeddings on the same files; unusable files skipped and listed."""
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile

from clap_jax import audio as audio_lib
from clap_jax import convert, embed, encode, index, weights
from clap_jax.data import sources
from clap_jax.models import config as model_config
import multidevice

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  """A random model at test size: 1 s clips at 16 kHz (Clotho's 15-30 s clips have many windows)."""
  config = model_config.small()
  directory = tmp_path_factory.mktemp("small_model")
  convert.save_variables(weights.random_variables(config, seed=3), directory, config)
  return directory


@pytest.fixture(scope="module")
def clap(model_dir):
  return encode.load("2023", model_dir)


def _committed(out: pathlib.Path) -> int:
  return sum(len(r["ids"]) + len(r["bad"]) for _, r in index.part_records(out)) if out.is_dir() else 0


def test_killed_and_resumed_run_embeds_every_clip_once(shared_data, model_dir, clap, tmp_path):
  items = list(sources.folder(shared_data))
  assert len(items) > 1000 and any(i.audio.endswith(".ogg") for i in items)
  out = tmp_path / "index"
  command = [sys.executable, str(REPO / "launch" / "embed.py"), f"--folder={shared_data}",
             f"--out={out}", f"--checkpoint={model_dir}", "--batch_size=32", "--part_size=50",
             "--workers=2"]
  first = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  deadline = time.time() + 600
  while _committed(out) < 150 and first.poll() is None and time.time() < deadline:
    time.sleep(0.05)
  first.send_signal(signal.SIGKILL)
  first.communicate()
  done_at_kill = _committed(out)
  assert 150 <= done_at_kill < len(items) - 100, "the kill must land mid-run"
  # What a kill can leave: a part's embeddings without its commit record, a half-written record.
  name = "part-00000-of-00001-999999999999"
  np.save(out / f"{name}.npy", np.zeros((3, clap.config.embed_dim), np.float32))
  (out / f"{name}.json.partial").write_text('{"ids": ["a", "b"')
  resumed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
  assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
  assert f"{done_at_kill} already done" in resumed.stdout
  assert f"embedded {len(items) - done_at_kill} clips" in resumed.stdout

  result = index.load(out)  # raises on an id stored twice
  assert sorted(result.ids) == sorted(i.item_id for i in items) and not result.bad
  expected = clap.audio_embeddings([i.audio for i in items])
  row = {i.item_id: k for k, i in enumerate(items)}
  np.testing.assert_allclose(result.embeddings, expected[[row[i] for i in result.ids]],
                             rtol=1e-5, atol=1e-6)


def test_unusable_files_are_listed_and_not_retried(shared_data, clap, model_dir, tmp_path):
  good = sorted((shared_data / "audio" / "esc50" / "audio").glob("*.wav"))[:3]
  (tmp_path / "noise.wav").write_bytes(os.urandom(2000))
  soundfile.write(tmp_path / "nan.wav", np.full(1600, np.nan, np.float32), 16000, subtype="FLOAT")
  soundfile.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
  paths = [str(good[0]), str(tmp_path / "missing.wav"), str(tmp_path / "noise.wav"), str(good[1]),
           str(tmp_path / "nan.wav"), str(tmp_path / "empty.wav"), str(good[2])]
  manifest = tmp_path / "clips.csv"
  manifest.write_text("audio\n" + "\n".join(paths) + "\n")
  collection = embed.ListCollection(list(sources.manifest(manifest, root="/")))
  out = tmp_path / "index"
  summary = embed.embed_collection(clap, collection, out, batch_size=8, part_size=2, progress=False)
  reasons = dict(summary.bad)
  assert summary.embedded == 3 and sorted(reasons) == sorted(paths[i] for i in (1, 2, 4, 5))
  assert "no such file" in reasons[paths[1]] and "not a readable audio file" in reasons[paths[2]]
  assert "NaN" in reasons[paths[4]] and "empty" in reasons[paths[5]]
  result = index.load(out)
  assert dict(result.bad) == reasons
  np.testing.assert_allclose(result.embeddings, clap.audio_embeddings(result.ids), rtol=1e-5,
                             atol=1e-6)
  again = embed.embed_collection(clap, collection, out, batch_size=8, progress=False)
  assert (again.embedded, again.already_done, again.bad) == (0, len(paths), [])
  other = encode.ClapEncoder(clap.config, weights.random_variables(clap.config, seed=4),
                             clap.tokenizer)
  with pytest.raises(ValueError, match="another model"):
    embed.embed_collection(other, collection, out, progress=False)


def test_devices_and_processes_share_the_collection(shared_data, model_dir, clap, tmp_path):
  """Two processes (run one after the other) on two devices each: every clip once, the same
  embeddings as one process on one device."""
  audio = shared_data / "audio"
  files = (sorted((audio / "alsa").glob("*.wav"))
           + sorted((audio / "clotho" / "audio").glob("*.wav"))[:2]
           + sorted((audio / "esc50" / "audio").glob("*.wav"))[:3])
  out = tmp_path / "index"
  result = multidevice.run(f"""
      import json
      import jax
      from clap_jax import embed, encode
      from clap_jax.data.items import Item
      clap = encode.load("2023", {str(model_dir)!r})
      files = {[str(f) for f in files]!r}
      collection = embed.ListCollection([Item(f, f) for f in files])
      counts = [embed.embed_collection(clap, collection, {str(out)!r}, batch_size=4, part_size=3,
                                       process_index=p, process_count=2, progress=False).embedded
                for p in (0, 1)]
      print(json.dumps({{"devices": jax.local_device_count(), "counts": counts}}))
      """, devices=2)
  assert result == {"devices": 2, "counts": [len(files) // 2, len(files) - len(files) // 2]}
  stored = index.load(out)
  assert sorted(stored.ids) == sorted(str(f) for f in files)
  np.testing.assert_allclose(stored.embeddings, clap.audio_embeddings(stored.ids), rtol=1e-5,
                             atol=1e-6)


def test_shards_are_embedded_as_whole_clips(shared_data, clap, tmp_path):
  """A clip the writer cut into several records is one item: the mean over all its records'
  windows, as ClapEncoder embeds each record (weighted by their window counts)."""
  from clap_jax.data import records, writer  # pylint: disable=g-import-not-at-top (TensorFlow)
  clotho = shared_data / "audio" / "clotho"
  items = list(sources.clotho(clotho / "captions.csv", clotho / "audio"))[:3]
  rate = clap.config.audio.sample_rate
  writer.write_shards(items, tmp_path / "shards",
                      writer.WriterConfig(sample_rate=rate, max_seconds=10.0, shard_mb=0.3),
                      progress=False)
  pattern = str(tmp_path / "shards" / "clips-*.tfrecord")
  summary = embed.embed_collection(clap, embed.shard_collection(pattern), tmp_path / "index",
                                   batch_size=8, part_size=2, progress=False)
  assert (summary.embedded, summary.bad) == (3, [])
  stored = index.load(tmp_path / "index")
  assert sorted(stored.ids) == sorted(i.item_id for i in items)
  pieces = {}
  for path in sorted((tmp_path / "shards").glob("clips-*.tfrecord")):
    for clip_id, audio, _, _ in records.read_shard(str(path)):
      pieces.setdefault(clip_id, []).append(audio)
  assert all(len(p) > 1 for p in pieces.values())  # 15-30 s clips, 10 s records
  clip = clap.config.audio.clip_samples
  for clip_id, embedding in zip(stored.ids, stored.embeddings):
    counts = [len(audio_lib.window_starts(len(p), clip)) if len(p) > clip else 1
              for p in pieces[clip_id]]
    per_piece = clap.audio_embeddings([(p, rate) for p in pieces[clip_id]])
    np.testing.assert_allclose(embedding, np.average(per_piece, axis=0, weights=counts),
                               rtol=1e-5, atol=1e-6)
