"""The CLAP model: an audio tower (HTSAT for 2023, CNN14 for 2022), a text tower (GPT-2 or BERT),
projections and a learned temperature."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from clap_jax import text as text_lib
from clap_jax.models import config as model_config
from clap_jax.models.bert import Bert
from clap_jax.models.cnn14 import Cnn14
from clap_jax.models.gpt2 import GPT2
from clap_jax.models.htsat import HTSAT
from clap_jax.models.projection import Projection


def _tower(config: ml_collections.ConfigDict, part: int, known: tuple[str, ...]) -> str:
  name = model_config.towers(config)[part]
  if name not in known:
    raise ValueError(f"unknown encoder {name!r}: one of {known}")
  return name


class AudioEncoder(nn.Module):
  """Waveforms -> HTSAT latent or CNN14 embedding (and AudioSet clipwise outputs) -> projected
  embedding."""
  config: ml_collections.ConfigDict

  def setup(self):
    dtype = jnp.dtype(self.config.dtype)
    a = self.config.audio
    self.tower = _tower(self.config, 0, ("htsat", "cnn14"))
    if self.tower == "cnn14":
      self.cnn14 = Cnn14(a, dtype=dtype, remat=a.remat)
    else:
      self.htsat = HTSAT(a, dtype=dtype, remat=a.remat)
    self.projection = Projection(self.config.embed_dim, self.config.projection_dropout, dtype=dtype)

  def __call__(self, waveforms: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
    if self.tower == "cnn14":
      outputs = self.cnn14(waveforms, train=train)
      latent = outputs["embedding"]
    else:
      outputs = self.htsat(waveforms, train=train)
      latent = outputs["latent_output"]
    return self.projection(latent, train=train), outputs["clipwise_output"]


class TextEncoder(nn.Module):
  """Token ids -> GPT-2 hidden state at the pooled (end-of-text) position, or BERT's at [CLS]
  (position 0), -> projected embedding."""
  config: ml_collections.ConfigDict

  def setup(self):
    dtype = jnp.dtype(self.config.dtype)
    t = self.config.text
    self.tower = _tower(self.config, 1, ("gpt2", "bert"))
    if self.tower == "bert":
      self.bert = Bert(t, dtype=dtype, remat=t.remat)
    else:
      self.gpt2 = GPT2(t, dtype=dtype, remat=t.remat)
    self.projection = Projection(self.config.embed_dim, self.config.projection_dropout, dtype=dtype)

  def __call__(self, input_ids: jax.Array, attention_mask: jax.Array, train: bool = False) -> jax.Array:
    if self.tower == "bert":
      hidden = self.bert(input_ids, attention_mask, train=train)  # (B, L, D)
      return self.projection(hidden[:, 0], train=train)
    hidden = self.gpt2(input_ids, attention_mask, train=train)  # (B, L, D)
    index = text_lib.pooling_index(input_ids, attention_mask, self.config.text.pooling)  # (B,)
    pooled = jnp.take_along_axis(hidden, index[:, None, None], axis=1)[:, 0]  # (B, D)
    return self.projection(pooled, train=train)


class CLAP(nn.Module):
  """Both towers and `logit_scale` (a log: similarities are scaled by its exp).

  Parameter names mirror the official checkpoint (`audio_encoder.base.htsat.*` ->
  `audio_encoder/htsat/...`, `caption_encoder.base.*` -> `caption_encoder/gpt2/...`; in 2022
  `audio_encoder.base.*` -> `audio_encoder/cnn14/...`, `caption_encoder/bert/...`).
  Embeddings are returned un-normalised, as msclap returns them.
  """
  config: ml_collections.ConfigDict

  def setup(self):
    self.audio_encoder = AudioEncoder(self.config)
    self.caption_encoder = TextEncoder(self.config)
    self.logit_scale = self.param(
        "logit_scale", nn.initializers.constant(self.config.logit_scale_init), (), jnp.float32)

  def encode_audio(self, waveforms: jax.Array, train: bool = False) -> jax.Array:
    """(B, samples) float waveforms at config.audio.sample_rate -> (B, embed_dim)."""
    return self.audio_encoder(waveforms, train=train)[0]

  def encode_text(self, input_ids: jax.Array, attention_mask: jax.Array,
                  train: bool = False) -> jax.Array:
    """(B, L) token ids and mask from the config's tokenizer (`clap_jax.text.Tokenizer`, or
    `clap_jax.text_bert.BertTokenizer` for 2022) -> (B, embed_dim)."""
    return self.caption_encoder(input_ids, attention_mask, train=train)

  def __call__(self, waveforms, input_ids, attention_mask, train: bool = False):
    """-> (audio embeddings, text embeddings, logit_scale as a log)."""
    return (self.encode_audio(waveforms, train=train),
            self.encode_text(input_ids, attention_mask, train=train), self.logit_scale)

