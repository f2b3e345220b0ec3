"""Exactly once: the same evaluation on 1 device, on 8 devices and over 2 processes x 4 devices
counts every clip once (as many times as it has windows), names every clip it could not use, and
gives the same numbers.

A toy model stands in for CLAP (the property is about batching, sharding and gathering, not the
towers) so that each subprocess compiles in seconds. Run as a script, this file is one process
of the evaluation: `python tests/test_eval_sharded.py OUT.json [PROCESS_ID NUM_PROCESSES PORT]`.
"""
import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

from clap_jax import text

REPO = pathlib.Path(__file__).resolve().parents[1]
TOKENIZER = text.GPT2_FILES
SAMPLE_RATE, CLIP = 8000, 800


def toy_model():
  import flax.linen as nn
  import jax.numpy as jnp
  import ml_collections

  class ToyCLAP(nn.Module):
    config: ml_collections.ConfigDict

    def setup(self):
      self.audio_proj = nn.Dense(16)
      self.token_embed = nn.Embed(50257, 16)

    def encode_audio(self, waveforms):
      frames = waveforms.reshape(waveforms.shape[0], 8, -1)  # (B, 8, 100)
      return jnp.tanh(self.audio_proj(frames)).mean(axis=1)

    def encode_text(self, input_ids, attention_mask):
      mask = attention_mask[..., None].astype(jnp.float32)
      return (self.token_embed(input_ids) * mask).sum(axis=1) / mask.sum(axis=1)

  config = ml_collections.ConfigDict({"audio": {"sample_rate": SAMPLE_RATE, "clip_samples": CLIP}})
  return ToyCLAP(config)


# Per task, one unusable clip in each process's share of the 39 (0-18 and 19-38 over 2 processes).
UNUSABLE = {5: "nan", 30: "/nonexistent/clip.wav"}


def toy_tasks():
  """37 usable clips of 0.3 to 2.6 clip lengths (1 to 3 windows) and 2 unusable ones (UNUSABLE)
  for three task kinds."""
  from clap_jax.eval import sources, tasks
  rng = np.random.default_rng(0)
  words = "dog rain car bell bird wind door train siren engine crowd water".split()
  labels = tuple(words[:6])
  single = tasks.Task("toy_single", "Toy", "Toy", tasks.SINGLE_LABEL, labels, {"kind": "none"},
                      templates=("this is the sound of {}", "a recording of {}"))
  multi = tasks.Task("toy_multi", "Toy multi", "Toy", tasks.MULTI_LABEL, labels, {"kind": "none"})
  retrieval = tasks.Task("toy_retrieval", "Toy ret", "Toy", tasks.RETRIEVAL, (), {"kind": "none"})
  items = {single.name: [], multi.name: [], retrieval.name: []}
  for i in range(39):
    audio = (rng.normal(size=int(CLIP * rng.uniform(0.3, 2.6))).astype(np.float32) * 0.1,)
    if UNUSABLE.get(i) == "nan":
      audio[0][3] = np.nan
    elif i in UNUSABLE:
      audio = UNUSABLE[i]
    items[single.name].append(sources.Item(f"s{i}", audio, SAMPLE_RATE, labels=(int(rng.integers(6)),)))
    multi_labels = tuple(int(l) for l in np.flatnonzero(rng.random(6) < 0.4)) or (0,)
    items[multi.name].append(sources.Item(f"m{i}", audio, SAMPLE_RATE, labels=multi_labels))
    captions = tuple(" ".join(rng.choice(words, 4)) for _ in range(int(rng.integers(1, 4))))
    items[retrieval.name].append(sources.Item(f"r{i}", audio, SAMPLE_RATE, captions=captions))
  return [single, multi, retrieval], {name: sources.ListSource(v) for name, v in items.items()}


def toy_evaluator(tasks, sources):
  """-> (evaluator over all devices, the toy model's variables)."""
  import jax
  from jax.sharding import Mesh
  from clap_jax.eval import zeroshot as evaluator

  model = toy_model()
  audio = model.init(jax.random.key(0), np.zeros((1, CLIP), np.float32), method="encode_audio")
  text_params = model.init(jax.random.key(1), np.zeros((1, 77), np.int32), np.ones((1, 77), np.int32),
                           method="encode_text")
  variables = {"params": {**audio["params"], **text_params["params"]}}
  mesh = Mesh(np.array(jax.devices()), ("data",))
  ev = evaluator.ZeroShotEvaluator(model, tasks, mesh, tokenizer=text.Tokenizer.load(TOKENIZER),
                                   batch_size=8, sources=sources, workers=2, progress=False)
  return ev, variables


def run(out_path: str) -> None:
  """One evaluation process: writes its metrics, clip counts and scores to `out_path`."""
  import jax
  ev, variables = toy_evaluator(*toy_tasks())
  # The evaluator itself checks that each clip was gathered exactly once per window.
  results = ev.evaluate(variables)
  report = {name: {"metrics": r.metrics, "num_items": r.num_items, "unusable": r.unusable,
                   "scores": np.asarray(r.scores).tolist()} for name, r in results.items()}
  report["devices"] = jax.device_count()
  report["processes"] = jax.process_count()
  pathlib.Path(out_path).write_text(json.dumps(report))


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _launch(out: pathlib.Path, devices: int, process_id: int | None = None, count: int = 1,
            port: int = 0) -> subprocess.Popen:
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
             JAX_PLATFORMS="cpu")
  args = [sys.executable, __file__, str(out)]
  if process_id is not None:
    args += [str(process_id), str(count), str(port)]
  return subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _wait(procs) -> None:
  for proc in procs:
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output.decode()[-4000:]


def test_one_device_eight_devices_and_two_processes_agree(tmp_path):
  port = _free_port()
  procs = [_launch(tmp_path / "one.json", 1), _launch(tmp_path / "eight.json", 8)]
  procs += [_launch(tmp_path / f"proc{i}.json", 4, i, 2, port) for i in range(2)]
  _wait(procs)
  reports = {name: json.loads((tmp_path / f"{name}.json").read_text())
             for name in ("one", "eight", "proc0", "proc1")}
  assert [(r["devices"], r["processes"]) for r in reports.values()] == [(1, 1), (8, 1), (8, 2), (8, 2)]
  reference = reports["one"]
  for name in ("toy_single", "toy_multi", "toy_retrieval"):
    assert reference[name]["num_items"] == 37
    nan_clip, missing_file = reference[name]["unusable"]  # the first from process 0's share
    assert nan_clip.startswith(f"{name[4]}5: 1 of ") and nan_clip.endswith("are NaN or infinite")
    assert missing_file == "/nonexistent/clip.wav: no such file"
    for other in ("eight", "proc0", "proc1"):
      got = reports[other][name]
      assert got["num_items"] == 37
      assert got["unusable"] == reference[name]["unusable"]
      for metric, value in reference[name]["metrics"].items():
        assert got["metrics"][metric] == pytest.approx(value, abs=1e-9), (other, name, metric)
      np.testing.assert_allclose(got["scores"], reference[name]["scores"], atol=1e-5)
  # Not a degenerate case: the toy model ranks some but not all clips right.
  assert 0 < reference["toy_single"]["metrics"]["top5"] < 1


def test_a_task_without_a_usable_clip_is_skipped():
  from clap_jax.eval import sources

  tasks, toy_sources = toy_tasks()
  single = tasks[0]
  unusable = [toy_sources[single.name].items[i] for i in UNUSABLE]
  ev, variables = toy_evaluator([single], {single.name: sources.ListSource(unusable)})
  result = ev.evaluate(variables)[single.name]
  assert result.skipped.startswith("none of its 2 clips could be used, e.g. s5: 1 of ")
  assert len(result.unusable) == 2 and not result.metrics


def test_a_clip_seen_twice_is_an_error():
  from clap_jax.eval import sources

  class Twice(sources.ListSource):
    def local_items(self, process_index, process_count):
      yield from super().local_items(process_index, process_count)
      yield 0, self.items[0]  # a share that overlaps another one

  tasks, toy_sources = toy_tasks()
  single = tasks[0]
  ev, variables = toy_evaluator([single], {single.name: Twice(toy_sources[single.name].items)})
  with pytest.raises(AssertionError, match="wrong number of times"):
    ev.evaluate(variables)


if __name__ == "__main__":
  if len(sys.argv) == 5:
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{sys.argv[4]}",
                               num_processes=int(sys.argv[3]), process_id=int(sys.argv[2]))
  run(sys.argv[1])
