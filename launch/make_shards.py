r"""Writes an audio collection as TFRecord shards for training and evaluation.

  python launch/make_shards.py --source=esc50 --input=/data/ESC-50 --out_dir=/data/shards/esc50 \
      --num_workers=8

Re-running the same command after an interruption completes the set without rewriting finished
shards. Unusable files are listed with their reason in {out_dir}/{prefix}-rejects.jsonl.
"""
from absl import app
from absl import flags

from clap_jax import audio, text
from clap_jax.data import sources
from clap_jax.data import writer

_SOURCE = flags.DEFINE_enum("source", None, ["manifest", "esc50", "clotho", "folder"],
                            "Kind of collection.", required=True)
_INPUT = flags.DEFINE_string(
    "input", None, "manifest: the .csv/.jsonl; esc50: the dataset root (meta/, audio/); clotho: the "
    "captions CSV; folder: the folder of files named by label.", required=True)
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Folder of the shard set.", required=True)
_TOKENIZER = flags.DEFINE_string("tokenizer", str(text.GPT2_FILES),
                                 "Tokenizer folder or hub name (default: the shipped GPT-2 files; "
                                 "clap_jax/assets/bert-base-uncased for BERT models).")
_PREFIX = flags.DEFINE_string("prefix", "clips", "Shard file name prefix.")
_AUDIO_DIR = flags.DEFINE_string("audio_dir", None, "clotho: the folder of its audio.")
_ESC50_META = flags.DEFINE_string("esc50_meta", "meta/esc50.csv", "esc50: metadata CSV under --input.")
_FOLDS = flags.DEFINE_list("folds", None, "esc50: folds to keep (default all).")
_CLASSES = flags.DEFINE_string("classes", None, "manifest: file of class names, one a line, for "
                               "labels given by name.")
_ROOT = flags.DEFINE_string("root", None, "manifest: folder audio paths are relative to "
                            "(default the manifest's).")
_TASK = flags.DEFINE_string("task", None, "Task name of every item (manifest: where a row has none).")
_TEMPLATE = flags.DEFINE_string("caption_template", text.DEFAULT_TEMPLATE,
                                "esc50/folder: caption made from a label name.")
_LABEL_PATTERN = flags.DEFINE_string("label_pattern", r"^([^_]+)_",
                                     "folder: regex whose group 1 is the label in a file name.")
_SAMPLE_RATE = flags.DEFINE_integer("sample_rate", 44100, "Stored sample rate.")
_MAX_SECONDS = flags.DEFINE_float("max_seconds", 10.0, "Longest stored example.")
_MIN_SECONDS = flags.DEFINE_float("min_seconds", 0.1, "Shorter clips are rejected.")
_LONG_MODE = flags.DEFINE_enum("long_mode", "windows", audio.LONG_MODES,
                               "A longer clip becomes several examples or one seeded random window.")
_SHARD_MB = flags.DEFINE_float("shard_mb", 256.0, "Target shard size.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the item order and of random windows.")
_NUM_WORKERS = flags.DEFINE_integer("num_workers", 4, "Writer processes (0: this one).")


def _items():
  source, task = _SOURCE.value, _TASK.value
  if source == "manifest":
    classes = None
    if _CLASSES.value:
      with open(_CLASSES.value) as f:
        classes = [line.strip() for line in f if line.strip()]
    return sources.manifest(_INPUT.value, root=_ROOT.value, classes=classes, task=task or "")
  if source == "esc50":
    folds = [int(f) for f in _FOLDS.value] if _FOLDS.value else None
    return sources.esc50(_INPUT.value, meta=_ESC50_META.value, folds=folds, template=_TEMPLATE.value,
                         task="esc50" if task is None else task)
  if source == "clotho":
    if not _AUDIO_DIR.value:
      raise app.UsageError("--source=clotho needs --audio_dir")
    return sources.clotho(_INPUT.value, _AUDIO_DIR.value, task=task or "")
  return sources.labelled_folder(_INPUT.value, label_pattern=_LABEL_PATTERN.value,
                                 template=_TEMPLATE.value, task=task or "")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config = writer.WriterConfig(
      tokenizer=_TOKENIZER.value, prefix=_PREFIX.value, sample_rate=_SAMPLE_RATE.value,
      max_seconds=_MAX_SECONDS.value, min_seconds=_MIN_SECONDS.value, long_mode=_LONG_MODE.value,
      shard_mb=_SHARD_MB.value, seed=_SEED.value)
  summary = writer.write_shards(_items(), _OUT_DIR.value, config, num_workers=_NUM_WORKERS.value)
  items = summary["items"]
  print(f"{summary['examples']} examples in {len(summary['shards'])} shards from "
        f"{items['accepted']} of {items['planned']} items; {items['rejected']} rejected "
        f"(see {_OUT_DIR.value}/{_PREFIX.value}-rejects.jsonl)")


if __name__ == "__main__":
  app.run(main)
