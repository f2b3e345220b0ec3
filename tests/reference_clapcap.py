"""msclap 1.3.4's clapcap with random weights, and its CLAPWrapper.generate_caption, without the hub.

ClapCaptionModel calls `GPT2LMHeadModel.from_pretrained`, replaced here by a GPT-2 built from a
local GPT2Config; CLAPWrapper imports torchaudio (not installed: only its audio reading uses it,
which is replaced by waveforms we hand it).
"""
import importlib
import pathlib
import random
import sys
import types

import ml_collections
import numpy as np

from clap_jax.models import config as model_config
from reference import build_reference, msclap_models, torch, transformers

# GPT-2's ' ' (id 220): msclap's stop token, tokenizer.encode(' <|endoftext|>')[0].
STOP_TOKEN = 220


def decoder_config(config) -> "transformers.GPT2Config":
  d = config.decoder
  return transformers.GPT2Config(
      vocab_size=d.vocab_size, n_positions=d.n_positions, n_embd=d.n_embd, n_layer=d.n_layer,
      n_head=d.n_head, layer_norm_epsilon=d.layer_norm_epsilon, resid_pdrop=d.dropout,
      embd_pdrop=d.dropout, attn_pdrop=d.dropout,
      bos_token_id=None, eos_token_id=None)  # unused (msclap decodes by hand); tiny vocabularies lack 50256


def build_clapcap_reference(config, seed: int = 0, noise: float = 0.05, stop_scale: float = 1.0):
  """The official ClapCaptionModel for `config` (models.config.clapcap-like), eval mode, every
  parameter perturbed as in reference.build_reference, the mapper's and GPT-2's by N(0, noise).
  `stop_scale` multiplies the stop token's (tied) embedding. (Near their init, random GPT-2s
  repeat one token whatever the audio; larger noise and a likelier stop token give captions
  that depend on the clip and end at varied lengths.)"""
  msclap_models()
  mapper = importlib.import_module("msclap.models.mapper")
  # The CLAP whose audio encoder clapcap keeps; its text tower is dropped, so it is built tiny.
  clap = build_reference(ml_collections.ConfigDict(
      {"audio": config.audio, "text": model_config.tiny().text, "embed_dim": config.embed_dim}), seed)
  original = mapper.GPT2LMHeadModel
  mapper.GPT2LMHeadModel = types.SimpleNamespace(
      from_pretrained=lambda name: transformers.GPT2LMHeadModel(decoder_config(config)))
  torch.manual_seed(seed + 2)
  m = config.mapper
  try:
    model = mapper.ClapCaptionModel(
        clap, "gpt2", m.prefix_length, m.clip_length, config.embed_dim, m.num_layers,
        m.normalize_prefix, "transformer", True, True)
  finally:
    mapper.GPT2LMHeadModel = original
  generator = torch.Generator().manual_seed(seed + 3)
  with torch.no_grad():
    for name, tensor in model.named_parameters():
      if not name.startswith("clap."):  # the audio encoder is perturbed already
        tensor.add_(torch.randn(tensor.shape, generator=generator) * noise)
    model.gpt.transformer.wte.weight[STOP_TOKEN] *= stop_scale
  return model.eval()


def clapcap_wrapper(model, config, tokenizer_dir, waveforms: dict, crop_start: int | None = None):
  """A CLAPWrapper for `model` whose audio reading returns `waveforms[name]` (44.1 kHz float32
  arrays) and whose random crop of long clips starts at `crop_start`."""
  wrapper = _import_wrapper()
  w = object.__new__(wrapper.CLAPWrapper)
  w.use_cuda = False
  w.np_str_obj_array_pattern = wrapper.re.compile(r"[SaUO]")
  w.default_collate_err_msg_format = "default_collate: {}"
  yml = (pathlib.Path(wrapper.__file__).parent / "configs" / "config_clapcap.yml").read_text()
  w.args = w.read_config_as_args(yml, is_config_str=True)
  w.args.prefix_length = config.mapper.prefix_length
  w.clapcap = model
  tokenizer = transformers.GPT2TokenizerFast.from_pretrained(str(tokenizer_dir))
  tokenizer.add_special_tokens({"pad_token": "!"})  # as load_clapcap
  w.tokenizer = tokenizer
  w.read_audio = lambda name, resample=True: (torch.from_numpy(waveforms[name])[None], 44100)
  wrapper.random = random if crop_start is None else types.SimpleNamespace(
      randrange=lambda n: crop_start)
  return w


def _import_wrapper():
  msclap_models()
  if "msclap.CLAPWrapper" not in sys.modules:
    stubs = {}
    try:
      import torchaudio  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    except ImportError:
      stubs = {"torchaudio": types.ModuleType("torchaudio"),
               "torchaudio.transforms": types.ModuleType("torchaudio.transforms")}
      stubs["torchaudio"].transforms = stubs["torchaudio.transforms"]
    sys.modules.update(stubs)
    try:
      importlib.import_module("msclap.CLAPWrapper")
    finally:
      for name in stubs:
        del sys.modules[name]
  return sys.modules["msclap.CLAPWrapper"]


def state_dict_numpy(model) -> dict[str, np.ndarray]:
  return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
