"""Tokenizer and pooling index against msclap's preprocessing, done by transformers directly."""
import csv

import numpy as np
import pytest
import transformers

from clap_jax.text import Tokenizer, pooling_index

EOT_ID = 50256
SPECIAL_TEXTS = [
    "Wow!", "!", "!!!", "a dog barks!! then stops !", "Hello world",
    "café, crème brûlée, naïve façade", "Ünïcödé ÀÉÎÕÜ ß", "日本語の音声", "鸟儿在唱歌", "🎵🐶 🌧️ rain",
    "", " ", "  two  spaces ", "tab\tand\nnewline", "a <|endoftext|> inside",
]


@pytest.fixture(scope="module")
def tokenizer(gpt2_tokenizer_dir):
  return Tokenizer.load(gpt2_tokenizer_dir)


@pytest.fixture(scope="module")
def msclap_tokenizer(gpt2_tokenizer_dir):
  """As CLAPWrapper.load_clap builds it (AutoTokenizer on the hub files resolves to this class)."""
  hf = transformers.GPT2TokenizerFast.from_pretrained(str(gpt2_tokenizer_dir))
  hf.add_special_tokens({"pad_token": "!"})
  return hf


def msclap_preprocess(hf, texts):
  """CLAPWrapper.preprocess_text, one text at a time (its encode_plus is __call__ in transformers 5)."""
  rows = [hf(text + " <|endoftext|>", add_special_tokens=True, max_length=77, padding="max_length")
          for text in texts]
  return (np.array([r["input_ids"] for r in rows]), np.array([r["attention_mask"] for r in rows]))


def clotho_captions(shared_data):
  captions = []
  for path in sorted((shared_data / "audio" / "clotho").glob("clotho_captions_*.csv")):
    with open(path, newline="", encoding="utf-8") as f:
      for row in csv.DictReader(f):
        captions += [row[f"caption_{i}"] for i in range(1, 6)]
  return captions


def assert_matches_msclap(tokenizer, msclap_tokenizer, texts):
  out = tokenizer(texts)
  ids, mask = msclap_preprocess(msclap_tokenizer, texts)
  assert out["input_ids"].dtype == np.int32 and out["attention_mask"].dtype == np.int32
  assert out["input_ids"].shape == (len(texts), 77)
  np.testing.assert_array_equal(out["input_ids"], ids)
  np.testing.assert_array_equal(out["attention_mask"], mask)


def test_special_texts_match_msclap(tokenizer, msclap_tokenizer):
  assert_matches_msclap(tokenizer, msclap_tokenizer, SPECIAL_TEXTS)


def test_all_clotho_captions_match_msclap(tokenizer, msclap_tokenizer, shared_data):
  captions = clotho_captions(shared_data)
  assert len(captions) == 19690
  assert_matches_msclap(tokenizer, msclap_tokenizer, captions)


def test_exclamation_marks_are_pad_ids(tokenizer):
  # '!' is a special token after add_special_tokens: never merged into '!!' by BPE.
  ids = tokenizer(["Hello!! world"])["input_ids"][0]
  np.testing.assert_array_equal(ids[:6], [15496, 0, 0, 995, 220, EOT_ID])


def test_empty_text(tokenizer):
  out = tokenizer([""])
  np.testing.assert_array_equal(out["input_ids"][0, :3], [220, EOT_ID, 0])
  assert out["attention_mask"][0].sum() == 2


def test_over_long_text_truncates_with_eot_last(tokenizer, msclap_tokenizer):
  text = "a dog barks and a cat meows " * 20
  out = tokenizer([text, "short"])
  full = msclap_preprocess(msclap_tokenizer, [text])[0]
  assert full.shape[1] > 77  # the reference cannot stack this row with others
  np.testing.assert_array_equal(out["input_ids"][0, :76], full[0, :76])
  assert out["input_ids"][0, 76] == EOT_ID
  assert out["attention_mask"][0].sum() == 77
  np.testing.assert_array_equal(out["input_ids"][1], tokenizer(["short"])["input_ids"][0])


def test_exactly_77_tokens_is_not_truncated(tokenizer, msclap_tokenizer):
  text = " ".join(["dog"] * 75)  # 75 words + ' ' + eot
  assert_matches_msclap(tokenizer, msclap_tokenizer, [text])
  assert tokenizer([text])["attention_mask"].sum() == 77


def test_rejects_non_str(tokenizer):
  with pytest.raises(TypeError, match=r"texts\[1\] is int"):
    tokenizer(["fine", 3])
  with pytest.raises(TypeError, match="single str"):
    tokenizer("a caption")


def test_empty_batch(tokenizer):
  assert tokenizer([])["input_ids"].shape == (0, 77)


def test_pooling_index_hand_checked():
  input_ids = np.array([
      [15496, 995, 220, EOT_ID, 0, 0, 0],  # "Hello world": eot at 3
      [15496, 0, 0, 995, 220, EOT_ID, 0],  # "Hello!! world": eot at 5, msclap pools at 3
      [0, 220, EOT_ID, 0, 0, 0, 0],  # "!": eot at 2, msclap pools at 1
      [220, EOT_ID, 0, 0, 0, 0, 0],  # "": eot at 1
  ])
  attention_mask = np.array([[1] * 4 + [0] * 3, [1] * 6 + [0], [1] * 3 + [0] * 4, [1] * 2 + [0] * 5])
  np.testing.assert_array_equal(pooling_index(input_ids, attention_mask, "msclap"), [3, 3, 1, 1])
  np.testing.assert_array_equal(pooling_index(input_ids, attention_mask, "last_token"), [3, 5, 2, 1])
  with pytest.raises(ValueError, match="unknown pooling mode"):
    pooling_index(input_ids, attention_mask, "first")


def test_last_token_pools_at_eot(tokenizer):
  out = tokenizer(SPECIAL_TEXTS)
  index = np.asarray(pooling_index(out["input_ids"], out["attention_mask"], "last_token"))
  assert (out["input_ids"][np.arange(len(SPECIAL_TEXTS)), index] == EOT_ID).all()
