"""Text preprocessing of msclap 1.3.4's 2022 model: BERT's WordPiece, as CLAPWrapper.preprocess_text
calls it (`[CLS] text [SEP]`, padded to 100 tokens)."""
import os
import pathlib
from collections.abc import Sequence

import numpy as np
import transformers

from clap_jax import text

# bert-base-uncased's vocabulary (Apache-2.0, see the LICENSE beside it), so that nothing needs the hub.
BERT_FILES = pathlib.Path(__file__).resolve().parent / "assets" / "bert-base-uncased"


class BertTokenizer:
  """bert-base-uncased WordPiece (lower-cased, accents stripped, CJK characters split) with
  msclap's conventions: special tokens added, padded on the right with [PAD] (id 0) to
  `context_length` tokens. Same interface as `clap_jax.text.Tokenizer`.

  Token types are all 0 for one text (msclap passes them; the model takes zeros by default), so
  they are not returned. Differences from msclap, which only matter where it fails:
    - A text longer than `context_length` tokens is truncated to `[CLS]`, its first
      `context_length - 2` tokens and `[SEP]`, as the tokenizer's `truncation=True` does. msclap
      pads with max_length but does not truncate, so it returns an over-long row that cannot be
      stacked with others.
  The empty text is `[CLS] [SEP]`, as in msclap.
  """

  def __init__(self, hf_tokenizer, context_length: int = 100):
    self._hf = hf_tokenizer
    self.context_length = context_length
    self.pad_id = hf_tokenizer.pad_token_id

  @classmethod
  def load(cls, dir_or_name: str | os.PathLike = BERT_FILES,
           context_length: int = 100) -> "BertTokenizer":
    """From a directory holding vocab.txt, or a hub name such as 'bert-base-uncased'."""
    hf = transformers.BertTokenizerFast.from_pretrained(str(dir_or_name))
    if not hf.do_lower_case or hf.pad_token_id != 0:
      raise ValueError(f"{dir_or_name}: not an uncased vocabulary with [PAD] = 0")
    return cls(hf, context_length)

  def __call__(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
    """texts -> {'input_ids', 'attention_mask'}, each (B, context_length) int32."""
    text.check_texts(texts)
    shape = (len(texts), self.context_length)
    if not texts:  # HF fails on []
      return {"input_ids": np.zeros(shape, np.int32), "attention_mask": np.zeros(shape, np.int32)}
    encoded = self._hf(list(texts), add_special_tokens=True, max_length=self.context_length,
                       padding="max_length", truncation=True)
    return {k: np.asarray(encoded[k], np.int32) for k in ("input_ids", "attention_mask")}
