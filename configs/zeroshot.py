r"""Zero-shot evaluation on the paper's downstream tasks (launch/eval.py).

  python launch/eval.py --config configs/zeroshot.py --checkpoint CLAP_weights_2023.pth \
      --workdir /tmp/zeroshot --config.data_dir=/data
  python launch/eval.py --config configs/zeroshot.py:shared,tiny --checkpoint random \
      --workdir /tmp/zeroshot_plumbing
  ... --config.templates.fsdd='("a person saying {}",)' --config.sources.esc50.root=/data/esc50

Options after ':' (comma-separated):
  shared  every paper task and FSDD, with the real clips in ../shared/data where it has them:
          ESC-50 (6 clips, all 50 classes), ESC50 Actions (the same 6 clips, labelled from the
          published annotations), FSDD spoken digits (1000 clips) and Clotho retrieval (7 clips x 5
          captions); the report says why each other task was skipped.
  tiny    the tiny model for `--checkpoint random` and small batches: a plumbing run on CPU.
  2022    the 2022 model (CNN14 + BERT) as config.model, or its tiny variant with `tiny`. Not needed
          for CLAP_weights_2022.pth, whose keys say it is 2022's (clap_jax.weights).
Tasks whose data is absent are reported as skipped. Every key is in clap_jax.schema.evaluation().
"""
import ml_collections

from clap_jax import schema
from clap_jax.models import config as model_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  options = set(filter(None, (arg or "").split(",")))
  unknown = options - {"shared", "tiny", "2022"}
  if unknown:
    raise ValueError(f"unknown options {sorted(unknown)}: any of 'shared', 'tiny', '2022'")
  c = schema.evaluation()
  if "2022" in options:
    c.model = model_config.clap_2022()
  if "shared" in options:
    c.data_dir = "../shared/data"
    c.sources.esc50.update(root="audio/esc50", meta="meta/esc50_subset.csv")
    c.sources.esc50_actions.update(root="audio/esc50", meta="meta/esc50_subset.csv")
    c.sources.fsdd.root = "fsdd-dev"
    c.sources.clotho.update(root="audio/clotho", captions="captions.csv", audio="audio")
  if "tiny" in options:
    c.model = model_config.tiny_2022() if "2022" in options else model_config.tiny()
    c.batch_size = 8
    c.text_batch_size = 64
    c.workers = 2
  return c
