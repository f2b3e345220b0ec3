"""Audio tasks as text, as Pengi frames them: every example is (audio, task prompt, answer text), and
the answer is what the language model learns to generate after the audio prefix and the prompt.

A task is data (`config.tasks.<name>`, configs/audio_pretrain.py):
  prompt   the task's text prompt, e.g. 'this is a sound of' (an input, never a target)
  answer   'class'    the example's one class name (numbers are classes written as words)
           'classes'  its class names, in class-index order, joined by ', ' (multi-label)
           'caption'  one of its captions, as the shards hold it (no classes)
  classes  a text file of the class names, one per line, line i naming class i
           (launch/make_shards.py's --classes file); '' for 'caption'
  weight   the task's sampling weight (clap_jax.data.multitask_batches)
  train, heldout   its shards: a glob pattern or ','-separated patterns ('' : none)
"""
import dataclasses
import pathlib
from collections.abc import Sequence

import ml_collections
import numpy as np

from clap_jax.data.multitask import TaskSource

ANSWERS = ("class", "classes", "caption")
KEYS = {"prompt", "answer", "classes", "weight", "train", "heldout"}
SEPARATOR = ", "  # between the class names of a multi-label answer


@dataclasses.dataclass(frozen=True)
class AnswerTask:
  name: str
  prompt: str
  answer: str
  classes: tuple[str, ...]  # the class names; () for 'caption'
  weight: float
  train: str
  heldout: str

  def source_of(self, split: str) -> TaskSource:
    """Its `split` ('train' or 'heldout') shards as a multitask_batches task."""
    return TaskSource(self.name, getattr(self, split).split(","), len(self.classes),
                      self.answer == "classes", self.weight)

  def answer_text(self, label: int, labels: np.ndarray) -> str:
    """A class task's answer from the example's `label` ('class') or multi-hot `labels`."""
    if self.answer == "class":
      return self.classes[label]
    return SEPARATOR.join(self.classes[i] for i in np.flatnonzero(labels[:len(self.classes)]))


def task_config(prompt: str, answer: str, classes: str, weight: float, data_dir, name: str
                ) -> ml_collections.ConfigDict:
  """A `config.tasks` entry with shards at {data_dir}/{name}/{train,heldout}/*.tfrecord."""
  return ml_collections.ConfigDict(dict(
      prompt=prompt, answer=answer, classes=classes, weight=float(weight),
      train=f"{data_dir}/{name}/train/*.tfrecord", heldout=f"{data_dir}/{name}/heldout/*.tfrecord"))


def tasks_of(tasks: ml_collections.ConfigDict) -> list[AnswerTask]:
  """The tasks of `config.tasks` in sorted-name order (the batches' `task` index), their class
  files read. A missing or unknown key, an unknown answer form or a bad class file is an error
  naming the task."""
  if not tasks:
    raise ValueError("config.tasks is empty: the audio tasks to learn (see configs/audio_pretrain.py)")
  out = []
  for name in sorted(tasks):
    entry = tasks[name]
    keys = set(entry)
    if keys != KEYS:
      raise ValueError(f"config.tasks.{name}: missing keys {sorted(KEYS - keys)}, unknown keys "
                       f"{sorted(keys - KEYS)}")
    if entry.answer not in ANSWERS:
      raise ValueError(f"config.tasks.{name}.answer {entry.answer!r}: one of {ANSWERS}")
    if (entry.answer == "caption") == bool(entry.classes):
      raise ValueError(f"config.tasks.{name}.classes {entry.classes!r}: answer {entry.answer!r} "
                       f"takes {'no classes' if entry.answer == 'caption' else 'a class file'}")
    if not entry.weight > 0:
      raise ValueError(f"config.tasks.{name}.weight must be > 0, got {entry.weight}")
    out.append(AnswerTask(name=name, prompt=entry.prompt, answer=entry.answer,
                          classes=read_classes(entry.classes, f"config.tasks.{name}.classes")
                          if entry.classes else (),
                          weight=entry.weight, train=entry.train, heldout=entry.heldout))
  return out


def read_classes(path: str, where: str) -> tuple[str, ...]:
  """One class name per line; blank lines and repeated names are errors (a line is a class)."""
  try:
    lines = pathlib.Path(path).read_text(encoding="utf-8").splitlines()
  except OSError as e:
    raise ValueError(f"{where}={path}: cannot read the class names ({e.strerror})") from e
  names = [line.strip() for line in lines]
  blank = [i + 1 for i, n in enumerate(names) if not n]
  if blank or not names:
    raise ValueError(f"{where}={path}: blank line(s) {blank[:5]}: one class name per line")
  repeated = sorted({n for n in names if names.count(n) > 1})
  if repeated:
    raise ValueError(f"{where}={path}: class names repeat: {repeated[:5]}")
  return tuple(names)


def prompted(prompts: Sequence[Sequence[int]], answer_ids: np.ndarray, answer_mask: np.ndarray
             ) -> dict[str, np.ndarray]:
  """Rows of prompt tokens then answer tokens, then padding (id 0):
  input_ids, attention_mask, and target_mask (1 on the answer's tokens only), each (B, P + L)
  for P the longest prompt and answers (B, L) right-padded (answer_mask their 1s)."""
  rows, length = answer_ids.shape
  width = max((len(p) for p in prompts), default=0) + length
  ids = np.zeros((rows, width), answer_ids.dtype)
  attention = np.zeros((rows, width), answer_mask.dtype)
  target = np.zeros((rows, width), answer_mask.dtype)
  for i, prompt in enumerate(prompts):
    start, n = len(prompt), int(answer_mask[i].sum())
    ids[i, :start] = prompt
    ids[i, start:start + n] = answer_ids[i, :n]
    attention[i, :start + n] = 1
    target[i, start:start + n] = 1
  return {"input_ids": ids, "attention_mask": attention, "target_mask": target}
