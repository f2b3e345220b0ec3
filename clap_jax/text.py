"""Text preprocessing as msclap 1.3.4 does it (GPT-2 here, BERT in text_bert.py; `for_model` picks
the model's), and the index at which the text tower is pooled."""
import os
import pathlib
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
import transformers

EOT = "<|endoftext|>"
# The original GPT-2 BPE files (MIT, see the LICENSE beside them), shipped so that nothing needs the hub.
GPT2_FILES = pathlib.Path(__file__).resolve().parent / "assets" / "gpt2"
# The paper's prompt: zero-shot classes, label-made captions, `encode.classify`. '{}': the label.
DEFAULT_TEMPLATE = "this is a sound of {}"
# Token columns a training batch is cut to (the shortest that holds its captions, or all 77).
TRAINING_BUCKETS = (16, 32)


def check_texts(texts: Sequence[str]) -> None:
  """A tokenizer's input is a sequence of str: a bare str (a sequence of characters) is refused."""
  if isinstance(texts, str):
    raise TypeError("texts must be a sequence of str, not a single str")
  for i, text in enumerate(texts):
    if not isinstance(text, str):
      raise TypeError(f"texts[{i}] is {type(text).__name__}, not str")


class Tokenizer:
  """GPT-2 byte-level BPE with msclap's conventions: `'!'` (id 0) is the pad token, every text gets
  `' <|endoftext|>'` appended and is padded on the right to `context_length` tokens.

  Differences from msclap's `preprocess_text`, which only matter where it fails:
    - A text longer than `context_length` tokens is truncated to its first `context_length - 1`
      tokens followed by `<|endoftext|>` (msclap returns an over-long row and the batch cannot be
      stacked).
    - The empty text is allowed: it yields `' '` (id 220) and `<|endoftext|>`, then padding.
  """

  def __init__(self, hf_tokenizer, context_length: int = 77):
    self._hf = hf_tokenizer
    self.context_length = context_length
    self.eot_id = hf_tokenizer.convert_tokens_to_ids(EOT)
    self.pad_id = hf_tokenizer.pad_token_id

  @classmethod
  def load(cls, dir_or_name: str | os.PathLike = GPT2_FILES, context_length: int = 77
           ) -> "Tokenizer":
    """From a directory holding vocab.json and merges.txt (default: the shipped GPT-2 files), or
    a hub name such as 'gpt2'."""
    hf = _from_pretrained(str(dir_or_name))
    # As CLAPWrapper.load_clap: '!' becomes a special token, so a '!' in a text is always its own
    # token (id 0) instead of being merged by BPE ('!!' would otherwise be one token).
    hf.add_special_tokens({"pad_token": "!"})
    if hf.pad_token_id != 0:
      raise ValueError(f"{dir_or_name}: '!' has id {hf.pad_token_id}, msclap's pooling needs 0")
    return cls(hf, context_length)

  def encode(self, text: str) -> list[int]:
    """Token ids of `text` as it is (nothing appended)."""
    return self._hf.encode(text)

  def decode(self, ids: Sequence[int]) -> str:
    """Text of token ids, spaces as the tokens have them (no clean-up before punctuation)."""
    return self._hf.decode(list(ids), clean_up_tokenization_spaces=False)

  def __call__(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
    """texts -> {'input_ids', 'attention_mask'}, each (B, context_length) int32."""
    check_texts(texts)
    with_eot = [text + " " + EOT for text in texts]
    encoded = self._hf(with_eot, add_special_tokens=True)["input_ids"] if texts else []  # HF fails on []
    length = self.context_length
    input_ids = np.full((len(texts), length), self.pad_id, np.int32)
    attention_mask = np.zeros((len(texts), length), np.int32)
    for row, ids in enumerate(encoded):
      if len(ids) > length:
        ids = ids[:length - 1] + [self.eot_id]
      input_ids[row, :len(ids)] = ids
      attention_mask[row, :len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def for_model(model_config, files: str | os.PathLike | None = None):
  """The tokenizer of `model_config`'s text tower, padding to its context length: GPT-2 BPE
  (`Tokenizer`) or, for BERT, WordPiece (`text_bert.BertTokenizer`, 2022). `files`: a folder
  with that tower's vocabulary or a hub name; None or '': the vocabulary shipped for it."""
  from clap_jax import text_bert  # pylint: disable=g-import-not-at-top
  from clap_jax.models import config as model_configs  # pylint: disable=g-import-not-at-top
  if model_configs.version_of(model_config) == "clapcap":  # decodes with GPT-2's vocabulary
    return Tokenizer.load(files or GPT2_FILES)
  length = model_config.text.context_length
  if model_configs.towers(model_config)[1] == "bert":
    return text_bert.BertTokenizer.load(files or text_bert.BERT_FILES, length)
  return Tokenizer.load(files or GPT2_FILES, length)


def from_files(dir_or_name: str | os.PathLike):
  """GPT-2's tokenizer, or BERT's (text_bert) for a folder holding a WordPiece vocab.txt: for
  launch/make_shards.py's --tokenizer, where no model config says which."""
  from clap_jax import text_bert  # pylint: disable=g-import-not-at-top
  if (pathlib.Path(dir_or_name) / "vocab.txt").is_file():
    return text_bert.BertTokenizer.load(dir_or_name)
  return Tokenizer.load(dir_or_name)


def _from_pretrained(dir_or_name: str):
  """transformers' loader, with an error that says what is missing instead of a later, misleading
  one (offline, a hub name yields a tokenizer without GPT-2's vocabulary)."""
  path = pathlib.Path(dir_or_name)
  if path.is_dir() or os.sep in dir_or_name or dir_or_name.startswith("."):
    missing = [f for f in ("vocab.json", "merges.txt") if not (path / f).is_file()]
    if missing:
      raise FileNotFoundError(f"tokenizer folder {path}: no {', '.join(missing)} (the GPT-2 files "
                              f"ship in {GPT2_FILES})")
    return transformers.GPT2TokenizerFast.from_pretrained(str(path))
  try:
    return transformers.GPT2TokenizerFast.from_pretrained(dir_or_name)
  except OSError as e:
    raise OSError(f"tokenizer {dir_or_name!r} is not a folder here and could not be fetched from "
                  f"the hub (offline?); the GPT-2 files ship in {GPT2_FILES}") from e


def pooling_index(input_ids: jnp.ndarray, attention_mask: jnp.ndarray, mode: str) -> jnp.ndarray:
  """(B, L) tokens -> (B,) int32 position of the token whose hidden state represents the text.

  'msclap': count(input_ids != 0) - 1, as the reference computes it. Meant to find `<|endoftext|>`,
    but a literal '!' in the text is also id 0 and moves the index back by one per '!'.
  'last_token': sum(attention_mask) - 1, the real `<|endoftext|>` (for new training).
  """
  if mode == "msclap":
    return jnp.sum(input_ids != 0, axis=-1, dtype=jnp.int32) - 1
  if mode == "last_token":
    return jnp.sum(attention_mask, axis=-1, dtype=jnp.int32) - 1
  raise ValueError(f"unknown pooling mode {mode!r}: 'msclap' or 'last_token'")


def text_columns(attention_mask: np.ndarray, buckets: Sequence[int] = TRAINING_BUCKETS) -> int:
  """The fewest token columns, one of `buckets` or all of them, that hold every row's tokens.

  GPT-2 is causal and both pooling modes read positions inside the text, so token columns after
  the longest text cannot change an embedding; dropping them is exact. The bound is the text's
  end, not the pooled index: with msclap pooling a '!' puts that index before `<|endoftext|>`, and
  cutting at it would drop a non-pad token and move the index. Few buckets: one compilation each.
  """
  longest = int(np.max(np.sum(attention_mask, axis=-1), initial=0))
  return min([n for n in buckets if n >= longest] + [attention_mask.shape[-1]])


def fine_buckets(context_length: int, step: int = 4) -> range:
  """Column counts every `step` tokens (from 2 x step): for text-only passes, where a
  compilation per bucket is cheap beside the columns saved."""
  return range(2 * step, context_length, step)
