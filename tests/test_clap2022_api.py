"""CLAP 2022 behind the project's API: `encode.load("2022", ...)` against msclap's wrapper path,
the version told by a checkpoint's keys, launch/eval.py end to end on a 2022 file, and the 2022
training configs stepping (CNN14's batch statistics, BERT's tokens)."""
import csv
import json
import os
import pathlib
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest
import torch
from jax.sharding import Mesh

from clap_jax import audio as audio_lib
from clap_jax import convert, encode, text, text_bert, weights
from clap_jax.convert.clap2022 import convert_2022
from clap_jax.data import sources, writer
from clap_jax.eval import zeroshot
from clap_jax.models import config as model_config
from clap_jax.models.clap import CLAP
from clap_jax.train import ConfigError, checkpoint, objectives
from clap_jax.train import init as train_init
from clap_jax.train import loop as train
from reference import build_reference, state_dict_numpy
from reference_2022 import (build_reference_2022, msclap_clip, msclap_text_embeddings,
                            slow_tokenizer)
from test_clap2022 import TEXTS
from test_configs import CONFIGS, load

REPO = pathlib.Path(__file__).resolve().parents[1]
PRETRAIN = next(p for p in CONFIGS if p.stem == "pretrain")
CLIPS = {  # under ../shared/data/audio
    "short (0.6 s at 8 kHz)": "../fsdd-dev/3_jackson_7.wav",
    "exact (5 s)": "esc50/audio/1-56234-A-9.wav",
    "stereo": "freesound_cc0/149024__foxen10__horse_whinny.wav",
    "long (19 s: 4 windows)": "clotho/audio/01 barreau bunker original.wav",
}


def _unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def tiny_reference():
  return build_reference_2022(model_config.tiny_2022(), seed=4)


@pytest.fixture(scope="module")
def tiny_pth(tiny_reference, tmp_path_factory):
  """An msclap 2022 checkpoint file as msclap saves it (state dict under 'model')."""
  path = tmp_path_factory.mktemp("msclap") / "CLAP_weights_2022_tiny.pth"
  torch.save({"model": tiny_reference.state_dict()}, path)
  return path


@pytest.fixture
def tiny_2022(monkeypatch, tmp_path):
  """Version '2022' builds tiny_2022: the same wiring at a size a test holds; a fresh cache."""
  monkeypatch.setitem(model_config.VERSIONS, "2022", model_config.tiny_2022)
  monkeypatch.setenv("CLAP_JAX_CACHE", str(tmp_path / "cache"))


def _reference_audio(reference, waveform: np.ndarray, clip_samples: int) -> np.ndarray:
  """msclap's wrapper on each window that encode averages (starts 0, clip, ..., n - clip)."""
  n = waveform.shape[0]
  starts = [0] if n <= clip_samples else sorted(set(range(0, n - clip_samples, clip_samples))
                                                | {n - clip_samples})
  clips = np.stack([msclap_clip(waveform, clip_samples, s) for s in starts])
  with torch.no_grad():
    return reference.audio_encoder(torch.from_numpy(clips))[0].numpy().mean(axis=0)


def _errors_against_msclap(clap, reference, shared_data) -> dict[str, float]:
  """Max |unit(ours) - unit(msclap's)| per clip of CLIPS and over real captions + edge texts."""
  clip = clap.config.audio.clip_samples
  paths = [shared_data / "audio" / p for p in CLIPS.values()]
  ours = clap.audio_embeddings(paths)
  errors = {}
  for name, path, embedding in zip(CLIPS, paths, ours):
    ref = _reference_audio(reference, audio_lib.load_audio(path, 44100), clip)
    errors[name] = float(np.abs(_unit(embedding) - _unit(ref)).max())
  with open(shared_data / "audio/clotho/captions.csv", newline="") as f:
    texts = [row["caption_1"] for row in csv.DictReader(f)][:3] + TEXTS
  ref = msclap_text_embeddings(reference, slow_tokenizer(shared_data / "tokenizers/bert-base-uncased"),
                               texts)
  errors["texts"] = float(np.abs(_unit(clap.text_embeddings(texts)) - _unit(ref)).max())
  return errors


def test_encode_load_2022_file_matches_msclap(tiny_2022, tiny_reference, tiny_pth, shared_data,
                                              tmp_path):
  """Short, exact, stereo and long real clips and unicode, empty, '!' and over-long texts; a
  second load reads the cached conversion; unusable files are skipped and named as for 2023."""
  clap = encode.load("2022", checkpoint=tiny_pth)
  assert clap.config.audio.clip_samples == 5 * 44100 and clap.tokenizer.context_length == 100
  errors = _errors_against_msclap(clap, tiny_reference, shared_data)
  print(errors)
  assert all(e <= 1e-4 for e in errors.values()), errors  # NaN fails too
  assert clap.logit_scale == pytest.approx(tiny_reference.logit_scale.item())

  again = encode.load("2022", checkpoint=tiny_pth)  # from $CLAP_JAX_CACHE
  assert len(list((tmp_path / "cache").iterdir())) == 1
  np.testing.assert_array_equal(again.text_embeddings(TEXTS), clap.text_embeddings(TEXTS))
  broken = tmp_path / "broken.wav"
  broken.write_bytes(b"RIFF not audio")
  exact = shared_data / "audio" / CLIPS["exact (5 s)"]
  embeddings, skipped = again.audio_embeddings([broken, exact], skip_errors=True)
  assert embeddings.shape == (1, 64) and skipped[0][0] == 0 and "not a readable" in skipped[0][1]
  with pytest.raises(audio_lib.AudioError, match="broken.wav"):
    again.audio_embeddings([exact, broken])


@pytest.mark.slow
def test_encode_load_full_size_2022_file_matches_msclap(shared_data, tmp_path, monkeypatch):
  """The official size, as `encode.load("2022", checkpoint="CLAP_weights_2022.pth")` runs."""
  monkeypatch.setenv("CLAP_JAX_CACHE", str(tmp_path / "cache"))
  reference = build_reference_2022(model_config.clap_2022(), seed=6)
  torch.save({"model": reference.state_dict()}, tmp_path / "CLAP_weights_2022.pth")
  clap = encode.load("2022", checkpoint=tmp_path / "CLAP_weights_2022.pth")
  errors = _errors_against_msclap(clap, reference, shared_data)
  print(errors)
  assert all(e <= 1e-4 for e in errors.values()), errors  # NaN fails too


def test_version_is_told_by_the_checkpoint_keys(tiny_2022, tiny_pth):
  state = convert.load_state_dict(tiny_pth)
  assert convert.checkpoint_version(state) == "2022"
  assert convert.checkpoint_version(state_dict_numpy(build_reference(model_config.tiny()))) == "2023"
  with pytest.raises(convert.ConversionError, match="not an msclap CLAP checkpoint"):
    convert.checkpoint_version({k: v for k, v in state.items() if "caption_encoder" not in k})
  with pytest.raises(convert.ConversionError, match="holds msclap 2022's towers"):
    convert.convert_state_dict(state, model_config.tiny())
  # launch/eval.py's default model is 2023's; the file's keys make it 2022's, in its dtype.
  config = model_config.clap_2023()
  config.dtype = "bfloat16"
  config, _ = weights.load(tiny_pth, config)
  assert model_config.towers(config) == ("cnn14", "bert") and config.dtype == "bfloat16"
  with pytest.raises(ValueError, match="not msclap 2023's"):
    encode.load("2023", checkpoint=tiny_pth)
  assert weights.HUB_FILES["2022"] == "CLAP_weights_2022.pth"  # CLAPWrapper.model_name
  random = encode.load("2022", checkpoint="random")
  assert isinstance(random.tokenizer, text_bert.BertTokenizer)
  assert random.text_embeddings(["a dog"]).shape == (1, 64)


def test_launch_eval_on_a_2022_file(tiny_pth, shared_data, tmp_path):
  """`launch/eval.py --checkpoint <2022 .pth>`: the model and the prompts' tokenizer follow the
  file; the metrics equal an evaluation built by hand from convert_2022 and BERT's tokenizer."""
  fsdd = tmp_path / "fsdd"  # five takes of each digit
  fsdd.mkdir()
  for path in sorted((shared_data / "fsdd-dev").glob("*_jackson_[0-4].wav")):
    (fsdd / path.name).symlink_to(path)
  out = tmp_path / "out"
  result = subprocess.run(
      [sys.executable, "launch/eval.py", "--config", "configs/zeroshot.py:shared,tiny,2022",
       "--config.tasks=('fsdd', 'clotho')", f"--config.data_dir={shared_data}",
       f"--config.sources.fsdd.root={fsdd}", "--checkpoint", str(tiny_pth),
       "--workdir", str(out)],
      cwd=REPO, capture_output=True, text=True, timeout=600,
      env={**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"})
  assert result.returncode == 0, result.stderr[-3000:]
  content = json.loads((out / "results.json").read_text())
  assert content["tasks"]["fsdd"]["num_items"] == 50 and content["tasks"]["clotho"]["num_items"] == 7

  config = model_config.tiny_2022()
  variables = convert_2022(convert.load_state_dict(tiny_pth), config)
  spec = {"fsdd": {"root": str(fsdd)},
          "clotho": {"root": "audio/clotho", "captions": "captions.csv", "audio": "audio"}}
  expected = zeroshot.evaluate(CLAP(config), variables, ["fsdd", "clotho"],
                               Mesh(np.array(jax.devices()), ("data",)),
                               tokenizer=text_bert.BertTokenizer.load(), batch_size=8,
                               sources=spec, data_dir=str(shared_data), progress=False)
  for name in ("fsdd", "clotho"):
    got = content["tasks"][name]["metrics"]
    assert got.keys() == expected[name].metrics.keys()
    for metric, value in expected[name].metrics.items():
      assert got[metric] == pytest.approx(value, abs=1e-6), (name, metric)


def test_pretrain_2022_smoke_trains_batch_statistics(tmp_path, monkeypatch):
  """configs/pretrain.py:2022,smoke: CNN14 + BERT on the demo data, two steps and a zero-shot
  evaluation; every batch norm's running statistics have left their initial values."""
  monkeypatch.chdir(tmp_path)
  config = load(PRETRAIN, "2022,smoke")
  assert model_config.towers(config.model) == ("cnn14", "bert")
  results = train.main(config, "run")
  assert 0.0 <= results["demo/top1"] <= 1.0
  saved, variables = checkpoint.load_inference_variables(tmp_path / "run")
  assert model_config.towers(saved) == ("cnn14", "bert")
  stats = variables["batch_stats"]["audio_encoder"]["cnn14"]
  for path, value in jax.tree_util.tree_leaves_with_path(stats):
    initial = 0.0 if jax.tree_util.keystr(path).endswith("['mean']") else 1.0
    assert np.all(value != initial), jax.tree_util.keystr(path)


def test_audio_from_takes_cnn14_and_its_statistics(tiny_pth):
  """init.audio_from with a 2022 file: the CNN14 tower (parameters and batch statistics) comes
  from the file; its projection and the text tower stay as initialised."""
  config = model_config.tiny_2022()
  fresh = weights.random_variables(config, seed=1)
  loaded = train_init.initialise(fresh, ml_collections.ConfigDict(
      {"clap_from": "", "audio_from": str(tiny_pth), "decoder_from": ""}), config)
  converted = convert_2022(convert.load_state_dict(tiny_pth), config)
  for collection, part, want in [("params", ("audio_encoder", "cnn14"), converted),
                                 ("batch_stats", ("audio_encoder", "cnn14"), converted),
                                 ("params", ("audio_encoder", "projection"), fresh),
                                 ("params", ("caption_encoder",), fresh)]:
    got, expected = loaded[collection], want[collection]
    for key in part:
      got, expected = got[key], expected[key]
    jax.tree.map(np.testing.assert_array_equal, got, expected)


def test_pretrain_tower_pairs_are_options():
  """The 2023 paper's Table 1 compares encoder pairs: each is a config argument."""
  for arg, towers, clip, tokens in [(None, ("htsat", "gpt2"), 308700, 77),
                                    ("2022", ("cnn14", "bert"), 220500, 100),
                                    ("htsat,bert", ("htsat", "bert"), 308700, 100),
                                    ("cnn14", ("cnn14", "gpt2"), 220500, 77)]:
    config = load(PRETRAIN, arg)
    assert model_config.towers(config.model) == towers, arg
    assert (config.model.audio.clip_samples, config.model.text.context_length) == (clip, tokens)
    assert isinstance(text.for_model(config.model, config.tokenizer),
                      text_bert.BertTokenizer if towers[1] == "bert" else text.Tokenizer)
    smoke = load(PRETRAIN, f"{arg},smoke" if arg else "smoke").model
    assert model_config.towers(smoke) == towers and smoke.audio.clip_samples == 16000
  for bad in ("htsat,cnn14", "roberta"):
    with pytest.raises(ValueError, match="at most one of"):
      load(PRETRAIN, bad)


def test_shards_carry_the_text_towers_tokens(shared_data, tmp_path):
  """make_shards with BERT's vocabulary writes 100-token WordPiece captions a 2022 model trains
  on; GPT-2's 77-token shards are refused by name."""
  items = [sources.Item(item_id=p.name, audio=str(p), captions=("a man saying a digit",))
           for p in sorted((shared_data / "fsdd-dev").glob("*_jackson_1.wav"))[:4]]
  for name, files in (("bert", text_bert.BERT_FILES), ("gpt2", text.GPT2_FILES)):
    writer.write_shards(items, tmp_path / name, writer.WriterConfig(
        tokenizer=str(files), prefix="c", sample_rate=16000, shard_mb=4), progress=False)
  config = load(PRETRAIN, "2022,smoke")
  config.input.kind, config.input.global_batch = "shards", 2
  config.input.train = str(tmp_path / "bert" / "*.tfrecord")
  objective = objectives.get(config, None)
  batch = next(iter(objective.batches(0)))
  expected = text_bert.BertTokenizer.load()(["a man saying a digit"])
  np.testing.assert_array_equal(batch["input_ids"][0], expected["input_ids"][0])
  config.input.train = str(tmp_path / "gpt2" / "*.tfrecord")
  with pytest.raises(ConfigError, match="77-token captions, the model's text tower takes 100"):
    objectives.get(config, None).batches(0)
