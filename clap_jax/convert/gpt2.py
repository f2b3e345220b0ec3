"""transformers GPT2Model state dict -> params of clap_jax.models.gpt2.GPT2."""
import numpy as np

from clap_jax.convert.tensors import StateReader


def gpt2_params(reader: StateReader, prefix: str, config) -> dict:
  """`config` is the model config's `text` part; `prefix` e.g. 'caption_encoder.base.'."""
  d, n = config.n_embd, config.n_positions
  # Recomputed by the model; carried or not depending on the transformers version that saved it.
  reader.check_buffer(prefix + "position_ids", np.arange(n)[None])
  params = {
      "wte": {"embedding": reader.take(prefix + "wte.weight", (config.vocab_size, d))},
      "wpe": {"embedding": reader.take(prefix + "wpe.weight", (n, d))},
      "ln_f": _layer_norm(reader, prefix + "ln_f", d),
  }
  causal = np.tril(np.ones((n, n), bool))[None, None]
  for i in range(config.n_layer):
    p = f"{prefix}h.{i}."
    reader.check_buffer(p + "attn.bias", causal)
    # Only ever the fill value for masked logits; any large negative gives the same softmax.
    reader.ignore(p + "attn.masked_bias")
    params[f"h_{i}"] = {
        "ln_1": _layer_norm(reader, p + "ln_1", d),
        "attn": {"c_attn": _conv1d(reader, p + "attn.c_attn", d, 3 * d),
                 "c_proj": _conv1d(reader, p + "attn.c_proj", d, d)},
        "ln_2": _layer_norm(reader, p + "ln_2", d),
        "mlp": {"c_fc": _conv1d(reader, p + "mlp.c_fc", d, 4 * d),
                "c_proj": _conv1d(reader, p + "mlp.c_proj", 4 * d, d)},
    }
  return params


def _conv1d(reader, prefix, d_in, d_out):
  """transformers' Conv1D stores its weight (in, out), as a flax Dense kernel: no transpose."""
  return {"kernel": reader.take(prefix + ".weight", (d_in, d_out)),
          "bias": reader.take(prefix + ".bias", (d_out,))}


def _layer_norm(reader, prefix, d):
  """As tensors.layer_norm, with shapes checked."""
  return {"scale": reader.take(prefix + ".weight", (d,)), "bias": reader.take(prefix + ".bias", (d,))}
