"""Zero-shot evaluation throughput: clap_jax's evaluator vs the official PyTorch model's batch loop.

    python bench/eval_throughput.py [--clips 64] [--batch_size 32] [--tiny] [--dtype float32]
        [--torch_device cuda] [--tf32]

One ESC-50-shaped task (50 classes, 5 s clips at 44.1 kHz, synthetic audio) with the same random
weights in both: the official modules from tests/reference.py, converted for clap_jax. Both passes
do the same work: repeat-pad the clips, encode them in batches and the 50 prompts, normalise,
score and compute top-1/top-5. Prints clips/s of each (after a warm-up pass, so compilation is
excluded; the fastest of --repeats alternating passes), their ratio, and how far the two sets of
scores are apart; then clap_jax's audio tower alone on one batch already on the device, which says
how much of the pass is the host's (decoding, padding, packing, copying). Token columns after the
longest prompt are not computed by clap_jax (exact: GPT-2 is causal); msclap computes all 77. On a
GPU both run in full float32 unless --tf32 lets both use the TF32 matrix units (XLA's default for
float32 dots there, not PyTorch's). `--device`: says which chip runs the pass ("no accelerator
found, falling back to CPU" without one) and adds the audio tower's MFU (bench/accelerator.py).
"""
import pathlib
import sys
import time

from absl import app, flags
import jax
import numpy as np
import torch
from jax.sharding import Mesh

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
import accelerator  # pylint: disable=g-import-not-at-top (bench/, the script's folder)
from reference import build_reference, state_dict_numpy  # pylint: disable=g-import-not-at-top

from clap_jax import audio, convert
from clap_jax import text as text_lib
from clap_jax.eval import zeroshot as evaluator, metrics, sources, tasks
from clap_jax.models import config as model_config
from clap_jax.models.clap import CLAP

_CLIPS = flags.DEFINE_integer("clips", 64, "Clips in the task.")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Clips per batch, both implementations.")
_TINY = flags.DEFINE_bool("tiny", False, "Use the tiny config (a smoke run).")
_DTYPE = flags.DEFINE_string("dtype", "float32", "clap_jax compute dtype.")
_REPEATS = flags.DEFINE_integer("repeats", 2, "Timed passes of each; the fastest counts.")
_TORCH_DEVICE = flags.DEFINE_string("torch_device", None, "PyTorch's device; default: cuda if "
                                    "available, else cpu. clap_jax uses JAX's default backend.")
_TF32 = flags.DEFINE_bool("tf32", False, "On a GPU, float32 matrix products in TF32 in both.")
_DEVICE = flags.DEFINE_bool("device", False, "Name the chip (or the CPU fallback); add the audio "
                            "tower's MFU.")
_TOKENIZER = text_lib.GPT2_FILES
SAMPLE_RATE, SECONDS = 44100, 5


def padded(items, clip_samples) -> np.ndarray:
  """The items' clips, repeat-padded as msclap does, stacked into one batch."""
  return np.stack([audio.repeat_pad(item.audio[0], clip_samples) for item in items])


def torch_pass(reference, items, task, tokenizer, batch_size, clip_samples, device) -> np.ndarray:
  """msclap's way: a Python loop over batches of the official modules -> (N, C) cosine scores."""
  with torch.inference_mode():
    tokens = {k: torch.from_numpy(v.astype(np.int64)).to(device)
              for k, v in tokenizer([p[0] for p in task.prompts()]).items()}
    text = torch.nn.functional.normalize(reference.caption_encoder(tokens), dim=-1)
    embeddings = []
    for start in range(0, len(items), batch_size):
      batch = padded(items[start:start + batch_size], clip_samples)
      embeddings.append(reference.audio_encoder(torch.from_numpy(batch).to(device))[0])
    audio_embeddings = torch.nn.functional.normalize(torch.cat(embeddings), dim=-1)
    return (audio_embeddings @ text.T).cpu().numpy()


def timed(fn):
  start = time.perf_counter()
  result = fn()
  return result, time.perf_counter() - start


def main(argv):
  del argv
  chip = accelerator.device() if _DEVICE.value else None
  config = model_config.tiny() if _TINY.value else model_config.clap_2023()
  reference = build_reference(config, seed=0)
  variables = convert.convert_state_dict(state_dict_numpy(reference), config)
  config.dtype = _DTYPE.value
  device = _TORCH_DEVICE.value or ("cuda" if torch.cuda.is_available() else "cpu")
  reference.to(device)
  torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = _TF32.value
  if jax.default_backend() == "gpu":
    jax.config.update("jax_default_matmul_precision", "tensorfloat32" if _TF32.value else "highest")
  tokenizer = text_lib.Tokenizer.load(_TOKENIZER)
  task = tasks.get("esc50")
  rng = np.random.default_rng(0)
  noise = (0.1 * rng.standard_normal((_CLIPS.value, SAMPLE_RATE * SECONDS))).astype(np.float32)
  items = [sources.Item(f"clip{i}", (clip,), rate=SAMPLE_RATE, labels=(int(rng.integers(50)),))
           for i, clip in enumerate(noise)]
  labels = np.array([item.labels[0] for item in items])
  mesh = Mesh(np.array(jax.devices()), ("data",))
  ev = evaluator.ZeroShotEvaluator(CLAP(config), [task], mesh, tokenizer=tokenizer,
                                   batch_size=_BATCH.value, sources={"esc50": sources.ListSource(items)},
                                   progress=False)
  print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, torch: {device}, "
        f"{torch.get_num_threads()} threads, tf32: {_TF32.value}, model: {'tiny' if _TINY.value else 'clap_2023'}, "
        f"clap_jax dtype: {_DTYPE.value}, {_CLIPS.value} clips of {SECONDS} s, batch {_BATCH.value}")
  ev.evaluate(variables)  # warm-up: compilation
  clip_samples = config.audio.clip_samples
  torch_pass(reference, items[:_BATCH.value], task, tokenizer, _BATCH.value, clip_samples, device)  # warm-up
  # Alternating, best of `repeats` each: other load on the machine slows whichever runs under it.
  ours_runs, theirs_runs = [], []
  for _ in range(_REPEATS.value):
    ours_runs.append(timed(lambda: ev.evaluate(variables)["esc50"]))
    theirs_runs.append(timed(lambda: torch_pass(reference, items, task, tokenizer, _BATCH.value,
                                                clip_samples, device)))
  (ours, ours_seconds), (theirs, theirs_seconds) = (min(r, key=lambda x: x[1])
                                                    for r in (ours_runs, theirs_runs))
  theirs_metrics = metrics.topk_accuracy(theirs, labels)
  print(f"clap_jax: {_CLIPS.value / ours_seconds:8.2f} clips/s ({ours_seconds:.1f} s) {ours.metrics}")
  print(f"pytorch:  {_CLIPS.value / theirs_seconds:8.2f} clips/s ({theirs_seconds:.1f} s) "
        f"{theirs_metrics}")
  print(f"ratio clap_jax / pytorch: {theirs_seconds / ours_seconds:.2f}; "
        f"max |score difference|: {np.abs(ours.scores - theirs).max():.2e}")
  tower = jax.jit(lambda v, w: CLAP(config).apply(v, w, method=CLAP.encode_audio))
  on_device = jax.device_put((variables, padded(items[:_BATCH.value], clip_samples)))
  tower(*on_device).block_until_ready()
  seconds = min(timed(lambda: tower(*on_device).block_until_ready())[1] for _ in range(3))
  print(f"clap_jax audio tower alone: {_BATCH.value / seconds:8.2f} clips/s (one batch on the device, "
        f"best of 3)")
  if chip is not None:
    flops = accelerator.compiled_flops(tower, *on_device)
    print(f"audio tower on {accelerator.describe(chip)}: {accelerator.mfu_text(flops, seconds, chip)}")


if __name__ == "__main__":
  app.run(main)
