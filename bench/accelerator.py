"""The chip a `--device` bench runs on, its dense bfloat16 peak, and model FLOPs from XLA.

Model FLOPs utilisation (MFU) = FLOPs of the compiled step (XLA's cost analysis) / step time /
the chip's dense bf16 peak. Without an accelerator the benches run on the CPU and say so; a CPU
has no entry in the peak table, so its MFU is not given (FLOP/s are).
"""
import jax

FALLBACK = "no accelerator found, falling back to CPU"
# Dense (not sparse) bfloat16 FLOP/s per chip from the vendors' data sheets, by `device_kind`
# substring; the first match wins, so a variant sits before its family.
PEAK_BF16 = (
    ("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12), ("GH200", 989e12),
    ("B200", 2250e12), ("A100", 312e12), ("L40S", 362e12), ("L4", 121e12), ("A10G", 70e12),
    ("TPU v6 lite", 918e12), ("TPU v5 lite", 197e12), ("TPU v5", 459e12), ("TPU v4", 275e12),
)


def device() -> jax.Device:
  """The first accelerator, or the CPU after printing FALLBACK."""
  chip = jax.devices()[0]
  if chip.platform == "cpu":
    print(FALLBACK, flush=True)
  return chip


def describe(chip: jax.Device) -> str:
  return f"{chip.platform}: {chip.device_kind} (x{jax.device_count()})"


def peak_flops(chip: jax.Device) -> float | None:
  if chip.platform == "cpu":
    return None
  return next((peak for name, peak in PEAK_BF16 if name in chip.device_kind), None)


def compiled_flops(jitted, *args) -> float:
  """FLOPs of one call of `jitted(*args)` by XLA's cost analysis of the compiled program."""
  analysis = jitted.lower(*args).compile().cost_analysis()
  if isinstance(analysis, (list, tuple)):  # older jax: one dict per program
    analysis = analysis[0]
  return float(analysis["flops"])


def mfu_text(flops: float, seconds: float, chip: jax.Device) -> str:
  """'MFU 41.2% of 989 TFLOP/s', or why there is no MFU, beside the achieved rate."""
  rate = flops / seconds
  peak = peak_flops(chip)
  if peak is None:
    return (f"{rate / 1e12:.3f} TFLOP/s; MFU n/a (no bf16 peak for {chip.device_kind!r} in "
            f"bench/accelerator.py)")
  return f"{rate / 1e12:.1f} TFLOP/s, MFU {rate / peak:.1%} of {peak / 1e12:.0f} TFLOP/s"
