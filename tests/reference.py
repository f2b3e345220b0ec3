"""The official PyTorch model (msclap 1.3.4) with random weights: the reference for parity tests.

msclap's package __init__ may import torchaudio (not installed), so `msclap.models` is imported with
the package __init__ bypassed; its text encoder calls `AutoModel.from_pretrained`, which is replaced
by a locally built GPT-2 of the configured size.
"""
import importlib.util
import sys
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

# Parameters that are fixed functions of the config (torchlibrosa's STFT kernels and mel filters),
# left as built so that the converter's checks see the reference values.
_FIXED_PARAMETERS = ("spectrogram_extractor", "logmel_extractor")


def msclap_models():
  """Imports msclap.models without running msclap/__init__.py."""
  if "msclap.models.clap" not in sys.modules:
    spec = importlib.util.find_spec("msclap")
    if spec is None:
      pytest.skip("msclap is not installed (pip install --no-deps msclap==1.3.4)")
    if "msclap" not in sys.modules:
      package = types.ModuleType("msclap")
      package.__path__ = list(spec.submodule_search_locations)
      sys.modules["msclap"] = package
    importlib.import_module("msclap.models.clap")
  return sys.modules["msclap.models.clap"], sys.modules["msclap.models.htsat"]


def gpt2_config(config):
  t = config.text
  return transformers.GPT2Config(
      vocab_size=t.vocab_size, n_positions=t.n_positions, n_embd=t.n_embd, n_layer=t.n_layer,
      n_head=t.n_head, layer_norm_epsilon=t.layer_norm_epsilon, resid_pdrop=t.dropout,
      embd_pdrop=t.dropout, attn_pdrop=t.dropout)


def build_reference(config, seed: int = 0):
  """The official CLAP module for `config` (a clap_jax model config), in eval mode, with random
  weights in which every parameter and running statistic is perturbed away from its init (so that a
  swapped scale/bias or a dropped statistic cannot go unnoticed)."""
  clap_module, htsat_module = msclap_models()
  torch.manual_seed(seed)
  a = config.audio
  latent_dim = a.embed_dim * 2 ** (len(a.depths) - 1)
  original = clap_module.AutoModel.from_pretrained
  clap_module.AutoModel.from_pretrained = lambda name: transformers.GPT2Model(gpt2_config(config))
  try:
    model = clap_module.CLAP(
        audioenc_name="HTSAT", sample_rate=a.sample_rate, window_size=a.n_fft, hop_size=a.hop_length,
        mel_bins=a.mel_bins, fmin=a.fmin, fmax=a.fmax, classes_num=a.num_classes,
        out_emb=latent_dim, text_model="gpt2", transformer_embed_dim=config.text.n_embd,
        d_proj=config.embed_dim)
  finally:
    clap_module.AutoModel.from_pretrained = original
  # HTSATWrapper ignores its arguments; rebuild the Swin with the configured sizes.
  model.audio_encoder.base.htsat = htsat_module.HTSAT_Swin_Transformer(
      config=htsat_module.config, spec_size=a.spec_size, patch_size=a.patch_size,
      patch_stride=tuple(a.patch_stride), num_classes=a.num_classes, embed_dim=a.embed_dim,
      depths=list(a.depths), num_heads=list(a.num_heads), window_size=a.window_size,
      mlp_ratio=a.mlp_ratio, drop_path_rate=a.drop_path_rate)
  return perturb(model, seed + 1).eval()


def perturb(model, seed: int):
  """Moves every parameter (but torchlibrosa's fixed ones) and running statistic of `model` away
  from its init, in place."""
  generator = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, tensor in model.named_parameters():
      if not any(part in name for part in _FIXED_PARAMETERS):
        tensor.add_(torch.randn(tensor.shape, generator=generator) * 0.05)
    for name, tensor in model.named_buffers():  # other buffers are masks and indices
      if name.endswith("running_mean"):
        tensor.add_(torch.randn(tensor.shape, generator=generator) * 0.05)
      elif name.endswith("running_var"):
        tensor.copy_(0.5 + torch.rand(tensor.shape, generator=generator))
  return model


def state_dict_numpy(model) -> dict[str, np.ndarray]:
  return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
