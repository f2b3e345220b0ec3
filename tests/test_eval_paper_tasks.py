"""The paper's 26 tasks as the registry defines them (Table 2 of arXiv 2309.05767v2): the rows,
label sets, metrics and prompts, each choice's source; the F1 and action-mAP metrics against
scikit-learn and hand-computed cases; and the loaders of the new layouts on small copies of the
real files (ESC-50 Actions' annotation CSV, AudioSet's segment CSV, TFDS builders with the real
datasets' features)."""
import csv
import pathlib

import numpy as np
import pytest
import soundfile
from sklearn import metrics as skm

from clap_jax.eval import metrics, sources, tasks

REPO = pathlib.Path(__file__).resolve().parents[1]
TABLE2 = REPO / "clap_jax/assets/paper/ms_clap_2023_table2.csv"


def _wav(path: pathlib.Path, seconds: float = 0.1, rate: int = 8000) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  soundfile.write(path, np.zeros(int(seconds * rate), np.float32), rate)


# Registry --------------------------------------------------------------------------------------

def test_registry_has_exactly_the_papers_26_tasks():
  with open(TABLE2, newline="") as f:
    rows = list(csv.DictReader(f))
  paper = [t for t in tasks.TASKS.values() if t.in_paper]
  names = [row for t in paper for row in t.paper_rows]
  assert sorted(names) == sorted({r["task"] for r in rows}) and len(names) == 26
  kinds = [t.kind for t in paper for _ in t.paper_rows]
  assert (kinds.count(tasks.SINGLE_LABEL) + kinds.count(tasks.MULTI_LABEL), kinds.count(tasks.CAPTIONING),
          kinds.count(tasks.RETRIEVAL)) == (20, 2, 4)
  # The paper's metric of each classification row is the task's headline.
  metric = {"accuracy": "accuracy", "mAP": "mAP", "F1": "F1", "SPIDEr": "SPIDEr"}
  by_row = {r["task"]: r["metric"] for r in rows}
  for t in paper:
    if t.kind != tasks.RETRIEVAL:
      assert metric[by_row[t.paper_rows[0]]] == t.headline, t.name
  assert not tasks.get("mridangam_stroke").in_paper and not tasks.get("mridangam_tonic").in_paper
  assert "2022" in tasks.get("mridangam_stroke").note


def test_every_task_says_where_each_choice_comes_from():
  for t in tasks.TASKS.values():
    assert sorted(t.provenance) == sorted(tasks.PROVENANCE) and all(t.provenance.values()), t.name


def test_label_sets_and_prompts_follow_the_paper_hear_and_the_2022_paper():
  assert tasks.get("dcase17_task4").headline == "F1"
  assert tasks.get("esc50_actions").kind == tasks.MULTI_LABEL
  assert tasks.get("esc50_actions").labels[:2] == ("blowing", "breaking") and len(
      tasks.ESC50_ACTIONS) == 20
  assert tasks.get("speech_commands").labels == tasks.SPEECH_COMMANDS_LABELS and len(
      tasks.SPEECH_COMMANDS_LABELS) == 12
  pitch = tasks.get("nsynth_pitch").labels
  assert len(pitch) == 88 and (pitch[0], pitch[-1]) == ("A0", "C8")  # MIDI 21 and 108
  audioset = tasks.get("audioset")
  assert len(audioset.labels) == 527 and audioset.labels[0] == "Speech" and audioset.headline == "mAP"
  assert tasks.get("crema_d").source["split"] == "train+validation+test"
  assert tasks.get("crema_d").prompts()[0] == ["this person is feeling anger"]
  assert tasks.get("ravdess").templates == ("this person is feeling {}",)
  assert tasks.get("speech_commands").prompts()[-2:] == [["silence"], ["unknown"]]
  assert tasks.get("libricount").prompts()[3] == ["3 persons speaking"]


def test_task_rejects_a_metric_its_kind_does_not_have():
  with pytest.raises(ValueError, match="metric 'F1'"):
    tasks.Task("t", "T", "G", tasks.SINGLE_LABEL, ("a",), {}, metric="F1")
  with pytest.raises(ValueError, match="names its rows"):
    tasks.Task("t", "T", "G", tasks.RETRIEVAL, (), {}, paper_rows=("Clotho a2t",))


# Metrics ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("average", ["micro", "macro"])
def test_f1_matches_sklearn(seed, average):
  rng = np.random.default_rng(seed)
  targets = rng.random((40, 7)) < 0.25
  targets[:, 6] = False  # a class never present: sklearn's zero_division=0
  predicted = rng.random((40, 7)) < 0.3
  predicted[:, 5] = False  # a class never predicted
  expected = skm.f1_score(targets, predicted, average=average, zero_division=0)
  assert metrics.f1_score(targets, predicted, average) == pytest.approx(expected, abs=1e-12)


def test_f1_hand_computed():
  targets = np.array([[1, 0, 0], [0, 1, 1]], bool)
  predicted = np.array([[1, 1, 0], [0, 1, 0]], bool)
  # micro: tp 2, fp 1, fn 1 -> 2 * 2 / (3 + 3); macro: classes 1, 2/3, 0 -> 5/9.
  assert metrics.f1_score(targets, predicted, "micro") == pytest.approx(2 / 3)
  assert metrics.f1_score(targets, predicted, "macro") == pytest.approx(5 / 9)


def test_decision_rules():
  logits = np.array([[2.0, -1.0, 0.5], [-3.0, -0.1, -2.0]])
  np.testing.assert_array_equal(metrics.decisions(logits, "top_k", k=1),
                                [[1, 0, 0], [0, 1, 0]])
  np.testing.assert_array_equal(metrics.decisions(logits, "top_k", k=2),
                                [[1, 0, 1], [0, 1, 1]])
  # sigmoid(0.5) = 0.62, sigmoid(-0.1) = 0.475.
  np.testing.assert_array_equal(metrics.decisions(logits, "threshold", threshold=0.5),
                                [[1, 0, 1], [0, 0, 0]])
  np.testing.assert_array_equal(metrics.decisions(logits, "threshold", threshold=0.7),
                                [[1, 0, 0], [0, 0, 0]])
  with pytest.raises(ValueError, match="unknown decision rule"):
    metrics.decisions(logits, "argmax")


def test_action_map_hand_computed():
  """mAP over the actions present: a clip with no action is a negative for every class."""
  targets = np.array([[1, 0, 0], [0, 0, 0], [1, 1, 0], [0, 0, 0]], bool)
  scores = np.array([[0.9, 0.1, 0.5], [0.8, 0.7, 0.2], [0.3, 0.6, 0.1], [0.1, 0.2, 0.9]])
  # Action 0: ranks 1 (+), 2 (-), 3 (+) -> (1 + 2/3) / 2; action 1: rank 2 -> 1/2; action 2 none.
  assert metrics.mean_average_precision(targets, scores) == pytest.approx(((1 + 2 / 3) / 2 + 0.5) / 2)
  present = targets.any(axis=0)
  assert metrics.mean_average_precision(targets, scores) == pytest.approx(
      skm.average_precision_score(targets[:, present], scores[:, present], average="macro"))


# ESC-50 Actions --------------------------------------------------------------------------------

_ACTIONS_HEADER = "filename,fold,target,category," + ",".join(tasks.ESC50_ACTIONS)


def _actions_copy(tmp_path, rows: dict[str, list[float]]):
  """ESC-50-master/ (meta/esc50.csv and audio/) and esc50_actions/ with the real files' columns."""
  esc = tmp_path / "ESC-50-master"
  (esc / "meta").mkdir(parents=True)
  lines = ["filename,fold,target,category,esc10,src_file,take"]
  for name in rows:
    lines.append(f"{name},1,0,dog,True,{name.split('-')[1]},A")
    _wav(esc / "audio" / name)
  (esc / "meta/esc50.csv").write_text("\n".join(lines) + "\n")
  (tmp_path / "esc50_actions").mkdir()
  (tmp_path / "esc50_actions/actionvector_one_per_audiofile_sum.csv").write_text("\n".join(
      [_ACTIONS_HEADER] + [f"{name},1,0,dog," + ",".join(f"{v:.1f}" for v in votes)
                           for name, votes in rows.items()]) + "\n")


def test_esc50_actions_positive_actions_are_those_with_enough_votes(tmp_path):
  votes = {"1-100032-A-0.wav": [1, 0, 10] + [0] * 16 + [7], "1-100038-A-14.wav": [6] + [0] * 19}
  _actions_copy(tmp_path, votes)
  task = tasks.get("esc50_actions")
  items = sources.open_source(task, None, str(tmp_path)).items
  assert [(i.item_id, i.labels) for i in items] == [("1-100032-A-0.wav", (2, 19)),
                                                 ("1-100038-A-14.wav", ())]
  items = sources.open_source(task, {"vote_threshold": 6}, str(tmp_path)).items
  assert [i.labels for i in items] == [(2, 19), (0,)]


def test_esc50_actions_annotations_that_do_not_fit(tmp_path):
  _actions_copy(tmp_path, {"1-100032-A-0.wav": [0] * 20})
  csv_path = tmp_path / "esc50_actions/actionvector_one_per_audiofile_sum.csv"
  csv_path.write_text(csv_path.read_text().replace("blowing", "blow"))
  with pytest.raises(sources.SourceError, match="action columns"):
    sources.open_source(tasks.get("esc50_actions"), None, str(tmp_path))
  csv_path.write_text(_ACTIONS_HEADER + "\n")
  with pytest.raises(sources.SourceError, match="no annotation of 1-100032-A-0.wav"):
    sources.open_source(tasks.get("esc50_actions"), None, str(tmp_path))


def test_esc50_actions_on_the_real_annotations(shared_data):
  """The 6 shared ESC-50 clips, labelled from the published annotation file."""
  spec = {"root": "audio/esc50", "meta": "meta/esc50_subset.csv"}
  items = sources.open_source(tasks.get("esc50_actions"), spec, str(shared_data)).items
  with open(shared_data / "esc50_actions/actionvector_one_per_audiofile_sum.csv", newline="") as f:
    votes = {row["filename"]: row for row in csv.DictReader(f)}
  assert len(items) == 6
  for item in items:
    expected = [a for a in tasks.ESC50_ACTIONS if float(votes[item.item_id][a]) >= 7]
    assert [tasks.ESC50_ACTIONS[l] for l in item.labels] == expected
  assert any(item.labels for item in items)


# AudioSet --------------------------------------------------------------------------------------

def test_audioset_segments_csv(tmp_path):
  root = tmp_path / "audioset"
  root.mkdir()
  (root / "eval_segments.csv").write_text(
      "# Segments csv created Sun Mar  5 10:54:25 2017\n"
      "# num_ytids=20371, num_segs=20371, num_unique_labels=527, num_positive_labels=51804\n"
      "# YTID, start_seconds, end_seconds, positive_labels\n"
      '--4gqARaEJE, 0.000, 10.000, "/m/068hy,/m/07q6cd_,/m/0bt9lr,/m/0jbk"\n'
      '--BfvyPmVMo, 20.000, 30.000, "/m/03l9g"\n')
  _wav(root / "eval_segments/Y--4gqARaEJE.wav")  # the second segment could not be downloaded
  items = sources.open_source(tasks.get("audioset"), None, str(tmp_path)).items
  labels = tasks.AUDIOSET_LABELS
  assert [i.item_id for i in items] == ["Y--4gqARaEJE.wav", "Y--BfvyPmVMo.wav"]
  assert [labels[l] for l in items[0].labels] == ["Domestic animals, pets", "Squeak", "Dog", "Animal"]
  assert [labels[l] for l in items[1].labels] == ["Hammer"]
  # An absent segment stays listed: the evaluator names it as unusable.
  assert not pathlib.Path(items[1].audio).exists()


# TFDS ------------------------------------------------------------------------------------------

def _builder(name: str, features: dict, splits: dict[str, list[dict]]):
  """A TFDS builder class `name` (CamelCase; TFDS registers it snake_cased) with the real
  dataset's features and a few examples per split; an example's audio level tells it apart."""
  import tensorflow_datasets as tfds

  def info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        "audio": tfds.features.Audio(file_format="wav", sample_rate=16000), **features}))

  def split_generators(self, dl_manager):
    return {split: generate(examples) for split, examples in splits.items()}

  def generate(examples):
    for i, example in enumerate(examples):
      example = dict(example)
      yield i, {"audio": np.full(800, 1000 * example.pop("level"), np.int64), **example}
  return type(name, (tfds.core.GeneratorBasedBuilder,), {
      "VERSION": tfds.core.Version("1.0.0"), "_info": info, "_split_generators": split_generators,
      "_generate_examples": lambda self: None})


def _prepared(tmp_path, cls) -> dict:
  cls(data_dir=str(tmp_path)).download_and_prepare()
  return {"tfds_dir": str(tmp_path)}


def _read(task, spec, processes=2):
  source = sources.open_source(task, spec)
  items = [entry for p in range(processes) for entry in source.local_items(p, processes)]
  return source, sorted(items, key=lambda e: e[0])


def test_speech_commands_tfds_labels(tmp_path):
  import tensorflow_datasets as tfds
  names = ["down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes", "_silence_", "_unknown_"]
  examples = [{"label": i, "level": i + 1} for i in (0, 9, 10, 11)]
  cls = _builder("ToySpeechCommands", {"label": tfds.features.ClassLabel(names=names)},
                 {"test": examples})
  spec = {"name": "toy_speech_commands", **_prepared(tmp_path, cls)}
  task = tasks.get("speech_commands")
  _, items = _read(task, spec)
  by_level = {round(item.audio[0].max() * 32768 / 1000): item for _, item in items}
  assert [task.labels[by_level[i + 1].labels[0]] for i in (0, 9, 10, 11)] == [
      "down", "yes", "silence", "unknown"]


def test_nsynth_pitch_keeps_midi_21_to_108(tmp_path):
  import tensorflow_datasets as tfds
  features = {"pitch": tfds.features.ClassLabel(num_classes=128),
              "velocity": tfds.features.ClassLabel(num_classes=128),
              "instrument": {"family": tfds.features.ClassLabel(names=list(
                  tasks.get("nsynth_instrument").labels))}}
  pitches = [9, 21, 60, 108, 120]
  examples = [{"pitch": p, "velocity": 100, "instrument": {"family": 3}, "level": p} for p in pitches]
  cls = _builder("ToyNsynth", features, {"test": examples})
  spec = {"name": "toy_nsynth", **_prepared(tmp_path, cls)}
  task = tasks.get("nsynth_pitch")
  source, items = _read(task, spec)
  assert source.size == 5 and len(items) == 3  # MIDI 9 and 120 are not HEAR's classes
  assert sorted(task.labels[i.labels[0]] for _, i in items) == ["A0", "C4", "C8"]
  assert len({k for k, _ in items}) == 3
  _, items = _read(tasks.get("nsynth_velocity"), spec)
  assert {tasks.get("nsynth_velocity").labels[i.labels[0]] for _, i in items} == {"100"}
  with pytest.raises(sources.SourceError, match="is not one of nsynth_pitch's 88 labels"):
    _read(task, {**spec, "outside": "error"})


def test_crema_d_reads_every_fold_once(tmp_path):
  import tensorflow_datasets as tfds
  names = ["NEU", "HAP", "SAD", "ANG", "FEA", "DIS"]
  splits = {"train": [{"label": 0, "level": 1}, {"label": 1, "level": 2}, {"label": 2, "level": 3}],
            "validation": [{"label": 3, "level": 4}], "test": [{"label": 4, "level": 5},
                                                               {"label": 5, "level": 6}]}
  cls = _builder("ToyCremaD", {"label": tfds.features.ClassLabel(names=names)}, splits)
  spec = {"name": "toy_crema_d", **_prepared(tmp_path, cls)}
  task = tasks.get("crema_d")
  for processes in (1, 2, 4):
    source, items = _read(task, spec, processes)
    assert source.size == 6 and [k for k, _ in items] == list(range(6))
    levels = {round(i.audio[0].max() * 32768 / 1000): task.labels[i.labels[0]] for _, i in items}
    assert levels == {1: "neutral", 2: "happy", 3: "sad", 4: "anger", 5: "fear", 6: "disgust"}
  with pytest.raises(sources.SourceError, match="no split"):
    sources.open_source(task, {**spec, "split": "train+dev"})


def test_split_slices():
  parts = list(sources._split_slices(["a", "b", "c"], [3, 1, 2], 2, 5))
  assert parts == [("a", 0, (2, 3)), ("b", 3, (0, 1)), ("c", 4, (0, 1))]


# Published folder layouts: DCASE 2017 Task 4, TUT 2017, RAVDESS, HEAR -----------------------------

def test_dcase17_task4_weak_labels(tmp_path):
  """Lines of the task repository's groundtruth_release/groundtruth_weak_label_evaluation_set.csv
  (YilfKdY7w6Y_60.000_70.000.wav is there twice: Train horn, Air horn)."""
  root = tmp_path / "dcase2017_task4"
  labels = root / "groundtruth_release/groundtruth_weak_label_evaluation_set.csv"
  labels.parent.mkdir(parents=True)
  labels.write_text(
      "-JMT0mK0Dbg_30.000_40.000.wav\t30.000\t40.000\tTrain horn\n"
      "YilfKdY7w6Y_60.000_70.000.wav\t60.000\t70.000\tTrain horn\n"
      "YilfKdY7w6Y_60.000_70.000.wav\t60.000\t70.000\tAir horn, truck horn\n")
  _wav(root / "audio/eval/Y-JMT0mK0Dbg_30.000_40.000.wav")
  task = tasks.get("dcase17_task4")
  items = sources.open_source(task, None, str(tmp_path)).items
  assert [(i.item_id, [task.labels[l] for l in i.labels]) for i in items] == [
      ("-JMT0mK0Dbg_30.000_40.000.wav", ["Train horn"]),
      ("YilfKdY7w6Y_60.000_70.000.wav", ["Train horn", "Air horn, truck horn"])]
  assert pathlib.Path(items[0].audio).is_file() and not pathlib.Path(items[1].audio).exists()
  labels.write_text("-JMT0mK0Dbg_30.000_40.000.wav\t30.000\tTrain horn\n")
  with pytest.raises(sources.SourceError, match=":1: 3 fields, not 4"):
    sources.open_source(task, None, str(tmp_path))


def test_tut2017_evaluation_meta(tmp_path):
  root = tmp_path / "TUT-acoustic-scenes-2017-evaluation"
  (root / "evaluation_setup").mkdir(parents=True)
  (root / "evaluation_setup/evaluate.txt").write_text(
      "audio/1.wav\tbeach\naudio/2.wav\tcafe/restaurant\n")
  _wav(root / "audio/1.wav"), _wav(root / "audio/2.wav")
  task = tasks.get("tut2017")
  items = sources.open_source(task, None, str(tmp_path)).items
  assert [(i.item_id, task.labels[i.labels[0]]) for i in items] == [
      ("audio/1.wav", "beach"), ("audio/2.wav", "cafe/restaurant")]
  (root / "evaluation_setup/evaluate.txt").write_text("audio/1.wav\n")
  with pytest.raises(sources.SourceError, match="'audio/1.wav' has no scene"):
    sources.open_source(task, None, str(tmp_path))


def test_ravdess_file_names(tmp_path):
  root = tmp_path / "RAVDESS"
  for name in ("Actor_01/03-01-05-01-02-01-01.wav", "Actor_01/03-02-05-01-02-01-01.wav",
               "Actor_24/03-01-08-02-01-02-24.wav"):
    _wav(root / name)
  task = tasks.get("ravdess")
  items = sources.open_source(task, None, str(tmp_path)).items  # speech only: the song is left out
  assert [(i.item_id, task.labels[i.labels[0]]) for i in items] == [
      ("Actor_01/03-01-05-01-02-01-01.wav", "angry"), ("Actor_24/03-01-08-02-01-02-24.wav", "surprised")]
  _wav(root / "Actor_02/03-01-09-01-01-01-02.wav")
  with pytest.raises(sources.SourceError, match="not a RAVDESS file name"):
    sources.open_source(task, None, str(tmp_path))


def test_hear_task_folder(tmp_path):
  import json
  root = tmp_path / "hear-2021.0.6/tasks/beijing_opera-v1.0-hear2021-full"
  root.mkdir(parents=True)
  (root / "task_metadata.json").write_text(json.dumps({"task_name": "beijing_opera"}))
  (root / "labelvocabulary.csv").write_text("idx,label\n0,bangu\n1,daluo\n2,naobo\n3,xiaoluo\n")
  (root / "fold00.json").write_text(json.dumps({"a.wav": ["bangu"], "b.wav": ["naobo"]}))
  (root / "fold01.json").write_text(json.dumps({"c.wav": ["xiaoluo"]}))
  for split, name in (("fold00", "a.wav"), ("fold00", "b.wav"), ("fold01", "c.wav")):
    _wav(root / "44100" / split / name)
  task = tasks.get("beijing_opera")
  items = sources.open_source(task, None, str(tmp_path)).items
  assert [(i.item_id, task.labels[i.labels[0]]) for i in items] == [
      ("fold00/a.wav", "bangu"), ("fold00/b.wav", "naobo"), ("fold01/c.wav", "xiaoluo")]
  items = sources.open_source(task, {"folds": ["fold01"]}, str(tmp_path)).items
  assert [i.item_id for i in items] == ["fold01/c.wav"]
  with pytest.raises(sources.SourceError, match="listed but absent"):
    sources.open_source(task, {"rate": 16000}, str(tmp_path))
  (root / "fold01.json").write_text(json.dumps({"c.wav": "xiaoluo"}))
  with pytest.raises(sources.SourceError, match="fold01.json: not a map of file names to lists"):
    sources.open_source(task, None, str(tmp_path))
  (root / "fold01.json").write_text("{")
  with pytest.raises(sources.SourceError, match="fold01.json: not JSON"):
    sources.open_source(task, None, str(tmp_path))
