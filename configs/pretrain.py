r"""The paper's contrastive pretraining: HTSAT + GPT-2 + 1024-d projections (CLAP 2023).

  python launch/train.py --config configs/pretrain.py --workdir $WORKDIR \
      --config.input.train='/data/shards/*/*.tfrecord'
  ... --config.model.dtype=bfloat16 --config.model.audio.remat=True   # memory/speed options
  ... --config.optim.frozen='^model/caption_encoder/gpt2/'             # frozen text encoder
  ... --config.init.audio_from=$AUDIO_PRETRAIN_WORKDIR                 # HTSAT from audio pretraining
  ... --config.init.clap_from=CLAP_weights_2023.pth                    # fine-tune MS-CLAP
  python launch/train.py --config configs/pretrain.py:smoke             # two tiny steps, any machine

Elizalde, Deshmukh & Wang 2023 give the model, the batch size and the optimizer family, not every
value; those marked "chosen" are ours (CLIP's or HTSAT's where they had one).
"""
from clap_jax import schema
from clap_jax.models import config as model_config


def get_config(arg: str | None = None):
  c = schema.training()
  c.model = model_config.clap_2023()
  c.model.audio.spec_augment = True  # as HTSAT trains (torchlibrosa SpecAugmentation 64/2, 8/2)
  c.model.audio.remat = False
  c.model.text.remat = False
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
  c.optim.frozen = ""  # text encoder trained; '^model/caption_encoder/gpt2/' freezes it

  c.mesh.data, c.mesh.fsdp = 1, -1  # FSDP over every device
  c.checkpoint.every_steps = 1000
  c.checkpoint.keep = 3
  c.log.every_steps = 50
  zeroshot = c.evals.zeroshot
  zeroshot.every_steps = 5000
  zeroshot.tasks = ("esc50", "urbansound8k", "clotho")  # skipped where the data is absent
  zeroshot.data_dir = "."
  zeroshot.batch_size = 256
  return schema.smoke(c) if arg == "smoke" else c
