"""The folder layouts of VocalSound, SESA, LibriCount and AudioCaps (clap_jax/eval/layouts.py) on
tiny copies of the published layouts: the real folder and file names, the real CSV columns and
JSON fields (rows copied from the released files where they are public), and what a malformed
copy is reported as."""
import csv
import json
import pathlib

import numpy as np
import pytest
import soundfile

from clap_jax.eval import sources, tasks

REPO = pathlib.Path(__file__).resolve().parents[1]


def _wav(path: pathlib.Path, seconds: float = 0.1, rate: int = 16000) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  soundfile.write(path, np.zeros(int(seconds * rate), np.float32), rate)


def _labels(task, items):
  return [(i.item_id, [task.labels[l] for l in i.labels]) for i in items]


# VocalSound ------------------------------------------------------------------------------------

_AUTHORS = "/data/sls/scratch/yuangong/vocalsound/data/audio_16k"  # the release's paths are theirs


def _vocalsound(tmp_path, entries: list[dict], files: list[str]) -> pathlib.Path:
  root = tmp_path / "vs_release_16k"
  (root / "datafiles").mkdir(parents=True)
  (root / "datafiles/te.json").write_text(json.dumps({"data": entries}, indent=1))
  (root / "class_labels_indices_vs.csv").write_text(
      "index,mid,display_name\n0,/m/01j3sz,\"Laughter\"\n1,/m/07plz5l,\"Sigh\"\n"
      "2,/m/01b_21,\"Cough\"\n3,/m/0dl9sf8,\"Throat clearing\"\n4,/m/01hsr_,\"Sneeze\"\n"
      "5,/m/07ppn3j,\"Sniff\"\n")
  for name in files:
    _wav(root / "audio_16k" / name)
  return root


def test_vocalsound_test_split(tmp_path):
  entries = [{"wav": f"{_AUTHORS}/f0003_0_cough.wav", "labels": "/m/01b_21", "spk_id": "f0003"},
             {"wav": f"{_AUTHORS}/f0004_0_throatclearing.wav", "labels": "/m/0dl9sf8",
              "spk_id": "f0004"},
             {"wav": f"{_AUTHORS}/f0003_0_laughter.wav", "labels": "/m/01j3sz", "spk_id": "f0003"}]
  names = ["f0003_0_cough.wav", "f0004_0_throatclearing.wav", "f0003_0_laughter.wav"]
  root = _vocalsound(tmp_path, entries, names + ["f0004_0_sniff.wav"])  # f0004: not in te.json
  task = tasks.get("vocalsound")
  items = sources.open_source(task, None, str(tmp_path)).items
  assert _labels(task, items) == [("f0003_0_cough.wav", ["cough"]),
                                  ("f0004_0_throatclearing.wav", ["throat_clearing"]),
                                  ("f0003_0_laughter.wav", ["laughter"])]
  assert items[0].audio == str(root / "audio_16k/f0003_0_cough.wav")


def test_vocalsound_mids_are_audiosets():
  """The six mids name the same classes in AudioSet's class_labels_indices.csv."""
  with open(REPO / "clap_jax/assets/audioset/class_labels_indices.csv", newline="") as f:
    audioset = {row["mid"]: row["display_name"] for row in csv.DictReader(f)}
  assert {audioset[mid].lower().replace(" ", "_") for mid in tasks.VOCALSOUND_MIDS} == set(
      tasks.get("vocalsound").labels)
  assert all(audioset[mid].lower().replace(" ", "_") == label
             for mid, label in tasks.VOCALSOUND_MIDS.items())


def test_vocalsound_malformed(tmp_path):
  task = tasks.get("vocalsound")
  _vocalsound(tmp_path, [{"wav": f"{_AUTHORS}/f0003_0_cough.wav", "labels": "/m/01hsr_"}],
              ["f0003_0_cough.wav"])
  with pytest.raises(sources.SourceError, match="f0003_0_cough.wav is labelled 'sneeze'"):
    sources.open_source(task, None, str(tmp_path))
  (tmp_path / "vs_release_16k/datafiles/te.json").write_text('{"data": [{"wav": "a.wav"}]}')
  with pytest.raises(sources.SourceError, match="without 'wav' and 'labels'"):
    sources.open_source(task, None, str(tmp_path))
  (tmp_path / "vs_release_16k/datafiles/te.json").write_text('[1, 2]')
  with pytest.raises(sources.SourceError, match="not a VocalSound datafile"):
    sources.open_source(task, None, str(tmp_path))
  (tmp_path / "vs_release_16k/datafiles/te.json").write_text(json.dumps({"data": [
      {"wav": f"{_AUTHORS}/f0003_0_cough.wav", "labels": "/m/0000"}]}))
  with pytest.raises(sources.SourceError, match="label '/m/0000' is not one of"):
    sources.open_source(task, None, str(tmp_path))


# SESA ------------------------------------------------------------------------------------------

def test_sesa_class_in_the_file_name(tmp_path):
  for split, name in (("test", "casual_000.wav"), ("test", "gunshot_003.wav"),
                      ("test", "explosion_010.wav"), ("test", "siren_001.wav"),
                      ("train", "gunshot_000.wav")):
    _wav(tmp_path / "SESA" / split / name)
  task = tasks.get("sesa")
  items = sources.open_source(task, None, str(tmp_path)).items
  assert _labels(task, items) == [("test/casual_000.wav", ["casual"]),
                                  ("test/explosion_010.wav", ["explosion"]),
                                  ("test/gunshot_003.wav", ["gunshot"]),
                                  ("test/siren_001.wav", ["alarm_siren"])]
  train = sources.open_source(task, {"split": "train"}, str(tmp_path)).items
  assert _labels(task, train) == [("train/gunshot_000.wav", ["gunshot"])]
  _wav(tmp_path / "SESA/test/scream_000.wav")
  with pytest.raises(sources.SourceError, match="label 'scream' is not one of sesa's 4 labels"):
    sources.open_source(task, None, str(tmp_path))
  with pytest.raises(sources.SourceError, match="valid is absent"):
    sources.open_source(task, {"split": "valid"}, str(tmp_path))


# LibriCount ------------------------------------------------------------------------------------

# The annotation of faroit/CountNet's README: three speakers.
_THREE = [{"sex": "F", "activity": [[0, 51076], [51396, 55400], [56681, 80000]], "speaker_id": 1221},
          {"sex": "F", "activity": [[0, 51877], [56201, 80000]], "speaker_id": 3570},
          {"sex": "M", "activity": [[0, 15681], [16161, 68213], [73498, 80000]], "speaker_id": 5105}]


def _libricount(tmp_path, clips: dict[str, list]) -> pathlib.Path:
  folder = tmp_path / "LibriCount10-0dB/test"
  for stem, speakers in clips.items():
    _wav(folder / f"{stem}.wav")
    (folder / f"{stem}.json").write_text(json.dumps(speakers))
  return folder


def test_libricount_counts_the_annotated_speakers(tmp_path):
  _libricount(tmp_path, {"3_5af5e0cbbd9f4b0f": _THREE, "0_0c7d5ab4d5d84a5b": [],
                         "10_8b2a3c9d1e0f4a7b": [{"sex": "M", "activity": [], "speaker_id": i}
                                                 for i in range(10)]})
  task = tasks.get("libricount")
  items = sources.open_source(task, None, str(tmp_path)).items
  assert _labels(task, items) == [("test/0_0c7d5ab4d5d84a5b.wav", ["0"]),
                                  ("test/10_8b2a3c9d1e0f4a7b.wav", ["10"]),
                                  ("test/3_5af5e0cbbd9f4b0f.wav", ["3"])]


def test_libricount_malformed(tmp_path):
  task = tasks.get("libricount")
  folder = _libricount(tmp_path, {"2_5af5e0cbbd9f4b0f": _THREE})
  with pytest.raises(sources.SourceError, match="not a list of 2 speakers"):
    sources.open_source(task, None, str(tmp_path))
  (folder / "2_5af5e0cbbd9f4b0f.json").write_text("[{")
  with pytest.raises(sources.SourceError, match="not JSON"):
    sources.open_source(task, None, str(tmp_path))
  (folder / "2_5af5e0cbbd9f4b0f.json").unlink()
  with pytest.raises(sources.SourceError, match="2_5af5e0cbbd9f4b0f.json is absent, the annotation of 2_5af5e0cbbd9f4b0f.wav"):
    sources.open_source(task, None, str(tmp_path))


# AudioCaps -------------------------------------------------------------------------------------

# Rows of cdjkim/audiocaps dataset/test.csv: the clip _xylo5_IiaM at 470 s has two of its captions
# here, far apart in the file, as there.
_AUDIOCAPS_TEST = """audiocap_id,youtube_id,start_time,caption
103549,7fmOlUlwoNg,20,Constant rattling noise and sharp vibrations
103939,_xylo5_IiaM,470,A woman talks and a baby whispers
103542,VjSEIRnLAh8,30,"Food is frying, and a woman talks"
107280,_xylo5_IiaM,470,A woman talking as a baby talks followed by plastic thumping
"""


@pytest.mark.parametrize("audio_name, files", [
    ("{youtube_id}.wav", ["7fmOlUlwoNg.wav", "_xylo5_IiaM.wav", "VjSEIRnLAh8.wav"]),
    ("{youtube_id}_{start_time}.wav", ["7fmOlUlwoNg_20.wav", "_xylo5_IiaM_470.wav",
                                       "VjSEIRnLAh8_30.wav"]),
    ("{audiocap_id}.wav", ["103549.wav", "103939.wav", "103542.wav"]),
])
def test_audiocaps_clips_with_all_their_captions(tmp_path, audio_name, files):
  root = tmp_path / "audiocaps"
  root.mkdir()
  (root / "test.csv").write_text(_AUDIOCAPS_TEST)
  for name in files[:2]:  # the third clip could not be downloaded
    _wav(root / "test" / name)
  source = sources.open_source(tasks.get("audiocaps"), {"audio_name": audio_name}, str(tmp_path))
  items = source.items
  assert [(i.item_id, i.captions) for i in items] == [
      ("7fmOlUlwoNg_20", ("Constant rattling noise and sharp vibrations",)),
      ("_xylo5_IiaM_470", ("A woman talks and a baby whispers",
                           "A woman talking as a baby talks followed by plastic thumping")),
      ("VjSEIRnLAh8_30", ("Food is frying, and a woman talks",))]
  assert [i.audio for i in items] == [str(root / "test" / name) for name in files]
  assert source.max_captions == 2
  # An absent clip stays listed: the evaluator names it as unusable.
  assert not pathlib.Path(items[2].audio).exists()
  assert tasks.get("audiocaps_captioning").source == tasks.get("audiocaps").source


def test_audiocaps_malformed(tmp_path):
  root = tmp_path / "audiocaps"
  root.mkdir()
  (root / "test.csv").write_text(_AUDIOCAPS_TEST.replace("caption\n", "text\n", 1))
  with pytest.raises(sources.SourceError, match=r"no column \['caption'\]"):
    sources.open_source(tasks.get("audiocaps"), None, str(tmp_path))
  with pytest.raises(ValueError, match="audio_name '{ytid}.wav' names 'ytid'"):
    sources.open_source(tasks.get("audiocaps"), {"audio_name": "{ytid}.wav"}, str(tmp_path))


def test_a_csv_without_its_columns_is_malformed(tmp_path):
  (tmp_path / "ESC-50-master/meta").mkdir(parents=True)
  (tmp_path / "ESC-50-master/meta/esc50.csv").write_text("filename,fold,target\n1-100032-A-0.wav,1,0\n")
  with pytest.raises(sources.SourceError, match=r"esc50.csv: no column \['category'\]"):
    sources.open_source(tasks.get("esc50"), None, str(tmp_path))
  (tmp_path / "clotho").mkdir()
  (tmp_path / "clotho/clotho_captions_evaluation.csv").write_text("file,caption\na.wav,a dog\n")
  with pytest.raises(sources.SourceError, match=r"no column \['file_name', 'caption_1'\]"):
    sources.open_source(tasks.get("clotho"), None, str(tmp_path))
