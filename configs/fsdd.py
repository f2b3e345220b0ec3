r"""A tiny CLAP learns spoken digits (FSDD) in a few minutes on CPU: the learning test's config.

Shards (train: takes 5-49; held out: takes 0-4, never trained on) are written as in
tests/test_learning_fsdd.py, with captions such as "a man saying the number seven":

  python launch/train.py --config configs/fsdd.py --workdir /tmp/clap_fsdd \
      --config.input.train='/tmp/fsdd_shards/train/*.tfrecord' \
      --config.eval.sources.fsdd.pattern='/tmp/fsdd_shards/heldout/*.tfrecord'

The final zero-shot evaluation classifies the held-out takes among the ten prompts
"a man saying the number {zero..nine}" (chance: 10%): 0.68 top-1 (0.97 top-5) after 250 steps,
under a minute on a shared 2-core CPU.
"""
import ml_collections

from clap_jax import config_utils


def get_config(arg: str | None = None):
  c = config_utils.base()
  c.model = config_utils.small_model()
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
  c.eval.tasks = ("fsdd",)
  c.eval.sources = ml_collections.ConfigDict({"fsdd": {"kind": "shards", "pattern": ""}})
  c.eval.templates = ml_collections.ConfigDict({"fsdd": ("a man saying the number {}",)})
  return config_utils.smoke(c) if arg == "smoke" else c
