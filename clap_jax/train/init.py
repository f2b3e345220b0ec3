"""Initialisation from existing weights: a whole CLAP model, or its audio tower alone (HTSAT or
CNN14, from a CLAP checkpoint with that tower, or HTSAT from a clapcap, such as a workdir of
configs/audio_pretrain.py's HTSAT-22);
for clapcap, the audio encoder with its projection from a CLAP, and GPT-2 from a clapcap.

A checkpoint is anything clap_jax.weights reads (an msclap file, a converted folder, a workdir).
Loaded arrays must match the model's shapes exactly; a mismatch is an error naming the array.
"""
import jax
import ml_collections
import numpy as np

from clap_jax import sharding, weights
from clap_jax.models import config as model_configs


def _replace(target: dict, source: dict, where: str) -> dict:
  """`target` with every leaf of `source` put in its place (same names and shapes)."""
  names = dict(zip(sharding.tree_names(target), jax.tree.leaves(target)))
  loaded = dict(zip(sharding.tree_names(source), jax.tree.leaves(source)))
  problems = [f"{k} is not in the model" for k in loaded if k not in names]
  problems += [f"{k}: shape {np.shape(v)}, the model has {np.shape(names[k])}"
               for k, v in loaded.items() if k in names and np.shape(v) != np.shape(names[k])]
  if problems:
    raise ValueError(f"{where} does not fit: " + "; ".join(problems))
  leaves = [np.asarray(loaded[k], names[k].dtype) if k in loaded else v for k, v in names.items()]
  return jax.tree.unflatten(jax.tree.structure(target), leaves)


def _subtree(tree: dict, path: tuple[str, ...]) -> dict:
  for key in path:
    tree = tree[key]
  return tree


def _nest(path: tuple[str, ...], value) -> dict:
  for key in reversed(path):
    value = {key: value}
  return value


def initialise(variables: dict, config: ml_collections.ConfigDict,
               model_config: ml_collections.ConfigDict) -> dict:
  """Fresh model `variables` with `config.clap_from`, `config.audio_from` and/or (clapcap)
  `config.decoder_from` loaded in."""
  if config.clap_from:
    variables = _replace(variables, weights.load(config.clap_from, model_config)[1],
                         config.clap_from)
  clapcap = model_configs.version_of(model_config) == "clapcap"
  if config.audio_from and clapcap:
    variables = _replace(variables, _clapcap_audio(config.audio_from, model_config),
                         config.audio_from)
  elif config.audio_from:
    loaded = weights.load(config.audio_from, model_config)[1]
    # The audio tower (its batch statistics included); the projection belongs to the contrastive
    # objective and is not taken. A clapcap (HTSAT-22's pretraining) holds the tower under `clap`.
    tower = ("audio_encoder", model_configs.towers(model_config)[0])
    part = next((p for p in ("audio_encoder", "clap") if p in loaded["params"]), None)
    if part is None:
      raise ValueError(f"init.audio_from={config.audio_from}: holds no audio encoder "
                       f"(its parts: {sorted(loaded['params'])})")
    source = (part, tower[1])
    audio = {c: _nest(tower, _subtree(loaded[c], source)) for c in loaded}
    variables = _replace(variables, audio, config.audio_from)
  if config.decoder_from:
    if not clapcap:
      raise ValueError("init.decoder_from loads clapcap's GPT-2 (model/gpt): the model is not clapcap")
    loaded = weights.load(config.decoder_from, model_config, version="clapcap")[1]
    if "gpt" not in loaded["params"]:
      raise ValueError(f"init.decoder_from={config.decoder_from}: holds no clapcap GPT-2 (gpt)")
    variables = _replace(variables, {"params": {"gpt": loaded["params"]["gpt"]}},
                         config.decoder_from)
  return variables


def _clapcap_audio(checkpoint: str, model_config: ml_collections.ConfigDict) -> dict:
  """clapcap's `clap` (audio tower, batch statistics and projection: it maps the projected
  embedding) from a CLAP checkpoint's `audio_encoder` or another clapcap's `clap`."""
  loaded = weights.load(checkpoint, model_config)[1]
  part = "clap" if "clap" in loaded["params"] else "audio_encoder"
  if part not in loaded["params"]:
    raise ValueError(f"init.audio_from={checkpoint}: holds no CLAP audio encoder")
  return {c: {"clap": loaded[c][part]} for c in loaded if part in loaded[c]}
