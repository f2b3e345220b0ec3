"""CLAP's objective: audio and caption embeddings matched across the global batch."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from clap_jax import data, sharding, text
from clap_jax.data import demo
from clap_jax.eval import registry
from clap_jax.models.clap import CLAP
from clap_jax.train import ConfigError, losses


class Contrastive:
  """Config keys: `model` (a clap_jax.models.config), `loss.kind` ('softmax' | 'sigmoid'),
  `loss.max_log_scale` (CLIP clamps the temperature's log at log 100), `loss.sigmoid_bias_init`,
  `augment.mixup_alpha` (0: off). SpecAugment is the model's own (`model.audio.spec_augment`)."""
  batch_keys = ("audio", "input_ids", "attention_mask")

  def __init__(self, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh):
    self.config = config
    self.mesh = mesh
    self.model = CLAP(config.model)

  @staticmethod
  def default_evals() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({"zeroshot": registry.defaults("zeroshot")})

  @staticmethod
  def check_inputs(config: ml_collections.ConfigDict) -> None:
    kind = config.input.kind
    if kind not in ("shards", "demo"):
      raise ConfigError(f"input.kind {kind!r}: objective 'contrastive' reads 'shards' or 'demo'")
    if kind == "shards" and not config.input.train:
      raise ConfigError("input.train is missing: a glob pattern of launch/make_shards.py shards, "
                       "e.g. --config.input.train='/data/shards/*/*.tfrecord'")

  def batches(self, start_step: int):
    """This process's share of each global batch, from global batch `start_step` on."""
    c, model = self.config.input, self.config.model
    common = dict(batch_size=c.global_batch, seed=c.seed, start_step=start_step,
                  process_index=jax.process_index(), process_count=jax.process_count())
    if c.kind == "demo":
      return demo.train_batches(
          sample_rate=model.audio.sample_rate, clip_samples=model.audio.clip_samples,
          tokenizer=text.for_model(model, self.config.tokenizer), **common)
    stored = data.ShardSet.find(c.train.split(",")).context_length
    if stored != model.text.context_length:
      raise ConfigError(f"input.train: the shards hold {stored}-token captions, the model's text "
                        f"tower takes {model.text.context_length}: write them with its tokenizer "
                        "(launch/make_shards.py --tokenizer)")
    return data.train_batches(c.train.split(","), clip_samples=model.audio.clip_samples,
                              shuffle_buffer=c.shuffle_buffer, caption_choice=c.caption_choice,
                              **common)

  def example_batch(self, batch_size: int) -> dict[str, np.ndarray]:
    """Zeros shaped as a training batch (for initialisation and benchmarks)."""
    length = self.config.model.text.context_length
    return {"audio": np.zeros((batch_size, self.config.model.audio.clip_samples), np.float32),
            "input_ids": np.zeros((batch_size, length), np.int32),
            "attention_mask": np.ones((batch_size, length), np.int32)}

  def init(self, rng: jax.Array) -> tuple[dict, dict]:
    """-> (params {'model', ['loss']}, batch_stats), freshly initialised."""
    params_rng, dropout_rng = jax.random.split(rng)
    batch = self.example_batch(1)
    variables = self.model.init({"params": params_rng, "dropout": dropout_rng}, batch["audio"],
                                batch["input_ids"], batch["attention_mask"])
    params = {"model": variables["params"]}
    if self.config.loss.kind == "sigmoid":
      params["loss"] = {"bias": jnp.asarray(self.config.loss.sigmoid_bias_init, jnp.float32)}
    return params, variables["batch_stats"]

  def loss(self, params: dict, batch_stats: dict, batch: dict, rng: jax.Array):
    """Training-mode loss on a global batch -> (loss, (metrics, updated batch_stats))."""
    mixup_rng, dropout_rng = jax.random.split(rng)
    audio, mix = batch["audio"], None
    if self.config.augment.mixup_alpha > 0:
      audio, mix = losses.mix_pairs(mixup_rng, audio, self.config.augment.mixup_alpha)
    (audio_embeddings, text_embeddings, log_scale), updates = self.model.apply(
        {"params": params["model"], "batch_stats": batch_stats}, audio, batch["input_ids"],
        batch["attention_mask"], train=True, rngs={"dropout": dropout_rng}, mutable=["batch_stats"])
    bias = params["loss"]["bias"] if "loss" in params else 0.0
    loss, metrics = losses.contrastive_loss(
        audio_embeddings, text_embeddings, log_scale, bias, mix, kind=self.config.loss.kind,
        mesh=self.mesh, axes=sharding.BATCH_AXES)
    return loss, (metrics, updates["batch_stats"])

  def constrain(self, params: dict) -> dict:
    """CLIP's clamp of the learned temperature: 0 <= log_scale <= max_log_scale."""
    model = dict(params["model"])
    model["logit_scale"] = jnp.clip(model["logit_scale"], 0.0, self.config.loss.max_log_scale)
    return {**params, "model": model}
