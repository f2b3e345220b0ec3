r"""Zero-shot evaluation of a checkpoint: results.json, results.md and one plot per task; for a
clapcap checkpoint, captioning evaluation: results.json, results.md and captions.jsonl.

  python launch/eval.py --config configs/zeroshot.py --checkpoint CLAP_weights_2023.pth \
      --workdir /tmp/zeroshot
  python launch/eval.py --config configs/zeroshot.py --checkpoint CLAP_weights_2022.pth \
      --workdir /tmp/zeroshot_2022
  python launch/eval.py --config configs/zeroshot.py:shared,tiny --checkpoint random \
      --workdir /tmp/zeroshot_plumbing
  python launch/eval.py --config configs/captioning_eval.py --checkpoint clapcap_weights_2023.pth \
      --workdir /tmp/captioning

--checkpoint: an msclap .pth/.safetensors file, a folder written by clap_jax.convert.save_variables,
a training workdir (its latest checkpoint), or `random` (freshly initialised, for the plumbing):
whatever clap_jax.weights reads. An msclap file says which model it holds (2023: HTSAT + GPT-2,
2022: CNN14 + BERT) by its keys: it is converted for `config.model` if that has the file's towers,
else for the official config of its version; a folder or workdir brings its own model config. The
prompts are tokenised for the model's text tower (`config.tokenizer`: '' is its shipped
vocabulary). `configs/zeroshot.py:2022` makes `config.model` 2022's (for `--checkpoint random`,
and with `tiny` for small 2022 files). Any key of configs/zeroshot.py is a flag, a task's prompts and
source fields included: --config.templates.fsdd='("a person saying {}",)',
--config.sources.esc50.root=/data/ESC-50-master.
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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  import jax  # pylint: disable=g-import-not-at-top
  if os.environ.get("JAX_COORDINATOR_ADDRESS"):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU clusters and tests
    jax.distributed.initialize()
  from clap_jax import sharding, weights  # pylint: disable=g-import-not-at-top
  from clap_jax.convert import clapcap as convert_clapcap  # pylint: disable=g-import-not-at-top
  from clap_jax.eval import captioning, report, zeroshot  # pylint: disable=g-import-not-at-top
  from clap_jax.models.clap import CLAP  # pylint: disable=g-import-not-at-top
  from clap_jax import text  # pylint: disable=g-import-not-at-top

  config = _CONFIG.value
  model_config, variables = weights.load(_CHECKPOINT.value, config.model, seed=config.seed)
  model_config.dtype = config.model.dtype
  name = _NAME.value or pathlib.Path(_CHECKPOINT.value).name
  if convert_clapcap.is_clapcap(model_config):
    results = captioning.from_settings(model_config, config.captioning,
                                       tokenizer=text.for_model(model_config, config.tokenizer)).evaluate(variables)
    if jax.process_index() == 0:
      captioning.write(results, _WORKDIR.value, model_name=name)
      print(captioning.markdown(results, name))
    return
  model = CLAP(model_config)
  evaluator = zeroshot.from_settings(
      model, config, sharding.make_mesh(config.mesh),
      tokenizer=text.for_model(model_config, config.tokenizer))
  results = evaluator.evaluate(variables)
  if jax.process_index() == 0:
    report.write(results, _WORKDIR.value, model_name=name)
    print(report.markdown(results, name))


if __name__ == "__main__":
  from clap_jax import schema  # pylint: disable=g-import-not-at-top
  app.run(main, flags_parser=schema.parse_flags)
