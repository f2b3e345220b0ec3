"""Audio captions from clapcap, MS-CLAP's captioner, as msclap's CLAPWrapper.generate_caption makes them.

    captioner = encode.load("clapcap", checkpoint="clapcap_weights_2023.pth")  # -> caption.load
    captioner.caption(["dog.wav", "rain.ogg"])  # one string per input

Audio is handled as by `encode.ClapEncoder.audio_embeddings` (any rate and channel count, short
clips repeat-padded, long ones averaged over 7 s windows or randomly cropped, `skip_errors`).
The embedding is normalised and mapped to GPT-2's prefix, and the caption decoded by beam search
(clap_jax.decoding) with msclap's rules: it stops on the first token of ' <|endoftext|>' (the
space, id 220, which the caption keeps), and the text is `str.capitalize`d (so lower-cased after
its first letter).
"""
import functools
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from clap_jax import audio as audio_lib
from clap_jax import decoding, encode, weights
from clap_jax import text as text_lib
from clap_jax.convert import clapcap as convert_clapcap
from clap_jax.models import config as model_config
from clap_jax.models import gpt2
from clap_jax.models.clapcap import ClapCap

STOP_TEXT = " <|endoftext|>"  # msclap's stop_token; it stops on its first token


def load(checkpoint: str | os.PathLike | None = None, tokenizer: str | os.PathLike | None = None,
         *, dtype: str = "float32", long_audio: str = "windows", seed: int | None = None
         ) -> "Captioner":
  """clapcap for inference; the arguments are those of `encode.load` (which calls this for
  version "clapcap"): `checkpoint` a clapcap .pth (converted on first use and cached), a converted
  folder, 'random', or None for the hub's clapcap_weights_2023.pth."""
  audio_lib.check_long_mode(long_audio, "long_audio")
  config, variables = weights.load(checkpoint, model_config.clapcap(), version="clapcap",
                                   seed=0 if seed is None else seed, cache=True)
  if not convert_clapcap.is_clapcap(config):
    raise ValueError(f"{checkpoint}: holds a CLAP model, not clapcap (load it with version '2023')")
  config.dtype = dtype
  return Captioner(config, variables, text_lib.for_model(config, tokenizer),
                   long_audio=long_audio, seed=seed)


def generate(model: ClapCap, variables: dict, audio_embeddings: jax.Array, temperature=1.0, *,
             beam_size: int, max_length: int, stop_token: int, prompt_ids=()) -> decoding.Beams:
  """(B, embed_dim) audio embeddings -> beams of caption tokens, best first; `prompt_ids`: tokens
  fed after the prefix before decoding (a task prompt, as the model was trained with)."""
  prefix = model.apply(variables, audio_embeddings, method=ClapCap.prefix)  # (B, P, n_embd)
  batch = prefix.shape[0]
  prompt = jnp.broadcast_to(jnp.asarray(prompt_ids, jnp.int32), (batch, len(prompt_ids)))
  length = prefix.shape[1] + len(prompt_ids)
  # The last generated token is never fed back: the cache needs P + prompt + max_length - 1 positions.
  cache = {"gpt": gpt2.init_cache(model.config.decoder, batch, length + max_length - 1,
                                  jnp.dtype(model.config.dtype))}

  def decode(cache, input_ids, index, prefix_embeds=None):
    logits, updated = model.apply({**variables, "cache": cache}, input_ids, index, prefix_embeds,
                                  method=ClapCap.decode, mutable=["cache"])
    return logits, updated["cache"]

  logits, cache = decode(cache, prompt if len(prompt_ids) else None, 0, prefix)
  step = lambda cache, tokens, index: decode(cache, tokens[:, None], length + index)
  return decoding.beam_search(step, cache, logits, beam_size=beam_size, max_length=max_length,
                              stop_token=stop_token, temperature=temperature)


class Captioner:
  """Jitted clapcap inference over host-side lists of audio files or arrays."""

  def __init__(self, config, variables: dict, tokenizer, *, long_audio: str = "windows",
               seed: int | None = None):
    """config: models.config.clapcap(); variables: convert.clapcap's; tokenizer: text.Tokenizer."""
    self.config = config
    self.variables = jax.tree.map(jnp.asarray, variables)
    self.tokenizer = tokenizer
    self.long_audio = long_audio
    self._rng = np.random.default_rng(seed)
    self.stop_token = tokenizer.encode(STOP_TEXT)[0]
    model = ClapCap(config)

    # Float32 products in full float32 on every backend, as msclap (see encode.ClapEncoder).
    def embed(variables, waveforms):
      with jax.default_matmul_precision("float32"):
        return model.apply(variables, waveforms, method=ClapCap.audio_embeddings)

    def best_tokens(variables, embeddings, temperature, **options):
      """-> (B, max_length) the best beam's tokens, -1 after its length."""
      with jax.default_matmul_precision("float32"):
        beams = generate(model, variables, embeddings, temperature, **options)
      tokens, lengths = beams.tokens[:, 0], beams.lengths[:, 0]
      return jnp.where(jnp.arange(tokens.shape[1]) < lengths[:, None], tokens, -1)

    self._encode_audio = jax.jit(embed)
    self._best_tokens = jax.jit(best_tokens, static_argnames=("beam_size", "max_length", "stop_token"))

  # ClapEncoder's audio handling (audio.open_audio's contract), run on this object: it has the
  # attributes that code reads (config, long_audio, _rng, _encode_audio).
  _batched = encode.ClapEncoder._batched  # pylint: disable=protected-access
  audio_embeddings = encode.ClapEncoder.audio_embeddings

  def caption(self, audio: Sequence, sample_rate: int | None = None, beam_size: int = 5,
              max_length: int = 67, temperature: float = 1.0, skip_errors: bool = False,
              channels_axis: int | None = None):
    """Files or arrays -> one caption per input (msclap's generate_caption; `max_length` is
    its `entry_length`). Audio, `skip_errors` and `channels_axis` as `audio_embeddings`: with
    `skip_errors=True` the result is (captions of the usable items, [(index, reason), ...])."""
    if isinstance(audio, (str, os.PathLike, np.ndarray)):
      raise TypeError("caption takes a list of paths or arrays, not a single item")
    if beam_size < 1 or max_length < 1:
      raise ValueError(f"beam_size and max_length must be >= 1, got {beam_size}, {max_length}")
    result = self.audio_embeddings(audio, sample_rate, skip_errors, channels_axis)
    embeddings, skipped = result if skip_errors else (result, None)
    captions = self.captions_of(embeddings, beam_size, max_length, temperature)
    return (captions, skipped) if skip_errors else captions

  def captions_of(self, embeddings: np.ndarray, beam_size: int = 5, max_length: int = 67,
                  temperature: float = 1.0) -> list[str]:
    """(N, embed_dim) audio embeddings (as `audio_embeddings` makes them) -> N captions."""
    if not len(embeddings):
      return []
    fn = functools.partial(self._best_tokens, temperature=np.float32(temperature),
                           beam_size=beam_size, max_length=max_length, stop_token=self.stop_token)
    # _batched returns float32, exact for token ids (< 2 ** 24).
    return [self.tokenizer.decode(row[row >= 0].astype(np.int64)).capitalize()
            for row in self._batched(fn, np.asarray(embeddings, np.float32))]
