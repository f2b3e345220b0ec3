r"""The demo: a small CLAP learns synthetic captioned sounds on CPU in a few minutes.

  python launch/train.py --config configs/demo.py --workdir /tmp/clap_demo

Clips are drawn on the fly by clap_jax.demo_data (tones, chirps, noise, clicks, with captions that
describe them); the run ends with a zero-shot evaluation on held-out clips over the 8 kinds
(chance: 12.5%), printed as eval/demo/top1: 0.86 after 500 steps, 71 s on a shared 2-core CPU.
Re-running with the same --workdir resumes (and, once finished, evaluates again).
"""
from clap_jax import config_utils


def get_config(arg: str | None = None):
  c = config_utils.base()
  c.model = config_utils.small_model()
  c.input.kind = "demo"
  c.input.global_batch = 16
  c.total_steps = 500
  c.optim.lr = 3e-3
  c.optim.warmup_steps = 40
  c.optim.weight_decay = 1e-4
  c.mesh.data, c.mesh.fsdp = -1, 1  # small arrays: plain data parallelism
  c.checkpoint.every_steps = 100
  c.log.every_steps = 10
  c.eval.tasks = ("demo",)
  c.eval.num_clips = 256
  return config_utils.smoke(c) if arg == "smoke" else c
