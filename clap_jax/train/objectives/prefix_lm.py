"""Audio-prefix language modelling: clapcap's captioning objective (ClipCap's, msclap's
ClapCaptionModel with `labels`), and the paper's audio pretraining (HTSAT-22) as Pengi trains:
every audio task answered in text (clap_jax.data.answers).

audio -> audio encoder -> L2-normalised embedding -> mapper -> prefix of GPT-2 input embeddings;
then the text tokens (the task's prompt, the answer, padding), teacher forced. The loss is
the cross-entropy of the answer tokens only (`target_mask`), averaged over all answer tokens of
the global batch, as GPT2LMHeadModel averages over its labels that are not -100.

Which parts learn is `optim.frozen` (a regex over names: `model/clap/` the audio encoder and its
projection, `model/clap_project/` the mapper, `model/gpt/` GPT-2): frozen parameters get exact
zero gradients and no update. A frozen audio encoder also runs in inference mode (BatchNorm's
running statistics, no dropout, stochastic depth or SpecAugment), as a fixed feature extractor.
"""
import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from clap_jax import data, sharding, text
from clap_jax.data import answers, demo
from clap_jax.eval import registry
from clap_jax.models import config as model_configs
from clap_jax.models.clapcap import ClapCap
from clap_jax.train import ConfigError

AUDIO_ENCODER = "model/clap/"  # parameter names of the audio encoder and its projection


def answer_loss(logits: jax.Array, input_ids: jax.Array, target_mask: jax.Array
                ) -> tuple[jax.Array, dict]:
  """logits (B, L, V): row j predicts input_ids[:, j]; target_mask (B, L): 1 on answer tokens.
  -> (mean cross-entropy over the answer tokens, {'loss', 'accuracy' (next-token top-1)})."""
  weights = target_mask.astype(jnp.float32)
  count = jnp.maximum(weights.sum(), 1.0)
  ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), input_ids)
  loss = (ce * weights).sum() / count
  accuracy = ((jnp.argmax(logits, -1) == input_ids) * weights).sum() / count
  return loss, {"loss": loss, "accuracy": accuracy}


def with_prompts(batch: dict, prompts) -> dict:
  """Each row's prompt tokens (`prompts`, one id list per row) put before its text: inputs, never
  targets (clap_jax.data.answers.prompted)."""
  if not any(len(p) for p in prompts):
    return batch
  return {**batch, **answers.prompted(prompts, batch["input_ids"], batch["target_mask"])}


def audio_encoder_trained(abstract_params, frozen: str) -> bool:
  """Whether `optim.frozen` leaves any parameter of the audio encoder trained."""
  pattern = re.compile(frozen) if frozen else None
  names = [n for n in sharding.tree_names(abstract_params) if n.startswith(AUDIO_ENCODER)]
  return any(not (pattern and pattern.search(n)) for n in names)


class PrefixLM:
  """Config keys: `model` (a models.config.clapcap-like config), `input` (kind 'demo', caption
  'shards' or 'multitask': `config.tasks` mixed; `input.prompt`: a prompt before every caption of
  'demo' or 'shards', '' for none), `optim.frozen`. Every answer token is a target: the caption or
  class names, then ' <|endoftext|>' (whose first token, ' ', is where msclap's decoding stops)."""
  batch_keys = ("audio", "input_ids", "attention_mask", "target_mask")

  def __init__(self, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh):
    if model_configs.version_of(config.model) != "clapcap":
      raise ConfigError("objective 'prefix_lm' trains a clapcap model (models.config.clapcap())")
    if config.augment.mixup_alpha:
      raise ConfigError("objective 'prefix_lm' takes no mixup (augment.mixup_alpha = 0): a mixed "
                        "clip has no single caption")
    self.config = config
    self.mesh = mesh
    self.model = ClapCap(config.model)
    self.tokenizer = text.for_model(config.model, config.tokenizer)
    if config.input.kind == "multitask":
      self.tasks = answers.tasks_of(config.tasks)
      self.task_prompts = [self.tokenizer.encode(t.prompt) if t.prompt else [] for t in self.tasks]
    else:
      self.tasks = []
      self.task_prompts = [self.tokenizer.encode(config.input.prompt) if config.input.prompt else []]
    abstract = jax.eval_shape(self.init, jax.random.PRNGKey(0))[0]
    self.train_audio = audio_encoder_trained(abstract, config.optim.frozen)

  @staticmethod
  def default_evals() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({"captioning": registry.defaults("captioning"),
                                      "answers": registry.defaults("answers")})

  @staticmethod
  def check_inputs(config: ml_collections.ConfigDict) -> None:
    kind = config.input.kind
    if kind not in ("shards", "demo", "multitask"):
      raise ConfigError(f"input.kind {kind!r}: objective 'prefix_lm' reads 'shards', 'demo' or "
                        "'multitask'")
    pattern = re.compile(config.optim.frozen) if config.optim.frozen else None
    for name, part, keys in (("model/clap/htsat/patch_embed/proj/kernel", "audio encoder",
                              ("clap_from", "audio_from")),
                             ("model/gpt/wte/embedding", "GPT-2", ("clap_from", "decoder_from"))):
      if pattern and pattern.search(name) and not any(config.init[k] for k in keys):
        raise ConfigError(f"optim.frozen freezes the {part}, but neither init."
                          f"{' nor init.'.join(keys)} gives it weights")
    if kind == "shards" and not config.input.train:
      raise ConfigError("input.train is missing: a glob pattern of launch/make_shards.py caption "
                       "shards, e.g. --config.input.train='/data/shards/clotho/*.tfrecord'")
    if kind == "multitask":
      missing = [name for name in sorted(config.tasks) if not config.tasks[name].train]
      if not config.tasks or missing:
        raise ConfigError(f"input.kind 'multitask': config.tasks {missing or '(none)'} without "
                          "train shards (config.tasks.<name>.train)")
      if config.input.prompt:
        raise ConfigError("input.prompt is for 'demo' and 'shards': each of config.tasks has "
                          "its own prompt")

  def batches(self, start_step: int):
    """This process's share of each global batch, from global batch `start_step` on."""
    c, audio = self.config.input, self.config.model.audio
    common = dict(batch_size=c.global_batch, seed=c.seed, start_step=start_step,
                  process_index=jax.process_index(), process_count=jax.process_count())
    if c.kind == "demo":
      stream = demo.train_batches(sample_rate=audio.sample_rate, clip_samples=audio.clip_samples,
                                  tokenizer=self.tokenizer, **common)
    elif c.kind == "multitask":
      sources = [t.source_of("train") for t in self.tasks]
      self._check_context([s.shards for s in sources], "config.tasks.<name>.train")
      stream = map(self._answers, data.multitask_batches(
          sources, clip_samples=audio.clip_samples, shuffle_buffer=c.shuffle_buffer,
          sampling=c.sampling, temperature=c.temperature if c.sampling == "temperature" else None,
          caption_choice=c.caption_choice, **common))
    else:
      self._check_context([c.train.split(",")], "input.train")
      stream = data.train_batches(c.train.split(","), clip_samples=audio.clip_samples,
                                  shuffle_buffer=c.shuffle_buffer, caption_choice=c.caption_choice,
                                  **common)
    vocab = self.config.model.decoder.vocab_size
    for batch in stream:
      if batch["input_ids"].max() >= vocab:  # an embedding lookup past the table gives NaN
        raise ConfigError(f"a caption has token id {batch['input_ids'].max()}, past the "
                          f"decoder's vocabulary of {vocab}")
      if c.kind != "multitask":
        batch = with_prompts({**batch, "target_mask": batch["attention_mask"]},
                             self.task_prompts * len(batch["input_ids"]))
      yield batch

  def _check_context(self, patterns, where: str) -> None:
    for pattern in patterns:
      stored = data.ShardSet.find(pattern).context_length
      if stored != self.tokenizer.context_length:
        raise ConfigError(f"{where}: the shards hold {stored}-token captions; clapcap's GPT-2 "
                          f"tokenizer writes {self.tokenizer.context_length}")

  def _answers(self, batch: dict) -> dict:
    """A mixed batch's rows as prompt + answer tokens: a caption task's caption from the shards, a
    class task's class names tokenized as captions are."""
    ids, mask = batch["input_ids"].copy(), batch["attention_mask"].copy()
    rows = [i for i, t in enumerate(batch["task"]) if self.tasks[t].answer != "caption"]
    if rows:
      texts = [self.tasks[batch["task"][i]].answer_text(batch["label"][i], batch["labels"][i])
               for i in rows]
      tokens = self.tokenizer(texts)
      ids[rows], mask[rows] = tokens["input_ids"], tokens["attention_mask"]
    return {**batch, **answers.prompted([self.task_prompts[t] for t in batch["task"]], ids, mask)}

  def example_batch(self, batch_size: int) -> dict[str, np.ndarray]:
    """Zeros shaped as a training batch (for initialisation and benchmarks)."""
    length = self.tokenizer.context_length + max(len(p) for p in self.task_prompts)
    ones = np.ones((batch_size, length), np.int32)
    return {"audio": np.zeros((batch_size, self.config.model.audio.clip_samples), np.float32),
            "input_ids": np.zeros((batch_size, length), np.int32), "attention_mask": ones,
            "target_mask": ones}

  def init(self, rng: jax.Array) -> tuple[dict, dict]:
    """-> (params {'model'}, batch_stats), freshly initialised."""
    params_rng, dropout_rng = jax.random.split(rng)
    batch = self.example_batch(1)
    variables = self.model.init({"params": params_rng, "dropout": dropout_rng}, batch["audio"],
                                batch["input_ids"][:, :1], method=ClapCap.token_logits)
    return {"model": variables["params"]}, variables["batch_stats"]

  def loss(self, params: dict, batch_stats: dict, batch: dict, rng: jax.Array):
    """Training-mode loss on a global batch -> (loss, (metrics, updated batch_stats))."""
    logits, updates = self.model.apply(
        {"params": params["model"], "batch_stats": batch_stats}, batch["audio"],
        batch["input_ids"], batch["attention_mask"], train=True, train_audio=self.train_audio,
        rngs={"dropout": rng}, mutable=["batch_stats"], method=ClapCap.token_logits)
    loss, metrics = answer_loss(logits, batch["input_ids"], batch["target_mask"])
    return loss, (metrics, updates.get("batch_stats", batch_stats))

  def constrain(self, params: dict) -> dict:
    return params  # no parameter has a bounded range here
