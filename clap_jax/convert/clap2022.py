"""An msclap CLAP 2022 state dict (CNN14 + BERT) -> variables of `CLAP(clap_2022())`.

    variables = convert_2022(load_state_dict("CLAP_weights_2022.pth"))

As strict as the 2023 converter: a parameter that is missing, left unused or of the wrong shape
is an error naming the keys; only recomputable buffers (STFT kernels, mel filters, BERT's
position_ids / token_type_ids) may be absent, and where present they must equal ours.
"""
import jax
import ml_collections
import numpy as np

from clap_jax.convert.bert import bert_params
from clap_jax.convert.cnn14 import cnn14_variables
from clap_jax.convert.tensors import StateReader, linear
from clap_jax.models import config as model_config


def convert_2022(state: dict[str, np.ndarray], config: ml_collections.ConfigDict | None = None,
                 source: str = "checkpoint") -> dict:
  """{'params', 'batch_stats'} (float32 numpy) for `CLAP(config)`, config clap_2022() by default."""
  config = model_config.clap_2022() if config is None else config
  reader = StateReader({k.removeprefix("module."): v for k, v in state.items()}, source)
  audio = cnn14_variables(reader, "audio_encoder.base.", config.audio)
  logit_scale = reader.take("logit_scale", ())
  variables = {
      "params": {
          "audio_encoder": {"cnn14": audio["params"],
                            "projection": _projection(reader, "audio_encoder.projection",
                                                      config.audio.out_emb, config.embed_dim)},
          "caption_encoder": {"bert": bert_params(reader, "caption_encoder.base.", config.text),
                              "projection": _projection(reader, "caption_encoder.projection",
                                                        config.text.hidden_size, config.embed_dim)},
          "logit_scale": logit_scale,
      },
      "batch_stats": {"audio_encoder": {"cnn14": audio["batch_stats"]}},
  }
  reader.raise_if_bad()
  # Imported here: convert/clap.py imports this module.
  from clap_jax.convert import clap  # pylint: disable=g-import-not-at-top
  clap.check_against_model(variables, config, source)
  return jax.tree.map(lambda x: np.asarray(x, np.float32), variables)


def _projection(reader: StateReader, prefix: str, d_in: int, d_out: int) -> dict:
  return {"linear1": linear(reader, prefix + ".linear1", bias=False, features=(d_in, d_out)),
          "linear2": linear(reader, prefix + ".linear2", bias=False, features=(d_out, d_out)),
          "layer_norm": {"scale": reader.take(prefix + ".layer_norm.weight", (d_out,)),
                         "bias": reader.take(prefix + ".layer_norm.bias", (d_out,))}}
