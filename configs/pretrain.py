r"""Contrastive pretraining as the CLAP 2023 paper trains it: HTSAT + GPT-2 + 1024-d projections,
batch 1536, Adam at 1e-3 reduced x0.1 on plateau (patience 15), 40 epochs, both towers trained;
or any other pair of msclap's towers with the same recipe (the paper's Table 1 compares such
pairs), or the CLIP-style recipe ('clip').

  python launch/train.py --config configs/pretrain.py --workdir $WORKDIR \
      --config.input.train='/data/shards/*/*.tfrecord'
  ... --config.model.dtype=bfloat16 --config.model.audio.remat=True   # memory/speed options
  ... --config.optim.frozen='^model/caption_encoder/gpt2/'             # frozen text encoder
  ... --config.init.audio_from=$AUDIO_PRETRAIN_WORKDIR                 # HTSAT from audio pretraining
  ... --config.init.clap_from=CLAP_weights_2023.pth                    # fine-tune MS-CLAP
  python launch/train.py --config configs/pretrain.py:smoke             # two tiny steps, any machine
  python launch/train.py --config configs/pretrain.py:clip ...          # the CLIP-style recipe
  python launch/train.py --config configs/pretrain.py:2022 ...          # CNN14 + BERT (CLAP 2022)
  python launch/train.py --config configs/pretrain.py:htsat,bert ...    # one tower of each
  python launch/train.py --config configs/pretrain.py:2022,smoke        # two tiny 2022 steps

Options after ':' (comma-separated): an audio tower ('htsat', default, or 'cnn14', with its own
clip: 7 s or 5 s), a text tower ('gpt2', default, or 'bert', with its tokenizer), '2022' for
'cnn14,bert', 'clip' for the CLIP-style recipe, 'smoke'. Each tower is msclap's
(models/config.py); the pair changes nothing else. msclap's config_2022.yml says
`freeze_text_encoder_weights: True`; the recipe here trains both towers unless
--config.optim.frozen='^model/caption_encoder/bert/'.

"Paper" below is Elizalde, Deshmukh & Wang, "Natural Language Supervision for General-Purpose
Audio Representations" (ICASSP 2024, arXiv 2309.05767), Sec. 3 unless said otherwise. Where it is
silent the comment says what we chose and why. Another corpus size: set `total_steps` to
40 * ceil(pairs / batch) and `optim.plateau.every_steps` and `evals.zeroshot.every_steps` to
ceil(pairs / batch).
"""
import math

from clap_jax import schema
from clap_jax.models import config as model_config

# Each tower with the official config that has it.
_AUDIO_TOWERS = {"htsat": model_config.clap_2023, "cnn14": model_config.clap_2022}
_TEXT_TOWERS = {"gpt2": model_config.clap_2023, "bert": model_config.clap_2022}

# Paper: 4.6M audio-text pairs; one epoch is this many steps of the paper's batch.
PAPER_PAIRS = 4_600_000
PAPER_BATCH = 1536
PAPER_EPOCHS = 40
STEPS_PER_EPOCH = -(-PAPER_PAIRS // PAPER_BATCH)


def get_config(arg: str | None = None):
  options = set(filter(None, (arg or "").split(",")))
  if "2022" in options:
    options = (options - {"2022"}) | {"cnn14", "bert"}
  audio = options & set(_AUDIO_TOWERS) or {"htsat"}
  text = options & set(_TEXT_TOWERS) or {"gpt2"}
  unknown = options - set(_AUDIO_TOWERS) - set(_TEXT_TOWERS) - {"smoke", "clip"}
  if unknown or len(audio) > 1 or len(text) > 1:
    raise ValueError(f"options {sorted(options)}: at most one of {sorted(_AUDIO_TOWERS)}, one of "
                     f"{sorted(_TEXT_TOWERS)}, '2022' (= cnn14,bert), 'clip' and 'smoke'")
  c = schema.training()
  c.model = model_config.with_towers(_AUDIO_TOWERS[audio.pop()](), _TEXT_TOWERS[text.pop()]())
  # Paper: a learnable temperature "initialised to 0.007"; msclap's code (and CLIP's) initialises
  # logit_scale = log(1 / 0.07), i.e. a temperature of 0.07, and converted weights agree with the
  # code, so we follow the code and read the paper's 0.007 as a typo.
  c.model.logit_scale_init = math.log(1 / 0.07)
  # Paper: random 7 s crops of longer clips, padding of shorter ones. The reader
  # (data/reader.py) crops at a random offset and pads by repeating the clip, as msclap's
  # read_audio does (the paper does not say with what it pads). CNN14 (2022) keeps its 5 s.
  # Paper silent on augmentation; chosen: HTSAT's SpecAugment (torchlibrosa 64/2, 8/2) and
  # mixup ~ Beta(0.5, 0.5), as HTSAT was trained, for either audio tower.
  c.model.audio.spec_augment = True
  c.augment.mixup_alpha = 0.5
  c.model.audio.remat = False
  c.model.text.remat = False
  if model_config.towers(c.model)[1] == "gpt2":
    # The reference's pooling quirk is kept, so that fine-tuned and converted models agree.
    c.model.text.pooling = "msclap"

  c.input.kind = "shards"
  c.input.train = ""  # required: launch/make_shards.py output, e.g. '/data/shards/*/*.tfrecord'
  c.input.global_batch = PAPER_BATCH  # paper: batch size 1,536
  c.input.shuffle_buffer = 1024  # paper silent; chosen: ~1 GB of 7-10 s records per host
  c.total_steps = PAPER_EPOCHS * STEPS_PER_EPOCH  # paper: 40 epochs (of its 4.6M pairs)

  c.loss.kind = "softmax"  # paper: CLIP's symmetric cross-entropy
  # Paper silent on a clamp of the learned scale; chosen: CLIP's (exp(logit_scale) <= 100).
  c.loss.max_log_scale = math.log(100)

  c.optim.lr = 1e-3  # paper: initial learning rate 1e-3
  c.optim.schedule = "plateau"  # paper: reduced on plateau (optax.contrib.reduce_on_plateau)
  c.optim.plateau.factor = 0.1  # paper: by a factor of 10
  c.optim.plateau.patience = 15  # paper: patience 15
  # Paper silent on what the plateau watches and how often; chosen: the training loss averaged
  # over one epoch. It is computed inside the step (no host round trip, checkpointed with the
  # optimizer state); the zero-shot score is only measured on a few tasks at that point, and a
  # decision of the optimizer taken from it would differ with the evaluation data present.
  c.optim.plateau.every_steps = STEPS_PER_EPOCH
  c.optim.plateau.rtol = 1e-4  # paper silent; chosen: PyTorch ReduceLROnPlateau's threshold
  c.optim.plateau.cooldown = 0  # paper silent; chosen: PyTorch's default
  c.optim.warmup_steps = 0  # paper silent (it names an initial rate only); chosen: none
  # Paper: Adam. Its moments are silent; chosen: PyTorch's defaults (msclap is PyTorch), and no
  # weight decay, which makes optax.adamw Adam.
  c.optim.b1, c.optim.b2, c.optim.eps = 0.9, 0.999, 1e-8
  c.optim.weight_decay = 0.0
  # Paper silent on gradient clipping; chosen: global norm 1, a guard at the high rate of 1e-3.
  c.optim.clip_norm = 1.0
  c.optim.frozen = ""  # paper: both encoders are trained (none frozen)

  c.mesh.data, c.mesh.fsdp = 1, -1  # FSDP over every device
  c.checkpoint.every_steps = 1000
  c.checkpoint.keep = 3
  c.log.every_steps = 50
  zeroshot = c.evals.zeroshot
  # Paper: reports the epoch with the best average zero-shot score: evaluated once an epoch.
  zeroshot.every_steps = STEPS_PER_EPOCH
  zeroshot.tasks = ("esc50", "urbansound8k", "clotho")  # skipped where the data is absent
  zeroshot.data_dir = "."
  zeroshot.batch_size = 256
  if "clip" in options:
    clip_recipe(c)
  return schema.smoke(c) if "smoke" in options else c


def clip_recipe(c):
  """The CLIP-style recipe (open_clip's defaults for CLIP): AdamW, weight decay 0.2 on matrices,
  lr 1e-4 with 2000 warmup steps and cosine decay to 0, batch 1024, ~40 epochs of 4.6M pairs."""
  c.input.global_batch = 1024
  c.total_steps = 180_000
  c.optim.schedule = "cosine"
  c.optim.lr = 1e-4
  c.optim.warmup_steps = 2000
  c.optim.end_lr_ratio = 0.0
  c.optim.b1, c.optim.b2, c.optim.eps = 0.9, 0.98, 1e-6
  c.optim.weight_decay = 0.2
  c.evals.zeroshot.every_steps = 5000
