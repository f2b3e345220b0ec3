"""Input pipeline throughput: the shard writer's clips/s and the tf.data reader's clips/s.

    python bench/input_pipeline.py [--clips 256] [--batch_size 32] [--num_workers 2] \
        [--train_clips_per_s R] [--writer_processes 1,2,4]

Writes `--clips` real 7 s, 44.1 kHz clips (Clotho recordings of ../shared/data, each copy cut at
its own random offset) with `--num_workers` processes, then times `train_batches` (batch
`--batch_size`, the model's 7 s clip) and one `eval_batches` pass. With `--train_clips_per_s`
(the figure bench/train_step.py prints on the same machine) it prints reader / training step;
the goal is at least 10. `--writer_processes` times the writer alone with each number of
processes (clips/s in all, and per process while writing) and the time the paper's 4.6M clips
would take on 64 cores at the per-process rate of the largest count.
"""
import itertools
import pathlib
import tempfile
import time

from absl import app, flags

from clap_jax import data, text
from clap_jax.data import sources
from clap_jax.models import config as model_config

REPO = pathlib.Path(__file__).resolve().parents[1]
_CLIPS = flags.DEFINE_integer("clips", 256, "Examples to write and read.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Reader batch size.")
_STEPS = flags.DEFINE_integer("steps", 40, "Training batches timed (after 3 warm-up batches).")
_NUM_WORKERS = flags.DEFINE_integer("num_workers", 2, "Writer processes.")
_SHARED_DATA = flags.DEFINE_string("shared_data", str(REPO.parent / "shared" / "data"),
                                   "The real test material.")
_WRITER_PROCESSES = flags.DEFINE_list("writer_processes", [], "Writer process counts to time "
                                      "the writer with (e.g. 1,2,4); none: skip.")
PAPER_CLIPS = 4_600_000
_TRAIN_RATE = flags.DEFINE_float("train_clips_per_s", None,
                                 "Training step clips/s (bench/train_step.py) for the ratio.")


def writer_scaling(items, config, process_counts) -> None:
  """The writer with each number of processes, into a fresh folder each time: clips/s of the
  whole run (process start-up included) and per process while writing (clips over the summed
  time the processes spent writing shards), which is what a long run sees."""
  per_process = None
  for processes in process_counts:
    with tempfile.TemporaryDirectory() as out:
      start = time.perf_counter()
      summary = data.write_shards(items, out, config, num_workers=processes, progress=False)
      rate = summary["examples"] / (time.perf_counter() - start)
    per_process = summary["examples"] / summary["seconds"]["writing"]
    print(f"writer, {processes} process(es): {rate:.1f} clips/s in all (start-up included), "
          f"{per_process:.1f} clips/s per process while writing")
  hours = PAPER_CLIPS / (per_process * 64) / 3600
  print(f"{PAPER_CLIPS / 1e6:.1f}M clips on 64 cores (one process each, e.g. 4 machines of 16 with "
        f"--num_tasks=4) at {per_process:.1f} clips/s per process: {hours:.1f} h")


def main(argv):
  del argv
  clip_samples = model_config.clap_2023().audio.clip_samples
  root = pathlib.Path(_SHARED_DATA.value) / "audio" / "clotho"
  recordings = list(sources.clotho(root / "captions.csv", root / "audio"))
  items = [sources.Item(item_id=f"{r.item_id}@{copy}", audio=r.audio, captions=r.captions)
           for copy in range(-(-_CLIPS.value // len(recordings))) for r in recordings][:_CLIPS.value]
  config = data.WriterConfig(tokenizer=str(text.GPT2_FILES), max_seconds=7.0,
                             long_mode="random", shard_mb=16)
  if _WRITER_PROCESSES.value:
    writer_scaling(items, config, [int(n) for n in _WRITER_PROCESSES.value])
  with tempfile.TemporaryDirectory() as out:
    start = time.perf_counter()
    summary = data.write_shards(items, out, config, num_workers=_NUM_WORKERS.value, progress=False)
    seconds = time.perf_counter() - start
    print(f"writer: {summary['examples']} clips of 7 s in {seconds:.1f} s = "
          f"{summary['examples'] / seconds:.1f} clips/s with {_NUM_WORKERS.value} processes "
          f"(process start-up included); {summary['examples'] / summary['seconds']['writing']:.1f} "
          f"clips/s per process once started")

    pattern = f"{out}/clips-*.tfrecord"
    batches = data.train_batches(pattern, batch_size=_BATCH_SIZE.value, clip_samples=clip_samples,
                                 seed=0, process_index=0, process_count=1)
    for _ in itertools.islice(batches, 3):
      pass
    start = time.perf_counter()
    for _ in itertools.islice(batches, _STEPS.value):
      pass
    train_rate = _STEPS.value * _BATCH_SIZE.value / (time.perf_counter() - start)
    print(f"reader (train): {train_rate:.0f} clips/s at batch {_BATCH_SIZE.value}")

    start = time.perf_counter()
    rows = sum(int(b["mask"].sum()) for b in data.eval_batches(
        pattern, batch_size=_BATCH_SIZE.value, clip_samples=clip_samples, process_index=0,
        process_count=1))
    print(f"reader (eval pass): {rows / (time.perf_counter() - start):.0f} clips/s")

  if _TRAIN_RATE.value:
    print(f"reader / training step: {train_rate / _TRAIN_RATE.value:.1f}x (goal: at least 10x)")
  elif (REPO / "bench" / "train_step.py").exists():
    print("pass --train_clips_per_s (from bench/train_step.py on this machine) for the ratio")


if __name__ == "__main__":
  app.run(main)
