r"""Zero-shot evaluation on the paper's downstream tasks (launch/eval.py).

  python launch/eval.py --config configs/zeroshot.py --checkpoint CLAP_weights_2023.pth \
      --workdir /tmp/zeroshot --config.data_dir=/data --config.tokenizer=path/to/gpt2
  python launch/eval.py --config configs/zeroshot.py:shared,tiny --checkpoint random \
      --workdir /tmp/zeroshot_plumbing

Options after ':' (comma-separated):
  shared  the real clips in ../shared/data: ESC-50 (6 clips, all 50 classes), FSDD spoken digits
          (1000 clips) and Clotho retrieval (7 clips x 5 captions).
  tiny    the tiny model for `--checkpoint random` and small batches: a plumbing run on CPU.
Tasks whose data is absent are reported as skipped.
"""
import ml_collections

from clap_jax import text
from clap_jax.eval import tasks


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  options = set(filter(None, arg.split(",")))
  unknown = options - {"shared", "tiny"}
  if unknown:
    raise ValueError(f"unknown options {sorted(unknown)}: 'shared' and/or 'tiny'")
  c = ml_collections.ConfigDict()
  # Model config (a function of clap_jax.models.config) for an msclap file or `random`; a
  # converted folder or a training workdir carries its own.
  c.model = "clap_2023"
  c.dtype = "float32"  # compute dtype; 'bfloat16' is faster on accelerators
  c.tokenizer = "gpt2"  # a folder with GPT-2's vocab.json and merges.txt, or a hub name
  c.tasks = tuple(tasks.paper_tasks()) + ("fsdd",)
  c.data_dir = "data"  # relative source roots and shard patterns are found here
  c.sources = ml_collections.ConfigDict()  # per task: overrides of its source spec (tasks.py)
  c.templates = ml_collections.ConfigDict()  # per task: prompt templates, several = ensembling
  c.batch_size = 64  # clips (windows) per step, over all devices
  c.text_batch_size = 256
  c.long_mode = "windows"  # clips longer than 7 s: average of windows, or one 'random' window
  c.workers = 8  # audio decoding threads per process
  c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1})  # evaluation: data parallel
  c.seed = 0  # parameters of `--checkpoint random`

  if "shared" in options:
    c.tasks = ("esc50", "fsdd", "clotho")
    c.data_dir = "../shared/data"
    c.sources.esc50 = {"root": "audio/esc50", "meta": "meta/esc50_subset.csv"}
    c.sources.fsdd = {"root": "fsdd-dev"}
    c.sources.clotho = {"root": "audio/clotho", "captions": "captions.csv", "audio": "audio"}
    c.tokenizer = str(text.GPT2_FILES)
  if "tiny" in options:
    c.model = "tiny"
    c.batch_size = 8
    c.text_batch_size = 64
    c.workers = 2
  return c
