"""The shard writer: real clips round-trip, long clips are cut, bad input is rejected with a reason."""
import itertools
import json
import pathlib

import numpy as np
import pytest
import soundfile
import tensorflow as tf

from clap_jax import audio
from clap_jax.data import records, sources, writer

RATE = 44100


def read_examples(out_dir, prefix="clips") -> list[dict]:
  """Every record of a shard set, decoded to numpy."""
  files = sorted(pathlib.Path(out_dir).glob(f"{prefix}-*-of-*.tfrecord"))
  examples = []
  for serialized in tf.data.TFRecordDataset([str(f) for f in files]):
    f = tf.io.parse_single_example(serialized, records.PARSE_SPEC)
    examples.append(dict(
        audio=np.frombuffer(f["audio"].numpy(), "<i2").astype(np.float32) / records.PCM_SCALE,
        audio_length=int(f["audio_length"]),
        captions=[c.decode() for c in f["captions"].numpy()],
        input_ids=f["input_ids"].numpy().reshape(-1, 77),
        attention_mask=f["attention_mask"].numpy().reshape(-1, 77),
        labels=list(f["labels"].numpy()), task=f["task"].numpy().decode(),
        example_id=f["example_id"].numpy().decode()))
  return examples


def assert_restarts_match(batches, total: int = 12, starts=(3, 5, 10)) -> list[dict]:
  """`batches(start_step=s)` resumed at each of `starts` equals the uninterrupted stream from s on;
  -> the first `total` batches of the uninterrupted stream."""
  reference = list(itertools.islice(batches(), total))
  for start in starts:
    resumed = list(itertools.islice(batches(start_step=start), total - start))
    for a, b in zip(reference[start:], resumed):
      for key in a:
        np.testing.assert_array_equal(a[key], b[key])
  return reference


@pytest.fixture(scope="module")
def tokenizer(gpt2_tokenizer_dir):
  from clap_jax import text
  return text.Tokenizer.load(str(gpt2_tokenizer_dir))


def _config(gpt2_tokenizer_dir, **overrides):
  return writer.WriterConfig(tokenizer=str(gpt2_tokenizer_dir), **overrides)


def test_real_clips_round_trip(shared_data, gpt2_tokenizer_dir, tokenizer, tmp_path):
  root = shared_data / "audio"
  rows = [  # 44.1 kHz, 48 kHz, 22.05 kHz Ogg and stereo sources, one with two captions
      dict(audio="esc50/audio/1-56234-A-9.wav", captions=["a crow caws"], labels=[9], task="esc50"),
      dict(audio="alsa/Front_Left.wav", captions=["a voice says front left", "speech"], labels=[1]),
      dict(audio="librosa/456440__inspectorj__bird-whistling-robin-single-13.ogg",
           captions=["a robin sings"]),
      dict(audio="freesound_cc0/149024__foxen10__horse_whinny.wav", captions=["a horse whinnies"]),
  ]
  manifest = tmp_path / "manifest.jsonl"
  manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
  out = tmp_path / "shards"
  summary = writer.write_shards(sources.manifest(manifest, root=root), out,
                                _config(gpt2_tokenizer_dir, shard_mb=0.5))

  examples = {e["example_id"]: e for e in read_examples(out)}
  assert len(examples) == summary["examples"] == sum(summary["shards"].values()) == len(rows)
  assert len(summary["shards"]) > 1
  assert summary["items"] == dict(planned=4, accepted=4, rejected=0)
  for row in rows:
    example = examples[row["audio"]]
    source = audio.load_audio(root / row["audio"], RATE)
    assert example["audio_length"] == source.shape[0] == example["audio"].shape[0]
    # int16 quantisation: half a step of 1/32768, where the source stays within [-1, 1)
    np.testing.assert_allclose(example["audio"], np.clip(source, -1, 1 - 2**-15), rtol=0,
                               atol=0.5 / 32768 + 1e-7)
    assert example["captions"] == row["captions"]
    tokens = tokenizer(row["captions"])
    np.testing.assert_array_equal(example["input_ids"], tokens["input_ids"])
    np.testing.assert_array_equal(example["attention_mask"], tokens["attention_mask"])
    assert example["labels"] == row.get("labels", [])
    assert example["task"] == row.get("task", "")


def test_16_bit_source_at_the_stored_rate_is_exact(shared_data, gpt2_tokenizer_dir, tmp_path):
  path = shared_data / "audio/esc50/audio/3-157695-A-0.wav"
  items = [sources.Item(item_id="dog", audio=str(path), captions=("a dog barks",))]
  writer.write_shards(items, tmp_path, _config(gpt2_tokenizer_dir), progress=False)
  pcm, rate = soundfile.read(path, dtype="int16")
  assert rate == RATE
  np.testing.assert_array_equal(read_examples(tmp_path)[0]["audio"], pcm / 32768)


@pytest.mark.parametrize("long_mode", ["windows", "random"])
def test_long_clip_is_cut(shared_data, gpt2_tokenizer_dir, tmp_path, long_mode):
  path = shared_data / "audio/clotho/audio/Tenerife_bazaar_2.wav"  # 15.66 s
  items = [sources.Item(item_id="bazaar", audio=str(path), captions=("a busy market",))]
  config = _config(gpt2_tokenizer_dir, max_seconds=4.0, long_mode=long_mode)
  summary = writer.write_shards(items, tmp_path, config, progress=False)
  examples = read_examples(tmp_path)
  source = records.to_pcm16(audio.load_audio(path, RATE)) / 32768
  if long_mode == "windows":
    expected = audio.clip_windows(source, 4 * RATE, "windows")
    assert [e["example_id"] for e in examples] == [f"bazaar#{k}" for k in range(4)]
    for example, window in zip(examples, expected):
      np.testing.assert_array_equal(example["audio"], window)
  else:
    (example,) = examples
    assert example["example_id"] == "bazaar" and example["audio_length"] == 4 * RATE
    starts = np.flatnonzero(np.all(
        np.lib.stride_tricks.sliding_window_view(source, 64) == example["audio"][:64], axis=1))
    assert len(starts) == 1
    np.testing.assert_array_equal(example["audio"], source[starts[0]:starts[0] + 4 * RATE])
  assert summary["examples"] == len(examples)
  assert summary["seconds"]["source"] == pytest.approx(15.66, abs=0.01)


def test_bad_inputs_are_rejected_with_reasons(shared_data, gpt2_tokenizer_dir, tmp_path):
  good = shared_data / "audio/esc50/audio/2-100648-A-43.wav"
  bad = tmp_path / "bad"
  bad.mkdir()
  corrupt = bytearray(good.read_bytes()[:4000])
  corrupt[8:16] = b"GARBAGE!"  # breaks the RIFF/WAVE header
  (bad / "corrupt.wav").write_bytes(bytes(corrupt))
  (bad / "empty.wav").write_bytes(b"")
  (bad / "text.wav").write_text("this is not audio\n")
  soundfile.write(bad / "nan.wav", np.full(4410, np.nan, np.float32), RATE, subtype="FLOAT")
  soundfile.write(bad / "short.wav", np.zeros(441, np.float32), RATE)  # 10 ms
  paths = dict(corrupt=bad / "corrupt.wav", empty=bad / "empty.wav", text=bad / "text.wav",
               missing=bad / "missing.wav", nan=bad / "nan.wav", short=bad / "short.wav",
               caption=good, good=good)
  items = [sources.Item(item_id=name, audio=str(path),
                        captions=(" ",) if name == "caption" else (f"{name} sound",))
           for name, path in paths.items()]
  summary = writer.write_shards(items, tmp_path / "out", _config(gpt2_tokenizer_dir), progress=False)

  rejects = [json.loads(line) for line in (tmp_path / "out/clips-rejects.jsonl").read_text().splitlines()]
  reasons = {r["item_id"]: r["reason"] for r in rejects}
  assert set(reasons) == set(paths) - {"good"}
  assert "not a readable audio file" in reasons["corrupt"]
  assert "not a readable audio file" in reasons["empty"] or "empty" in reasons["empty"]
  assert "not a readable audio file" in reasons["text"]
  assert "no such file" in reasons["missing"]
  assert "NaN" in reasons["nan"]
  assert "too short" in reasons["short"]
  assert "empty caption" in reasons["caption"]
  for name in ("corrupt", "empty", "text", "missing", "nan", "short"):
    assert str(paths[name]) in reasons[name]
  assert summary["items"] == dict(planned=8, accepted=1, rejected=7)
  assert [e["example_id"] for e in read_examples(tmp_path / "out")] == ["good"]


def test_rerun_skips_finished_shards_and_refuses_another_plan(shared_data, gpt2_tokenizer_dir, tmp_path):
  files = sorted((shared_data / "fsdd-dev").glob("*_jackson_0.wav"))
  config = _config(gpt2_tokenizer_dir, shard_mb=0.02)
  items = [sources.Item(item_id=f.name, audio=str(f), captions=("a digit",)) for f in files]
  summary = writer.write_shards(items, tmp_path, config, progress=False)
  shards = sorted(tmp_path.glob("clips-*.tfrecord"))
  assert len(shards) == len(summary["shards"]) > 2
  first_written = {s: s.stat().st_mtime_ns for s in shards}
  shards[1].unlink()  # as if the run had stopped before this shard
  again = writer.write_shards(items, tmp_path, config, progress=False)
  assert again["shards"] == summary["shards"]
  for s in shards[:1] + shards[2:]:
    assert s.stat().st_mtime_ns == first_written[s]
  ids = [e["example_id"] for e in read_examples(tmp_path)]
  assert sorted(ids) == sorted(f.name for f in files)
  with pytest.raises(ValueError, match="other items"):
    writer.write_shards(items[:-1], tmp_path, config, progress=False)
  with pytest.raises(ValueError, match="another config"):
    writer.write_shards(items, tmp_path, _config(gpt2_tokenizer_dir, shard_mb=1.0), progress=False)


def test_sources_read_their_layouts(shared_data):
  esc = list(sources.esc50(shared_data / "audio/esc50", meta="meta/esc50_subset.csv", folds=[2]))
  assert [(i.item_id, i.labels, i.captions) for i in esc] == [
      ("2-100648-A-43.wav", (43,), ("this is a sound of car horn",)),
      ("2-76408-D-22.wav", (22,), ("this is a sound of clapping",))]
  clotho = list(sources.clotho(shared_data / "audio/clotho/captions.csv",
                               shared_data / "audio/clotho/audio"))
  assert len(clotho) == 7 and all(len(i.captions) == 5 for i in clotho)
  assert all(pathlib.Path(i.audio).exists() for i in clotho)
  digits = list(sources.labelled_folder(shared_data / "fsdd-dev"))
  assert len(digits) == 1000
  assert sources.classes_of_folder(shared_data / "fsdd-dev") == [str(d) for d in range(10)]
  seven = next(i for i in digits if i.item_id == "7_jackson_3.wav")
  assert seven.labels == (7,) and seven.captions == ("this is a sound of 7",)


def test_csv_manifest_with_named_labels(tmp_path):
  (tmp_path / "m.csv").write_text(
      "audio,caption_1,caption_2,labels,task\n"
      "a.wav,a dog,,dog;cat,pets\n"
      "b.wav,rain,rain on a roof,,\n")
  items = list(sources.manifest(tmp_path / "m.csv", classes=["cat", "dog"], task="default"))
  assert items[0] == sources.Item(item_id="a.wav", audio=str(tmp_path / "a.wav"),
                                  captions=("a dog",), labels=(1, 0), task="pets")
  assert items[1].captions == ("rain", "rain on a roof") and items[1].task == "default"
  with pytest.raises(ValueError, match="pass `classes`"):
    list(sources.manifest(tmp_path / "m.csv"))
