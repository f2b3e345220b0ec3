"""Inference throughput: clap_jax (jitted) vs the official PyTorch model, same random weights.

    python bench/encode_throughput.py [--version 2022] [--batch_sizes 1,8,32] [--tiny] [--dtype float32]

Prints audio clips/s (the version's clip length: 7 s for 2023, 5 s for 2022) and texts/s per batch
size for both, from the fastest call, and the ratio clap_jax / PyTorch, measured in one run on this
machine. `text` times the jitted model on all token columns (77 for 2023, 100 for 2022), as
msclap computes them; `text-api` times `ClapEncoder.text_embeddings`, which skips the columns after
the longest text (exact: GPT-2 is causal, BERT masks padded keys), on the same captions.
PyTorch is timed twice: as msclap users run it, and with `torch.set_flush_denormal(True)`, which
speeds its audio tower up several-fold on this CPU (likely the -100 shifted-window mask: softmax
then yields exp(-100), a float32 denormal). `--device`: says which chip clap_jax runs on ("no accelerator found,
falling back to CPU" without one), runs PyTorch on the GPU when there is one, and adds the audio
tower's MFU (bench/accelerator.py).
"""
import pathlib
import sys
import time

from absl import app, flags
import jax
import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
import accelerator  # pylint: disable=g-import-not-at-top (bench/, the script's folder)
from reference import build_reference, state_dict_numpy  # pylint: disable=g-import-not-at-top
from reference_2022 import build_reference_2022  # pylint: disable=g-import-not-at-top

from clap_jax import convert
from clap_jax import encode
from clap_jax import text as text_lib
from clap_jax import text_bert
from clap_jax.convert.clap2022 import convert_2022
from clap_jax.models import config as model_config
from clap_jax.models.clap import CLAP

_VERSION = flags.DEFINE_enum("version", "2023", ["2023", "2022"], "msclap model.")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["1", "8", "32"], "Batch sizes to time.")
_TINY = flags.DEFINE_bool("tiny", False, "Use the tiny config (a smoke run).")
_DTYPE = flags.DEFINE_string("dtype", "float32", "clap_jax compute dtype.")
_DEVICE = flags.DEFINE_bool("device", False, "Name the chip (or the CPU fallback); PyTorch on "
                            "the GPU; add the audio tower's MFU.")
_MIN_SECONDS = flags.DEFINE_float("min_seconds", 3.0, "Time each case for at least this long.")


def rate(fn, items: int, min_seconds: float) -> float:
  """Items per second of the fastest of the calls of `fn()` made in `min_seconds` (at least 3),
  after one warm-up call (compilation excluded): on a shared machine other processes slow some
  calls, and the fastest is the least disturbed."""
  fn()
  times, start = [], time.perf_counter()
  while len(times) < 3 or time.perf_counter() - start < min_seconds:
    begin = time.perf_counter()
    fn()
    times.append(time.perf_counter() - begin)
  return items / min(times)


def main(argv):
  del argv
  chip = accelerator.device() if _DEVICE.value else None
  torch_device = "cuda" if chip is not None and chip.platform == "gpu" else "cpu"
  if _VERSION.value == "2022":
    config = model_config.tiny_2022() if _TINY.value else model_config.clap_2022()
    reference = build_reference_2022(config, seed=0)
    variables = convert_2022(state_dict_numpy(reference), config)
    tokenizer = text_bert.BertTokenizer.load()
  else:
    config = model_config.tiny() if _TINY.value else model_config.clap_2023()
    reference = build_reference(config, seed=0)
    variables = convert.convert_state_dict(state_dict_numpy(reference), config)
    tokenizer = text_lib.Tokenizer.load(text_lib.GPT2_FILES)
  reference.to(torch_device)
  variables = jax.tree.map(jax.numpy.asarray, variables)
  config.dtype = _DTYPE.value
  model = CLAP(config)
  encode_audio = jax.jit(lambda v, w: model.apply(v, w, method=CLAP.encode_audio))
  encode_text = jax.jit(lambda v, i, m: model.apply(v, i, m, method=CLAP.encode_text))
  encoder = encode.ClapEncoder(config, variables, tokenizer)
  captions = ["a dog barks while cars pass by on a wet street"] * 64
  rng = np.random.default_rng(0)
  print(f"device: {jax.devices()[0].device_kind}, torch: {torch_device}, {torch.get_num_threads()} threads, "
        f"model: {'tiny ' if _TINY.value else ''}clap_{_VERSION.value}, clap_jax dtype: {_DTYPE.value}")
  print(f"{'tower':8} {'batch':>5} {'clap_jax/s':>11} {'pytorch/s':>10} {'ratio':>6} "
        f"{'pt-ftz/s':>10} {'ratio':>6}")
  for batch in map(int, _BATCH_SIZES.value):
    waveforms = (0.1 * rng.standard_normal((batch, config.audio.clip_samples))).astype(np.float32)
    tokens = tokenizer(captions[:batch])
    torch_audio = torch.from_numpy(waveforms).to(torch_device)
    torch_tokens = {k: torch.from_numpy(v.astype(np.int64)).to(torch_device)
                    for k, v in tokens.items()}
    if _VERSION.value == "2022":  # CLAPWrapper passes BERT's token types (all 0 for one text)
      torch_tokens["token_type_ids"] = torch.zeros_like(torch_tokens["input_ids"])

    def synced(fn):  # CUDA calls return before the work is done
      return lambda: (fn(), torch.cuda.synchronize() if torch_device == "cuda" else None)
    with torch.inference_mode():
      cases = {
          "audio": (lambda: encode_audio(variables, waveforms).block_until_ready(),
                    synced(lambda: reference.audio_encoder(torch_audio))),
          "text": (lambda: encode_text(variables, tokens["input_ids"],
                                       tokens["attention_mask"]).block_until_ready(),
                   synced(lambda: reference.caption_encoder(torch_tokens))),
          "text-api": (lambda: encoder.text_embeddings(captions[:batch]),
                       synced(lambda: reference.caption_encoder(torch_tokens))),
      }
      for tower, (ours, theirs) in cases.items():
        ours_rate = rate(ours, batch, _MIN_SECONDS.value)
        theirs_rates = []
        for flush in (False, True):
          torch.set_flush_denormal(flush)
          theirs_rates.append(rate(theirs, batch, _MIN_SECONDS.value))
        torch.set_flush_denormal(False)
        print(f"{tower:8} {batch:5d} {ours_rate:11.2f} {theirs_rates[0]:10.2f} "
              f"{ours_rate / theirs_rates[0]:6.2f} {theirs_rates[1]:10.2f} "
              f"{ours_rate / theirs_rates[1]:6.2f}", flush=True)
        if chip is not None and tower == "audio":
          flops = accelerator.compiled_flops(encode_audio, variables, waveforms)
          print(f"         audio tower MFU: "
                f"{accelerator.mfu_text(flops * ours_rate / batch, 1.0, chip)}", flush=True)


if __name__ == "__main__":
  app.run(main)
