"""The task registry, the zero-shot config, and every kind of source: dataset folders (the real
clips in ../shared/data and small fakes of the other layouts), a prepared TFDS dataset, and
shards written by clap_jax.data; absent data is a skipped task, data that does not fit an error."""
import csv
import importlib.util
import pathlib

import jax
import numpy as np
import pytest
import soundfile
from jax.sharding import Mesh

from clap_jax.eval import zeroshot as evaluator, sources, tasks

REPO = pathlib.Path(__file__).resolve().parents[1]


def _load_config(arg: str):
  spec = importlib.util.spec_from_file_location("zeroshot", REPO / "configs" / "zeroshot.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def _wav(path: pathlib.Path, seconds: float = 0.2, rate: int = 8000) -> str:
  path.parent.mkdir(parents=True, exist_ok=True)
  soundfile.write(path, np.zeros(int(seconds * rate), np.float32), rate)
  return str(path)


# Registry and config ---------------------------------------------------------------------------

def test_registry_holds_the_papers_tasks_with_their_label_sets():
  assert len(tasks.paper_tasks()) == 22  # 20 classification tasks, 2 retrieval datasets
  assert len(tasks.get("esc50").labels) == 50 and len(tasks.get("fsd50k").labels) == 200
  assert len(tasks.get("urbansound8k").labels) == 10 and len(tasks.get("dcase17_task4").labels) == 17
  assert tasks.get("gtzan_genres").labels[0] == "blues" and tasks.get("nsynth_pitch").labels[39] == "C4"
  kinds = {name: t.kind for name, t in tasks.TASKS.items()}
  assert kinds["fsd50k"] == kinds["nsynth_qualities"] == tasks.MULTI_LABEL
  assert kinds["clotho"] == kinds["audiocaps"] == tasks.RETRIEVAL
  assert tasks.get("esc50").prompts()[11] == ["this is a sound of sea waves"]
  with pytest.raises(KeyError, match="unknown task"):
    tasks.get("esc-50")


def test_esc50_labels_match_the_datasets_class_list(shared_data):
  with open(shared_data / "audio/esc50/meta/esc50_classes.csv", newline="") as f:
    assert tuple(row["category"] for row in csv.DictReader(f)) == tasks.ESC50_LABELS


def test_task_checks_its_fields():
  with pytest.raises(ValueError, match="exactly one"):
    tasks.Task("t", "T", "G", tasks.SINGLE_LABEL, ("a",), {}, templates=("no slot",))
  with pytest.raises(ValueError, match="retrieval tasks have no labels"):
    tasks.Task("t", "T", "G", tasks.RETRIEVAL, ("a",), {})
  with pytest.raises(ValueError, match="duplicate"):
    tasks.Task("t", "T", "G", tasks.SINGLE_LABEL, ("a", "a"), {})


@pytest.mark.parametrize("arg", ["", "shared", "tiny", "shared,tiny"])
def test_config_loads_and_names_known_tasks(arg):
  config = _load_config(arg)
  assert all(name in tasks.TASKS for name in config.tasks)
  # Every registry task has a (possibly empty) source entry, so any can be set from the command
  # line; none is for an unknown task.
  assert sorted(config.sources) == sorted(tasks.TASKS)


def test_config_rejects_unknown_options():
  with pytest.raises(ValueError, match="unknown options"):
    _load_config("shared,fast")


# Folder layouts ----------------------------------------------------------------------------------

def test_shared_esc50_fsdd_and_clotho(shared_data):
  config = _load_config("shared")
  opened = {name: sources.open_source(tasks.get(name), config.sources[name].to_dict(), config.data_dir)
            for name in ("esc50", "fsdd", "clotho")}
  esc50 = opened["esc50"].items
  assert [tasks.ESC50_LABELS[i.labels[0]] for i in esc50] == [
      "crow", "car_horn", "clapping", "dog", "sea_waves", "cat"]
  fsdd = opened["fsdd"].items
  assert len(fsdd) == 1000 and fsdd[0].item_id == "0_jackson_0.wav" and fsdd[0].labels == (0,)
  assert sorted(np.bincount([i.labels[0] for i in fsdd])) == [100] * 10
  clotho = opened["clotho"]
  assert len(clotho.items) == 7 and clotho.max_captions == 5
  assert all(len(i.captions) == 5 for i in clotho.items)


def test_other_folder_layouts(tmp_path):
  us8k = tmp_path / "UrbanSound8K"
  (us8k / "metadata").mkdir(parents=True)
  (us8k / "metadata/UrbanSound8K.csv").write_text(
      "slice_file_name,fold,class\na.wav,1,siren\nb.wav,2,dog_bark\n")
  _wav(us8k / "audio/fold1/a.wav"), _wav(us8k / "audio/fold2/b.wav")
  items = sources.open_source(tasks.get("urbansound8k"), {"folds": [2]}, str(tmp_path)).items
  assert [(i.item_id, i.labels) for i in items] == [("b.wav", (3,))]

  fsd = tmp_path / "FSD50K"
  (fsd / "FSD50K.ground_truth").mkdir(parents=True)
  (fsd / "FSD50K.ground_truth/eval.csv").write_text('fname,labels,mids\n7,"Bark,Dog,Animal",x\n')
  _wav(fsd / "FSD50K.eval_audio/7.wav")
  (item,) = sources.open_source(tasks.get("fsd50k"), None, str(tmp_path)).items
  assert [tasks.FSD50K_LABELS[l] for l in item.labels] == ["Bark", "Dog", "Animal"]

  genres = tmp_path / "genres"
  _wav(genres / "jazz/jazz.00001.wav"), _wav(genres / "blues/blues.00000.wav")
  spec = {"kind": "folder", "layout": "class_folders", "root": "genres"}
  items = sources.open_source(tasks.get("gtzan_genres"), spec, str(tmp_path)).items
  assert [(i.item_id, i.labels) for i in items] == [("blues/blues.00000.wav", (0,)),
                                                ("jazz/jazz.00001.wav", (5,))]


def test_data_that_does_not_fit_is_an_error(tmp_path):
  _wav(tmp_path / "digits/11_x_0.wav")
  with pytest.raises(sources.SourceError, match="'11' is not one of fsdd's 10 labels"):
    sources.open_source(tasks.get("fsdd"), {"root": "digits"}, str(tmp_path))
  (tmp_path / "esc/meta").mkdir(parents=True)
  (tmp_path / "esc/meta/esc50.csv").write_text("filename,fold,target,category\nx.wav,1,0,dog\n")
  with pytest.raises(sources.SourceError, match="listed but absent"):
    sources.open_source(tasks.get("esc50"), {"root": "esc"}, str(tmp_path))
  with pytest.raises(ValueError, match="bad options for the esc50 layout"):
    sources.open_source(tasks.get("esc50"), {"root": "esc", "flods": [1]}, str(tmp_path))
  with pytest.raises(ValueError, match="unknown folder layout"):
    sources.open_source(tasks.get("esc50"), {"root": "esc", "layout": "esc-50"}, str(tmp_path))


def test_missing_data_is_reported_as_skipped(tmp_path):
  from clap_jax.models import config as model_configs
  from clap_jax.models.clap import CLAP
  mesh = Mesh(np.array(jax.devices()[:1]), ("data",))
  names = ["esc50", "fsd50k", "crema_d", "audiocaps"]
  results = evaluator.evaluate(CLAP(model_configs.tiny()), {}, names, mesh, tokenizer=None,
                               batch_size=1, data_dir=str(tmp_path),
                               sources={"crema_d": {"tfds_dir": str(tmp_path / "tfds")}})
  assert list(results) == names
  assert all(r.skipped and not r.metrics for r in results.values())
  assert "ESC-50-master is absent" in results["esc50"].skipped
  assert "not prepared" in results["crema_d"].skipped
  assert "audiocaps is absent" in results["audiocaps"].skipped


# TFDS and shards ---------------------------------------------------------------------------------

def test_prepared_tfds_dataset(tmp_path):
  import tensorflow_datasets as tfds

  class ToyEmotions(tfds.core.GeneratorBasedBuilder):
    """Five clips labelled as CREMA-D labels them."""
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
          "audio": tfds.features.Audio(file_format="wav", sample_rate=16000),
          "label": tfds.features.ClassLabel(names=["NEU", "HAP", "SAD", "ANG", "FEA", "DIS"])}))

    def _split_generators(self, dl_manager):
      return {"test": self._generate_examples()}

    def _generate_examples(self):
      for i in range(5):
        yield i, {"audio": np.full(1600, 16384 * (i + 1) // 5, np.int64), "label": i}

  ToyEmotions(data_dir=str(tmp_path)).download_and_prepare()
  spec = {"name": "toy_emotions", "tfds_dir": str(tmp_path), "split": "test"}
  source = sources.open_source(tasks.get("crema_d"), spec)
  assert source.size == 5
  shares = [list(source.local_items(p, 2)) for p in range(2)]
  assert [k for share in shares for k, _ in share] == [0, 1, 2, 3, 4]
  labels = tasks.get("crema_d").labels
  # TFDS stores examples in its own order; example i is recognised by its level (i + 1) / 10,
  # 16-bit integers read as floats the way soundfile reads them.
  by_example = {round(item.audio[0].max() * 10) - 1: item for share in shares for _, item in share}
  assert [labels[by_example[i].labels[0]] for i in range(5)] == [
      "neutral", "happy", "sad", "anger", "fear"]
  assert by_example[4].rate == 16000 and by_example[4].audio[0].max() == pytest.approx(16384 / 32768)


def test_shards_from_the_data_writer_keep_each_clip_whole(shared_data, gpt2_tokenizer_dir, tmp_path):
  from clap_jax import data
  files = sorted((shared_data / "fsdd-dev").glob("*_nicolas_0.wav"))
  items = [data.sources.Item(f.name, str(f), captions=(f"digit {f.name[0]}",), labels=(int(f.name[0]),),
                             task="fsdd") for f in files]
  # 0.3 s windows: most digits are stored as several records ('#k').
  config = data.WriterConfig(tokenizer=str(gpt2_tokenizer_dir), prefix="fsdd", sample_rate=8000,
                             max_seconds=0.3, shard_mb=0.01)
  summary = data.write_shards(items, tmp_path / "shards", config, progress=False)
  assert len(summary["shards"]) > 2
  spec = {"kind": "shards", "pattern": "shards/fsdd-*.tfrecord"}
  source = sources.open_source(tasks.get("fsdd"), spec, str(tmp_path))
  seen = [entry for p in range(2) for entry in source.local_items(p, 2)]
  assert sorted(item.item_id for _, item in seen) == sorted(f.name for f in files)
  assert len({key for key, _ in seen}) == len(files)
  for _, item in seen:
    assert item.labels == (int(item.item_id[0]),) and item.captions == (f"digit {item.item_id[0]}",)
    waveform = np.concatenate(item.audio)
    expected = soundfile.read(shared_data / "fsdd-dev" / item.item_id, dtype="float32")[0]
    assert len(item.audio) == max(1, -(-len(expected) // 2400))
    # Windows cover the clip; the last one is aligned to its end (clip_windows).
    np.testing.assert_allclose(waveform[:2400], expected[:2400], atol=1 / 32768)
  # A shard cut short (an interrupted copy) makes its reader's share malformed, not a crash.
  first = sorted((tmp_path / "shards").glob("fsdd-*.tfrecord"))[0]
  first.write_bytes(first.read_bytes()[:-100])
  with pytest.raises(sources.SourceError, match=f"{first.name}: truncated record at "):
    list(sources.open_source(tasks.get("fsdd"), spec, str(tmp_path)).local_items(0, 2))
