r"""The demo: a small CLAP learns synthetic captioned sounds on CPU in a few minutes.

  python launch/train.py --config configs/demo.py     # workdir: workdirs/demo

Clips are drawn on the fly by clap_jax.data.demo (tones, chirps, noise, clicks, with captions that
describe them); the run ends with a zero-shot evaluation on held-out clips over the 8 kinds
(chance: 12.5%; the README's Performance section has what it reaches).
Re-running with the same --workdir resumes (and, once finished, evaluates again).
"""
from clap_jax import schema
from clap_jax.models import config as model_config


def get_config(arg: str | None = None):
  c = schema.training()
  c.model = model_config.small()
  c.input.kind = "demo"
  c.input.global_batch = 16
  c.total_steps = 500
  c.optim.lr = 3e-3
  c.optim.warmup_steps = 40
  c.optim.weight_decay = 1e-4
  c.mesh.data, c.mesh.fsdp = -1, 1  # small arrays: plain data parallelism
  c.checkpoint.every_steps = 100
  c.log.every_steps = 10
  c.evals.zeroshot.tasks = ("demo",)
  c.evals.zeroshot.num_clips = 256
  return schema.smoke(c) if arg == "smoke" else c
