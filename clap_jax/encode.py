"""The user's API: MS-CLAP embeddings, similarities and zero-shot labels from JAX.

    from clap_jax import encode
    clap = encode.load("2023", checkpoint="CLAP_weights_2023.pth")  # or "2022" (CNN14 + BERT)
    audio = clap.audio_embeddings(["dog.wav", "rain.ogg"])
    text = clap.text_embeddings(["a dog barks", "rain falls"])
    clap.similarity(audio, text)                 # (2, 2): exp(logit_scale) x cosine
    clap.classify(["dog.wav"], ["dog", "rain"])  # (1, 2) probabilities

Audio of any rate, channel count and length: resampled to 44.1 kHz, channels averaged (msclap
concatenates them, a known defect), short clips repeat-padded to the version's clip (7 s for 2023,
5 s for 2022). A longer clip is, by default, covered by consecutive clip-long windows whose
embeddings are averaged (deterministic); `long_audio="random"` crops one random window as msclap
does (seed it with `seed`). Texts are tokenised as msclap tokenises them for the version (GPT-2
BPE, 77 tokens; BERT WordPiece, 100). Empty text is allowed: it encodes the bare `<|endoftext|>`
token (2023) or `[CLS] [SEP]` (2022).
"""
import functools
import numbers
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from clap_jax import audio as audio_lib
from clap_jax import index as index_lib
from clap_jax import text as text_lib
from clap_jax import weights
from clap_jax.models import config as model_config
from clap_jax.models.clap import CLAP

# Batches are padded up to one of these sizes so each size compiles once.
BATCH_SIZES = (1, 8, 32)


def load(version: str = "2023", checkpoint: str | os.PathLike | None = None,
         tokenizer: str | os.PathLike | None = None, *, dtype: str = "float32",
         long_audio: str = "windows", seed: int | None = None):
  """Loads MS-CLAP weights for inference: a ClapEncoder, or for "clapcap" a caption.Captioner
  (`caption(items)`, `audio_embeddings(items)`).

  Args:
    version: the msclap model: "2023" (HTSAT + GPT-2), "2022" (CNN14 + BERT) or "clapcap" (the
      captioner).
    checkpoint: an msclap `.pth`/`.safetensors` file (converted on first use and cached under
      $CLAP_JAX_CACHE or ~/.cache/clap_jax), a directory written by
      `clap_jax.convert.save_variables`, a training workdir, or 'random'; None downloads the
      official file of `version` from the hub (clap_jax.weights). It must hold `version`'s model.
    tokenizer: a directory with the text tower's vocabulary (GPT-2's vocab.json and merges.txt,
      BERT's vocab.txt), or a hub name; by default the files shipped in clap_jax/assets.
    dtype: compute dtype ("float32", or "bfloat16" for speed); parameters stay float32.
    long_audio: "windows" (average of clip-long windows) or "random" (msclap's random crop).
    seed: seeds the random crop of `long_audio="random"`.
  """
  if version not in model_config.VERSIONS:
    raise ValueError(f"version must be one of {sorted(model_config.VERSIONS)}, got {version!r}")
  if version == "clapcap":
    # Imported here: caption imports this module.
    from clap_jax import caption  # pylint: disable=g-import-not-at-top
    return caption.load(checkpoint, tokenizer, dtype=dtype, long_audio=long_audio, seed=seed)
  audio_lib.check_long_mode(long_audio, "long_audio")
  config, variables = weights.load(checkpoint, model_config.for_version(version), version=version,
                                   seed=0 if seed is None else seed, cache=True)
  held = model_config.version_of(config)
  if held != version:
    held = f"msclap {held}" if held else f"a model with towers {model_config.towers(config)}"
    raise ValueError(f"checkpoint {checkpoint} holds {held}, not msclap {version}'s "
                     f"{model_config.TOWERS[version]}")
  config.dtype = dtype
  return ClapEncoder(config, variables, text_lib.for_model(config, tokenizer),
                     long_audio=long_audio, seed=seed)


class ClapEncoder:
  """Jitted CLAP inference over host-side lists of audio and text; `tokenizer` is the model's
  (clap_jax.text.for_model)."""

  def __init__(self, config, variables: dict, tokenizer, *,
               long_audio: str = "windows", seed: int | None = None):
    self.config = config
    self.variables = jax.tree.map(jnp.asarray, variables)
    self.tokenizer = tokenizer
    self.long_audio = long_audio
    self._rng = np.random.default_rng(seed)
    model = CLAP(config)

    def full_precision(method):
      # Float32 products in full float32 on every backend, as msclap computes them: GPUs default
      # to TF32 and TPUs to bfloat16 passes. CPUs compute float32 either way.
      def apply(variables, *inputs):
        with jax.default_matmul_precision("float32"):
          return model.apply(variables, *inputs, method=method)
      return jax.jit(apply)
    self._encode_audio = full_precision(CLAP.encode_audio)
    self._encode_text = full_precision(CLAP.encode_text)

  @property
  def logit_scale(self) -> float:
    return float(self.variables["params"]["logit_scale"])

  def audio_embeddings(self, items: Sequence, sample_rate: float | None = None,
                       skip_errors: bool = False, channels_axis: int | None = None):
    """Items -> (N, embed_dim) un-normalised embeddings.

    An item is a path, an array at `sample_rate`, or a (waveform, sample_rate) pair: the input
    contract of `clap_jax.audio`; `channels_axis` says where 2-D arrays keep their channels.
    Windows are decoded as they are encoded, so a long file is never held whole.
    With `skip_errors=True` unusable items are skipped and the result is
    `(embeddings of the usable items, [(index, reason), ...] for the skipped ones)`;
    otherwise the first unusable item raises `AudioError` naming it.
    """
    if isinstance(items, (str, os.PathLike)) or hasattr(items, "__array__") or (
        isinstance(items, tuple) and len(items) == 2 and isinstance(items[1], numbers.Real)):
      raise TypeError("audio_embeddings takes a list of items (paths, arrays or (waveform, "
                      "sample_rate) pairs), not a single item")
    a = self.config.audio
    batch = np.empty((BATCH_SIZES[-1], a.clip_samples), np.float32)
    owners, per_item, skipped = [], {}, []  # owners: the item of each batch row

    def encode_batch():
      for owner, embedding in zip(owners, self._batched(self._encode_audio, batch[:len(owners)])):
        per_item.setdefault(owner, []).append(embedding)
      owners.clear()

    for index, item in enumerate(items):
      name = None if isinstance(item, (str, os.PathLike)) else f"item {index}"
      try:
        opened = audio_lib.open_audio(item, a.sample_rate, rate=sample_rate,
                                      channels_axis=channels_axis, name=name)
        for window in opened.windows(a.clip_samples, self.long_audio, self._rng):
          audio_lib.repeat_pad(window, a.clip_samples, out=batch[len(owners)])
          owners.append(index)
          if len(owners) == len(batch):
            encode_batch()
      except audio_lib.AudioError as e:
        if not skip_errors:
          raise
        skipped.append((index, str(e)))
        # A long file can fail after some of its windows: those already encoded, and its rows
        # at the end of the batch, are dropped.
        per_item.pop(index, None)
        del owners[len(owners) - owners.count(index):]
    if owners:
      encode_batch()
    embeddings = (np.stack([np.mean(e, axis=0) for e in per_item.values()]) if per_item
                  else np.zeros((0, self.config.embed_dim), np.float32))
    return (embeddings, skipped) if skip_errors else embeddings

  def text_embeddings(self, texts: Sequence[str]) -> np.ndarray:
    """Texts -> (N, embed_dim) un-normalised embeddings (msclap's tokenisation of the version)."""
    if isinstance(texts, str):
      raise TypeError("text_embeddings takes a list of texts, not a single string")
    if not texts:
      return np.zeros((0, self.config.embed_dim), np.float32)
    tokens = self.tokenizer(texts)
    ids, mask = tokens["input_ids"], tokens["attention_mask"]
    outputs = []
    for start in range(0, len(texts), BATCH_SIZES[-1]):
      rows = slice(start, start + BATCH_SIZES[-1])
      length = text_lib.text_columns(mask[rows])  # later columns are padding
      outputs.append(self._batched(self._encode_text, ids[rows, :length], mask[rows, :length]))
    return np.concatenate(outputs)

  def _batched(self, fn, *arrays: np.ndarray) -> np.ndarray:
    """Runs `fn` over row chunks padded to BATCH_SIZES, so jit compiles once per size."""
    outputs, n, largest = [], arrays[0].shape[0], BATCH_SIZES[-1]
    for start in range(0, n, largest):
      chunk = [a[start:start + largest] for a in arrays]
      rows = chunk[0].shape[0]
      size = next(s for s in BATCH_SIZES if s >= rows)
      padded = [np.concatenate([c, np.repeat(c[-1:], size - rows, axis=0)]) for c in chunk]
      outputs.append(np.asarray(fn(self.variables, *padded))[:rows])
    return np.concatenate(outputs).astype(np.float32)

  @functools.cached_property
  def fingerprint(self) -> str:
    """Names this model's weights in the index folders it writes (clap_jax.index.fingerprint)."""
    return index_lib.fingerprint(self.variables)

  def search(self, texts: Sequence[str], index: "str | os.PathLike | index_lib.Index", k: int = 10,
             *, device: bool = False) -> list[list[tuple[str, float]]]:
    """Per text, the `k` clips of `index` (an index folder written by launch/embed.py, or a loaded
    `clap_jax.index.Index`) closest by cosine similarity, best first: [(clip id, cosine), ...].
    `device`: scored on the accelerator, in chunks (clap_jax.index.top_k) for large indexes. The
    index must have been made with this model's weights."""
    if not isinstance(index, index_lib.Index):
      index = index_lib.load(index)
    if index.info.get("model") != self.fingerprint:
      raise ValueError("the index was embedded by another model (its weights' fingerprint differs); "
                       "search it with the encoder that wrote it")
    scores, rows = index_lib.top_k(self.text_embeddings(texts), index.embeddings, k, device=device)
    return [[(index.ids[r], float(s)) for r, s in zip(row, score)]
            for row, score in zip(rows, scores)]

  def similarity(self, audio_embeddings: np.ndarray, text_embeddings: np.ndarray) -> np.ndarray:
    """exp(logit_scale) x cosine similarity, one row per audio."""
    audio = np.asarray(audio_embeddings, np.float64)
    text = np.asarray(text_embeddings, np.float64)
    audio = audio / np.linalg.norm(audio, axis=-1, keepdims=True)
    text = text / np.linalg.norm(text, axis=-1, keepdims=True)
    return (np.exp(self.logit_scale) * audio @ text.T).astype(np.float32)

  def classify(self, audio: Sequence, labels: Sequence[str], template: str = text_lib.DEFAULT_TEMPLATE,
               sample_rate: int | None = None) -> np.ndarray:
    """Zero-shot: (num_audio, num_labels) softmax probabilities over `template.format(label)`."""
    if "{}" not in template:
      raise ValueError(f"template must contain '{{}}' for the label, got {template!r}")
    logits = self.similarity(self.audio_embeddings(audio, sample_rate),
                             self.text_embeddings([template.format(l) for l in labels]))
    logits = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True)
