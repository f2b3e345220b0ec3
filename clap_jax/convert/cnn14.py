"""msclap's Cnn14 state dict -> variables of clap_jax.models.cnn14.Cnn14.

Every torch key is converted with its shape checked, checked against what we recompute (STFT
kernels, mel filters) or, for `num_batches_tracked`, ignored (torch reads it only when momentum is
None). `fc_audioset` is converted: it gives the AudioSet clipwise outputs.
"""
import numpy as np

from clap_jax.convert.htsat import check_frontend
from clap_jax.convert.tensors import StateReader, linear


def cnn14_variables(reader: StateReader, prefix: str, config) -> dict:
  """{'params', 'batch_stats'} for Cnn14(config) from the torch keys under `prefix` (msclap:
  'audio_encoder.base.'). `config` is the model config's `audio` part. Problems are recorded on
  `reader` (see raise_if_bad)."""
  check_frontend(reader, prefix, config)
  params, stats = {}, {}
  params["bn0"], stats["bn0"] = _batch_norm(reader, prefix + "bn0", config.mel_bins)
  channels_in = 1
  for i, channels in enumerate(config.channels, start=1):
    block, block_stats = {}, {}
    for j, c_in in ((1, channels_in), (2, channels)):
      p = f"{prefix}conv_block{i}."
      weight = reader.take(p + f"conv{j}.weight", (channels, c_in, 3, 3))
      # torch (O, I, kh, kw) -> flax (kh, kw, I, O); kh runs over time in both layouts.
      block[f"conv{j}"] = {"kernel": None if weight is None else np.transpose(weight, (2, 3, 1, 0))}
      block[f"bn{j}"], block_stats[f"bn{j}"] = _batch_norm(reader, p + f"bn{j}", channels)
    params[f"conv_block{i}"], stats[f"conv_block{i}"] = block, block_stats
    channels_in = channels
  params["fc1"] = linear(reader, prefix + "fc1", features=(channels_in, config.out_emb))
  params["fc_audioset"] = linear(reader, prefix + "fc_audioset",
                                 features=(config.out_emb, config.num_classes))
  return {"params": params, "batch_stats": stats}


def _batch_norm(reader: StateReader, prefix: str, n: int) -> tuple[dict, dict]:
  reader.ignore(prefix + ".num_batches_tracked")
  take = lambda name: reader.take(f"{prefix}.{name}", (n,))
  return ({"scale": take("weight"), "bias": take("bias")},
          {"mean": take("running_mean"), "var": take("running_var")})
