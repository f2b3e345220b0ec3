r"""Throughput of the jitted train step on this machine, against the same step in PyTorch.

  python bench/train_step.py                      # tiny and full model
  python bench/train_step.py --models=tiny --steps=5

For each model (clap_jax.models.config.tiny() / clap_2023(), training mode: SpecAugment, dropout,
stochastic depth on, as the reference's train mode has them) it measures
  - examples/s of `clap_jax.train`'s jitted step (softmax contrastive loss, AdamW, clipping), on
    captions cut to the shortest length that holds them, as the training loop does (exact: GPT-2
    is causal), and on all 77 token columns, as msclap computes them;
  - its FLOP/s: the matmul and convolution FLOPs of the step (counted in its jaxpr, backward pass
    and recomputation included; elementwise work not counted) / time, against a 4096^3 float32
    matmul's FLOP/s measured in the same run (the best of three, before and after): the fraction
    of the machine's dense rate that the step reaches;
  - examples/s of the equivalent PyTorch step on the official msclap modules
    (tests/reference.py: same sizes, same loss with the clamped temperature, AdamW, clipping),
    each in a fresh process: as msclap runs, with `torch.set_flush_denormal(True)` (which spares
    its audio tower the float32 denormals of exp(-100) from the shifted-window mask; see
    bench/encode_throughput.py), and both again with glibc's huge-page tunable, which JAX's side
    runs with (launch/train.py sets it, clap_jax/train/host.py) but which slows PyTorch here. The ratio
    is taken against the fastest of the four.

  python bench/train_step.py --device [--models=full] [--device_batch=128] [--remat]

On the accelerator (the first of jax.devices(); without one it says "no accelerator found, falling
back to CPU" and runs there): each model's step in bfloat16 at --device_batch examples per chip
(captions trimmed as the loop trims them), its examples/s, step time and MFU (the compiled step's
FLOPs by XLA's cost analysis over the chip's dense bf16 peak, bench/accelerator.py), beside the
PyTorch step of the same modules on the same chip under `torch.autocast` bf16 and `torch.compile`
(where it compiles; else eager, said so).
"""
import json
import os
import subprocess
import sys
import time

from absl import app
from absl import flags
from absl import logging
import jax
import jax.extend
import jax.numpy as jnp
import numpy as np

import accelerator
from clap_jax import data, schema
from clap_jax.train import host, loop as train
from clap_jax.models import config as model_config

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

_MODELS = flags.DEFINE_list("models", ["tiny", "full"], "Models to time: tiny, full.")
_BATCH = flags.DEFINE_list("batch", ["8", "2"], "Global batch per model, in --models order.")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed steps (after one untimed step).")
_DEVICE = flags.DEFINE_bool("device", False, "Accelerator figures (see above).")
_DEVICE_BATCH = flags.DEFINE_integer("device_batch", None, "--device: examples per chip "
                                     "(default 128; 2 on the CPU fallback).")
_REMAT = flags.DEFINE_bool("remat", False, "--device: rematerialise both towers' blocks.")
_TORCH_DEVICE_CHILD = flags.DEFINE_string("torch_device_child", None, "Internal: time PyTorch's "
                                          "bf16 step, 'model,batch,device'; prints JSON.")
_TORCH_CHILD = flags.DEFINE_string("torch_child", None, "Internal: time one PyTorch setting, "
                                   "'model,batch,flush' (flush 0/1); prints seconds per step.")


def _config(model: str, batch: int):
  c = schema.training()
  c.model = model_config.tiny() if model == "tiny" else model_config.clap_2023()
  c.model.audio.spec_augment = True  # the reference's train mode always applies it
  c.model.text.pooling = "msclap"
  c.input.global_batch = batch
  c.optim.warmup_steps = 0
  c.optim.weight_decay = 0.2
  c.mesh.data, c.mesh.fsdp = -1, 1
  return c


def _inputs(config, batch: int, seed: int = 0) -> dict:
  rng = np.random.default_rng(seed)
  length = config.model.text.context_length
  ids = rng.integers(1, 50000, (batch, length)).astype(np.int32)
  mask = (np.arange(length)[None] < rng.integers(8, 20, (batch, 1))).astype(np.int32)
  return {"audio": (rng.normal(size=(batch, config.model.audio.clip_samples)) * 0.1).astype(np.float32),
          "input_ids": np.where(mask, ids, 0).astype(np.int32), "attention_mask": mask}


def _time(fn, steps: int) -> float:
  fn()  # compile / warm up
  start = time.perf_counter()
  for _ in range(steps):
    fn()
  return (time.perf_counter() - start) / steps


def dense_flops(jaxpr) -> float:
  """FLOPs of the dot_general and conv_general_dilated equations of a (closed) jaxpr, through
  nested jaxprs (jit, scan x length, remat, shard_map, custom derivatives)."""
  jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
  total = 0.0
  for eqn in jaxpr.eqns:
    shapes = [v.aval.shape for v in eqn.invars]
    out = np.prod(eqn.outvars[0].aval.shape) if eqn.outvars else 0
    if eqn.primitive.name == "dot_general":
      (contract, _), _ = eqn.params["dimension_numbers"]
      total += 2.0 * out * np.prod([shapes[0][d] for d in contract])
    elif eqn.primitive.name == "conv_general_dilated":
      rhs_spec = eqn.params["dimension_numbers"].rhs_spec  # (out, in, spatial...)
      total += 2.0 * out * np.prod([shapes[1][d] for d in rhs_spec[1:]])
    repeat = eqn.params.get("length", 1)  # scan
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      total += repeat * dense_flops(sub)
  return total


def matmul_flops_per_second(n: int = 4096) -> float:
  x = jnp.asarray(np.random.default_rng(0).normal(size=(n, n)), jnp.float32)
  matmul = jax.jit(lambda a: a @ a)
  seconds = _time(lambda: matmul(x).block_until_ready(), 3)
  return 2 * n ** 3 / seconds


def jax_step(config, batch: int, steps: int, trim: bool) -> tuple[float, float]:
  """-> (seconds per step, FLOPs per step); `trim`: text columns cut as the training loop does."""
  run = train.build(config)
  state = run.init()
  inputs = _inputs(config, batch)
  if trim:
    inputs = train.trim_text(inputs, config.input.text_lengths)
  inputs = data.to_global(inputs, run.batch_sharding)
  flops = dense_flops(jax.make_jaxpr(run.train_step)(state, inputs))
  holder = [state]

  def step():
    holder[0], metrics = run.train_step(holder[0], inputs)
    jax.block_until_ready(metrics["loss"])
  return _time(step, steps), flops


def _torch_loss(outputs, labels, max_log_scale: float):
  """msclap's symmetric contrastive loss on CLAP's (text, audio, scale) outputs, the temperature
  clamped as ours (losses.py)."""
  import torch  # pylint: disable=g-import-not-at-top
  f = torch.nn.functional
  text_embeddings, audio_embeddings, scale = outputs
  logits = scale.clamp(max=np.exp(max_log_scale)) * (
      f.normalize(audio_embeddings, dim=-1) @ f.normalize(text_embeddings, dim=-1).T)
  return 0.5 * (f.cross_entropy(logits, labels) + f.cross_entropy(logits.T, labels))


def torch_step(config, batch: int, steps: int, flush_denormal: bool) -> float:
  """-> seconds per step of the reference model's training step."""
  import torch  # pylint: disable=g-import-not-at-top
  from reference import build_reference  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(os.cpu_count())
  model = build_reference(config.model).train()
  o = config.optim
  optimizer = torch.optim.AdamW(model.parameters(), lr=o.lr, betas=(o.b1, o.b2), eps=o.eps,
                                weight_decay=o.weight_decay)
  inputs = _inputs(config, batch)
  audio = torch.from_numpy(inputs["audio"])
  text = {"input_ids": torch.from_numpy(inputs["input_ids"]).long(),
          "attention_mask": torch.from_numpy(inputs["attention_mask"]).long()}
  labels = torch.arange(batch)

  def step():
    loss = _torch_loss(model(audio, text), labels, config.loss.max_log_scale)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), o.clip_norm)
    optimizer.step()
  torch.set_flush_denormal(flush_denormal)  # a fresh process each time (torch_settings)
  return _time(step, steps)


def torch_settings(model: str, batch: int, steps: int) -> dict[str, float]:
  """Seconds per PyTorch step for each setting, each timed in a fresh process."""
  results = {}
  for huge_pages in (False, True):
    env = dict(os.environ)
    env.pop("GLIBC_TUNABLES", None)
    env[host.OPT_OUT] = "0"  # no restart in the child: it runs with exactly this environment
    if huge_pages:
      env["GLIBC_TUNABLES"] = f"{host.TUNABLE}=1"
    for flush in (False, True):
      out = subprocess.run(
          [sys.executable, os.path.abspath(__file__), f"--torch_child={model},{batch},{int(flush)}",
           f"--steps={steps}"], env=env, check=True, capture_output=True, text=True).stdout
      name = ("flushed denormals" if flush else "as msclap runs") + (", huge pages" if huge_pages else "")
      results[name] = json.loads(out.strip().splitlines()[-1])["seconds"]
      print(f"PyTorch {model} ({name}): {batch / results[name]:.2f} examples/s", flush=True)
  return results


def torch_device_step(config, batch: int, steps: int, device: str) -> tuple[float, str]:
  """-> (seconds per step, how it ran) of the reference step under autocast bf16 on `device`,
  compiled by torch.compile where that works."""
  import torch  # pylint: disable=g-import-not-at-top
  from reference import build_reference  # pylint: disable=g-import-not-at-top
  model = build_reference(config.model).train().to(device)
  o = config.optim
  optimizer = torch.optim.AdamW(model.parameters(), lr=o.lr, betas=(o.b1, o.b2), eps=o.eps,
                                weight_decay=o.weight_decay)
  inputs = _inputs(config, batch)
  audio = torch.from_numpy(inputs["audio"]).to(device)
  text = {"input_ids": torch.from_numpy(inputs["input_ids"]).long().to(device),
          "attention_mask": torch.from_numpy(inputs["attention_mask"]).long().to(device)}
  labels = torch.arange(batch, device=device)
  forward, how = model, "eager"
  if device != "cpu":  # inductor on a CPU compiles for many minutes
    forward, how = torch.compile(model), "torch.compile"

  def step():
    with torch.autocast(device_type=device, dtype=torch.bfloat16):
      loss = _torch_loss(forward(audio, text), labels, config.loss.max_log_scale)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), o.clip_norm)
    optimizer.step()
    if device == "cuda":
      torch.cuda.synchronize()
  try:
    return _time(step, steps), how
  except Exception as e:  # pylint: disable=broad-except (any compiler failure: report, run eager)
    if forward is model:
      raise
    forward, how = model, f"eager (torch.compile failed: {type(e).__name__})"
    return _time(step, steps), how


def device_main():
  """The accelerator figures (module docstring, --device)."""
  chip = accelerator.device()
  per_chip = _DEVICE_BATCH.value or (2 if chip.platform == "cpu" else 128)
  batch = per_chip * jax.device_count()
  print(f"device: {accelerator.describe(chip)}, batch {per_chip} per chip ({batch} in all), "
        f"bfloat16{', remat' if _REMAT.value else ''}", flush=True)
  for model in _MODELS.value:
    config = _config(model, batch)
    config.model.dtype = "bfloat16"
    config.model.audio.remat = config.model.text.remat = _REMAT.value
    run = train.build(config)
    state = run.init()
    inputs = data.to_global(train.trim_text(_inputs(config, batch), config.input.text_lengths),
                            run.batch_sharding)
    flops = accelerator.compiled_flops(run.train_step, state, inputs)
    holder = [state]

    def step():
      holder[0], metrics = run.train_step(holder[0], inputs)
      jax.block_until_ready(metrics["loss"])
    seconds = _time(step, _STEPS.value)
    print(f"JAX {model}: {batch / seconds:.1f} examples/s, {seconds * 1e3:.1f} ms/step, "
          f"{flops / 1e9:.1f} GFLOP/step (XLA), {accelerator.mfu_text(flops, seconds, chip)}",
          flush=True)
    del holder, state, run
    torch_device = "cpu" if chip.platform == "cpu" else "cuda"
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), f"--torch_device_child={model},{batch},"
         f"{torch_device}", f"--steps={_STEPS.value}"], check=False, capture_output=True, text=True)
    if out.returncode:
      print(f"PyTorch {model} on {torch_device}: failed: {out.stderr.strip()[-500:]}")
      continue
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"PyTorch {model} on {torch_device} (autocast bf16, {result['how']}): "
          f"{batch / result['seconds']:.1f} examples/s; JAX / PyTorch "
          f"{result['seconds'] / seconds:.2f}x", flush=True)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  if _TORCH_DEVICE_CHILD.value:
    model, batch, device = _TORCH_DEVICE_CHILD.value.split(",")
    seconds, how = torch_device_step(_config(model, int(batch)), int(batch), _STEPS.value, device)
    print(json.dumps({"seconds": seconds, "how": how}))
    return
  if _DEVICE.value:
    device_main()
    return
  if _TORCH_CHILD.value:
    model, batch, flush = _TORCH_CHILD.value.split(",")
    seconds = torch_step(_config(model, int(batch)), int(batch), _STEPS.value, flush == "1")
    print(json.dumps({"seconds": seconds}))
    return
  matmul = max(matmul_flops_per_second() for _ in range(2))
  rows = []
  for model, batch in zip(_MODELS.value, _BATCH.value):
    batch = int(batch)
    config = _config(model, batch)
    torch_seconds = min(torch_settings(model, batch, _STEPS.value).values())
    for trim in (True, False):
      jax_seconds, flops = jax_step(config, batch, _STEPS.value, trim)
      name = model + ("" if trim else ", all 77 text columns")
      print(f"{name}: {flops / 1e9:.1f} GFLOP (matmul, conv) per step in {jax_seconds:.2f} s",
            flush=True)
      rows.append((name, batch, jax_seconds, torch_seconds, flops / jax_seconds))
  # The machine's dense rate: the best measurement, before and after (other load varies).
  matmul = max(matmul, matmul_flops_per_second())
  print(f"float32 4096^3 matmul: {matmul / 1e9:.1f} GFLOP/s ({os.cpu_count()} CPUs, "
        f"{jax.devices()[0].device_kind})")
  print("| model | batch | JAX ex/s | PyTorch ex/s (best setting) | JAX / PyTorch | "
        "JAX GFLOP/s | of matmul |")
  print("|---|---|---|---|---|---|---|")
  for model, batch, jax_seconds, torch_seconds, rate in rows:
    print(f"| {model} | {batch} | {batch / jax_seconds:.2f} | {batch / torch_seconds:.2f} | "
          f"{torch_seconds / jax_seconds:.2f}x | {rate / 1e9:.1f} | {rate / matmul:.0%} |")


if __name__ == "__main__":
  host.use_huge_pages()  # JAX's side runs as launch/train.py runs it
  app.run(main)
