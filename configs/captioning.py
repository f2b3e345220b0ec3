r"""Captioning training (the paper's Sec. 2.3, clapcap's recipe): the CLAP audio encoder from a CLAP
checkpoint and GPT-2 stay frozen, the mapper learns to prefix GPT-2 so that it continues into the
clip's caption (objective 'prefix_lm': cross-entropy on the caption tokens).

  python launch/train.py --config configs/captioning.py --workdir $CAPTIONING_WORKDIR \
      --config.init.audio_from=CLAP_weights_2023.pth \
      --config.init.decoder_from=clapcap_weights_2023.pth \
      --config.input.train='/data/shards/audiocaps/train/*.tfrecord,/data/shards/clotho/development/*.tfrecord'
  python launch/train.py --config configs/captioning.py:local     # the demo's sounds, on CPU
  python launch/eval.py --config configs/captioning_eval.py --checkpoint $CAPTIONING_WORKDIR ...

Shards are launch/make_shards.py output written with GPT-2's tokenizer (the 2023 model's, the
default): every token of a caption is a target, its ' <|endoftext|>' included, whose first token
(' ') is where decoding stops. GPT-2 comes from a clapcap checkpoint: msclap trained clapcap with
OpenAI's 'gpt2' frozen (config_clapcap.yml), so its GPT-2 is that model. The periodic evaluation
captions AudioCaps' and Clotho's test clips (configs/captioning_eval.py's tasks; data under
evals.captioning.data_dir).

The paper names the parts and what trains, not the schedule: values marked "chosen" follow
ClipCap's (Mokady et al. 2021, the design msclap's mapper.py comes from): AdamW at 2e-5 with 5000
warmup steps.

'local': clap_jax.data.demo's eight kinds of sound with their phrasings as captions, a small
clapcap (1 s clips at 16 kHz, a 2-layer GPT-2 of width 64 with GPT-2's vocabulary), and every part
learning from scratch (no pretrained CLAP or GPT-2 is at hand here); evaluated by CIDEr-D of
held-out demo clips against all phrasings of their kind. 'smoke': 'local' for two steps.
"""
import ml_collections

from clap_jax import schema
from clap_jax.models import config as model_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  if arg not in (None, "local", "smoke"):
    raise ValueError(f"configs/captioning.py takes no argument, 'local' or 'smoke', got {arg!r}")
  c = schema.training("prefix_lm")
  c.model = model_config.clapcap()
  c.optim.frozen = "^model/(clap|gpt)/"  # the audio encoder and GPT-2: the mapper alone learns
  c.init.audio_from = ""  # required: a CLAP checkpoint (CLAP_weights_2023.pth, a workdir, ...)
  c.init.decoder_from = ""  # required: clapcap_weights_2023.pth (or a converted clapcap)

  c.input.kind = "shards"
  c.input.train = ""  # required: caption shards
  c.input.global_batch = 128  # chosen
  c.input.caption_choice = "random"  # each visit of a clip trains one of its captions
  c.total_steps = 50_000  # chosen
  c.optim.lr = 2e-5  # ClipCap's
  c.optim.warmup_steps = 5000  # ClipCap's
  c.optim.weight_decay = 0.01  # AdamW's default, as ClipCap
  c.optim.clip_norm = 1.0
  c.mesh.data, c.mesh.fsdp = -1, 1  # the trained mapper is small: plain data parallelism
  c.checkpoint.every_steps = 2000
  c.log.every_steps = 50

  e = c.evals.captioning
  e.tasks = ("audiocaps_captioning", "clotho_captioning")
  e.data_dir = "/data"
  e.every_steps = 10_000
  if arg in ("local", "smoke"):
    _local(c)
  if arg == "smoke":
    c.input.global_batch = 4
    c.total_steps = 2
    c.optim.warmup_steps = 1
    c.log.every_steps = 1
    e.num_clips, e.batch_size, e.beam_size = 4, 4, 1
  return c


def local_model() -> ml_collections.ConfigDict:
  """A small clapcap: models.config.small()'s audio encoder, a short mapper, a narrow GPT-2 that
  keeps GPT-2's vocabulary (the captions' tokens, `<|endoftext|>` included)."""
  c = model_config.tiny_clapcap()
  small = model_config.small()
  c.audio, c.embed_dim, c.projection_dropout = small.audio, small.embed_dim, 0.0
  c.mapper.prefix_length = c.mapper.clip_length = 8
  c.decoder.vocab_size = 50257
  c.decoder.n_positions = 64
  c.decoder.dropout = 0.0
  return c


def _local(c: ml_collections.ConfigDict) -> None:
  """The demo data on CPU in a few minutes (the learning test's settings)."""
  c.model = local_model()
  c.optim.frozen = ""  # nothing pretrained here: every part learns
  c.input.kind = "demo"
  c.input.global_batch = 16
  c.total_steps = 400
  c.optim.lr = 3e-3
  c.optim.warmup_steps = 40
  c.optim.weight_decay = 1e-4
  c.checkpoint.every_steps = 400
  c.log.every_steps = 10
  e = c.evals.captioning
  e.tasks = ("demo",)
  e.num_clips = 64
  e.every_steps = 0
  e.beam_size = 3
  e.max_length = 16
  e.batch_size = 64
