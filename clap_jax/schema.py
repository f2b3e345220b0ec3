"""The one config schema: every key a training run or an evaluation reads, with its default.

Config files (configs/*.py) start from `training(objective)` or `evaluation()` and change what
they need. Both are locked ConfigDicts: setting a key the schema does not have (a typo in a file,
or `--config.optim.lrr=1` on the command line) is an error naming it, and `parse_flags` turns the
command line's into one line. Keyed-by-name blocks (`evals`, a zero-shot evaluator's `sources` and
`templates`, `tasks`) hold an entry for every name they know, so any of them is settable by flag.
"""
import importlib.util
import sys

import ml_collections
from absl import flags

from clap_jax import text
from clap_jax.eval import captioning, zeroshot
from clap_jax.models import config as model_config
from clap_jax.train import objectives


def training(objective: str = "contrastive") -> ml_collections.ConfigDict:
  """Defaults of every training key; `configs/pretrain.py` documents the choices."""
  c = ml_collections.ConfigDict()
  c.seed = 0  # parameters, dropout and augmentation; the data stream has its own seed
  c.objective = objective  # clap_jax.train.objectives
  # input.kind 'multitask': the audio tasks by name, answered in text (clap_jax/data/answers.py).
  c.tasks = ml_collections.ConfigDict()
  c.model = model_config.clap_2023()
  c.total_steps = 1000
  # Tokenizer of the demo's captions and of zero-shot prompts (shards carry their own tokens):
  # a folder with the text tower's vocabulary or a hub name; '': the one shipped for the tower
  # (clap_jax.text.for_model).
  c.tokenizer = ""

  c.input = ml_collections.ConfigDict()
  c.input.kind = "shards"  # 'shards': launch/make_shards.py output; 'demo': clap_jax.data.demo
  # ('multitask': each of config.tasks' train shards, mixed by input.sampling)
  c.input.train = ""  # shards: glob pattern (or ','-separated patterns)
  c.input.global_batch = 1024
  c.input.seed = 0
  c.input.shuffle_buffer = 256  # records; about 0.9 MB each for 10 s clips
  c.input.caption_choice = "random"  # one of an example's captions per visit
  c.input.prompt = ""  # objective 'prefix_lm': a task prompt before every caption (not a target)
  # GPT-2 is causal and BERT masks padded keys: token columns past every caption's end change
  # nothing, so a batch is cut to the shortest of these lengths (or the full context) that holds
  # all its captions. One compilation of the step per length used.
  c.input.text_lengths = text.TRAINING_BUCKETS
  c.input.sampling = "proportional"  # multitask: 'proportional', 'uniform' or 'temperature'
  c.input.temperature = 1.0  # multitask, sampling='temperature': p_i ∝ n_i^(1/T)

  c.loss = ml_collections.ConfigDict()
  c.loss.kind = "softmax"  # 'softmax' (CLIP, as the paper) or 'sigmoid' (SigLIP)
  c.loss.max_log_scale = 4.6052  # log(100): CLIP clamps the learned logit scale at 100
  c.loss.sigmoid_bias_init = -10.0  # SigLIP's initial bias

  c.augment = ml_collections.ConfigDict()
  c.augment.mixup_alpha = 0.0  # > 0: mixup of neighbouring clips, weight ~ Beta(alpha, alpha)

  c.optim = ml_collections.ConfigDict()
  c.optim.lr = 1e-4
  c.optim.schedule = "cosine"  # 'cosine' (warmup + cosine) or 'plateau' (warmup + reduce-on-plateau)
  c.optim.warmup_steps = 100
  c.optim.end_lr_ratio = 0.0  # cosine decays to lr * end_lr_ratio
  c.optim.b1 = 0.9
  c.optim.b2 = 0.999
  c.optim.eps = 1e-8
  c.optim.weight_decay = 0.0
  c.optim.clip_norm = 1.0
  c.optim.frozen = ""  # regex over parameter names, e.g. '^model/caption_encoder/gpt2/'
  c.optim.accum_steps = 1  # microbatches per step (gradient accumulation)
  # schedule='plateau': optax.contrib.reduce_on_plateau over the training loss, averaged over
  # `every_steps` steps (one evaluation); x`factor` after `patience` evaluations without improvement.
  c.optim.plateau = ml_collections.ConfigDict(
      dict(factor=0.1, patience=15, every_steps=1000, rtol=1e-4, atol=0.0, cooldown=0,
           min_scale=0.0))

  c.mesh = mesh(data=1, fsdp=-1)
  c.sharding = ml_collections.ConfigDict()
  # (regex, 'fsdp' | 'replicate') over names like 'params/model/audio_encoder/...', first match.
  c.sharding.rules = (("^rng$|^step$", "replicate"), (".*", "fsdp"))
  c.sharding.min_size = 2 ** 18  # elements: smaller arrays are replicated under 'fsdp'

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.every_steps = 1000
  c.checkpoint.keep = 3
  c.checkpoint.async_save = True
  # The name of a zero-shot `evals` entry: each of its evaluations whose Zero-Shot score beats the
  # best so far saves the state to {workdir}/best (clap_jax.train.checkpoint.BestCheckpoint), as
  # the paper reports the epoch with the best average. '': off.
  c.checkpoint.keep_best = ""

  c.log = ml_collections.ConfigDict()
  c.log.every_steps = 50

  # Periodic and final evaluators by name, each {'type': a clap_jax.eval.registry type,
  # 'every_steps': 0 (only at the end) or N, and its type's settings}; the objective's defaults.
  c.evals = objectives.default_evals(objective)

  c.init = ml_collections.ConfigDict()
  # A converted MS-CLAP checkpoint (anything clap_jax.weights reads) to fine-tune from.
  c.init.clap_from = ""
  # The audio tower (audio_encoder/htsat) alone, from any of the same kinds of checkpoint.
  c.init.audio_from = ""
  # Objective 'prefix_lm': GPT-2 (`model/gpt`) alone, from a clapcap checkpoint (msclap trained
  # clapcap with OpenAI's 'gpt2' frozen) or a converted folder or workdir of one.
  c.init.decoder_from = ""
  c.lock()
  return c


def evaluation() -> ml_collections.ConfigDict:
  """Defaults of every key of launch/eval.py: the zero-shot evaluator's settings, the captioning
  evaluator's (`captioning`, run instead for a clapcap model), the model config for an msclap
  file or `--checkpoint random` (a converted folder or a workdir carries its own)."""
  c = zeroshot.settings()
  c.captioning = captioning.settings()
  c.model = model_config.clap_2023()
  c.tokenizer = ""  # as training()'s: '' is the vocabulary shipped for the model's text tower
  c.mesh = mesh(data=-1, fsdp=1)  # evaluation: data parallel
  c.seed = 0  # parameters of `--checkpoint random`
  c.lock()
  return c


def mesh(data: int, fsdp: int) -> ml_collections.ConfigDict:
  """Device mesh axis sizes; -1: the remaining devices."""
  return ml_collections.ConfigDict({"data": data, "fsdp": fsdp})


def smoke(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Any training config shrunk to a two-step run that any machine does in a minute: the small
  model of the config's towers with its switches (dtype, SpecAugment, remat, pooling), demo data,
  and one zero-shot evaluation on the demo's held-out clips at the end."""
  small = {"htsat": model_config.small, "gpt2": model_config.small,
           "cnn14": model_config.small_2022, "bert": model_config.small_2022}
  audio, text_tower = model_config.towers(config.model)
  model = model_config.with_towers(small[audio](), small[text_tower]())
  model.dtype = config.model.dtype
  model.text.pooling = config.model.text.pooling
  model.audio.spec_augment = config.model.audio.spec_augment
  model.audio.remat = config.model.audio.remat
  model.text.remat = config.model.text.remat
  config.model = model
  config.input.kind = "demo"
  config.input.global_batch = 4
  config.total_steps = 2
  config.optim.warmup_steps = min(config.optim.warmup_steps, 1)
  config.optim.accum_steps = 1
  config.checkpoint.every_steps = 1000
  config.log.every_steps = 1
  config.evals = objectives.default_evals("contrastive")
  demo = config.evals.zeroshot
  demo.tasks, demo.num_clips, demo.batch_size = ("demo",), 8, 4
  return config


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parser, with one-line errors for an unknown `--config.` key or a bad value."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    sys.exit(f"bad command line: {e}")
  except (KeyError, AttributeError) as e:
    # ml_collections names the missing key alone ("'lrr'\nDid you mean ..."): find its flag.
    message = str(e.args[0] if e.args else e).strip("'\"").replace("\\n", " ").replace("\\'", "'")
    key = message.split("'")[1] if message.count("'") >= 2 else message
    names = [a.split("=")[0] for a in argv if a.startswith("--config.")]
    flag = next((n for n in names if f".{key}." in n + "." or f".{key}=" in n + "="),
                "--config...")
    parent = flag.removeprefix("--config.").rsplit(".", 1)[0] if flag.count(".") > 1 else ""
    known = _known(flags.FLAGS["config"].value or _config_file(argv), parent)
    sys.exit(f"unknown config key {flag.removeprefix('--')}: {message}"
             + (f" (known under {parent}: {', '.join(known)})" if known else ""))


def _config_file(argv: list[str]) -> ml_collections.ConfigDict | None:
  """The `--config=FILE[:ARG]` config without its overrides (absl leaves none when one fails)."""
  given = [b if a == "--config" else a.split("=", 1)[1]
           for a, b in zip(argv, argv[1:] + [""]) if a == "--config" or a.startswith("--config=")]
  spec = given[-1] if given else flags.FLAGS["config"].default_as_str
  path, _, arg = spec.strip("'\"").partition(":")
  try:
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location("config", path))
    module.__spec__.loader.exec_module(module)
    return module.get_config(arg) if arg else module.get_config()
  except Exception:  # the error being reported is the override's, not this one's
    return None


def _known(config, dotted: str) -> list[str]:
  """The keys under `dotted` (the deepest part of it that exists) in `config`, sorted."""
  node = config
  for part in filter(None, dotted.split(".")):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      break
    node = node[part]
  return sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
