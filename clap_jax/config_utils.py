"""The training config's schema: every key the loop reads, its default, and the checks.

Config files (configs/*.py) start from `base()` and change what they need. `check` rejects a key
the schema does not know (a typo in a config file would otherwise be silently unused) and names
it; misspelled command-line overrides (`--config.optim.lrr=1`) are caught by `parse_flags`.
"""
import sys

import ml_collections
from absl import flags

from clap_jax import text
from clap_jax.models import config as model_config


def base() -> ml_collections.ConfigDict:
  """Defaults of every key; `configs/pretrain.py` documents the choices."""
  c = ml_collections.ConfigDict()
  c.seed = 0  # parameters, dropout and augmentation; the data stream has its own seed
  c.objective = "contrastive"  # clap_jax.objectives
  # Objective 'audio_multitask': its tasks by name (clap_jax/objectives/audio_multitask.py).
  c.tasks = ml_collections.ConfigDict()
  c.model = model_config.clap_2023()
  c.total_steps = 1000
  # Tokenizer of the demo's captions and of zero-shot prompts (shards carry their own tokens).
  c.tokenizer = str(text.GPT2_FILES)

  c.input = ml_collections.ConfigDict()
  c.input.kind = "shards"  # 'shards': launch/make_shards.py output; 'demo': clap_jax.demo_data
  # ('multitask': each of config.tasks' train shards, mixed by input.sampling)
  c.input.train = ""  # shards: glob pattern (or ','-separated patterns)
  c.input.global_batch = 1024
  c.input.seed = 0
  c.input.shuffle_buffer = 256  # records; about 0.9 MB each for 10 s clips
  c.input.caption_choice = "random"  # one of an example's captions per visit
  # GPT-2 is causal: token columns past every caption's end change nothing, so a batch is cut to
  # the shortest of these lengths (or the full context) that holds all its captions. One
  # compilation of the step per length used.
  c.input.text_lengths = (16, 32)
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
  c.optim.warmup_steps = 100
  c.optim.end_lr_ratio = 0.0  # cosine decays to lr * end_lr_ratio
  c.optim.b1 = 0.9
  c.optim.b2 = 0.999
  c.optim.eps = 1e-8
  c.optim.weight_decay = 0.0
  c.optim.clip_norm = 1.0
  c.optim.frozen = ""  # regex over parameter names, e.g. '^model/caption_encoder/gpt2/'
  c.optim.accum_steps = 1  # microbatches per step (gradient accumulation)

  c.mesh = ml_collections.ConfigDict({"data": 1, "fsdp": -1})  # -1: the remaining devices
  c.sharding = ml_collections.ConfigDict()
  # (regex, 'fsdp' | 'replicate') over names like 'params/model/audio_encoder/...', first match.
  c.sharding.rules = (("^rng$|^step$", "replicate"), (".*", "fsdp"))
  c.sharding.min_size = 2 ** 18  # elements: smaller arrays are replicated under 'fsdp'

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.every_steps = 1000
  c.checkpoint.keep = 3
  c.checkpoint.async_save = True

  c.log = ml_collections.ConfigDict()
  c.log.every_steps = 50

  c.eval = ml_collections.ConfigDict()
  c.eval.every_steps = 0  # 0: only at the end
  c.eval.tasks = ()  # names in clap_jax.eval.tasks ('demo': clap_jax.demo_data's held-out clips)
  c.eval.data_dir = "."  # where the tasks' data is looked for
  c.eval.sources = ml_collections.ConfigDict()  # per task: overrides of its source spec
  c.eval.templates = ml_collections.ConfigDict()  # per task: prompt templates ('{}' = label)
  c.eval.batch_size = 64
  c.eval.num_clips = 256  # demo task: held-out clips

  c.init = ml_collections.ConfigDict()
  # A converted MS-CLAP checkpoint (.pth/.safetensors, a convert.save_variables folder, or a
  # training workdir) to fine-tune from.
  c.init.clap_from = ""
  # The audio tower (audio_encoder/htsat) alone, from any of the same kinds of checkpoint.
  c.init.audio_from = ""
  return c


def small_model() -> ml_collections.ConfigDict:
  """A few-MB CLAP for 1 s clips at 16 kHz, for the CPU demo and tests: a 64x64 spectrogram image
  instead of 256x256, and two Swin stages instead of four (a deeper tower barely moves in the
  few hundred steps a CPU demo affords)."""
  m = model_config.tiny()
  a = m.audio
  a.sample_rate = a.mel_sample_rate = 16000
  a.clip_seconds = 1
  a.clip_samples = 16000
  a.n_fft, a.hop_length = 512, 256  # 63 frames, resized to 64
  a.fmax = 8000.0
  a.spec_size = 64  # = mel_bins: one 64-frame image, no folding
  a.embed_dim = 32
  a.depths = (2, 2)
  a.num_heads = (2, 4)
  a.drop_path_rate = 0.0
  a.spec_augment = False
  m.text.pooling = "last_token"  # new training: pool at the real end of the text
  m.text.dropout = 0.0
  m.projection_dropout = 0.0
  return m


def smoke(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Any config shrunk to a two-step run that any machine does in a minute: the small model with
  the config's switches (dtype, SpecAugment, remat, pooling), demo data, no periodic work."""
  model = small_model()
  model.dtype = config.model.dtype
  model.text.pooling = config.model.text.pooling
  model.audio.spec_augment = config.model.audio.spec_augment
  model.audio.remat = config.model.audio.remat
  model.text.remat = config.model.text.remat
  config.model = model
  config.input.kind = "demo"
  config.input.global_batch = 4
  config.total_steps = 2
  config.optim.warmup_steps = 1
  config.optim.accum_steps = 1
  config.checkpoint.every_steps = 1000
  config.log.every_steps = 1
  config.eval.tasks = ("demo",)
  config.eval.sources = ml_collections.ConfigDict()
  config.eval.templates = ml_collections.ConfigDict()
  config.eval.num_clips = 8
  config.eval.batch_size = 4
  config.eval.every_steps = 0
  return config


def _keys(config, prefix="") -> set[str]:
  keys = set()
  for key, value in config.items():
    name = prefix + key
    keys.add(name)
    if isinstance(value, ml_collections.ConfigDict):
      keys |= _keys(value, name + ".")
  return keys


def check(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming every key that `base()` does not have (the model's keys are those
  of clap_jax.models.config; `eval.sources`, `eval.templates` and `tasks` are keyed by task)."""
  known = _keys(base())
  open_dicts = ("eval.sources.", "eval.templates.", "tasks.")  # keyed by task name
  unknown = sorted(k for k in _keys(config) if k not in known and not k.startswith(open_dicts))
  if unknown:
    raise ValueError(f"unknown config keys: {', '.join(unknown)} (see clap_jax/config_utils.py)")


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
    flag = next((n for n in names if f".{key}." in n + "."), "--config...")
    sys.exit(f"unknown config key {flag.removeprefix('--')}: {message}")
