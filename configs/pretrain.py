r"""The paper's contrastive pretraining: HTSAT + GPT-2 + 1024-d projections (CLAP 2023), or any
other pair of msclap's towers with the same recipe (the 2023 paper's Table 1 compares such pairs).

  python launch/train.py --config configs/pretrain.py --workdir $WORKDIR \
      --config.input.train='/data/shards/*/*.tfrecord'
  ... --config.model.dtype=bfloat16 --config.model.audio.remat=True   # memory/speed options
  ... --config.optim.frozen='^model/caption_encoder/gpt2/'             # frozen text encoder
  ... --config.init.audio_from=$AUDIO_PRETRAIN_WORKDIR                 # HTSAT from audio pretraining
  ... --config.init.clap_from=CLAP_weights_2023.pth                    # fine-tune MS-CLAP
  python launch/train.py --config configs/pretrain.py:smoke             # two tiny steps, any machine
  python launch/train.py --config configs/pretrain.py:2022 ...          # CNN14 + BERT (CLAP 2022)
  python launch/train.py --config configs/pretrain.py:htsat,bert ...    # one tower of each
  python launch/train.py --config configs/pretrain.py:2022,smoke        # two tiny 2022 steps

Options after ':' (comma-separated): an audio tower ('htsat', default, or 'cnn14', with its own
clip: 7 s or 5 s), a text tower ('gpt2', default, or 'bert', with its tokenizer), '2022' for
'cnn14,bert', 'smoke'. Each tower is msclap's (models/config.py); the pair changes nothing else.
msclap's config_2022.yml says `freeze_text_encoder_weights: True`; the recipe here trains both
towers unless --config.optim.frozen='^model/caption_encoder/bert/'.

Elizalde, Deshmukh & Wang 2023 give the model, the batch size and the optimizer family, not every
value; those marked "chosen" are ours (CLIP's or HTSAT's where they had one).
"""
from clap_jax import schema
from clap_jax.models import config as model_config

# Each tower with the official config that has it.
_AUDIO_TOWERS = {"htsat": model_config.clap_2023, "cnn14": model_config.clap_2022}
_TEXT_TOWERS = {"gpt2": model_config.clap_2023, "bert": model_config.clap_2022}


def get_config(arg: str | None = None):
  options = set(filter(None, (arg or "").split(",")))
  if "2022" in options:
    options = (options - {"2022"}) | {"cnn14", "bert"}
  audio = options & set(_AUDIO_TOWERS) or {"htsat"}
  text = options & set(_TEXT_TOWERS) or {"gpt2"}
  unknown = options - set(_AUDIO_TOWERS) - set(_TEXT_TOWERS) - {"smoke"}
  if unknown or len(audio) > 1 or len(text) > 1:
    raise ValueError(f"options {sorted(options)}: at most one of {sorted(_AUDIO_TOWERS)}, one of "
                     f"{sorted(_TEXT_TOWERS)}, '2022' (= cnn14,bert) and 'smoke'")
  c = schema.training()
  c.model = model_config.with_towers(_AUDIO_TOWERS[audio.pop()](), _TEXT_TOWERS[text.pop()]())
  # HTSAT's SpecAugment (torchlibrosa SpecAugmentation 64/2, 8/2), for either audio tower.
  c.model.audio.spec_augment = True
  c.model.audio.remat = False
  c.model.text.remat = False
  if model_config.towers(c.model)[1] == "gpt2":
    # The reference's pooling quirk is kept, so that fine-tuned and converted models agree.
    c.model.text.pooling = "msclap"

  c.input.kind = "shards"
  c.input.train = ""  # required: launch/make_shards.py output, e.g. '/data/shards/*/*.tfrecord'
  c.input.global_batch = 1024
  c.input.shuffle_buffer = 1024
  c.total_steps = 180_000  # chosen: ~40 epochs of 4.6M pairs at batch 1024

  c.loss.kind = "softmax"  # the paper's symmetric cross-entropy; 'sigmoid' for SigLIP
  c.augment.mixup_alpha = 0.5  # HTSAT's mixup weight ~ Beta(0.5, 0.5)

  c.optim.lr = 1e-4  # chosen
  c.optim.warmup_steps = 2000  # chosen
  c.optim.end_lr_ratio = 0.0
  c.optim.b1, c.optim.b2, c.optim.eps = 0.9, 0.98, 1e-6  # chosen: CLIP's
  c.optim.weight_decay = 0.2  # chosen: CLIP's
  c.optim.clip_norm = 1.0  # chosen
  c.optim.frozen = ""  # text encoder trained; '^model/caption_encoder/gpt2/' (or bert) freezes it

  c.mesh.data, c.mesh.fsdp = 1, -1  # FSDP over every device
  c.checkpoint.every_steps = 1000
  c.checkpoint.keep = 3
  c.log.every_steps = 50
  zeroshot = c.evals.zeroshot
  zeroshot.every_steps = 5000
  zeroshot.tasks = ("esc50", "urbansound8k", "clotho")  # skipped where the data is absent
  zeroshot.data_dir = "."
  zeroshot.batch_size = 256
  return schema.smoke(c) if "smoke" in options else c
