"""msclap's clapcap checkpoint (clapcap_weights_2023.pth) -> variables of models.clapcap.ClapCap.

    variables = convert_checkpoint("clapcap_weights_2023.pth", model_config.clapcap())

As strict as the 2023 converter: a parameter missing, left unused or misshapen is an error naming
the keys. msclap loads this file with `load_state_dict(strict=False)`, which would accept all three
silently, leaving any missing weight at its initial value (GPT-2 from the hub, random mapper).
What it is meant to let through, old transformers' GPT-2 buffers (`attn.bias`, `attn.masked_bias`),
is checked or ignored here as in the 2023 model; `gpt.lm_head.weight`, the tied copy of
`gpt.transformer.wte.weight`, must equal it.
"""
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from clap_jax.convert.files import load_state_dict
from clap_jax.convert.gpt2 import gpt2_params
from clap_jax.convert.htsat import htsat_variables
from clap_jax.convert.tensors import StateReader, check_tree, layer_norm, linear, projection


def is_clapcap(config: ml_collections.ConfigDict) -> bool:
  """Whether a model config describes clapcap (models.config.clapcap) rather than a CLAP."""
  return "mapper" in config


def _mapper(reader: StateReader, prefix: str, config) -> dict:
  """TransformerMapper under `prefix` ('clap_project'); `config` is the model config's `mapper`."""
  layers = {}
  for i in range(config.num_layers):
    p = f"{prefix}.transformer.layers.{i}."
    layers[f"layers_{i}"] = {
        "norm1": layer_norm(reader, p + "norm1"),
        "attn": {"to_queries": linear(reader, p + "attn.to_queries", bias=False),
                 "to_keys_values": linear(reader, p + "attn.to_keys_values", bias=False),
                 "project": linear(reader, p + "attn.project")},
        "norm2": layer_norm(reader, p + "norm2"),
        "mlp": {"fc1": linear(reader, p + "mlp.fc1"), "fc2": linear(reader, p + "mlp.fc2")},
    }
  return {"linear": linear(reader, prefix + ".linear"),
          "prefix_const": reader.take(prefix + ".prefix_const"),
          "transformer": layers}


def convert_state_dict(state: dict[str, np.ndarray], config: ml_collections.ConfigDict,
                       source: str = "checkpoint") -> dict:
  """A ClapCaptionModel state dict -> {'params', 'batch_stats'} for `ClapCap(config)`."""
  reader = StateReader({k.removeprefix("module."): v for k, v in state.items()}, source)
  audio = htsat_variables(reader, "clap.base.htsat.", config.audio)
  gpt = gpt2_params(reader, "gpt.transformer.", config.decoder)
  if gpt["wte"]["embedding"] is not None:  # GPT2LMHeadModel's head is the token embedding
    reader.check_buffer("gpt.lm_head.weight", gpt["wte"]["embedding"], atol=0)
  variables = {
      "params": {"clap": {"htsat": audio["params"], "projection": projection(reader, "clap.projection")},
                 "clap_project": _mapper(reader, "clap_project", config.mapper),
                 "gpt": gpt},
      "batch_stats": {"clap": {"htsat": audio["batch_stats"]}},
  }
  reader.raise_if_bad()
  check_variables(variables, config, source)
  return jax.tree.map(lambda x: np.asarray(x, np.float32), variables)


def convert_checkpoint(path: str | os.PathLike, config: ml_collections.ConfigDict) -> dict:
  """Reads a clapcap checkpoint (state dict under 'model', weights_only) and converts it."""
  return convert_state_dict(load_state_dict(path), config, source=str(path))


def abstract_variables(config: ml_collections.ConfigDict) -> dict:
  """Shapes and dtypes of ClapCap(config)'s variables, without computing anything."""
  from clap_jax.models.clapcap import ClapCap  # pylint: disable=g-import-not-at-top
  ids = jnp.zeros((1, 4), jnp.int32)
  return jax.eval_shape(ClapCap(config).init, jax.random.key(0),
                        jnp.zeros((1, config.audio.clip_samples), jnp.float32), ids)


def check_variables(variables: dict, config: ml_collections.ConfigDict, source: str) -> None:
  """Every leaf ClapCap(config) declares is present with its shape, and nothing else."""
  check_tree(variables, abstract_variables(config), source)
