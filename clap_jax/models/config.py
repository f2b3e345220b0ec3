"""Model configurations as data: the official 2023 and 2022 models, and small variants for tests
and demos."""
import copy
import math

import ml_collections


def clap_2023() -> ml_collections.ConfigDict:
  """MS-CLAP 2023 exactly as msclap 1.3.4 builds it (see ../shared/docs/REFERENCE.md)."""
  c = ml_collections.ConfigDict()
  c.dtype = "float32"  # compute dtype; parameters stay float32
  c.embed_dim = 1024  # shared audio-text space
  c.projection_dropout = 0.5
  c.logit_scale_init = math.log(1 / 0.07)

  a = c.audio = ml_collections.ConfigDict()
  a.encoder = "htsat"  # the audio tower: 'htsat' (2023) or 'cnn14' (2022)
  a.sample_rate = 44100  # rate of the waveform fed to the model
  a.clip_seconds = 7
  a.clip_samples = 308700
  # HTSATWrapper ignores config_2023.yml and builds its filterbank for 32 kHz, fmax 14 kHz:
  # the weights were trained with this, so it is kept.
  a.mel_sample_rate = 32000
  a.n_fft = 1024
  a.hop_length = 320
  a.mel_bins = 64
  a.fmin = 50.0
  a.fmax = 14000.0
  a.spec_size = 256
  a.patch_size = 4
  a.patch_stride = (4, 4)
  a.window_size = 8
  a.embed_dim = 96
  a.depths = (2, 2, 6, 2)
  a.num_heads = (4, 8, 16, 32)
  a.mlp_ratio = 4.0
  a.num_classes = 527
  a.drop_rate = 0.0
  a.attn_drop_rate = 0.0
  a.drop_path_rate = 0.1
  # Eval-mode path for inputs longer than spec_size * freq_ratio frames (hard-coded in HTSAT).
  a.long_crop_frames = 689
  a.long_crop_hop = 344
  a.spec_augment = False  # SpecAugment (2 time stripes of <=64 frames, 2 of <=8 mel bins) in training
  a.remat = False  # rematerialise Swin blocks in training (memory for compute)

  t = c.text = ml_collections.ConfigDict()
  t.encoder = "gpt2"  # the text tower: 'gpt2' (2023) or 'bert' (2022)
  t.vocab_size = 50257
  t.n_positions = 1024
  t.n_embd = 768
  t.n_layer = 12
  t.n_head = 12
  t.layer_norm_epsilon = 1e-5
  t.dropout = 0.1  # resid_pdrop = embd_pdrop = attn_pdrop in GPT-2
  t.context_length = 77
  t.eos_token_id = 50256
  t.pad_token_id = 0  # msclap pads with '!' (id 0)
  # 'msclap': pool at count(input_ids != 0) - 1, the reference's quirk ('!' shifts it);
  # 'last_token': pool at the last attended token (attention_mask), correct for new training.
  t.pooling = "msclap"
  t.remat = False  # rematerialise GPT-2 blocks in training
  c.lock()  # a mistyped key is an error, not a new field
  return c


def tiny() -> ml_collections.ConfigDict:
  """A few-MB model with the same structure, for behaviour tests and the CPU demo."""
  c = clap_2023()
  c.embed_dim = 64
  a = c.audio
  a.embed_dim = 16
  a.depths = (2, 2, 2, 2)  # even depths keep a shifted-window block in every stage
  a.num_heads = (1, 2, 2, 4)
  a.num_classes = 10
  t = c.text
  t.n_embd = 64
  t.n_layer = 2
  t.n_head = 2
  t.n_positions = 128
  return c


def small() -> ml_collections.ConfigDict:
  """A few-MB CLAP for 1 s clips at 16 kHz, for the CPU demo and tests: a 64x64 spectrogram image
  instead of 256x256, and two Swin stages instead of four (a deeper tower barely moves in the
  few hundred steps a CPU demo affords)."""
  m = tiny()
  a = m.audio
  a.sample_rate = a.mel_sample_rate = 16000
  a.clip_seconds = 1
  a.clip_samples = 16000
  a.n_fft, a.hop_length = 512, 256  # 63 frames, resized to 64
  a.fmax = 8000.0
  a.spec_size = 64  # = mel_bins: one 64-frame image, no folding
  a.embed_dim = 32
  a.depths = (2, 2)
  a.num_heads = (2, 4)
  a.drop_path_rate = 0.0
  a.spec_augment = False
  m.text.pooling = "last_token"  # new training: pool at the real end of the text
  m.text.dropout = 0.0
  m.projection_dropout = 0.0
  return m


def clapcap() -> ml_collections.ConfigDict:
  """MS-CLAP's captioner (clapcap_weights_2023.pth) as msclap 1.3.4 builds it from
  config_clapcap.yml: the 2023 audio encoder and projection (`clap`), a mapper from the normalised
  embedding to 40 prefix embeddings (`clap_project`), and GPT-2 'gpt2' continuing them (`gpt`)."""
  c = clap_2023().unlock()
  del c.text, c.logit_scale_init  # clapcap keeps CLAP's audio encoder only
  m = c.mapper = ml_collections.ConfigDict()  # msclap.models.mapper.TransformerMapper
  m.prefix_length = 40  # prefix embeddings handed to GPT-2
  m.clip_length = 40  # embeddings the Linear makes from the audio embedding
  m.num_layers = 8
  m.num_heads = 8  # fixed in msclap (Transformer(dim_embedding, 8, num_layers))
  m.mlp_ratio = 2.0
  m.layer_norm_epsilon = 1e-5
  m.normalize_prefix = True  # the audio embedding is L2-normalised before the mapper
  d = c.decoder = ml_collections.ConfigDict()  # GPT2LMHeadModel 'gpt2'
  d.vocab_size = 50257
  d.n_positions = 1024
  d.n_embd = 768
  d.n_layer = 12
  d.n_head = 12
  d.layer_norm_epsilon = 1e-5
  d.dropout = 0.1
  c.lock()
  return c


def tiny_clapcap() -> ml_collections.ConfigDict:
  """clapcap's structure at test size. The vocabulary is GPT-2's first 4096 tokens (ids decode
  with the real tokenizer; the stop token, 220, is among them)."""
  c = clapcap()
  test_size = tiny()
  c.embed_dim, c.audio = test_size.embed_dim, test_size.audio
  c.mapper.num_layers = 2
  d = c.decoder
  d.vocab_size = 4096
  d.n_positions = 128  # >= prefix_length + the default max_length of 67
  d.n_embd = 64
  d.n_layer = 2
  d.n_head = 2
  return c


def clap_2022() -> ml_collections.ConfigDict:
  """MS-CLAP 2022 (CNN14 + BERT base uncased) as msclap 1.3.4 builds it from config_2022.yml."""
  c = ml_collections.ConfigDict()
  c.dtype = "float32"
  c.embed_dim = 1024
  c.projection_dropout = 0.5
  c.logit_scale_init = math.log(1 / 0.07)

  a = c.audio = ml_collections.ConfigDict()
  a.encoder = "cnn14"
  a.sample_rate = 44100
  a.clip_seconds = 5
  a.clip_samples = 220500
  # config_2022.yml's n_fft (1028) is never read: CLAPWrapper passes window_size (1024) to Cnn14,
  # which uses it as torchlibrosa's n_fft and window length. The mel filters are for the real rate.
  a.mel_sample_rate = 44100
  a.n_fft = 1024
  a.hop_length = 320
  a.mel_bins = 64
  a.fmin = 50.0
  a.fmax = 14000.0
  a.channels = (64, 128, 256, 512, 1024, 2048)  # conv_block1..6; 2x2 average pooling after all but the last
  a.out_emb = 2048  # fc1's width: the embedding that feeds the projection
  a.num_classes = 527
  a.conv_dropout = 0.2  # after each conv block (training only)
  a.fc_dropout = 0.5  # before and after fc1 (training only)
  a.spec_augment = False  # msclap's Cnn14 has none; PANNs' SpecAugment settings when enabled
  a.remat = False  # rematerialise conv blocks in training

  t = c.text = ml_collections.ConfigDict()
  t.encoder = "bert"
  t.vocab_size = 30522
  t.hidden_size = 768
  t.num_layers = 12
  t.num_heads = 12
  t.intermediate_size = 3072
  t.max_position_embeddings = 512
  t.type_vocab_size = 2
  t.layer_norm_eps = 1e-12
  t.dropout = 0.1  # hidden_dropout_prob = attention_probs_dropout_prob in bert-base-uncased
  t.context_length = 100  # config_2022.yml's text_len
  t.pad_token_id = 0  # [PAD]
  t.pooling = "cls"  # msclap's TextEncoder takes the last hidden state at [CLS] (not BERT's pooler)
  t.remat = False  # rematerialise BERT layers in training
  c.lock()  # a mistyped key is an error, not a new field
  return c


def tiny_2022() -> ml_collections.ConfigDict:
  """clap_2022's structure at a few MB (the full vocabulary, so the real tokenizer applies)."""
  c = clap_2022()
  c.embed_dim = 64
  a = c.audio
  a.channels = (4, 8, 8, 16, 16, 32)
  a.out_emb = 32
  a.num_classes = 10
  t = c.text
  t.hidden_size = 32
  t.num_layers = 2
  t.num_heads = 2
  t.intermediate_size = 64
  t.max_position_embeddings = 128
  return c


def small_2022() -> ml_collections.ConfigDict:
  """tiny_2022 for 1 s clips at 16 kHz, as small() is for 2023: the CPU smoke runs of 2022 configs."""
  c = tiny_2022()
  a = c.audio
  a.sample_rate = a.mel_sample_rate = 16000
  a.clip_seconds = 1
  a.clip_samples = 16000
  a.n_fft, a.hop_length = 512, 256  # 63 frames: at least the 32 CNN14's five poolings need
  a.fmax = 8000.0
  c.text.dropout = 0.0
  c.projection_dropout = 0.0
  return c


# The official models by msclap's version name (CLAPWrapper(version=...), and its captioner).
VERSIONS = {"2023": clap_2023, "2022": clap_2022, "clapcap": clapcap}
# Each CLAP version's (audio, text) tower pair.
TOWERS = {"2023": ("htsat", "gpt2"), "2022": ("cnn14", "bert")}


def towers(config: ml_collections.ConfigDict) -> tuple[str, str]:
  """(audio encoder, text encoder) of a model config; configs saved before 2022 was added have
  no `encoder` keys and are 2023's. clapcap has no text encoder (None)."""
  text = config.text.get("encoder", "gpt2") if "text" in config else None
  return config.audio.get("encoder", "htsat"), text


def version_of(config: ml_collections.ConfigDict) -> str | None:
  """The msclap model whose structure a config has ('2023', '2022', 'clapcap'; sizes aside), or
  None for a tower pair msclap never shipped."""
  if "mapper" in config:
    return "clapcap"
  return next((v for v, pair in TOWERS.items() if pair == towers(config)), None)


def for_version(version: str) -> ml_collections.ConfigDict:
  if version not in VERSIONS:
    raise ValueError(f"unknown msclap version {version!r}: one of {sorted(VERSIONS)}")
  return VERSIONS[version]()


def with_towers(audio_from: ml_collections.ConfigDict,
                text_from: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`text_from` with the audio tower (and its clip) of `audio_from`: encoder pairs msclap never
  shipped, such as HTSAT + BERT, for comparisons like the 2023 paper's Table 1."""
  c = copy.deepcopy(text_from)
  c.audio = copy.deepcopy(audio_from.audio)
  return c
