"""transformers BertModel state dict -> params of clap_jax.models.bert.Bert.

The pooler (dense + tanh at [CLS]) is shape-checked and dropped: msclap's TextEncoder reads the
last hidden state at [CLS] and never calls it.
"""
import numpy as np

from clap_jax.convert.tensors import StateReader, linear


def bert_params(reader: StateReader, prefix: str, config) -> dict:
  """`config` is the model config's `text` part; `prefix` e.g. 'caption_encoder.base.'."""
  d, n, hidden = config.hidden_size, config.max_position_embeddings, config.intermediate_size
  e = prefix + "embeddings."
  # Recomputed by the model; saved or not depending on the transformers version that wrote the file.
  reader.check_buffer(e + "position_ids", np.arange(n)[None], atol=0)
  reader.check_buffer(e + "token_type_ids", np.zeros((1, n)), atol=0)
  params = {"embeddings": {
      "word_embeddings": {"embedding": reader.take(e + "word_embeddings.weight",
                                                   (config.vocab_size, d))},
      "position_embeddings": {"embedding": reader.take(e + "position_embeddings.weight", (n, d))},
      "token_type_embeddings": {"embedding": reader.take(e + "token_type_embeddings.weight",
                                                         (config.type_vocab_size, d))},
      "LayerNorm": _layer_norm(reader, e + "LayerNorm", d),
  }}
  for i in range(config.num_layers):
    p = f"{prefix}encoder.layer.{i}."
    params[f"layer_{i}"] = {
        "attention": {
            "self": {name: linear(reader, p + "attention.self." + name, features=(d, d))
                     for name in ("query", "key", "value")},
            "output": {"dense": linear(reader, p + "attention.output.dense", features=(d, d)),
                       "LayerNorm": _layer_norm(reader, p + "attention.output.LayerNorm", d)},
        },
        "intermediate": {"dense": linear(reader, p + "intermediate.dense", features=(d, hidden))},
        "output": {"dense": linear(reader, p + "output.dense", features=(hidden, d)),
                   "LayerNorm": _layer_norm(reader, p + "output.LayerNorm", d)},
    }
  reader.take(prefix + "pooler.dense.weight", (d, d))
  reader.take(prefix + "pooler.dense.bias", (d,))
  return params


def _layer_norm(reader: StateReader, prefix: str, d: int) -> dict:
  return {"scale": reader.take(prefix + ".weight", (d,)), "bias": reader.take(prefix + ".bias", (d,))}
