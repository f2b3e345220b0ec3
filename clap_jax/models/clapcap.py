"""clapcap: MS-CLAP's audio captioner (msclap.models.mapper.ClapCaptionModel).

The CLAP 2023 audio encoder's projected embedding, L2-normalised, is mapped to a prefix of GPT-2
input embeddings that GPT-2 (tied language-model head) continues into a caption. Names mirror the
checkpoint: `clap.base.htsat.*` -> `clap/htsat/...`, `clap.projection.*` -> `clap/projection/...`,
`clap_project.*` -> `clap_project/...`, `gpt.transformer.*` -> `gpt/...`.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from clap_jax.models.clap import AudioEncoder
from clap_jax.models.gpt2 import GPT2
from clap_jax.models.mapper import TransformerMapper


class ClapCap(nn.Module):
  config: ml_collections.ConfigDict  # models.config.clapcap()

  def setup(self):
    dtype = jnp.dtype(self.config.dtype)
    self.clap = AudioEncoder(self.config)
    self.clap_project = TransformerMapper(self.config.mapper, self.config.decoder.n_embd, dtype=dtype)
    self.gpt = GPT2(self.config.decoder, dtype=dtype)

  def audio_embeddings(self, waveforms: jax.Array, train: bool = False) -> jax.Array:
    """(B, samples) at config.audio.sample_rate -> (B, embed_dim), un-normalised as CLAP's."""
    return self.clap(waveforms, train=train)[0]

  def prefix(self, audio_embeddings: jax.Array) -> jax.Array:
    """(B, embed_dim) -> (B, prefix_length, n_embd) GPT-2 input embeddings."""
    if self.config.mapper.normalize_prefix:
      audio_embeddings = audio_embeddings / jnp.linalg.norm(audio_embeddings, axis=-1, keepdims=True)
    return self.clap_project(audio_embeddings)

  def __call__(self, waveforms, input_ids, attention_mask=None, train: bool = False):
    """ClapCaptionModel.forward: (B, prefix_length + L, vocab) logits over the prefix and tokens."""
    prefix = self.prefix(self.audio_embeddings(waveforms, train=train))
    hidden = self.gpt(input_ids, attention_mask, train=train, prefix_embeds=prefix)
    return self.gpt.logits(hidden)

  def token_logits(self, waveforms, input_ids, attention_mask=None, train: bool = False,
                   train_audio: bool | None = None) -> jax.Array:
    """Teacher forcing: (B, L) tokens after the audio prefix -> (B, L, vocab), row j the logits of
    token j given the prefix and tokens < j (the prefix's own outputs, never targets, are not
    projected onto the vocabulary). `train_audio`: the audio encoder's mode (default `train`; a
    frozen encoder runs in inference mode). attention_mask: (B, L), the prefix always attended."""
    audio = self.audio_embeddings(waveforms, train=train if train_audio is None else train_audio)
    return self.continuation_logits(self.prefix(audio), input_ids, attention_mask, train=train)

  def continuation_logits(self, prefix, input_ids, attention_mask=None, train: bool = False):
    """token_logits from the prefix (B, P, n_embd) on: (B, L) tokens -> (B, L, vocab)."""
    if attention_mask is not None:
      attention_mask = jnp.concatenate(
          [jnp.ones(prefix.shape[:2], attention_mask.dtype), attention_mask], axis=1)
    hidden = self.gpt(input_ids, attention_mask, train=train, prefix_embeds=prefix)
    return self.gpt.logits(hidden[:, prefix.shape[1] - 1:-1])

  def decode(self, input_ids, cache_index, prefix_embeds=None) -> jax.Array:
    """One decoding call on the 'cache' collection (gpt2.init_cache; apply with mutable=['cache']):
    the inputs (prefix and/or tokens, (B, L)) go in at cache_index.. -> (B, vocab) logits of the
    token after the last input."""
    hidden = self.gpt(input_ids, prefix_embeds=prefix_embeds, cache_index=cache_index)
    return self.gpt.logits(hidden[:, -1])
