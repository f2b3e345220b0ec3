r"""Captioning evaluation of a clapcap checkpoint on the paper's AudioCaps and Clotho captioning
(launch/eval.py; clap_jax/eval/captioning.py).

  python launch/eval.py --config configs/captioning_eval.py --checkpoint clapcap_weights_2023.pth \
      --workdir /tmp/captioning --config.captioning.data_dir=/data
  python launch/eval.py --config configs/captioning_eval.py:shared,tiny --checkpoint random \
      --workdir /tmp/captioning_plumbing

Options after ':' (comma-separated):
  shared  Clotho captioning on the 7 real clips (5 captions each) in ../shared/data.
  tiny    the tiny clapcap for `--checkpoint random` and small batches: a plumbing run on CPU.
Tasks whose data is absent are reported as skipped; metrics that cannot run here (SPICE without
Stanford CoreNLP) as not computed, with why. Every key is in clap_jax.schema.evaluation().
"""
import ml_collections

from clap_jax import schema
from clap_jax.models import config as model_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  options = set(filter(None, (arg or "").split(",")))
  unknown = options - {"shared", "tiny"}
  if unknown:
    raise ValueError(f"unknown options {sorted(unknown)}: 'shared' and/or 'tiny'")
  c = schema.evaluation()
  c.model = model_config.clapcap()
  c.tasks = ()  # zero-shot: clapcap has no text tower
  e = c.captioning
  if "shared" in options:
    e.tasks = ("clotho_captioning",)
    e.data_dir = "../shared/data"
    e.sources.clotho_captioning.update(root="audio/clotho", captions="captions.csv", audio="audio")
  if "tiny" in options:
    c.model = model_config.tiny_clapcap()
    e.batch_size = 8
  return c
