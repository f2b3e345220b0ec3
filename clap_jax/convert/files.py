"""Checkpoint files: msclap's `.pth` / `.safetensors` read as numpy state dicts, and the torch-free
storage of a converted tree (`variables.msgpack` + `model_config.json`)."""
import json
import os
import pathlib

import flax.serialization
import jax
import ml_collections
import numpy as np

from clap_jax.convert.tensors import ConversionError

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
  from clap_jax.convert import clap  # pylint: disable=g-import-not-at-top
  clap.check_against_model(variables, config, str(directory))
  return config, variables
