"""Readers of audio collections: each yields `Item`s (audio path, captions, labels, task) for the writer.

Sources only describe a collection; they open no audio. Whether a file decodes, is long enough or
has a usable caption is the writer's call, so every rejection lands in one rejects file.
"""
import csv
import json
import os
import pathlib
import re
from typing import Iterator, Sequence

from clap_jax import text
from clap_jax.data.items import Item

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")



def manifest(path: str | os.PathLike, *, root: str | os.PathLike | None = None,
             classes: Sequence[str] | None = None, task: str = "") -> Iterator[Item]:
  """Items of a CSV or JSONL manifest.

  Fields: `audio` (path, relative to `root`, default the manifest's folder); captions as
  `captions` (JSONL list) or any columns named `caption*` (CSV: `caption`, `caption_1`, ...);
  optional `labels` (JSONL list, CSV `;`-separated) given as class indices or as names of
  `classes`; optional `task` (else the `task` argument) and `id` (else the audio path).
  """
  path = pathlib.Path(path)
  root = pathlib.Path(root) if root is not None else path.parent
  for row in _manifest_rows(path):
    if "audio" not in row:
      raise ValueError(f"{path}: a row has no 'audio' field: {row}")
    captions = row.get("captions")
    if captions is None:  # CSV: an empty cell is an absent caption, not an empty one
      captions = [v for k, v in row.items() if k.startswith("caption") and v]
    elif isinstance(captions, str):
      captions = [captions]
    labels = row.get("labels") or []
    if isinstance(labels, str):
      labels = [s for s in labels.split(";") if s.strip()]
    elif not isinstance(labels, list):
      labels = [labels]
    yield Item(item_id=str(row.get("id") or row["audio"]), audio=str(root / row["audio"]),
               captions=tuple(captions), labels=tuple(_label_index(l, classes, path) for l in labels),
               task=row.get("task") or task)


def esc50(root: str | os.PathLike, *, meta: str = "meta/esc50.csv", folds: Sequence[int] | None = None,
          template: str = text.DEFAULT_TEMPLATE, task: str = "esc50") -> Iterator[Item]:
  """An ESC-50 layout: `meta` (filename, fold, target, category) and `audio/`; label = target."""
  root = pathlib.Path(root)
  with open(root / meta, newline="") as f:
    for row in csv.DictReader(f):
      if folds is not None and int(row["fold"]) not in folds:
        continue
      yield Item(item_id=row["filename"], audio=str(root / "audio" / row["filename"]),
                 captions=(template.format(row["category"].replace("_", " ")),),
                 labels=(int(row["target"]),), task=task)


def clotho(captions_csv: str | os.PathLike, audio_dir: str | os.PathLike, *,
           task: str = "") -> Iterator[Item]:
  """Clotho: a captions CSV (file_name, caption_1..caption_5) and the folder of its audio."""
  audio_dir = pathlib.Path(audio_dir)
  with open(captions_csv, newline="") as f:
    for row in csv.DictReader(f):
      captions = tuple(v for k, v in row.items() if k.startswith("caption_"))
      yield Item(item_id=row["file_name"], audio=str(audio_dir / row["file_name"]),
                 captions=captions, task=task)


def folder(root: str | os.PathLike, *, task: str = "") -> Iterator[Item]:
  """Every audio file under `root` (recursively, by AUDIO_EXTENSIONS), sorted; its id is the path
  relative to `root`. No captions or labels: a collection to embed."""
  root = pathlib.Path(root)
  for file in _audio_files(root):
    yield Item(item_id=str(file.relative_to(root)), audio=str(file), task=task)


def labelled_folder(root: str | os.PathLike, *, label_pattern: str = r"^([^_]+)_",
                    template: str = text.DEFAULT_TEMPLATE, task: str = "") -> Iterator[Item]:
  """Audio files whose label is in the name (group 1 of `label_pattern`), e.g. FSDD's `7_jackson_3.wav`.

  Class indices follow the sorted label names (numerically when all are integers, so FSDD's
  digit d gets index d); `classes_of_folder` gives that list.
  """
  root = pathlib.Path(root)
  files = _audio_files(root)
  classes = _folder_classes(files, label_pattern)
  index = {name: i for i, name in enumerate(classes)}
  for file in files:
    label = _folder_label(file, label_pattern)
    yield Item(item_id=str(file.relative_to(root)), audio=str(file),
               captions=(template.format(label),), labels=(index[label],), task=task)


def classes_of_folder(root: str | os.PathLike, label_pattern: str = r"^([^_]+)_") -> list[str]:
  """The class names of `labelled_folder(root)`, in index order."""
  return _folder_classes(_audio_files(pathlib.Path(root)), label_pattern)


def _manifest_rows(path: pathlib.Path) -> Iterator[dict]:
  if path.suffix == ".jsonl":
    with open(path) as f:
      for line in f:
        if line.strip():
          yield json.loads(line)
  elif path.suffix == ".csv":
    with open(path, newline="") as f:
      yield from csv.DictReader(f)
  else:
    raise ValueError(f"{path}: a manifest must be .csv or .jsonl")


def _label_index(label, classes: Sequence[str] | None, path) -> int:
  if isinstance(label, int):
    return label
  label = str(label).strip()
  if classes is not None:
    if label not in classes:
      raise ValueError(f"{path}: label {label!r} is not one of the {len(classes)} classes")
    return list(classes).index(label)
  if not label.lstrip("-").isdigit():
    raise ValueError(f"{path}: label {label!r} is a name; pass `classes` to map names to indices")
  return int(label)


def _audio_files(root: pathlib.Path) -> list[pathlib.Path]:
  if not root.is_dir():
    raise ValueError(f"{root}: not a folder")
  return sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)


def _folder_label(file: pathlib.Path, label_pattern: str) -> str:
  match = re.search(label_pattern, file.name)
  if match is None:
    raise ValueError(f"{file}: the name does not match the label pattern {label_pattern!r}")
  return match.group(1)


def _folder_classes(files: list[pathlib.Path], label_pattern: str) -> list[str]:
  names = {_folder_label(f, label_pattern) for f in files}
  numeric = all(n.isdigit() for n in names)
  return sorted(names, key=int if numeric else str)
