"""Shards, training and evaluation on object storage: TensorFlow's in-memory ram:// file system
stands in for gs://. Shards are written, read, trained on for two steps (TensorBoard events on
ram://) and evaluated with the report on ram://; a pathlib left in the way would fold 'ram://x' into
a local folder 'ram:/x'. The checkpoints alone stay local: Orbax reaches gs:// through epath and
TensorStore, neither of which has TF's ram://, so they are redirected to a local folder."""
import json
import pathlib

import numpy as np
import tensorflow as tf

from clap_jax import data, embed, sharding, text, weights
from clap_jax.data import records, sources, writer
from clap_jax.eval import report, zeroshot
from clap_jax.models.clap import CLAP
from clap_jax.train import checkpoint, loop as train
from test_configs import CONFIGS, load
from test_learning_fsdd import WORDS

ZEROSHOT = pathlib.Path(__file__).resolve().parents[1] / "configs" / "zeroshot.py"


def _fsdd_items(root, takes, broken=None):
  items = [sources.Item(item_id=path.name, audio=str(path), task="fsdd",
                        captions=(f"a man saying the number {WORDS[int(path.name[0])]}",),
                        labels=(int(path.name[0]),))
           for path in sorted(root.glob("*_jackson_*.wav")) if int(path.stem.split("_")[2]) in takes]
  return items + ([sources.Item(item_id="broken", audio=str(broken), captions=("noise",))]
                  if broken else [])


def planned_ids(out_dir) -> set[str]:
  return {i for shard in records.read_json(f"{out_dir}/fsdd-plan.json")["shards"] for i in shard}


def test_shards_train_and_evaluate_on_ram(shared_data, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # where a folded 'ram:/...' would appear
  ram = f"ram://{tmp_path.name}"
  broken = tmp_path / "broken.wav"
  broken.write_bytes(b"RIFF\x00\x01 not audio")
  # One process: ram:// is this process's memory, which spawned writer workers would not share.
  config = writer.WriterConfig(tokenizer=str(text.GPT2_FILES), prefix="fsdd", sample_rate=16000,
                               shard_mb=0.2)
  summary = writer.write_shards(_fsdd_items(shared_data / "fsdd-dev", (5, 6), broken),
                                f"{ram}/shards/train", config, progress=False)
  writer.write_shards(_fsdd_items(shared_data / "fsdd-dev", (0,)), f"{ram}/shards/heldout",
                      config, progress=False)
  assert summary["items"] == dict(planned=21, accepted=20, rejected=1) and len(summary["shards"]) > 1
  written = set(tf.io.gfile.listdir(f"{ram}/shards/train"))
  assert {"fsdd-summary.json", "fsdd-rejects.jsonl", "fsdd-plan.json"} <= written
  assert set(summary["shards"]) <= written and not any(n.endswith(".partial") for n in written)
  with tf.io.gfile.GFile(records.rejects_path(f"{ram}/shards/train", "fsdd")) as f:
    assert json.loads(f.read())["item_id"] == "broken"

  train_pattern = f"{ram}/shards/train/*.tfrecord"
  shards = data.ShardSet.find(train_pattern)
  assert len(shards.files) == len(summary["shards"]) and all(f.startswith(ram) for f in shards.files)
  batch = next(data.train_batches(train_pattern, batch_size=4, clip_samples=16000, seed=0,
                                  process_index=0, process_count=1))
  assert batch["audio"].shape == (4, 16000) and np.abs(batch["audio"]).max() > 0
  _, clip = next(embed.shard_collection(train_pattern).local_items(0, 1))
  assert clip.rate == 16000 and clip.item_id in planned_ids(f"{ram}/shards/train")

  local = tmp_path / "checkpoints"
  directory = checkpoint._directory  # pylint: disable=protected-access
  monkeypatch.setattr(checkpoint, "_directory",
                      lambda workdir: directory(str(workdir).replace(ram, str(local))))
  c = load(next(p for p in CONFIGS if p.stem == "fsdd"), "smoke")
  c.input.kind, c.input.train = "shards", train_pattern
  c.evals.zeroshot.tasks = ("fsdd",)
  c.evals.zeroshot.sources.fsdd = {"kind": "shards", "pattern": f"{ram}/shards/heldout/*.tfrecord"}
  c.evals.zeroshot.templates.fsdd = ("a man saying the number {}",)
  results = train.main(c, f"{ram}/run")
  assert 0 <= results["fsdd/top1"] <= 1  # the evaluator read the held-out shards from ram://
  assert tf.io.gfile.glob(f"{ram}/run/events.out.tfevents.*")
  assert (local / "run" / "checkpoints" / "2").is_dir()

  e = load(ZEROSHOT, "tiny")
  e.tasks = ("fsdd",)
  e.sources.fsdd = {"kind": "shards", "pattern": f"{ram}/shards/heldout/*.tfrecord"}
  model_config, variables = weights.load(str(local / "run"), e.model)
  evaluator = zeroshot.from_settings(CLAP(model_config), e, sharding.make_mesh(e.mesh),
                                     tokenizer=text.for_model(model_config, e.tokenizer),
                                     progress=False)
  report.write(evaluator.evaluate(variables), f"{ram}/eval", model_name="run")
  assert {"results.json", "results.md", "fsdd_confusion.png", "paper.png"} <= set(
      tf.io.gfile.listdir(f"{ram}/eval"))
  with tf.io.gfile.GFile(f"{ram}/eval/results.json") as f:
    assert json.load(f)["tasks"]["fsdd"]["num_items"] == 10

  assert not [p for p in tmp_path.rglob("*") if "ram:" in p.name]
