"""The CLAP model: HTSAT audio tower, GPT-2 text tower, projections and a learned temperature."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from clap_jax import text as text_lib
from clap_jax.models.gpt2 import GPT2
from clap_jax.models.htsat import HTSAT
from clap_jax.models.projection import Projection


class AudioEncoder(nn.Module):
  """Waveforms -> HTSAT latent (and AudioSet clipwise outputs) -> projected embedding."""
  config: ml_collections.ConfigDict

  def setup(self):
    dtype = jnp.dtype(self.config.dtype)
    self.htsat = HTSAT(self.config.audio, dtype=dtype, remat=self.config.audio.remat)
    self.projection = Projection(self.config.embed_dim, self.config.projection_dropout, dtype=dtype)

  def __call__(self, waveforms: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
    outputs = self.htsat(waveforms, train=train)
    return self.projection(outputs["latent_output"], train=train), outputs["clipwise_output"]


class TextEncoder(nn.Module):
  """Token ids -> GPT-2 hidden state at the pooled (end-of-text) position -> projected embedding."""
  config: ml_collections.ConfigDict

  def setup(self):
    dtype = jnp.dtype(self.config.dtype)
    self.gpt2 = GPT2(self.config.text, dtype=dtype, remat=self.config.text.remat)
    self.projection = Projection(self.config.embed_dim, self.config.projection_dropout, dtype=dtype)

  def __call__(self, input_ids: jax.Array, attention_mask: jax.Array, train: bool = False) -> jax.Array:
    hidden = self.gpt2(input_ids, attention_mask, train=train)  # (B, L, D)
    index = text_lib.pooling_index(input_ids, attention_mask, self.config.text.pooling)  # (B,)
    pooled = jnp.take_along_axis(hidden, index[:, None, None], axis=1)[:, 0]  # (B, D)
    return self.projection(pooled, train=train)


class CLAP(nn.Module):
  """Both towers and `logit_scale` (a log: similarities are scaled by its exp).

  Parameter names mirror the official checkpoint (`audio_encoder.base.htsat.*` ->
  `audio_encoder/htsat/...`, `caption_encoder.base.*` -> `caption_encoder/gpt2/...`).
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
    """(B, L) token ids and mask from `clap_jax.text.Tokenizer` -> (B, embed_dim)."""
    return self.caption_encoder(input_ids, attention_mask, train=train)

  def __call__(self, waveforms, input_ids, attention_mask, train: bool = False):
    """-> (audio embeddings, text embeddings, logit_scale as a log)."""
    return (self.encode_audio(waveforms, train=train),
            self.encode_text(input_ids, attention_mask, train=train), self.logit_scale)


def similarity(audio_embeddings: jax.Array, text_embeddings: jax.Array,
               logit_scale: jax.Array) -> jax.Array:
  """exp(logit_scale) x cosine similarity, (num_audio, num_text), as msclap's compute_similarity."""
  audio = audio_embeddings / jnp.linalg.norm(audio_embeddings, axis=-1, keepdims=True)
  text = text_embeddings / jnp.linalg.norm(text_embeddings, axis=-1, keepdims=True)
  return jnp.exp(logit_scale) * audio @ text.T
