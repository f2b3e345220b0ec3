"""The published folder layouts of the evaluation datasets: per layout, a reader of its metadata
files (as published: their names, columns and nesting) -> `Item`s pointing at the audio files.

Each reader's docstring gives the files it expects and the public loader or release its format
was checked against. `READERS[layout](task, root, aliases=..., **options)`; clap_jax.eval.sources
resolves the root and the options named `*_path` from the config's `data_dir`, and checks that
each listed file exists (but for `ABSENT_IS_UNUSABLE`).
"""
import csv
import json
import pathlib

from clap_jax.data.items import Item
from clap_jax.eval.sources import SourceError, label_index


# AudioSet's (and DCASE 2017 Task 4's, AudioCaps') lists name YouTube segments, some of which can
# no longer be downloaded: an absent file is an unusable clip (named in the report), not an error.
ABSENT_IS_UNUSABLE = {"audioset", "dcase17_task4", "audiocaps"}


def _csv_rows(path: pathlib.Path, columns: tuple[str, ...]) -> list[dict]:
  """The rows of a CSV with a header naming at least `columns`."""
  if not path.is_file():
    raise SourceError(f"{path} is absent")
  with open(path, newline="") as f:
    reader = csv.DictReader(f)
    missing = [c for c in columns if c not in (reader.fieldnames or ())]
    if missing:
      raise SourceError(f"{path}: no column {missing} (columns: {reader.fieldnames})")
    return list(reader)


def _json(path: pathlib.Path, absent: str = "is absent"):
  """The JSON value in `path`; absent or not JSON is malformed data."""
  if not path.is_file():
    raise SourceError(f"{path} {absent}")
  try:
    return json.loads(path.read_text())
  except json.JSONDecodeError as e:
    raise SourceError(f"{path}: not JSON: {e}") from None


def _esc50(task, root, *, aliases, meta="meta/esc50.csv", folds=None):
  """ESC-50: `meta` (filename, fold, target, category, ...) and audio/; all folds by default."""
  for row in _csv_rows(root / meta, ("filename", "fold", "category")):
    if folds is None or int(row["fold"]) in folds:
      label = label_index(task, row["category"], aliases, row["filename"])
      yield Item(row["filename"], str(root / "audio" / row["filename"]), labels=(label,))


def _esc50_actions(task, root, *, aliases, annotations_path, vote_threshold: float,
                   meta="meta/esc50.csv"):
  """ESC-50 Actions: ESC-50's `meta` (which clips; filename, fold, ...) and audio/, and the
  annotation file actionvector_one_per_audiofile_sum.csv (filename, fold, target, category, then
  one column per action: the votes of the clip's listeners, summed). A clip's positive actions are
  those with at least `vote_threshold` votes; a clip may have none."""
  del aliases  # the columns are the labels
  if not annotations_path.is_file():
    raise SourceError(f"{annotations_path} is absent")
  with open(annotations_path, newline="") as f:
    reader = csv.DictReader(f)
    columns, rows = tuple(reader.fieldnames or ())[4:], list(reader)
  if columns != task.labels:
    raise SourceError(f"{annotations_path}: action columns {columns} are not {task.name}'s labels")
  votes = {row["filename"]: row for row in rows}
  for row in _csv_rows(root / meta, ("filename",)):
    name = row["filename"]
    if name not in votes:
      raise SourceError(f"{annotations_path}: no annotation of {name}")
    labels = tuple(i for i, action in enumerate(task.labels)
                   if float(votes[name][action]) >= vote_threshold)
    yield Item(name, str(root / "audio" / name), labels=labels)


def _urbansound8k(task, root, *, aliases, folds=None):
  """UrbanSound8K: metadata/UrbanSound8K.csv (slice_file_name, fold, class) and audio/fold{k}/."""
  for row in _csv_rows(root / "metadata" / "UrbanSound8K.csv",
                       ("slice_file_name", "fold", "class")):
    if folds is None or int(row["fold"]) in folds:
      label = label_index(task, row["class"], aliases, row["slice_file_name"])
      path = root / "audio" / f"fold{row['fold']}" / row["slice_file_name"]
      yield Item(row["slice_file_name"], str(path), labels=(label,))


def _fsd50k(task, root, *, aliases, split="eval"):
  """FSD50K: FSD50K.ground_truth/{split}.csv (fname, labels: comma-separated names) and
  FSD50K.{split}_audio/{fname}.wav."""
  for row in _csv_rows(root / "FSD50K.ground_truth" / f"{split}.csv", ("fname", "labels")):
    labels = tuple(label_index(task, name, aliases, row["fname"]) for name in row["labels"].split(","))
    yield Item(row["fname"], str(root / f"FSD50K.{split}_audio" / f"{row['fname']}.wav"), labels=labels)


def _audioset(task, root, *, aliases, segments="eval_segments.csv", audio="eval_segments",
              filename="Y{ytid}.wav"):
  """AudioSet: a segments CSV as Google publishes it ('# ' comment lines, then YTID,
  start_seconds, end_seconds, positive_labels: quoted comma-separated mids) and a folder `audio`
  of the downloaded segments, each named `filename` formatted with its ytid and start (as the
  PANNs download script names them: Y{ytid}.wav)."""
  path = root / segments
  if not path.is_file():
    raise SourceError(f"{path} is absent")
  with open(path, newline="") as f:
    lines = [line for line in f if not line.startswith("#")]
  for row in csv.reader(lines, skipinitialspace=True):
    ytid, start, _, mids = row
    labels = tuple(label_index(task, mid, aliases, f"{path}: {ytid}") for mid in mids.split(","))
    name = filename.format(ytid=ytid, start=start)
    yield Item(name, str(root / audio / name), labels=labels)


def _dcase17_task4(task, root, *, aliases,
                   labels="groundtruth_release/groundtruth_weak_label_evaluation_set.csv",
                   audio="audio/eval", prefix="Y"):
  """DCASE 2017 Task 4 (the task's repository, ankitshah009/Task-4-Large-scale-weakly-supervised-
  sound-event-detection-for-smart-cars, cloned as the root): `labels`, the weak labels as the
  repository publishes them (tab-separated, no header: segment file name '{ytid}_{start}_{end}.wav',
  start, end, label; one line per label of a segment), and `audio`, the downloaded segments named
  `prefix` + the file name (its download_audio.py writes Y{ytid}_{start}_{end}.wav, as
  dcase_util's DCASE2017_Task4tagging_EvaluationSet expects them)."""
  path = root / labels
  if not path.is_file():
    raise SourceError(f"{path} is absent")
  segments = {}  # file name -> label indices, in the file's order
  with open(path, newline="") as f:
    for number, row in enumerate(csv.reader(f, delimiter="\t"), 1):
      if not row:
        continue
      if len(row) != 4:
        raise SourceError(f"{path}:{number}: {len(row)} fields, not 4 (name, start, end, label)")
      name, _, _, label = row
      segments.setdefault(name, []).append(label_index(task, label, aliases, f"{path}: {name}"))
  for name, indices in segments.items():
    yield Item(name, str(root / audio / (prefix + name)), labels=tuple(sorted(set(indices))))


def _tut2017(task, root, *, aliases, meta="evaluation_setup/evaluate.txt"):
  """TUT Acoustic Scenes 2017, evaluation set: `meta` lines 'audio/{n}.wav<TAB>{scene}', paths
  relative to the root. The release's meta package has evaluation_setup/evaluate.txt, the
  reference list dcase_util's TUTAcousticScenes_2017_EvaluationSet reads (DCASE-REPO/dcase_util,
  dcase_util/datasets/tut.py; it writes a meta.txt of the same lines, also accepted as `meta`)."""
  path = root / meta
  if not path.is_file():
    raise SourceError(f"{path} is absent")
  with open(path, newline="") as f:
    for row in csv.reader(f, delimiter="\t"):
      if row:
        if len(row) < 2:
          raise SourceError(f"{path}: {row[0]!r} has no scene")
        label = label_index(task, row[1], aliases, f"{path}: {row[0]}")
        yield Item(row[0], str(root / row[0]), labels=(label,))


# RAVDESS file names: modality-channel-emotion-intensity-statement-repetition-actor.wav.
_RAVDESS_EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry",
                     "06": "fearful", "07": "disgust", "08": "surprised"}


def _ravdess(task, root, *, aliases, channels=("01",)):
  """RAVDESS audio-only files (modality 03), Actor_{01..24}/03-{channel}-{emotion}-....wav; vocal
  channel 01 is speech (the speech emotion task), 02 song."""
  for path in sorted(root.glob("Actor_*/03-*.wav")):
    fields = path.stem.split("-")
    if len(fields) != 7 or fields[2] not in _RAVDESS_EMOTIONS:
      raise SourceError(f"{path}: not a RAVDESS file name")
    if fields[1] in channels:
      label = label_index(task, _RAVDESS_EMOTIONS[fields[2]], aliases, str(path))
      yield Item(f"{path.parent.name}/{path.name}", str(path), labels=(label,))


def _hear(task, root, *, aliases, folds=None, rate=44100):
  """A HEAR 2021 task folder, as hear-preprocess writes it and hear-eval-kit reads it
  (heareval/embeddings/task_embeddings.py: '{split}.json' maps a file name to its list of labels,
  the audio is at '{rate}/{split}/{name}'; task_metadata.json and labelvocabulary.csv beside them).
  Splits are fold00, fold01, ... or train/valid/test; HEAR ships 16000, 22050, 32000, 44100 and
  48000 Hz copies. `folds`: the splits read, by default all (zero-shot trains on none)."""
  names = folds or sorted(p.stem for p in root.glob("*.json") if p.name != "task_metadata.json")
  if not names:
    raise SourceError(f"{root}: no HEAR split files ({{split}}.json)")
  for split in names:
    path = root / f"{split}.json"
    labelled = _json(path)
    if not isinstance(labelled, dict) or not all(isinstance(v, list) for v in labelled.values()):
      raise SourceError(f"{path}: not a map of file names to lists of labels")
    for name, labels in sorted(labelled.items()):
      indices = tuple(label_index(task, str(l), aliases, f"{path}: {name}") for l in labels)
      yield Item(f"{split}/{name}", str(root / str(rate) / split / name), labels=indices)

def _vocalsound(task, root, *, aliases, datafile="datafiles/te.json", audio="audio_16k"):
  """VocalSound (YuanGongND/vocalsound, its README's 'Dataset Details'; the 16 kHz release
  vs_release_16k.zip): `datafile`, one of the speaker-disjoint split lists (datafiles/tr.json,
  val.json, te.json: {"data": [{"wav": path, "labels": mid, ...}]}, as its src/dataloaders.py
  reads them), whose "wav" paths are the authors' (the repository's src/prep_data.py rewrites them
  to '{data}/audio_16k/{file name}'), so the file is found by name in `audio`. The label is the
  AudioSet mid of class_labels_indices_vs.csv (index, mid, display_name), named by `aliases`; the
  file name '{speaker}_{session}_{class}.wav' (f0003_0_cough.wav, f0003_0_throatclearing.wav)
  must name the same class."""
  path = root / datafile
  content = _json(path)
  if not isinstance(content, dict) or not isinstance(content.get("data"), list):
    raise SourceError(f"{path}: not a VocalSound datafile ({{\"data\": [...]}})")
  entries = content["data"]
  for entry in entries:
    if not isinstance(entry, dict) or not {"wav", "labels"} <= entry.keys():
      raise SourceError(f"{path}: an entry without 'wav' and 'labels': {entry!r}")
    name = pathlib.PurePath(entry["wav"]).name
    label = label_index(task, entry["labels"], aliases, f"{path}: {name}")
    if pathlib.PurePath(name).stem.split("_")[-1] != task.labels[label].replace("_", ""):
      raise SourceError(f"{path}: {name} is labelled {task.labels[label]!r}")
    yield Item(name, str(root / audio / name), labels=(label,))


def _sesa(task, root, *, aliases, split="test"):
  """SESA, Sound Events for Surveillance Applications (Zenodo 3519845, SESA.zip: train/ with 480
  files, test/ with 105): `split`/{class}_{number}.wav, the class in the file name (casual_000.wav;
  classes casual, gunshot, explosion, siren), as IrakizaGaius/Surveillance_Model_MLOP's
  src/preprocessing.py reads them. The archive nests the folders one level deeper (SESA/SESA/):
  the root is the folder holding train/ and test/."""
  folder = root / split
  if not folder.is_dir():
    raise SourceError(f"{folder} is absent")
  for path in sorted(folder.glob("*.wav")):
    label = label_index(task, path.name.split("_")[0].lower(), aliases, str(path))
    yield Item(f"{split}/{path.name}", str(path), labels=(label,))


def _libricount(task, root, *, aliases, split="test"):
  """LibriCount10-0dB (Zenodo 1216072; faroit/CountNet's README and eval.py): `split`/{k}_{id}.wav,
  each with {k}_{id}.json, a list of the mixture's speakers ({"sex", "activity", "speaker_id"});
  the count is the list's length (eval.py's ground truth) and must be the file name's k."""
  folder = root / split
  if not folder.is_dir():
    raise SourceError(f"{folder} is absent")
  for path in sorted(folder.glob("*.wav")):
    meta = path.with_suffix(".json")
    speakers = _json(meta, f"is absent, the annotation of {path.name}")
    if not isinstance(speakers, list) or path.name.split("_")[0] != str(len(speakers)):
      raise SourceError(f"{meta}: not a list of {path.name.split('_')[0]} speakers")
    label = label_index(task, str(len(speakers)), aliases, str(path))
    yield Item(f"{split}/{path.name}", str(path), labels=(label,))


def _audiocaps(task, root, *, aliases, captions="test.csv", audio="test",
               audio_name="{youtube_id}.wav"):
  """AudioCaps (cdjkim/audiocaps, dataset/{train,val,test}.csv: audiocap_id, youtube_id,
  start_time, caption; one row a caption, test clips have five): one item per clip (youtube_id,
  start_time) with all its captions. The audio is what the user downloaded into `audio`, each
  clip's file named by `audio_name`, a template over the CSV's columns: '{youtube_id}.wav'
  (clap_jax.data.corpora's default), 'Y{youtube_id}.wav', '{youtube_id}_{start_time}.wav', or
  '{audiocap_id}.wav' (the clip's first row's id). YouTube clips vanish: an absent file is an
  unusable clip, named in the report."""
  del aliases  # no labels
  from clap_jax.data import corpora  # pylint: disable=g-import-not-at-top
  columns = {"audiocap_id": "", "youtube_id": "", "start_time": "", "caption": ""}
  try:
    audio_name.format(**columns)
  except (KeyError, IndexError) as e:
    raise ValueError(f"{task.name}: audio_name {audio_name!r} names {e}, not a column of "
                     f"{sorted(columns)}") from None
  path = root / captions
  if not path.is_file():
    raise SourceError(f"{path} is absent")
  try:
    yield from corpora.audiocaps(path, root / audio, audio_name=audio_name, task=task.name)
  except ValueError as e:  # a missing column
    raise SourceError(str(e)) from None


def _clotho(task, root, *, aliases, captions="clotho_captions_evaluation.csv", audio="evaluation"):
  """Clotho: a captions CSV (file_name, caption_1..caption_5) and the folder of its audio."""
  from clap_jax.data import sources as data_sources  # pylint: disable=g-import-not-at-top
  _csv_rows(root / captions, ("file_name", "caption_1"))  # there, with the published columns
  yield from data_sources.clotho(root / captions, root / audio)


def _fsdd(task, root, *, aliases):
  """Free Spoken Digit Dataset: {digit}_{speaker}_{take}.wav."""
  for path in sorted(root.glob("*.wav")):
    label = label_index(task, path.name.split("_")[0], aliases, str(path))
    yield Item(path.name, str(path), labels=(label,))


def _class_folders(task, root, *, aliases, extensions=(".wav", ".au", ".flac", ".ogg", ".mp3")):
  """{root}/{label}/*: one sub-folder per class (e.g. GTZAN's genres/blues/blues.00000.au)."""
  for folder in sorted(p for p in root.iterdir() if p.is_dir()):
    label = label_index(task, folder.name, aliases, str(folder))
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in extensions):
      yield Item(f"{folder.name}/{path.name}", str(path), labels=(label,))


READERS = {"esc50": _esc50, "esc50_actions": _esc50_actions, "urbansound8k": _urbansound8k,
           "fsd50k": _fsd50k, "audioset": _audioset, "dcase17_task4": _dcase17_task4,
           "tut2017": _tut2017, "ravdess": _ravdess, "hear": _hear, "vocalsound": _vocalsound,
           "sesa": _sesa, "libricount": _libricount, "audiocaps": _audiocaps, "clotho": _clotho,
           "fsdd": _fsdd, "class_folders": _class_folders}
