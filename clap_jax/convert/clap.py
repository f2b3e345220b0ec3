"""msclap state dicts -> Flax variables: which model a checkpoint holds (from its keys), the 2023
CLAP's key table (HTSAT + GPT-2 + projections; 2022's is convert/clap2022.py), and the strict check
of a converted tree against the model's own shapes."""
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from clap_jax.convert.clap2022 import convert_2022
from clap_jax.convert.files import load_state_dict
from clap_jax.convert.gpt2 import gpt2_params
from clap_jax.convert.htsat import htsat_variables
from clap_jax.convert.tensors import ConversionError, StateReader, check_tree, projection
from clap_jax.models import config as model_config

# A key prefix that only a checkpoint with this tower has.
_TOWER_KEYS = (("htsat", "audio_encoder.base.htsat."), ("cnn14", "audio_encoder.base.conv_block1."),
               ("gpt2", "caption_encoder.base.h.0."), ("bert", "caption_encoder.base.encoder.layer.0."))
_CLAPCAP_KEY = "clap_project."  # the captioner's mapper


def checkpoint_version(state: dict[str, np.ndarray], source: str = "checkpoint") -> str:
  """The msclap model ('2023', '2022' or 'clapcap') a state dict holds, told by its keys."""
  keys = [k.removeprefix("module.") for k in state]
  if any(k.startswith(_CLAPCAP_KEY) for k in keys):
    return "clapcap"
  held = tuple(tower for tower, prefix in _TOWER_KEYS if any(k.startswith(prefix) for k in keys))
  versions = [v for v, pair in model_config.TOWERS.items() if pair == held]
  if not versions:
    raise ConversionError(f"{source}: not an msclap CLAP checkpoint (towers found from its keys: "
                          f"{held or 'none'}; msclap's are {sorted(model_config.TOWERS.values())})")
  return versions[0]


def convert_state_dict(state: dict[str, np.ndarray], config: ml_collections.ConfigDict,
                       source: str = "checkpoint") -> dict:
  """An msclap CLAP state dict (2023 or 2022) -> {'params', 'batch_stats'} for `CLAP(config)`,
  whose towers must be the checkpoint's."""
  version = checkpoint_version(state, source)
  if version not in model_config.TOWERS:
    raise ConversionError(f"{source} holds msclap {version}, not a CLAP model")
  if model_config.TOWERS[version] != model_config.towers(config):
    raise ConversionError(f"{source} holds msclap {version}'s towers {model_config.TOWERS[version]}, "
                          f"the model config has {model_config.towers(config)}")
  if version == "2022":
    return convert_2022(state, config, source)
  reader = StateReader({k.removeprefix("module."): v for k, v in state.items()}, source)
  audio = htsat_variables(reader, "audio_encoder.base.htsat.", config.audio)
  logit_scale = reader.take("logit_scale")
  variables = {
      "params": {
          "audio_encoder": {"htsat": audio["params"],
                            "projection": projection(reader, "audio_encoder.projection")},
          "caption_encoder": {"gpt2": gpt2_params(reader, "caption_encoder.base.", config.text),
                              "projection": projection(reader, "caption_encoder.projection")},
          "logit_scale": None if logit_scale is None else np.reshape(logit_scale, ()),
      },
      "batch_stats": {"audio_encoder": {"htsat": audio["batch_stats"]}},
  }
  reader.raise_if_bad()
  check_against_model(variables, config, source)
  return jax.tree.map(lambda x: np.asarray(x, np.float32), variables)


def check_against_model(variables: dict, config: ml_collections.ConfigDict, source: str) -> None:
  """Every leaf the model declares is present with its shape, and nothing else."""
  check_tree(variables, abstract_variables(config), source)


def abstract_variables(config: ml_collections.ConfigDict) -> dict:
  """Shapes and dtypes of CLAP(config)'s variables, without computing anything."""
  from clap_jax.models.clap import CLAP  # pylint: disable=g-import-not-at-top
  model = CLAP(config)
  a, t = config.audio, config.text
  return jax.eval_shape(
      model.init, {"params": jax.random.key(0), "dropout": jax.random.key(1)},
      jnp.zeros((1, a.clip_samples), jnp.float32), jnp.zeros((1, t.context_length), jnp.int32),
      jnp.ones((1, t.context_length), jnp.int32))


def convert_checkpoint(path: str | os.PathLike, config: ml_collections.ConfigDict) -> dict:
  """Reads an msclap checkpoint file and converts it for `CLAP(config)`."""
  return convert_state_dict(load_state_dict(path), config, source=str(path))
