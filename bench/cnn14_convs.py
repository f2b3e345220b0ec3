r"""Where CLAP 2022's audio tower spends its time: each of CNN14's 3x3 convolutions alone, XLA
(jitted `lax.conv_general_dilated`, as flax's nn.Conv lowers) against PyTorch's `nn.Conv2d`
(oneDNN), at the shapes a 5 s clip gives, beside a 4096^3 float32 matmul's rate.

    python bench/cnn14_convs.py [--batch 8] [--seconds 5]

Prints per layer: milliseconds (fastest of several calls) and GFLOP/s for both, and the totals.
Both run near the machine's dense float32 rate, so neither can be several times faster than the
other with the same arithmetic.
"""
import time

from absl import app, flags
import jax
from jax import lax
import numpy as np
import torch

from clap_jax.models import config as model_config

_BATCH = flags.DEFINE_integer("batch", 8, "Clips per call.")
_SECONDS = flags.DEFINE_float("seconds", 5.0, "Clip length (CLAP 2022's is 5 s).")


def fastest(fn, calls: int = 4) -> float:
  fn()  # compilation / first-call allocation
  times = []
  for _ in range(calls):
    begin = time.perf_counter()
    fn()
    times.append(time.perf_counter() - begin)
  return min(times)


def main(argv):
  del argv
  torch.set_flush_denormal(True)
  cfg = model_config.clap_2022().audio
  frames = int(_SECONDS.value * cfg.sample_rate) // cfg.hop_length + 1
  height, width, batch = frames, cfg.mel_bins, _BATCH.value
  x = jax.random.normal(jax.random.key(0), (4096, 4096))
  matmul = jax.jit(lambda a: a @ a)
  peak = 2 * 4096**3 / fastest(lambda: matmul(x).block_until_ready())
  print(f"float32 matmul 4096^3: {peak / 1e9:.0f} GFLOP/s; batch {batch}, {height} frames x "
        f"{width} mel bins")
  rng = np.random.default_rng(0)
  conv = jax.jit(lambda a, k: lax.conv_general_dilated(
      a, k, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")))
  totals = [0.0, 0.0]
  in_channels = 1
  for block, features in enumerate(cfg.channels):
    for i in (1, 2):
      a = rng.standard_normal((batch, height, width, in_channels), np.float32)
      k = rng.standard_normal((3, 3, in_channels, features), np.float32)
      a_jax, k_jax = jax.numpy.asarray(a), jax.numpy.asarray(k)
      jax_s = fastest(lambda: conv(a_jax, k_jax).block_until_ready())
      torch_conv = torch.nn.Conv2d(in_channels, features, 3, padding=1, bias=False)
      a_torch = torch.from_numpy(a.transpose(0, 3, 1, 2).copy())
      with torch.inference_mode():
        torch_s = fastest(lambda: torch_conv(a_torch))
      flops = 2 * 9 * batch * height * width * in_channels * features
      totals[0] += jax_s
      totals[1] += torch_s
      print(f"conv_block{block + 1}.conv{i} {height}x{width} {in_channels:>4}->{features:<4}: "
            f"XLA {jax_s * 1e3:7.1f} ms {flops / jax_s / 1e9:4.0f} GFLOP/s | PyTorch "
            f"{torch_s * 1e3:7.1f} ms {flops / torch_s / 1e9:4.0f} GFLOP/s | {torch_s / jax_s:.2f}x")
      in_channels = features
    if block < len(cfg.channels) - 1:
      height, width = height // 2, width // 2
  print(f"all convolutions: XLA {totals[0] * 1e3:.0f} ms, PyTorch {totals[1] * 1e3:.0f} ms, "
        f"{totals[1] / totals[0]:.2f}x")


if __name__ == "__main__":
  app.run(main)
