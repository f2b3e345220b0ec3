"""The one place a checkpoint argument becomes (model config, variables): for `encode.load`,
`launch/eval.py` and a training run's `init.*_from`.

A checkpoint is any of:
  None                     the official file of `version` from the hub (downloaded once)
  'random'                 freshly initialised parameters of the model config (plumbing runs)
  a .pth / .safetensors    an msclap checkpoint (2023, 2022 or clapcap, told by its keys), converted
                           for the model config if that has the file's structure, else for the
                           official config of the file's version (in the given config's dtype)
  a converted folder       written by `clap_jax.convert.save_variables`; brings its model config
  a training workdir       its latest checkpoint (the model's arrays only); brings its model config;
                           also on object storage (gs://...), where it is the one kind read
Variables are host numpy arrays {'params', 'batch_stats'}.
"""
import hashlib
import os
import pathlib

import jax
import ml_collections
import numpy as np

from clap_jax import convert
from clap_jax.convert import clapcap as convert_clapcap
from clap_jax.models import config as model_configs

HUB_REPO = "microsoft/msclap"
HUB_FILES = {"2023": "CLAP_weights_2023.pth", "2022": "CLAP_weights_2022.pth",
             "clapcap": "clapcap_weights_2023.pth"}


def load(checkpoint: str | os.PathLike | None, model_config: ml_collections.ConfigDict, *,
         version: str = "2023", seed: int = 0, cache: bool = False
         ) -> tuple[ml_collections.ConfigDict, dict]:
  """-> (model config, variables) of `checkpoint` (see above). `model_config` is the config a
  file is converted for or random parameters are drawn for; `cache` keeps a file's conversion
  under $CLAP_JAX_CACHE (default ~/.cache/clap_jax) for the next load."""
  if checkpoint is None:
    checkpoint = _download(version)
  if str(checkpoint) == "random":
    return model_config, random_variables(model_config, seed)
  if "://" in str(checkpoint):  # pathlib would fold gs://b into gs:/b; orbax reads the URL
    from clap_jax.train import checkpoint as train_checkpoint  # pylint: disable=g-import-not-at-top
    return train_checkpoint.load_inference_variables(str(checkpoint))
  path = pathlib.Path(checkpoint)
  if path.is_file():
    return (_cached_conversion if cache else _convert_file)(path, model_config)
  if (path / "checkpoints").is_dir():
    from clap_jax.train import checkpoint as train_checkpoint  # pylint: disable=g-import-not-at-top
    return train_checkpoint.load_inference_variables(path)
  if path.is_dir():
    return convert.load_variables(path)
  raise FileNotFoundError(f"{path}: no checkpoint file, converted folder or training workdir "
                          "(or 'random')")


def random_variables(model_config: ml_collections.ConfigDict, seed: int = 0) -> dict:
  """Freshly initialised CLAP (or clapcap) variables, as host numpy."""
  if convert_clapcap.is_clapcap(model_config):
    return _random_clapcap(model_config, seed)
  from clap_jax.models.clap import CLAP  # pylint: disable=g-import-not-at-top
  a, t = model_config.audio, model_config.text
  keys = jax.random.split(jax.random.key(seed))
  variables = jax.jit(CLAP(model_config).init)(
      {"params": keys[0], "dropout": keys[1]}, np.zeros((1, a.clip_samples), np.float32),
      np.zeros((1, t.context_length), np.int32), np.ones((1, t.context_length), np.int32))
  return jax.tree.map(np.asarray, variables)


def _random_clapcap(model_config: ml_collections.ConfigDict, seed: int) -> dict:
  from clap_jax.models.clapcap import ClapCap  # pylint: disable=g-import-not-at-top
  keys = jax.random.split(jax.random.key(seed))
  variables = jax.jit(ClapCap(model_config).init)(
      {"params": keys[0], "dropout": keys[1]},
      np.zeros((1, model_config.audio.clip_samples), np.float32), np.zeros((1, 1), np.int32))
  return jax.tree.map(np.asarray, variables)


def convert_state(state: dict[str, np.ndarray], model_config: ml_collections.ConfigDict,
                  source: str = "checkpoint") -> dict:
  """An msclap state dict converted by the table of the model `model_config` describes."""
  if convert_clapcap.is_clapcap(model_config):
    return convert_clapcap.convert_state_dict(state, model_config, source)
  return convert.convert_state_dict(state, model_config, source)


def cache_dir() -> pathlib.Path:
  return pathlib.Path(os.environ.get("CLAP_JAX_CACHE", pathlib.Path.home() / ".cache" / "clap_jax"))


def _convert_file(checkpoint: pathlib.Path, config: ml_collections.ConfigDict
                  ) -> tuple[ml_collections.ConfigDict, dict]:
  state = convert.load_state_dict(checkpoint)
  version = convert.checkpoint_version(state, str(checkpoint))
  config = _fitting(config, version, model_configs.for_version(version))
  return config, convert_state(state, config, source=str(checkpoint))


def _fitting(config: ml_collections.ConfigDict, version: str | None,
             official: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`config` if it has the structure of a checkpoint's msclap `version`, else `official` (the
  checkpoint's own) in `config`'s dtype: an msclap file says which model it holds, as a converted
  folder does."""
  if model_configs.version_of(config) == version:
    return config
  official.dtype = config.dtype
  return official


def _cached_conversion(checkpoint: pathlib.Path, config: ml_collections.ConfigDict
                       ) -> tuple[ml_collections.ConfigDict, dict]:
  """Converts once per checkpoint file (keyed by path, size and mtime) and reloads after."""
  stat = checkpoint.stat()
  key = hashlib.sha256(f"{checkpoint.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
  cached = cache_dir() / key[:16]
  if (cached / convert.VARIABLES_FILE).is_file():
    converted_for, variables = convert.load_variables(cached)
    return _fitting(config, model_configs.version_of(converted_for), converted_for), variables
  config, variables = _convert_file(checkpoint, config)
  convert.save_variables(variables, cached, config)
  return config, variables


def _download(version: str) -> str:
  if version not in HUB_FILES:
    raise ValueError(f"no official checkpoint of version {version!r}: one of {sorted(HUB_FILES)}")
  from huggingface_hub import hf_hub_download  # pylint: disable=g-import-not-at-top
  return hf_hub_download(HUB_REPO, HUB_FILES[version])
