r"""Zero-shot evaluation of a checkpoint: results.json, results.md and one plot per task.

  python launch/eval.py --config configs/zeroshot.py --checkpoint CLAP_weights_2023.pth \
      --workdir /tmp/zeroshot
  python launch/eval.py --config configs/zeroshot.py:shared,tiny --checkpoint random \
      --workdir /tmp/zeroshot_plumbing

--checkpoint: an msclap .pth/.safetensors file, a folder written by clap_jax.convert.save_variables,
a training workdir (its latest checkpoint), or `random` (freshly initialised, for the plumbing).
Several processes: each runs this command after `jax.distributed.initialize` finds its peers
(JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID); process 0 writes the files.
"""
import os
import pathlib

from absl import app
from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", "configs/zeroshot.py", "Evaluation config.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Weights to evaluate (see above).",
                                  required=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where the results are written.", required=True)
_NAME = flags.DEFINE_string("name", None, "The model's name in the table (default: the checkpoint's).")


def load_model(checkpoint: str, config):
  """-> (CLAP module, variables as host numpy) for any kind of `--checkpoint`."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from clap_jax import pretrained  # pylint: disable=g-import-not-at-top
  from clap_jax.models import config as model_configs  # pylint: disable=g-import-not-at-top
  from clap_jax.models.clap import CLAP  # pylint: disable=g-import-not-at-top

  if checkpoint == "random":
    model_config = getattr(model_configs, config.model)()
    a, t = model_config.audio, model_config.text
    keys = jax.random.split(jax.random.key(config.seed))
    variables = jax.jit(CLAP(model_config).init)(
        {"params": keys[0], "dropout": keys[1]}, np.zeros((1, a.clip_samples), np.float32),
        np.zeros((1, t.context_length), np.int32), np.ones((1, t.context_length), np.int32))
    variables = jax.tree.map(np.asarray, variables)
  else:
    model_config, variables = pretrained.load_variables(
        checkpoint, getattr(model_configs, config.model)())
  model_config.dtype = config.dtype
  return CLAP(model_config), variables


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  import jax  # pylint: disable=g-import-not-at-top
  if os.environ.get("JAX_COORDINATOR_ADDRESS"):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU clusters and tests
    jax.distributed.initialize()
  from clap_jax import sharding  # pylint: disable=g-import-not-at-top
  from clap_jax.eval import evaluator, report  # pylint: disable=g-import-not-at-top
  from clap_jax.text import Tokenizer  # pylint: disable=g-import-not-at-top

  config = _CONFIG.value
  model, variables = load_model(_CHECKPOINT.value, config)
  results = evaluator.evaluate(
      model, variables, config.tasks, sharding.make_mesh(config.mesh),
      tokenizer=Tokenizer.load(config.tokenizer, model.config.text.context_length),
      batch_size=config.batch_size, text_batch_size=config.text_batch_size,
      sources=config.sources.to_dict(), data_dir=config.data_dir,
      templates={name: tuple(t) for name, t in config.templates.items()},
      long_mode=config.long_mode, workers=config.workers)
  if jax.process_index() == 0:
    name = _NAME.value or pathlib.Path(_CHECKPOINT.value).name
    report.write(results, _WORKDIR.value, model_name=name)
    print(report.markdown(results, name))


if __name__ == "__main__":
  app.run(main)
