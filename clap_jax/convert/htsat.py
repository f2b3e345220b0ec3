"""msclap's HTSAT state dict -> variables of clap_jax.models.htsat.HTSAT.

Every torch key is either converted, checked against what we recompute (STFT kernels, mel filters,
relative-position indices, shifted-window masks) or, for `head`, shape-checked and dropped: in
tscam mode the reference builds head = Linear(num_classes, num_classes) but never calls it.
"""
import re

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from clap_jax.convert.tensors import StateReader, batch_norm, conv2d, layer_norm, linear
from clap_jax.models import frontend, htsat


def htsat_variables(reader: StateReader, prefix: str, config) -> dict:
  """{'params', 'batch_stats'} for HTSAT(config) from the torch keys under `prefix`
  (e.g. 'audio_encoder.base.htsat.'). Problems are recorded on `reader` (see raise_if_bad)."""
  key = lambda name: prefix + name
  check_frontend(reader, prefix, config)
  params, stats = {}, {}
  params["bn0"], stats["bn0"] = batch_norm(reader, key("bn0"))
  params["patch_embed"] = {"proj": conv2d(reader, key("patch_embed.proj")),
                           "norm": layer_norm(reader, key("patch_embed.norm"))}
  layout = htsat.stages(config)
  for i, (depth, stage) in enumerate(zip(config.depths, layout)):
    layer = {}
    for j in range(depth):
      block = key(f"layers.{i}.blocks.{j}.")
      layer[f"blocks_{j}"] = {
          "norm1": layer_norm(reader, block + "norm1"),
          "attn": {"qkv": linear(reader, block + "attn.qkv"),
                   "proj": linear(reader, block + "attn.proj"),
                   "relative_position_bias_table":
                       reader.take(block + "attn.relative_position_bias_table")},
          "norm2": layer_norm(reader, block + "norm2"),
          "mlp": {"fc1": linear(reader, block + "mlp.fc1"), "fc2": linear(reader, block + "mlp.fc2")},
      }
      reader.check_buffer(block + "attn.relative_position_index",
                          htsat.relative_position_index(stage["window"]), atol=0)
      if j % 2 and stage["shift"]:  # unshifted blocks register attn_mask = None (no key)
        reader.check_buffer(block + "attn_mask", htsat.shifted_window_mask(
            *stage["resolution"], stage["window"], stage["shift"]), atol=0)
    if i < len(config.depths) - 1:
      down = key(f"layers.{i}.downsample.")
      layer["downsample"] = {"reduction": linear(reader, down + "reduction", bias=False),
                             "norm": layer_norm(reader, down + "norm")}
    params[f"layers_{i}"] = layer
  params["norm"] = layer_norm(reader, key("norm"))
  params["tscam_conv"] = conv2d(reader, key("tscam_conv"))
  # Built but unused in tscam mode; dropped once its shape confirms the class count.
  reader.take(key("head.weight"), (config.num_classes, config.num_classes))
  reader.take(key("head.bias"), (config.num_classes,))
  variables = {"params": params, "batch_stats": stats}
  _check_shapes(reader, prefix, variables, config)
  return variables


def check_frontend(reader: StateReader, prefix: str, config) -> None:
  """torchlibrosa's STFT kernels and mel filters under `prefix`, if carried, against ours."""
  real, imag = frontend.stft_kernels(config.n_fft)
  reader.check_buffer(prefix + "spectrogram_extractor.stft.conv_real.weight", real)
  reader.check_buffer(prefix + "spectrogram_extractor.stft.conv_imag.weight", imag)
  reader.check_buffer(prefix + "logmel_extractor.melW", frontend.mel_filters(
      config.mel_sample_rate, config.n_fft, config.mel_bins, config.fmin, config.fmax))


_TORCH_LEAF = {"kernel": "weight", "scale": "weight", "bias": "bias", "mean": "running_mean",
               "var": "running_var", "relative_position_bias_table": "relative_position_bias_table"}


def _check_shapes(reader: StateReader, prefix: str, variables: dict, config) -> None:
  """Records, under the torch name, every converted array whose shape the model does not expect."""
  model = htsat.HTSAT(config)
  waveform = jax.ShapeDtypeStruct((1, config.clip_samples), jnp.float32)
  expected = jax.eval_shape(model.init, jax.random.PRNGKey(0), waveform)
  expected, converted = traverse_util.flatten_dict(expected), traverse_util.flatten_dict(variables)
  if expected.keys() != converted.keys():  # a bug here, not in the checkpoint
    raise AssertionError(f"converter and model trees differ: {expected.keys() ^ converted.keys()}")
  for path, value in converted.items():
    if value is None:  # already reported as missing
      continue
    torch_path = [re.sub(r"^(layers|blocks)_(\d+)$", r"\1.\2", p) for p in path[1:-1]]
    name = prefix + ".".join(torch_path + [_TORCH_LEAF[path[-1]]])
    want = expected[path].shape
    if np.shape(value) != want:
      reader.mismatched.append(f"{name}: converts to shape {np.shape(value)}, the model has {want}")
