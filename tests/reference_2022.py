"""msclap 1.3.4's CLAP 2022 (Cnn14 + BERT) with random weights, and its text preprocessing: the
reference for the 2022 parity tests.

`AutoModel.from_pretrained('bert-base-uncased')` is replaced by a BertModel built locally from a
BertConfig of the configured size (no download). Batch-norm statistics are measured on noise with
the perturbed weights, so that activations stay of order one through all twelve convolutions and
every scale, bias and statistic shows in the output (perturbed statistics alone let activations
grow ~1e6-fold, drowning the biases of the deep blocks), and the AudioSet head is scaled so that
its sigmoid is not saturated.
"""
import sys

import numpy as np
import pytest

from reference import msclap_models, perturb

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

_CNN14_CHANNELS = (64, 128, 256, 512, 1024, 2048)  # as msclap's Cnn14 hard-codes them


def bert_config(config):
  t = config.text
  return transformers.BertConfig(
      vocab_size=t.vocab_size, hidden_size=t.hidden_size, num_hidden_layers=t.num_layers,
      num_attention_heads=t.num_heads, intermediate_size=t.intermediate_size,
      max_position_embeddings=t.max_position_embeddings, type_vocab_size=t.type_vocab_size,
      layer_norm_eps=t.layer_norm_eps, hidden_dropout_prob=t.dropout,
      attention_probs_dropout_prob=t.dropout, hidden_act="gelu")


def build_reference_2022(config, seed: int = 0):
  """The official CLAP module for a clap_2022-style config, in eval mode, random weights."""
  clap_module, _ = msclap_models()
  audio_module = sys.modules["msclap.models.audio"]
  torch.manual_seed(seed)
  a, t = config.audio, config.text
  original = clap_module.AutoModel.from_pretrained
  clap_module.AutoModel.from_pretrained = lambda name: transformers.BertModel(bert_config(config))
  try:
    model = clap_module.CLAP(
        audioenc_name="Cnn14", sample_rate=a.sample_rate, window_size=a.n_fft,
        hop_size=a.hop_length, mel_bins=a.mel_bins, fmin=a.fmin, fmax=a.fmax,
        classes_num=a.num_classes, out_emb=a.out_emb, text_model="bert-base-uncased",
        transformer_embed_dim=t.hidden_size, d_proj=config.embed_dim)
  finally:
    clap_module.AutoModel.from_pretrained = original
  cnn14 = model.audio_encoder.base
  if tuple(a.channels) != _CNN14_CHANNELS:  # a tiny config: rebuild the blocks it sizes
    for i, (c_in, c_out) in enumerate(zip((1,) + tuple(a.channels[:-1]), a.channels), start=1):
      setattr(cnn14, f"conv_block{i}", audio_module.ConvBlock(c_in, c_out))
    cnn14.fc1 = torch.nn.Linear(a.channels[-1], a.out_emb)
  perturb(model, seed + 1)
  waveforms = _calibration_audio(a.sample_rate, seed + 2)
  _measure_batch_norm(cnn14, waveforms)
  with torch.no_grad():  # AudioSet logits of order one: a saturated sigmoid would hide errors
    logits = cnn14.fc_audioset(cnn14(waveforms)["embedding"])
    cnn14.fc_audioset.weight /= logits.std()
    cnn14.fc_audioset.bias /= logits.std()
  return model.eval()


def _calibration_audio(sample_rate: int, seed: int):
  """(4, 1 s) of noise as varied as recordings: white and brown, loud and quiet, in bursts
  (stationary white noise alone gives each mel bin a variance a hundredth of real audio's)."""
  generator = torch.Generator().manual_seed(seed)
  white = torch.randn((4, sample_rate), generator=generator)
  brown = torch.cumsum(white[1], 0)
  brown = brown - torch.linspace(0, 1, sample_rate) * brown[-1]  # no drift, so no DC step
  bursts = torch.exp(-torch.arange(sample_rate) % (sample_rate // 5) / (sample_rate / 50))
  return torch.stack([0.3 * white[0], 0.1 * brown / brown.abs().max(), 1e-3 * white[2],
                      0.5 * bursts * white[3]])


def _measure_batch_norm(module, waveforms):
  """Running statistics := those of `waveforms` (one cumulative batch), dropout off."""
  norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
  module.eval()
  for m in norms:
    m.reset_running_stats()
    m.momentum = None
    m.train()
  with torch.no_grad():
    module(waveforms)
  for m in norms:
    m.momentum = 0.1
  module.eval()


def slow_tokenizer(vocab_dir):
  """transformers' pure-Python BERT tokenizer (BasicTokenizer + WordpieceTokenizer), another
  implementation than the `tokenizers` one clap_jax wraps."""
  bert = transformers.models.bert
  legacy = getattr(bert.tokenization_bert_legacy, "BertTokenizerLegacy", None) if hasattr(
      bert, "tokenization_bert_legacy") else None
  cls = legacy or transformers.BertTokenizer  # transformers 4: BertTokenizer is the Python one
  return cls(str(vocab_dir / "vocab.txt"), do_lower_case=True)


def msclap_tokens(tokenizer, texts, text_len: int = 100):
  """CLAPWrapper.preprocess_text for a BERT model: one dict of int64 arrays per text, keys
  input_ids, token_type_ids, attention_mask. encode_plus is transformers 4's name for the call;
  bert-base-uncased's tokenizer returns token types unasked (the legacy class here does not)."""
  keys = ("input_ids", "token_type_ids", "attention_mask")
  rows = []
  for text in texts:
    tok = tokenizer(text=text, add_special_tokens=True, max_length=text_len, padding="max_length",
                    return_tensors="np", return_token_type_ids=True)
    rows.append({k: tok[k].reshape(-1).astype(np.int64) for k in keys})
  return rows


def msclap_clip(waveform: np.ndarray, clip_samples: int, start: int = 0) -> np.ndarray:
  """CLAPWrapper.load_audio_into_tensor on a decoded mono waveform: a clip no longer than
  `clip_samples` is repeated ceil(clip / n) times and cut; a longer one is cut at `start` (msclap
  draws it with random.randrange(n - clip))."""
  n = waveform.shape[0]
  if clip_samples >= n:
    return np.tile(waveform, int(np.ceil(clip_samples / n)))[:clip_samples]
  return waveform[start:start + clip_samples]


def msclap_text_embeddings(model, tokenizer, texts, text_len: int = 100) -> np.ndarray:
  """CLAPWrapper.get_text_embeddings: msclap's tokens, stacked, through the caption encoder. A text
  over `text_len` tokens, which msclap cannot stack, is truncated as the tokenizer's
  `truncation=True` does ([CLS], its first text_len - 2 tokens, [SEP])."""
  rows = msclap_tokens(tokenizer, texts, text_len)
  for row, text in zip(rows, texts):
    if row["input_ids"].shape[0] > text_len:
      cut = tokenizer(text, max_length=text_len, padding="max_length", truncation=True,
                      return_token_type_ids=True)
      row.update({k: np.asarray(cut[k], np.int64) for k in row})
  batch = {k: torch.from_numpy(np.stack([r[k] for r in rows])) for k in rows[0]}
  with torch.no_grad():
    return model.caption_encoder(batch).numpy()
