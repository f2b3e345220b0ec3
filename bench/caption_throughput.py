"""Captioning throughput: clap_jax's Captioner vs msclap's CLAPWrapper.generate_caption, on the
same random weights and the same clips.

    python bench/caption_throughput.py [--batch_sizes 1,8] [--beam_size 5] [--tiny]

Full-size clapcap with random weights perturbed as in tests/reference_clapcap.py, the stop token's
embedding scaled by --stop_scale so that captions end after a few to a few tens of tokens, as real
captions do (a random GPT-2 otherwise runs every caption to max_length). Clips: the first
`batch` real 5 s recordings of ../shared/data/audio (ESC-50, Freesound), as 44.1 kHz mono arrays
handed to both (each repeat-pads them to 7 s). Each side captions the batch once after a warm-up
call (clap_jax's compiles); prints captions/s, the ratio, the mean caption length
in tokens and whether the captions are identical.
"""
import pathlib
import sys
import time

from absl import app, flags
import jax
import numpy as np
import torch

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # this checkout's clap_jax, and the references
from reference_clapcap import build_clapcap_reference, clapcap_wrapper, state_dict_numpy  # pylint: disable=g-import-not-at-top

from clap_jax import audio as audio_lib
from clap_jax import caption
from clap_jax import text as text_lib
from clap_jax.convert import clapcap as convert_clapcap
from clap_jax.models import config as model_config

_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["1", "8"], "Clips per call.")
_BEAM_SIZE = flags.DEFINE_integer("beam_size", 5, "Beams.")
_MAX_LENGTH = flags.DEFINE_integer("max_length", 67, "msclap's entry_length.")
_STOP_SCALE = flags.DEFINE_float("stop_scale", 2.5, "Scale of the stop token's embedding.")
_TINY = flags.DEFINE_bool("tiny", False, "Use the tiny config (a smoke run).")
_FLUSH_DENORMAL = flags.DEFINE_bool("flush_denormal", False, "torch.set_flush_denormal(True).")
_DATA = REPO.parent / "shared" / "data" / "audio"
RATE = 44100


def clips(count: int) -> dict[str, np.ndarray]:
  paths = sorted((_DATA / "esc50" / "audio").glob("*.wav")) + sorted((_DATA / "freesound_cc0").glob("*.wav"))
  if len(paths) < count:
    raise ValueError(f"{_DATA}: {len(paths)} clips, {count} asked for")
  return {p.name: audio_lib.load_audio(p, RATE) for p in paths[:count]}


def main(argv):
  del argv
  config = model_config.tiny_clapcap() if _TINY.value else model_config.clapcap()
  reference = build_clapcap_reference(config, seed=0, stop_scale=_STOP_SCALE.value)
  variables = convert_clapcap.convert_state_dict(state_dict_numpy(reference), config)
  tokenizer = text_lib.Tokenizer.load(text_lib.GPT2_FILES)
  captioner = caption.Captioner(config, variables, tokenizer)
  torch.set_flush_denormal(_FLUSH_DENORMAL.value)
  options = {"beam_size": _BEAM_SIZE.value}
  print(f"device: {jax.devices()[0].device_kind}, torch threads: {torch.get_num_threads()}, "
        f"model: {'tiny' if _TINY.value else 'clapcap'}, beam {_BEAM_SIZE.value}, "
        f"max_length {_MAX_LENGTH.value}, flush denormals: {_FLUSH_DENORMAL.value}")
  print(f"{'batch':>5} {'clap_jax/s':>11} {'msclap/s':>9} {'ratio':>6} {'tokens':>6} identical")
  first = clips(1)
  clapcap_wrapper(reference, config, text_lib.GPT2_FILES, first).generate_caption(
      list(first), resample=False, entry_length=2, **options)  # torch's first call is slow
  for batch in map(int, _BATCH_SIZES.value):
    waveforms = clips(batch)
    arrays = list(waveforms.values())
    run = lambda: captioner.caption(arrays, sample_rate=RATE, max_length=_MAX_LENGTH.value, **options)
    run()  # compiles
    start = time.perf_counter()
    ours = run()
    ours_s = time.perf_counter() - start
    wrapper = clapcap_wrapper(reference, config, text_lib.GPT2_FILES, waveforms)
    start = time.perf_counter()
    theirs = wrapper.generate_caption(list(waveforms), resample=False,
                                      entry_length=_MAX_LENGTH.value, **options)
    theirs_s = time.perf_counter() - start
    tokens = np.mean([len(tokenizer.encode(c.lower())) for c in theirs])
    print(f"{batch:5d} {batch / ours_s:11.3f} {batch / theirs_s:9.3f} {theirs_s / ours_s:6.1f} "
          f"{tokens:6.1f} {ours == theirs}")
    for a, b in zip(ours, theirs):
      if a != b:
        print(f"  differ: {a!r} vs {b!r}")


if __name__ == "__main__":
  app.run(main)
