r"""A tiny CLAP learns spoken digits (FSDD) in a few minutes on CPU: the learning test's config.

Shards (train: takes 5-49; held out: takes 0-4, never trained on) are written as in
tests/test_learning_fsdd.py, with captions such as "a man saying the number seven":

  python launch/train.py --config configs/fsdd.py \
      --config.input.train='/tmp/fsdd_shards/train/*.tfrecord' \
      --config.evals.zeroshot.sources.fsdd.pattern='/tmp/fsdd_shards/heldout/*.tfrecord'

The final zero-shot evaluation classifies the held-out takes among the ten prompts
"a man saying the number {zero..nine}" (chance: 10%; figures in the README's Performance section).
"""
from clap_jax import schema
from clap_jax.models import config as model_config


def get_config(arg: str | None = None):
  c = schema.training()
  c.model = model_config.small()
  c.input.kind = "shards"
  c.input.train = ""  # required: the train shards (16 kHz)
  c.input.global_batch = 32
  c.input.shuffle_buffer = 512
  c.total_steps = 250
  c.optim.lr = 1e-3
  c.optim.warmup_steps = 25
  c.optim.weight_decay = 1e-4
  c.mesh.data, c.mesh.fsdp = -1, 1
  c.checkpoint.every_steps = 250
  c.log.every_steps = 10
  zeroshot = c.evals.zeroshot
  zeroshot.tasks = ("fsdd",)
  zeroshot.sources.fsdd = {"kind": "shards", "pattern": ""}  # required: the held-out shards
  zeroshot.templates.fsdd = ("a man saying the number {}",)
  return schema.smoke(c) if arg == "smoke" else c
