r"""Writes an audio collection as TFRecord shards for training and evaluation.

  python launch/make_shards.py --source=esc50 --input=/data/ESC-50 --out_dir=/data/shards/esc50 \
      --num_workers=8
  python launch/make_shards.py --source=audiocaps --input=audiocaps/train.csv \
      --audio_dir=audiocaps/audio --out_dir=/data/shards/audiocaps
  python launch/make_shards.py --source=fsd50k --input=FSD50K.ground_truth/dev.csv \
      --vocabulary=FSD50K.ground_truth/vocabulary.csv --audio_dir=FSD50K.dev_audio ...
  python launch/make_shards.py --source=audioset --input=balanced_train_segments.csv \
      --ontology=ontology.json --audio_dir=audioset/balanced ...

Corpus sources (clap_jax/data/corpora.py) read the published metadata file (--input) and find
the audio in --audio_dir; label corpora get captions from --caption_template.

Re-running the same command after an interruption completes the set without rewriting finished
shards. Unusable files are listed with their reason in {out_dir}/{prefix}-rejects.jsonl.
"""
from absl import app
from absl import flags

from clap_jax import audio, text
from clap_jax.data import corpora, sources
from clap_jax.data import writer

_SOURCE = flags.DEFINE_enum(
    "source", None, ["manifest", "esc50", "clotho", "folder", "audiocaps", "wavcaps", "macs",
                     "fsd50k", "audioset", "labels"], "Kind of collection.", required=True)
_INPUT = flags.DEFINE_string(
    "input", None, "manifest: the .csv/.jsonl; esc50: the dataset root (meta/, audio/); clotho: the "
    "captions CSV; folder: the folder of files named by label; audiocaps: {train,val,test}.csv; "
    "wavcaps: a *_final.json; macs: MACS.yaml; fsd50k: dev.csv or eval.csv; audioset: a "
    "*_segments.csv; labels: a CSV of file and label columns.", required=True)
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Folder of the shard set.", required=True)
_TOKENIZER = flags.DEFINE_string("tokenizer", str(text.GPT2_FILES),
                                 "Tokenizer folder or hub name (default: the shipped GPT-2 files; "
                                 "clap_jax/assets/bert-base-uncased for BERT models).")
_PREFIX = flags.DEFINE_string("prefix", "clips", "Shard file name prefix.")
_AUDIO_DIR = flags.DEFINE_string("audio_dir", None, "clotho and the corpus sources: the folder of "
                                 "the audio.")
_AUDIO_NAME = flags.DEFINE_string("audio_name", None, "audiocaps ('{youtube_id}.wav'), audioset "
                                  "('Y{ytid}.wav'): the audio file's name from a row's fields.")
_AUDIO_EXT = flags.DEFINE_string("audio_ext", ".flac", "wavcaps: extension of the audio files.")
_VOCABULARY = flags.DEFINE_string("vocabulary", None, "fsd50k: its vocabulary.csv.")
_SPLITS = flags.DEFINE_list("splits", None, "fsd50k: dev.csv splits to keep (train, val; "
                            "default all).")
_ONTOLOGY = flags.DEFINE_string("ontology", None, "audioset: its ontology.json.")
_FILE_COLUMN = flags.DEFINE_string("file_column", "filename", "labels: column of the audio file.")
_LABEL_COLUMN = flags.DEFINE_string("label_column", "label", "labels: column of the label(s).")
_LABEL_SEPARATOR = flags.DEFINE_string("label_separator", "", "labels: separator of several labels "
                                       "in one cell ('' : one label).")
_ESC50_META = flags.DEFINE_string("esc50_meta", "meta/esc50.csv", "esc50: metadata CSV under --input.")
_FOLDS = flags.DEFINE_list("folds", None, "esc50: folds to keep (default all).")
_CLASSES = flags.DEFINE_string("classes", None, "manifest, labels: file of class names, one a "
                               "line, for labels given by name (labels: default the sorted names).")
_ROOT = flags.DEFINE_string("root", None, "manifest: folder audio paths are relative to "
                            "(default the manifest's).")
_TASK = flags.DEFINE_string("task", None, "Task name of every item (manifest: where a row has none).")
_TEMPLATE = flags.DEFINE_string("caption_template", text.DEFAULT_TEMPLATE,
                                "esc50/folder/fsd50k/audioset/labels: caption made from label names.")
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
_NUM_TASKS = flags.DEFINE_integer("num_tasks", 1, "Machines splitting the collection (each runs "
                                  "this command with the same --out_dir and its --task_index).")
_TASK_INDEX = flags.DEFINE_integer("task_index", 0, "This machine's part, 0..num_tasks-1: the "
                                   "shards whose index is task_index mod num_tasks.")


def _required(flag, source: str) -> str:
  if not flag.value:
    raise app.UsageError(f"--source={source} needs --{flag.name}")
  return flag.value


def _corpus_items(source: str, task: str):
  """The corpus sources of clap_jax.data.corpora: `Item`s, or None for another source."""
  path, audio_dir = _INPUT.value, lambda: _required(_AUDIO_DIR, source)
  template = _TEMPLATE.value
  named = {"audio_name": _AUDIO_NAME.value} if _AUDIO_NAME.value else {}
  if source == "audiocaps":
    return corpora.audiocaps(path, audio_dir(), task=task, **named)
  if source == "wavcaps":
    return corpora.wavcaps(path, audio_dir(), audio_ext=_AUDIO_EXT.value, task=task)
  if source == "macs":
    return corpora.macs(path, audio_dir(), task=task)
  if source == "fsd50k":
    return corpora.fsd50k(path, audio_dir(), _required(_VOCABULARY, source), splits=_SPLITS.value,
                          template=template, task=task)
  if source == "audioset":
    return corpora.audioset(path, audio_dir(), _required(_ONTOLOGY, source), template=template,
                            task=task, **named)
  if source == "labels":
    classes = None
    if _CLASSES.value:
      with open(_CLASSES.value) as f:
        classes = [line.strip() for line in f if line.strip()]
    return corpora.labels(path, audio_dir(), file_column=_FILE_COLUMN.value,
                          label_column=_LABEL_COLUMN.value, separator=_LABEL_SEPARATOR.value,
                          classes=classes, template=template, task=task)
  return None


def _items():
  source, task = _SOURCE.value, _TASK.value
  corpus = _corpus_items(source, task or "")
  if corpus is not None:
    return corpus
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
  summary = writer.write_shards(_items(), _OUT_DIR.value, config, num_workers=_NUM_WORKERS.value,
                                num_tasks=_NUM_TASKS.value, task_index=_TASK_INDEX.value)
  if summary is None:
    print(f"task {_TASK_INDEX.value} of {_NUM_TASKS.value}: its shards are written; the summary "
          f"is written by the task that finds every shard done (or a re-run of any task)")
    return
  items = summary["items"]
  print(f"{summary['examples']} examples in {len(summary['shards'])} shards from "
        f"{items['accepted']} of {items['planned']} items; {items['rejected']} rejected "
        f"(see {_OUT_DIR.value}/{_PREFIX.value}-rejects.jsonl)")


if __name__ == "__main__":
  app.run(main)
