"""Official msclap checkpoints -> Flax variables, and torch-free storage of the converted tree.

    variables = convert_checkpoint("CLAP_weights_2023.pth", clap_2023())
    save_variables(variables, "clap2023_flax", config)   # once
    variables = load_variables("clap2023_flax")          # later, without torch

Conversion is strict: a parameter that is missing, left unused or of the wrong shape is an error
naming the keys. Only buffers we recompute (STFT kernels, mel filters, window masks, relative
position indices, GPT-2 causal masks, position ids) may be absent, and where present they are
checked against ours.
"""
import json
import os
import pathlib

import flax.serialization
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from clap_jax.convert.gpt2 import gpt2_params
from clap_jax.convert.htsat import htsat_variables
from clap_jax.convert.tensors import ConversionError, StateReader, layer_norm, linear

VARIABLES_FILE = "variables.msgpack"
CONFIG_FILE = "model_config.json"


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Reads a `.pth` (state dict under 'model', or bare) or `.safetensors` file as numpy arrays.

  `.pth` files are read with `torch.load(weights_only=True)`: a checkpoint never runs code.
  `module.` prefixes (DataParallel/DDP) are stripped.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"{path}: no such checkpoint file")
  if path.suffix == ".safetensors":
    import safetensors.numpy  # pylint: disable=g-import-not-at-top
    state = safetensors.numpy.load_file(str(path))
  else:
    try:
      import torch  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise ImportError(f"reading {path} needs PyTorch: pip install 'clap_jax[convert]'") from None
    try:
      checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for a bad or unsafe pickle
      raise ConversionError(f"{path}: not a loadable weights-only PyTorch checkpoint ({e})") from e
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("model"), dict):
      checkpoint = checkpoint["model"]
    if not isinstance(checkpoint, dict):
      raise ConversionError(f"{path}: expected a state dict (or one under 'model'), got "
                            f"{type(checkpoint).__name__}")
    state = {k: v.detach().cpu().numpy() for k, v in checkpoint.items() if hasattr(v, "detach")}
  return {k.removeprefix("module."): np.asarray(v) for k, v in state.items()}


def _projection(reader: StateReader, prefix: str) -> dict:
  return {"linear1": linear(reader, prefix + ".linear1", bias=False),
          "linear2": linear(reader, prefix + ".linear2", bias=False),
          "layer_norm": layer_norm(reader, prefix + ".layer_norm")}


def convert_state_dict(state: dict[str, np.ndarray], config: ml_collections.ConfigDict,
                       source: str = "checkpoint") -> dict:
  """An msclap CLAP state dict -> {'params', 'batch_stats'} for `CLAP(config)`."""
  reader = StateReader({k.removeprefix("module."): v for k, v in state.items()}, source)
  audio = htsat_variables(reader, "audio_encoder.base.htsat.", config.audio)
  logit_scale = reader.take("logit_scale")
  variables = {
      "params": {
          "audio_encoder": {"htsat": audio["params"],
                            "projection": _projection(reader, "audio_encoder.projection")},
          "caption_encoder": {"gpt2": gpt2_params(reader, "caption_encoder.base.", config.text),
                              "projection": _projection(reader, "caption_encoder.projection")},
          "logit_scale": None if logit_scale is None else np.reshape(logit_scale, ()),
      },
      "batch_stats": {"audio_encoder": {"htsat": audio["batch_stats"]}},
  }
  reader.raise_if_bad()
  _check_against_model(variables, config, source)
  return jax.tree.map(lambda x: np.asarray(x, np.float32), variables)


def _check_against_model(variables: dict, config: ml_collections.ConfigDict, source: str) -> None:
  """Every leaf the model declares is present with its shape, and nothing else."""
  expected = {jax.tree_util.keystr(p): v.shape
              for p, v in jax.tree_util.tree_leaves_with_path(abstract_variables(config))}
  got = {jax.tree_util.keystr(p): np.shape(v)
         for p, v in jax.tree_util.tree_leaves_with_path(variables)}
  problems = [f"not filled: {k}" for k in sorted(set(expected) - set(got))]
  problems += [f"not in the model: {k}" for k in sorted(set(got) - set(expected))]
  problems += [f"{k}: shape {got[k]}, model expects {expected[k]}"
               for k in sorted(set(got) & set(expected)) if tuple(got[k]) != tuple(expected[k])]
  if problems:
    raise ConversionError(f"{source} does not fit the model: " + "; ".join(problems))


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


def save_variables(variables: dict, directory: str | os.PathLike,
                   config: ml_collections.ConfigDict) -> None:
  """Writes the tree (msgpack) and its model config (JSON); readable without torch."""
  directory = pathlib.Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  tmp = directory / (VARIABLES_FILE + ".tmp")
  tmp.write_bytes(flax.serialization.msgpack_serialize(jax.tree.map(np.asarray, variables)))
  tmp.replace(directory / VARIABLES_FILE)  # atomic: a reader never sees half a file
  (directory / CONFIG_FILE).write_text(config.to_json(indent=2))


def load_variables(directory: str | os.PathLike) -> tuple[ml_collections.ConfigDict, dict]:
  """-> (model config, variables) as written by `save_variables`."""
  directory = pathlib.Path(directory)
  for name in (VARIABLES_FILE, CONFIG_FILE):
    if not (directory / name).is_file():
      raise FileNotFoundError(f"{directory}: no {name} (not a converted clap_jax tree)")
  config = ml_collections.ConfigDict(json.loads((directory / CONFIG_FILE).read_text()))
  variables = flax.serialization.msgpack_restore((directory / VARIABLES_FILE).read_bytes())
  _check_against_model(variables, config, str(directory))
  return config, variables
