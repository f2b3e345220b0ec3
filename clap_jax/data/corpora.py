"""Readers of the metadata files of the public corpora the CLAP 2023 paper trained on, as `Item`s.

Each reads the file the corpus publishes, as published (its column names, its nesting), and points
at audio the user already has in `audio_dir`: nothing is downloaded, and a missing file is the
writer's rejection, like any unreadable one. Label corpora become captions through `template`
("this is a sound of {}"), their labels joined by ", ".

  audiocaps  {train,val,test}.csv: audiocap_id, youtube_id, start_time, caption (one row a caption)
  wavcaps    {as,bbc,fsd,sb}_final.json: {"data": [{"id", "caption", ...}]}, audio as {id}.flac
  macs       MACS.yaml: files: [{filename, annotations: [{sentence, tags, annotator_id}]}]
  fsd50k     ground_truth/{dev,eval}.csv: fname, labels, mids[, split]; vocabulary.csv
  audioset   *_segments.csv: YTID, start_seconds, end_seconds, positive_labels; ontology.json
  labels     any CSV of a file column and a label column (several labels split by `separator`)
"""
import collections
import csv
import json
import os
import pathlib
from typing import Iterator, Sequence

import yaml

from clap_jax import text
from clap_jax.data.items import Item


def audiocaps(captions_csv: str | os.PathLike, audio_dir: str | os.PathLike, *,
              audio_name: str = "{youtube_id}.wav", task: str = "") -> Iterator[Item]:
  """AudioCaps: one row per caption; a clip (youtube_id, start_time) with several captions (val,
  test: five) is one item with all of them. `audio_name` formats a row's columns into the file's
  name (downloaders differ: '{youtube_id}.wav', 'Y{youtube_id}.wav', '{audiocap_id}.wav', ...)."""
  clips = collections.OrderedDict()
  for row in _csv_rows(captions_csv, ("audiocap_id", "youtube_id", "start_time", "caption")):
    key = (row["youtube_id"], row["start_time"])
    if key not in clips:
      clips[key] = (row, [])
    clips[key][1].append(row["caption"])
  for (youtube_id, start), (row, captions) in clips.items():
    yield Item(item_id=f"{youtube_id}_{start}", audio=str(pathlib.Path(audio_dir) / audio_name.format(**row)),
               captions=tuple(captions), task=task)


def wavcaps(json_path: str | os.PathLike, audio_dir: str | os.PathLike, *,
            audio_ext: str = ".flac", task: str = "") -> Iterator[Item]:
  """WavCaps: one of its *_final.json files. The released files' `audio` field is a placeholder
  ('wav_path'), so the file is found by `id` (whose '.wav', in AudioSet_SL, is dropped) with
  `audio_ext`, as the released archives name them."""
  with open(json_path) as f:
    entries = json.load(f)["data"]
  subset = pathlib.Path(json_path).stem.removesuffix("_final")
  for entry in entries:
    stem = pathlib.PurePath(str(entry["id"])).stem
    yield Item(item_id=f"{subset}/{stem}", audio=str(pathlib.Path(audio_dir) / (stem + audio_ext)),
               captions=(entry["caption"],), task=task)


def macs(yaml_path: str | os.PathLike, audio_dir: str | os.PathLike, *,
         task: str = "") -> Iterator[Item]:
  """MACS: TAU Urban Acoustic Scenes clips with several annotators' sentences each."""
  with open(yaml_path) as f:
    files = yaml.safe_load(f)["files"]
  for entry in files:
    captions = tuple(a["sentence"] for a in entry["annotations"] if a.get("sentence"))
    yield Item(item_id=entry["filename"], audio=str(pathlib.Path(audio_dir) / entry["filename"]),
               captions=captions, task=task)


def fsd50k_classes(vocabulary_csv: str | os.PathLike) -> list[str]:
  """FSD50K's vocabulary.csv (index, label, mid; no header) -> label names in index order."""
  with open(vocabulary_csv, newline="") as f:
    rows = [r for r in csv.reader(f) if r]
  rows.sort(key=lambda r: int(r[0]))
  if [int(r[0]) for r in rows] != list(range(len(rows))):
    raise ValueError(f"{vocabulary_csv}: indices are not 0..{len(rows) - 1}")
  return [r[1] for r in rows]


def fsd50k(ground_truth_csv: str | os.PathLike, audio_dir: str | os.PathLike,
           vocabulary_csv: str | os.PathLike, *, splits: Sequence[str] | None = None,
           template: str = text.DEFAULT_TEMPLATE, task: str = "") -> Iterator[Item]:
  """FSD50K: dev.csv or eval.csv (labels comma-separated, e.g. 'Electric_guitar,Guitar'); audio
  {fname}.wav; labels indexed as vocabulary.csv; `splits` keeps dev.csv's 'train'/'val' rows."""
  classes = fsd50k_classes(vocabulary_csv)
  index = {name: i for i, name in enumerate(classes)}
  for row in _csv_rows(ground_truth_csv, ("fname", "labels", "mids")):
    if splits is not None and row.get("split") not in splits:
      continue
    names = [n for n in row["labels"].split(",") if n]
    unknown = [n for n in names if n not in index]
    if unknown:
      raise ValueError(f"{ground_truth_csv}: {row['fname']}: labels {unknown} are not in {vocabulary_csv}")
    yield Item(item_id=row["fname"], audio=str(pathlib.Path(audio_dir) / f"{row['fname']}.wav"),
               captions=(_label_caption(names, template),), labels=tuple(index[n] for n in names),
               task=task)


def audioset_classes(ontology_json: str | os.PathLike) -> tuple[list[str], list[str]]:
  """ontology.json -> (mids, names), in the file's order (class indices follow it)."""
  with open(ontology_json) as f:
    entries = json.load(f)
  return [e["id"] for e in entries], [e["name"] for e in entries]


def audioset(segments_csv: str | os.PathLike, audio_dir: str | os.PathLike,
             ontology_json: str | os.PathLike, *, audio_name: str = "Y{ytid}.wav",
             template: str = text.DEFAULT_TEMPLATE, task: str = "") -> Iterator[Item]:
  """AudioSet: a segments CSV ('#' header lines, then 'YTID, start_seconds, end_seconds,
  "mid,mid"'); captions from the ontology's names; labels are indices into ontology.json's list.
  `audio_name` formats `ytid`, `start` and `end` (the CSV's text) into the file's name
  ('Y{ytid}.wav' is how the common downloaders name a segment)."""
  mids, names = audioset_classes(ontology_json)
  index = {mid: i for i, mid in enumerate(mids)}
  with open(segments_csv, newline="") as f:
    rows = csv.reader((line for line in f if not line.startswith("#")), skipinitialspace=True)
    for row in rows:
      if not row:
        continue
      ytid, start, end, labels = row
      unknown = [m for m in labels.split(",") if m not in index]
      if unknown:
        raise ValueError(f"{segments_csv}: {ytid}: labels {unknown} are not in {ontology_json}")
      found = [index[m] for m in labels.split(",")]
      yield Item(item_id=f"{ytid}_{start}",
                 audio=str(pathlib.Path(audio_dir) / audio_name.format(ytid=ytid, start=start, end=end)),
                 captions=(_label_caption([names[i] for i in found], template),),
                 labels=tuple(found), task=task)


def label_classes(labels_csv: str | os.PathLike, *, label_column: str = "label",
                  separator: str = "") -> list[str]:
  """The sorted label names of `labels_csv` (what `labels` indexes with)."""
  return sorted({n for row in _csv_rows(labels_csv, (label_column,))
                 for n in _split(row[label_column], separator)})


def labels(labels_csv: str | os.PathLike, audio_dir: str | os.PathLike, *,
           file_column: str = "filename", label_column: str = "label", separator: str = "",
           classes: Sequence[str] | None = None, template: str = text.DEFAULT_TEMPLATE,
           task: str = "") -> Iterator[Item]:
  """A generic label dataset: a CSV with a file column and a label column ('' separator: one
  label a row). Classes are `classes` or, by default, the file's sorted label names."""
  classes = list(classes) if classes is not None else label_classes(
      labels_csv, label_column=label_column, separator=separator)
  index = {name: i for i, name in enumerate(classes)}
  for row in _csv_rows(labels_csv, (file_column, label_column)):
    names = _split(row[label_column], separator)
    unknown = [n for n in names if n not in index]
    if unknown:
      raise ValueError(f"{labels_csv}: {row[file_column]}: labels {unknown} are not classes")
    yield Item(item_id=row[file_column], audio=str(pathlib.Path(audio_dir) / row[file_column]),
               captions=(_label_caption(names, template),), labels=tuple(index[n] for n in names),
               task=task)


def _label_caption(names: Sequence[str], template: str) -> str:
  """Label names as one caption: 'Electric_guitar', 'Guitar' -> template of 'electric guitar, guitar'."""
  return template.format(", ".join(n.replace("_", " ").lower() for n in names))


def _split(value: str, separator: str) -> list[str]:
  return [n.strip() for n in (value.split(separator) if separator else [value]) if n.strip()]


def _csv_rows(path, required: Sequence[str]) -> Iterator[dict]:
  with open(path, newline="") as f:
    reader = csv.DictReader(f)
    missing = [c for c in required if c not in (reader.fieldnames or ())]
    if missing:
      raise ValueError(f"{path}: no column {missing} (columns: {reader.fieldnames})")
    yield from reader
