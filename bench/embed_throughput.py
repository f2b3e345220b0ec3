r"""Throughput of embedding a collection (clap_jax.embed, what launch/embed.py runs) against
ClapEncoder.audio_embeddings over the same files, random weights.

  python bench/embed_throughput.py [--folder ../shared/data] [--model tiny] [--files 300] \
      [--batch_size 32] [--workers 4] [--dtype float32] [--device]

Prints clips/s, windows/s and seconds of audio per second of each, from one pass after a warm-up
pass over a few files (compilation excluded); the index is written to a temporary folder, part
commits included. `--device` names the chip ("no accelerator found, falling back to CPU" without
one); the embedder splits each batch over all local devices, the encoder uses one.
"""
import pathlib
import tempfile
import time

from absl import app, flags
import jax
import soundfile

import accelerator  # pylint: disable=g-import-not-at-top (bench/, the script's folder)
from clap_jax import embed, encode, text, weights
from clap_jax.data import sources
from clap_jax.models import config as model_config

_FOLDER = flags.DEFINE_string("folder", str(pathlib.Path(__file__).resolve().parents[2] / "shared"
                                            / "data"), "Audio collection (every file under it).")
_MODEL = flags.DEFINE_enum("model", "tiny", ["small", "tiny", "full"], "Model config (random).")
_FILES = flags.DEFINE_integer("files", 300, "Files timed (the first, by path); 0: all.")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Windows per step.")
_WORKERS = flags.DEFINE_integer("workers", 4, "Decoding threads of the embedder.")
_DTYPE = flags.DEFINE_string("dtype", "float32", "Compute dtype.")
_DEVICE = flags.DEFINE_bool("device", False, "Name the chip, or the CPU fallback.")
_WARMUP_FILES = 8


def main(argv):
  del argv
  chip = accelerator.device() if _DEVICE.value else jax.devices()[0]
  config = {"small": model_config.small, "tiny": model_config.tiny,
            "full": model_config.clap_2023}[_MODEL.value]()
  config.dtype = _DTYPE.value
  clap = encode.ClapEncoder(config, weights.random_variables(config), text.for_model(config))
  items = list(sources.folder(_FOLDER.value))
  items = items[:_FILES.value] if _FILES.value else items
  paths = [i.audio for i in items]
  seconds_of_audio = sum(soundfile.info(p).duration for p in paths)
  print(f"device: {accelerator.describe(chip)}, model: {_MODEL.value} ({_DTYPE.value}), "
        f"{len(items)} files, {seconds_of_audio:.0f} s of audio, batch {_BATCH.value}", flush=True)
  with tempfile.TemporaryDirectory() as scratch:
    embed.embed_collection(clap, embed.ListCollection(items[:_WARMUP_FILES]), f"{scratch}/warm",
                           batch_size=_BATCH.value, workers=_WORKERS.value, progress=False)
    start = time.perf_counter()
    summary = embed.embed_collection(clap, embed.ListCollection(items), f"{scratch}/index",
                                     batch_size=_BATCH.value, workers=_WORKERS.value,
                                     progress=False)
    embed_seconds = time.perf_counter() - start
  clap.audio_embeddings(paths[:_WARMUP_FILES])
  start = time.perf_counter()
  clap.audio_embeddings(paths)
  encoder_seconds = time.perf_counter() - start
  for name, seconds in (("embed_collection", embed_seconds),
                        ("ClapEncoder.audio_embeddings", encoder_seconds)):
    print(f"{name:29}: {len(items) / seconds:8.1f} clips/s, {summary.windows / seconds:8.1f} "
          f"windows/s, {seconds_of_audio / seconds:8.1f} s of audio/s ({seconds:.1f} s)")
  print(f"embed_collection / audio_embeddings: {encoder_seconds / embed_seconds:.2f}x")


if __name__ == "__main__":
  app.run(main)
