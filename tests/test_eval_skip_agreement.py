"""Two processes whose copies of the data differ agree on what they skip: a task malformed or
unreadable in one process's copy (found when it is opened, or mid-run after both have stepped
together), zero-shot, captioning or answers (prefix_lm's held-out tasks), is skipped by both with one reason naming that process, the
others run as usual, and both write the same report. Without the agreement the healthy process
waits in a collective for ever (the deadline then fails the test).

Run as a script, this file is one process: `python tests/test_eval_skip_agreement.py OUT.json
DATA_DIR PROCESS_ID NUM_PROCESSES PORT`.
"""
import json
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile

import multidevice
from test_eval_sharded import SAMPLE_RATE, TOKENIZER, _free_port, toy_model, toy_tasks

BROKEN = 1  # the process whose data is malformed


def _esc50_copy(root: pathlib.Path, category: str) -> None:
  (root / "meta").mkdir(parents=True)
  (root / "meta/esc50.csv").write_text(
      "filename,fold,target,category,esc10,src_file,take\n"
      "1-100032-A-0.wav,1,0,dog,True,100032,A\n"
      f"1-110389-A-0.wav,1,0,{category},True,110389,A\n")
  for name in ("1-100032-A-0.wav", "1-110389-A-0.wav"):
    (root / "audio").mkdir(exist_ok=True)
    soundfile.write(root / "audio" / name, np.full(SAMPLE_RATE // 4, 0.1, np.float32), SAMPLE_RATE)


def _answers(config, data_dir: pathlib.Path) -> dict:
  """The answers evaluator (prefix_lm's held-out tasks) on the same 12 clips' shards in two
  folders; process 1's copy of 'broken' has its last record damaged (its CRC no longer matches)."""
  import jax
  from jax.sharding import Mesh
  from clap_jax import text, weights
  from clap_jax.data import answers, writer
  from clap_jax.eval import answers as answers_eval, multihost, sources
  from clap_jax.models.clapcap import ClapCap

  rng = np.random.default_rng(0)
  items = []
  for i in range(12):
    path = data_dir / f"a{i}.wav"
    soundfile.write(path, rng.normal(0, 0.1, config.audio.sample_rate // 2), config.audio.sample_rate)
    items.append(sources.Item(path.name, str(path), captions=(("dog", "rain")[i % 2],),
                              labels=(i % 2,), task="toy_answers"))
  tasks = {}
  for name in ("broken", "healthy"):
    writer.write_shards(items, data_dir / name, writer.WriterConfig(
        prefix="toy_answers", sample_rate=config.audio.sample_rate), progress=False)
    tasks[name] = answers.AnswerTask(name, "this is a sound of", "class", ("dog", "rain"), 1.0, "",
                                     str(data_dir / name / "*.tfrecord"))
  if jax.process_index() == BROKEN:
    (shard,) = (data_dir / "broken").glob("*.tfrecord")
    data = bytearray(shard.read_bytes())
    data[-40:-8] = bytes(b ^ 0xFF for b in data[-40:-8])  # every bit flipped: surely changed
    shard.write_bytes(bytes(data))
  ev = answers_eval.AnswersEvaluator(
      ClapCap(config), list(tasks.values()),
      Mesh(np.array(jax.devices()).reshape(-1, 1), ("data", "fsdp")),
      tokenizer=text.Tokenizer.load(), batch_size=4, clip_samples=config.audio.clip_samples,
      max_length=3)
  variables = weights.random_variables(config, seed=0)
  report = {}
  for name, task in tasks.items():
    try:
      report[f"answers/{name}"] = {"skipped": None, "metrics": ev.evaluate_task(variables, task)}
    except multihost.GivenUp as e:
      report[f"answers/{name}"] = {"skipped": str(e), "metrics": {}}
  report["answers/run"] = dict(ev.run(variables))  # logs the skipped task, goes on
  return report


def run(out_path: str, data_dir: str) -> None:
  import jax
  from jax.sharding import Mesh
  from clap_jax import text, weights
  from clap_jax.eval import captioning, sources, tasks
  from clap_jax.models import config as model_config
  from clap_jax.eval import zeroshot as evaluator

  class BreaksMidway(sources.ListSource):
    """The broken process's share has a record it cannot read (`error`), after some good ones."""

    def __init__(self, items, error=sources.SourceError, after=12):
      super().__init__(items)
      self.error, self.after = error, after

    def local_items(self, process_index, process_count):
      for count, (key, item) in enumerate(super().local_items(process_index, process_count)):
        if process_index == BROKEN and count == self.after:
          raise self.error(f"{item.item_id}: a damaged record")
        yield key, item

  # This process's copy of ESC-50: the broken one has a category no task knows.
  _esc50_copy(pathlib.Path(data_dir) / "ESC-50-master",
              "dgo" if jax.process_index() == BROKEN else "dog")
  (single, multi, retrieval), toy_sources = toy_tasks()
  model = toy_model()
  audio = model.init(jax.random.key(0), np.zeros((1, 800), np.float32), method="encode_audio")
  text_params = model.init(jax.random.key(1), np.zeros((1, 77), np.int32),
                           np.ones((1, 77), np.int32), method="encode_text")
  variables = {"params": {**audio["params"], **text_params["params"]}}
  ev = evaluator.ZeroShotEvaluator(
      model, [tasks.get("esc50"), single, multi, retrieval, tasks.get("fsd50k")],
      Mesh(np.array(jax.devices()), ("data",)), tokenizer=text.Tokenizer.load(TOKENIZER),
      batch_size=4, data_dir=data_dir, workers=2, progress=False,
      sources={single.name: BreaksMidway(toy_sources[single.name].items),
               multi.name: toy_sources[multi.name],
               # not a SourceError: an I/O error met mid-run must not leave the other waiting
               retrieval.name: BreaksMidway(toy_sources[retrieval.name].items, OSError, after=5)})
  results = ev.evaluate(variables)
  # Captioning: a clapcap captions each process's share, then the captions are gathered.
  config = model_config.tiny_clapcap()
  rng = np.random.default_rng(0)
  clips = [sources.Item(f"c{i}", (rng.normal(size=config.audio.clip_samples // 2).astype(np.float32),),
                        config.audio.sample_rate, captions=("a dog barks", "rain falls"))
           for i in range(6)]
  captioner = captioning.CaptioningEvaluator(
      config, ["clotho_captioning", "audiocaps_captioning"], tokenizer=text.Tokenizer.load(),
      beam_size=1, max_length=4, batch_size=2, progress=False,
      sources={"clotho_captioning": BreaksMidway(clips, OSError, after=2),
               "audiocaps_captioning": sources.ListSource(clips)})
  results.update({f"captioning/{name}": r for name, r in
                  captioner.evaluate(weights.random_variables(config, seed=0)).items()})
  report = {name: {"skipped": r.skipped, "metrics": r.metrics, "num_items": r.num_items}
            for name, r in results.items()}
  report.update(_answers(config, pathlib.Path(data_dir)))
  pathlib.Path(out_path).write_text(json.dumps(report))


def test_a_task_malformed_in_one_process_is_skipped_by_both(tmp_path):
  port = _free_port()
  procs = []
  for i in range(2):
    (tmp_path / f"data{i}").mkdir()
    procs.append(subprocess.Popen(
        [sys.executable, __file__, str(tmp_path / f"proc{i}.json"), str(tmp_path / f"data{i}"),
         str(i), "2", str(port)], env=multidevice.env(1), cwd=multidevice.REPO,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
  multidevice.finish(procs, timeout=600)  # a deadline for hangs, not a speed limit
  reports = [json.loads((tmp_path / f"proc{i}.json").read_text()) for i in range(2)]
  assert reports[0] == reports[1]
  report = reports[0]
  assert report["esc50"]["skipped"] == (
      "process 1: malformed data: 1-110389-A-0.wav: label 'dgo' is not one of esc50's 50 labels")
  # Process 1's 13th clip of its 20: process 0 had stepped through batches with it by then.
  assert report["toy_single"]["skipped"] == "process 1: malformed data: s31: a damaged record"
  assert not report["esc50"]["metrics"] and not report["toy_single"]["metrics"]
  assert report["toy_multi"]["skipped"] is None and report["toy_multi"]["num_items"] == 37
  assert 0 < report["toy_multi"]["metrics"]["mAP"] <= 1
  # Unreadable mid-run in process 1 (its 6th clip, r24): an OSError, named as such.
  assert report["toy_retrieval"]["skipped"] == (
      "process 1: reading failed: OSError: r24: a damaged record")
  # Captioning agrees too: process 1's 3rd clip of its 3 (c5) fails; the healthy task runs whole.
  assert report["captioning/clotho_captioning"]["skipped"] == (
      "process 1: reading failed: OSError: c5: a damaged record")
  assert report["captioning/audiocaps_captioning"]["skipped"] is None
  assert report["captioning/audiocaps_captioning"]["num_items"] == 6
  # The answers evaluator: process 1's damaged record makes both give that task up, not hang.
  # TensorFlow's wording, without the op names around it, after the shards that were read.
  assert re.fullmatch(re.escape(f"process 1: reading failed: DataLossError: {tmp_path}/data1/"
                                "broken/*.tfrecord: corrupted record at ") + r"\d+",
                      report["answers/broken"]["skipped"])
  assert report["answers/healthy"]["skipped"] is None
  assert set(report["answers/healthy"]["metrics"]) == {"healthy/accuracy", "healthy/exact"}
  assert report["answers/run"] == report["answers/healthy"]["metrics"]
  # Absent in both copies (each its own folder): the first process's reason, naming it.
  assert report["fsd50k"]["skipped"] == f"process 0: {tmp_path}/data0/FSD50K is absent"


def test_one_process_skips_malformed_data_met_mid_run_or_after_gathering():
  from clap_jax.eval import sources
  from test_eval_sharded import toy_evaluator

  class Damaged(sources.ListSource):
    def local_items(self, process_index, process_count):
      for key, item in super().local_items(process_index, process_count):
        if key == 20:
          raise sources.SourceError(f"{item.item_id}: a damaged record")
        yield key, item

  (single, multi, _), toy_sources = toy_tasks()
  items = toy_sources[single.name].items
  two_labels = [sources.Item(items[0].item_id, items[0].audio, items[0].rate, labels=(0, 1))]
  ev, variables = toy_evaluator([single, multi], {
      single.name: Damaged(items), multi.name: sources.ListSource(items[1:3] + two_labels)})
  results = ev.evaluate(variables)
  assert results[single.name].skipped == "malformed data: s20: a damaged record"
  assert results[multi.name].metrics  # multi-label: two labels are fine
  ev, variables = toy_evaluator([single], {single.name: sources.ListSource(items[1:3] + two_labels)})
  assert ev.evaluate(variables)[single.name].skipped == (
      "malformed data: toy_single is single-label but 1 clips have [2] labels")


def test_in_lockstep_yields_every_item_and_gives_up_with_the_reason_of_an_error():
  from clap_jax.eval import multihost

  def breaks_after_two():
    yield from (1, 2)
    raise ValueError("a damaged record")
  assert list(multihost.in_lockstep(iter([1, 2, 3]), str)) == [1, 2, 3]
  seen = []
  with pytest.raises(multihost.GivenUp, match=r"^reading failed: a damaged record$"):
    for item in multihost.in_lockstep(breaks_after_two(), lambda e: f"reading failed: {e}"):
      seen.append(item)
  assert seen == [1, 2]


if __name__ == "__main__":
  import jax
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=f"127.0.0.1:{sys.argv[5]}",
                             num_processes=int(sys.argv[4]), process_id=int(sys.argv[3]))
  run(sys.argv[1], sys.argv[2])
