"""The corpus readers on tiny fabricated copies of each corpus's published metadata file (its real
column names, header lines and nesting; rows modelled on real ones), through the library and
through launch/make_shards.py's flags; one corpus end to end into shards."""
import importlib.util
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from clap_jax.data import corpora
from test_data_writer import read_examples

REPO = pathlib.Path(__file__).resolve().parents[1]

AUDIOCAPS_VAL = """\
audiocap_id,youtube_id,start_time,caption
97151,vfY_TJq7n_U,130,Rustling occurs ducks quack and water splashes followed by an adult female and adult male speaking
97152,vfY_TJq7n_U,130,Ducks quack and water splashes while people talk
97153,vfY_TJq7n_U,130,Water splashing and ducks quacking with people speaking
108945,tdWhHV3X25Q,60,An audience gives applause as a man yells and a group sings
"""

WAVCAPS_AS = {"num_captions_per_audio": 1, "data": [
    {"id": "Yb0RFKhbpFJA.wav", "caption": "Wind and a man speaking are heard.", "audio": "wav_path",
     "duration": 10.0},
    {"id": "YZsf2YvJfCKw.wav", "caption": "A vehicle engine idles.", "audio": "wav_path",
     "duration": 10.0}]}

WAVCAPS_FSD = {"num_captions_per_audio": 1, "data": [
    {"id": "180913", "file_name": "UK Mello.wav", "href": "/people/Tempouser/sounds/180913/",
     "tags": ["Standard", "ringtone"], "description": "Standard traditional ringtone.",
     "author": "Tempouser", "duration": 3.9, "download_link": "https://freesound.org/...",
     "caption": "A traditional ringtone is playing.", "audio": "wav_path"}]}

MACS = """\
files:
- filename: street_traffic-milan-1082-42018-a.wav
  annotations:
  - annotator_id: 133
    sentence: Traffic noise with cars passing by and a horn
    tags:
    - car
    - traffic
  - annotator_id: 24
    sentence: cars are passing by on a busy street
    tags:
    - car
- filename: park-paris-95-2767-a.wav
  annotations:
  - annotator_id: 7
    sentence: birds are singing and children play in the distance
    tags:
    - birds
"""

FSD50K_DEV = """\
fname,labels,mids,split
64760,"Electric_guitar,Guitar,Plucked_string_instrument,Musical_instrument,Music","/m/02sgy,/m/0342h,/m/0fx80y,/m/04szw,/m/04rlf",train
16399,"Electric_guitar,Guitar,Plucked_string_instrument,Musical_instrument,Music","/m/02sgy,/m/0342h,/m/0fx80y,/m/04szw,/m/04rlf",val
21,Bark,/m/05tny_,train
"""

FSD50K_VOCABULARY = """\
0,Bark,/m/05tny_
1,Electric_guitar,/m/02sgy
2,Guitar,/m/0342h
3,Music,/m/04rlf
4,Musical_instrument,/m/04szw
5,Plucked_string_instrument,/m/0fx80y
"""

AUDIOSET_SEGMENTS = """\
# Segments csv created Sun Mar  5 10:54:31 2017
# num_ytids=22160, num_segs=22160, num_unique_labels=527, num_positive_labels=52882
# YTID, start_seconds, end_seconds, positive_labels
--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"
--ZhevVpy1s, 50.000, 60.000, "/m/012xff"
"""

ONTOLOGY = [
    {"id": "/m/0dgw9r", "name": "Human sounds", "description": "Sounds produced by the human body.",
     "citation_uri": "", "positive_examples": [], "child_ids": ["/m/09x0r"], "restrictions": ["abstract"]},
    {"id": "/m/09x0r", "name": "Speech", "description": "Speech is the vocalized form of human communication.",
     "citation_uri": "", "positive_examples": [], "child_ids": [], "restrictions": []},
    {"id": "/t/dd00088", "name": "Gush", "description": "", "citation_uri": "",
     "positive_examples": [], "child_ids": [], "restrictions": []},
    {"id": "/m/012xff", "name": "Toothbrush", "description": "", "citation_uri": "",
     "positive_examples": [], "child_ids": [], "restrictions": []},
]

URBANSOUND = """\
slice_file_name,fsID,start,end,salience,fold,classID,class
100032-3-0-0.wav,100032,0.0,0.317551,1,5,3,dog_bark
100263-2-0-117.wav,100263,58.5,62.5,1,5,2,children_playing
100648-1-0-0.wav,100648,4.823402,5.471927,2,10,1,car_horn
"""


def _write(path: pathlib.Path, content) -> pathlib.Path:
  path.write_text(content if isinstance(content, str) else json.dumps(content))
  return path


def _fields(items):
  return [(i.item_id, pathlib.Path(i.audio).name, i.captions, i.labels, i.task) for i in items]


def test_audiocaps_groups_a_clips_captions(tmp_path):
  items = _fields(corpora.audiocaps(_write(tmp_path / "val.csv", AUDIOCAPS_VAL), tmp_path / "a",
                                    task="audiocaps"))
  assert items == [
      ("vfY_TJq7n_U_130", "vfY_TJq7n_U.wav", (
          "Rustling occurs ducks quack and water splashes followed by an adult female and adult "
          "male speaking", "Ducks quack and water splashes while people talk",
          "Water splashing and ducks quacking with people speaking"), (), "audiocaps"),
      ("tdWhHV3X25Q_60", "tdWhHV3X25Q.wav",
       ("An audience gives applause as a man yells and a group sings",), (), "audiocaps")]
  named = corpora.audiocaps(tmp_path / "val.csv", tmp_path, audio_name="{audiocap_id}.wav")
  assert [pathlib.Path(i.audio).name for i in named] == ["97151.wav", "108945.wav"]


def test_audiocaps_names_a_missing_column(tmp_path):
  with pytest.raises(ValueError, match=r"no column \['caption'\]"):
    list(corpora.audiocaps(_write(tmp_path / "x.csv", "audiocap_id,youtube_id,start_time\n1,a,0\n"),
                           tmp_path))


def test_wavcaps_finds_audio_by_id(tmp_path):
  items = _fields(corpora.wavcaps(_write(tmp_path / "as_final.json", WAVCAPS_AS), tmp_path))
  assert items == [("as/Yb0RFKhbpFJA", "Yb0RFKhbpFJA.flac", ("Wind and a man speaking are heard.",), (), ""),
                   ("as/YZsf2YvJfCKw", "YZsf2YvJfCKw.flac", ("A vehicle engine idles.",), (), "")]
  items = _fields(corpora.wavcaps(_write(tmp_path / "fsd_final.json", WAVCAPS_FSD), tmp_path,
                                  audio_ext=".wav"))
  assert items == [("fsd/180913", "180913.wav", ("A traditional ringtone is playing.",), (), "")]


def test_macs_keeps_every_annotators_sentence(tmp_path):
  items = _fields(corpora.macs(_write(tmp_path / "MACS.yaml", MACS), tmp_path))
  assert items == [
      ("street_traffic-milan-1082-42018-a.wav", "street_traffic-milan-1082-42018-a.wav",
       ("Traffic noise with cars passing by and a horn", "cars are passing by on a busy street"), (), ""),
      ("park-paris-95-2767-a.wav", "park-paris-95-2767-a.wav",
       ("birds are singing and children play in the distance",), (), "")]


def test_fsd50k_labels_become_a_caption_and_vocabulary_indices(tmp_path):
  gt = _write(tmp_path / "dev.csv", FSD50K_DEV)
  vocabulary = _write(tmp_path / "vocabulary.csv", FSD50K_VOCABULARY)
  items = _fields(corpora.fsd50k(gt, tmp_path, vocabulary, splits=["train"]))
  guitar = ("this is a sound of electric guitar, guitar, plucked string instrument, musical "
            "instrument, music",)
  assert items == [("64760", "64760.wav", guitar, (1, 2, 5, 4, 3), ""),
                   ("21", "21.wav", ("this is a sound of bark",), (0,), "")]
  assert [i.item_id for i in corpora.fsd50k(gt, tmp_path, vocabulary)] == ["64760", "16399", "21"]
  with pytest.raises(ValueError, match=r"64760: labels \['Electric_guitar'.*are not in"):
    list(corpora.fsd50k(gt, tmp_path, _write(tmp_path / "v.csv", "0,Music,/m/04rlf\n")))


def test_audioset_segments_with_ontology_names(tmp_path):
  segments = _write(tmp_path / "balanced_train_segments.csv", AUDIOSET_SEGMENTS)
  ontology = _write(tmp_path / "ontology.json", ONTOLOGY)
  items = _fields(corpora.audioset(segments, tmp_path, ontology, template="the sound of {}"))
  assert items == [("--PJHxphWEs_30.000", "Y--PJHxphWEs.wav", ("the sound of speech, gush",), (1, 2), ""),
                   ("--ZhevVpy1s_50.000", "Y--ZhevVpy1s.wav", ("the sound of toothbrush",), (3,), "")]
  named = corpora.audioset(segments, tmp_path, ontology, audio_name="{ytid}_{start}.wav")
  assert pathlib.Path(next(named).audio).name == "--PJHxphWEs_30.000.wav"


def test_generic_label_csv(tmp_path):
  path = _write(tmp_path / "UrbanSound8K.csv", URBANSOUND)
  items = _fields(corpora.labels(path, tmp_path, file_column="slice_file_name", label_column="class"))
  assert items == [("100032-3-0-0.wav", "100032-3-0-0.wav", ("this is a sound of dog bark",), (2,), ""),
                   ("100263-2-0-117.wav", "100263-2-0-117.wav", ("this is a sound of children playing",), (1,), ""),
                   ("100648-1-0-0.wav", "100648-1-0-0.wav", ("this is a sound of car horn",), (0,), "")]
  multi = _write(tmp_path / "multi.csv", "filename,label\na.wav,dog;cat\nb.wav,cat\n")
  assert _fields(corpora.labels(multi, tmp_path, separator=";")) == [
      ("a.wav", "a.wav", ("this is a sound of dog, cat",), (1, 0), ""),
      ("b.wav", "b.wav", ("this is a sound of cat",), (0,), "")]


@pytest.fixture
def make_shards_flags():
  """launch/make_shards.py's `_items` under a command line, in this process."""
  spec = importlib.util.spec_from_file_location("make_shards", REPO / "launch" / "make_shards.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  flag_values = module.flags.FLAGS

  def items(*argv):
    flag_values.unparse_flags()
    flag_values(["make_shards", "--out_dir=unused", *argv])
    return _fields(module._items())
  yield items
  flag_values.unparse_flags()


def test_make_shards_reads_every_corpus(tmp_path, make_shards_flags):
  a = f"--audio_dir={tmp_path}"
  cases = [
      (["--source=audiocaps", f"--input={_write(tmp_path / 'val.csv', AUDIOCAPS_VAL)}", a,
        "--audio_name=Y{youtube_id}.wav"],
       corpora.audiocaps(tmp_path / "val.csv", tmp_path, audio_name="Y{youtube_id}.wav")),
      (["--source=wavcaps", f"--input={_write(tmp_path / 'as_final.json', WAVCAPS_AS)}", a],
       corpora.wavcaps(tmp_path / "as_final.json", tmp_path)),
      (["--source=macs", f"--input={_write(tmp_path / 'MACS.yaml', MACS)}", a, "--task=macs"],
       corpora.macs(tmp_path / "MACS.yaml", tmp_path, task="macs")),
      (["--source=fsd50k", f"--input={_write(tmp_path / 'dev.csv', FSD50K_DEV)}", a,
        f"--vocabulary={_write(tmp_path / 'vocabulary.csv', FSD50K_VOCABULARY)}", "--splits=val"],
       corpora.fsd50k(tmp_path / "dev.csv", tmp_path, tmp_path / "vocabulary.csv", splits=["val"])),
      (["--source=audioset", f"--input={_write(tmp_path / 'seg.csv', AUDIOSET_SEGMENTS)}", a,
        f"--ontology={_write(tmp_path / 'ontology.json', ONTOLOGY)}"],
       corpora.audioset(tmp_path / "seg.csv", tmp_path, tmp_path / "ontology.json")),
      (["--source=labels", f"--input={_write(tmp_path / 'us.csv', URBANSOUND)}", a,
        "--file_column=slice_file_name", "--label_column=class", "--caption_template={}"],
       corpora.labels(tmp_path / "us.csv", tmp_path, file_column="slice_file_name",
                      label_column="class", template="{}")),
  ]
  for argv, expected in cases:
    got = make_shards_flags(*argv)
    assert got == _fields(expected) and got, argv
  with pytest.raises(Exception, match="--source=fsd50k needs --vocabulary"):
    make_shards_flags("--source=fsd50k", f"--input={tmp_path / 'dev.csv'}", a)


def test_fsd50k_end_to_end_into_shards(tmp_path, gpt2_tokenizer_dir):
  audio_dir = tmp_path / "FSD50K.dev_audio"
  audio_dir.mkdir()
  rate = 16000
  for i, name in enumerate(("64760", "16399", "21")):
    tone = 0.3 * np.sin(2 * np.pi * (220 + 110 * i) * np.arange(rate) / rate)
    soundfile.write(audio_dir / f"{name}.wav", tone.astype(np.float32), rate, subtype="PCM_16")
  out = tmp_path / "shards"
  result = subprocess.run(
      [sys.executable, str(REPO / "launch/make_shards.py"), "--source=fsd50k",
       f"--input={_write(tmp_path / 'dev.csv', FSD50K_DEV)}", f"--audio_dir={audio_dir}",
       f"--vocabulary={_write(tmp_path / 'vocabulary.csv', FSD50K_VOCABULARY)}", "--task=fsd50k",
       f"--out_dir={out}", f"--tokenizer={gpt2_tokenizer_dir}", "--num_workers=0"],
      capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "3 examples" in result.stdout and "0 rejected" in result.stdout
  examples = {e["example_id"]: e for e in read_examples(out)}
  assert sorted(examples) == ["16399", "21", "64760"]
  assert examples["21"]["captions"] == ["this is a sound of bark"] and examples["21"]["labels"] == [0]
  assert examples["64760"]["labels"] == [1, 2, 5, 4, 3] and examples["64760"]["task"] == "fsd50k"
  assert examples["64760"]["audio_length"] == 44100  # 1 s resampled to the stored 44.1 kHz
