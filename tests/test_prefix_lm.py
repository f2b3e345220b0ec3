"""The audio-prefix language-modelling objective against msclap's ClapCaptionModel.forward(...,
labels=...) on a random, perturbed model and real clips with real captions; and gradients only
into the parts `optim.frozen` leaves trained."""
import csv

import jax
import numpy as np
import optax
import pytest

from clap_jax import audio as audio_lib, data, schema, text as text_lib
from clap_jax.convert import clapcap as convert_clapcap
from clap_jax.models import config as model_config
from clap_jax.train import loop as train
from clap_jax.train.objectives import prefix_lm
from reference import torch
from reference_clapcap import build_clapcap_reference, state_dict_numpy
import trees

optax_norm = optax.tree.norm

RATE = 44100
IGNORE = -100  # GPT2LMHeadModel's label of a position without a target


@pytest.fixture(scope="module")
def config():
  """tiny_clapcap with GPT-2's whole vocabulary: real captions use ids past 4096."""
  c = model_config.tiny_clapcap()
  c.decoder.vocab_size = 50257
  return c


@pytest.fixture(scope="module")
def reference(config):
  return build_clapcap_reference(config, seed=0)


@pytest.fixture(scope="module")
def variables(reference, config):
  return convert_clapcap.convert_state_dict(state_dict_numpy(reference), config)


@pytest.fixture(scope="module")
def real_batch(shared_data, config):
  """Three real clips (7 s windows of Clotho recordings, one from ESC-50 repeat-padded) and one
  of each one's real captions, tokenized as for training, cut to 24 columns (all captions fit)."""
  root = shared_data / "audio/clotho"
  with open(root / "captions.csv", newline="") as f:
    rows = list(csv.DictReader(f))[:2]
  paths = [root / "audio" / r["file_name"] for r in rows] + [
      shared_data / "audio/esc50/audio/1-56234-A-9.wav"]
  captions = [rows[0]["caption_2"], rows[1]["caption_5"], "a dog barks twice!"]
  waveforms = np.stack([audio_lib.clip_windows(audio_lib.load_audio(p, RATE),
                                               config.audio.clip_samples)[0] for p in paths])
  tokens = text_lib.Tokenizer.load()(captions)
  assert tokens["attention_mask"].sum(1).max() <= 24 and tokens["attention_mask"].sum(1).min() < 20
  tokens = {k: v[:, :24] for k, v in tokens.items()}
  return {"audio": waveforms, **tokens, "target_mask": tokens["attention_mask"]}


def _objective(model, frozen: str = "", prompt: str = ""):
  c = schema.training("prefix_lm")
  c.model = model
  c.optim.frozen = frozen
  c.input.prompt = prompt
  c.input.kind = "demo"
  c.evals.captioning.tasks = ()
  return c, prefix_lm.PrefixLM(c, mesh=None)


class _TokensAndLabels(torch.Tensor):
  """What ClapCaptionModel.forward's `tokens` has to be for its labels branch to run: it embeds
  `tokens['input_ids']` but concatenates `tokens` itself onto the prefix's dummy labels (a dict,
  as msclap's own callers pass, raises TypeError there). As a tensor it is the labels row."""

  def __getitem__(self, key):
    return self.input_ids if isinstance(key, str) and key == "input_ids" else super().__getitem__(key)


def _msclap_loss(reference, batch, prefix_length: int, with_grads: bool = False):
  """ClapCaptionModel.forward(audios, tokens, mask, labels=...) -> its GPT2LMHeadModel loss.
  Labels are the token ids where `target_mask` is 1, else -100; the prefix's dummy labels (0s in
  msclap, so that its loss would also train P - 1 predictions of '!' inside the prefix) are -100,
  as the prefix is masked out of the objective (and of ClipCap's own training loop)."""
  ids = torch.from_numpy(batch["input_ids"].astype(np.int64))
  labels = torch.where(torch.from_numpy(batch["target_mask"] > 0), ids, IGNORE)
  tokens = labels.as_subclass(_TokensAndLabels)
  tokens.input_ids = ids
  mask = torch.from_numpy(np.concatenate(
      [np.ones((len(ids), prefix_length), np.int64), batch["attention_mask"]], 1))
  reference.get_dummy_token = lambda batch_size, device: torch.full(
      (batch_size, prefix_length), IGNORE, dtype=torch.int64, device=device)
  reference.zero_grad()
  with torch.set_grad_enabled(with_grads):
    loss = reference(torch.from_numpy(batch["audio"]), tokens, mask, labels=True).loss
  if with_grads:
    loss.backward()
  return float(loss)


def _loss(objective, variables, batch):
  params = {"model": variables["params"]}
  return jax.jit(objective.loss)(params, variables["batch_stats"], batch, jax.random.PRNGKey(0))


def test_msclap_forward_with_labels_fails_as_published(reference, real_batch):
  with pytest.raises(TypeError):
    reference(torch.from_numpy(real_batch["audio"][:1]),
              {"input_ids": torch.from_numpy(real_batch["input_ids"][:1].astype(np.int64))},
              labels=True)


@pytest.mark.parametrize("prompt", ["", "this is a sound of"])
def test_loss_equals_msclap(reference, variables, config, real_batch, prompt):
  """Frozen audio encoder (inference mode, as msclap's eval()), dropout off: the same batch gives
  msclap's loss; with a prompt, its tokens are inputs and not targets."""
  model = config.copy_and_resolve_references()
  model.decoder.dropout = 0.0
  _, objective = _objective(model, frozen="^model/clap/", prompt=prompt)
  assert not objective.train_audio
  batch = prefix_lm.with_prompts(real_batch, objective.task_prompts * len(real_batch["audio"]))
  if prompt:
    assert len(objective.task_prompts[0]) == 5
    assert batch["input_ids"].shape[1] == real_batch["input_ids"].shape[1] + 5
    assert batch["target_mask"].sum() == real_batch["target_mask"].sum()
  loss, (metrics, stats) = _loss(objective, variables, batch)
  expected = _msclap_loss(reference, batch, config.mapper.prefix_length)
  assert 1.0 < expected < 20.0
  assert abs(float(loss) - expected) < 1e-4, (float(loss), expected)
  assert 0.0 <= float(metrics["accuracy"]) <= 1.0
  trees.assert_trees_equal(jax.tree.map(np.asarray, stats), variables["batch_stats"])


def test_mapper_gradients_equal_msclap(reference, variables, config, real_batch):
  """The gradient of the loss with respect to the mapper's input Linear and prefix constants."""
  model = config.copy_and_resolve_references()
  model.decoder.dropout = 0.0
  _, objective = _objective(model, frozen="^model/clap/")
  params = {"model": variables["params"]}
  grads = jax.jit(jax.grad(lambda p: objective.loss(p, variables["batch_stats"], real_batch,
                                                    jax.random.PRNGKey(0))[0]))(params)
  mapper = jax.tree.map(np.asarray, grads["model"]["clap_project"])
  _msclap_loss(reference, real_batch, config.mapper.prefix_length, with_grads=True)
  project = reference.clap_project
  for ours, theirs in ((mapper["linear"]["kernel"], project.linear.weight.grad.numpy().T),
                       (mapper["prefix_const"], project.prefix_const.grad.numpy())):
    assert np.abs(theirs).max() > 1e-4
    np.testing.assert_allclose(ours, theirs, atol=1e-6 + 1e-4 * np.abs(theirs).max())


def _moved(got, want) -> bool:
  return any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)))


@pytest.mark.parametrize("frozen, trained", [
    ("^model/(clap|gpt)/", ("clap_project",)),  # the captioning recipe: the mapper alone
    ("^model/gpt/", ("clap", "clap_project")),
])
def test_only_the_configured_parts_train(frozen, trained):
  """One step of the loop's train step: the step's gradient is the loss's gradient in the trained
  parts and exactly zero elsewhere (its norm says so; the loss's own gradient there is not zero),
  frozen parameters stay bit for bit and have no optimizer state."""
  model = model_config.tiny_clapcap()
  model.audio = model_config.small().audio  # 1 s clips: a quick step
  model.decoder.vocab_size = 50257
  model.projection_dropout = model.decoder.dropout = 0.0  # a deterministic gradient
  c, _ = _objective(model, frozen=frozen)
  c.input.global_batch = 2
  c.optim.lr, c.optim.warmup_steps = 1e-2, 0
  mesh = jax.make_mesh((1, 1), ("data", "fsdp"), (jax.sharding.AxisType.Auto,) * 2)
  run = train.build(c, mesh)
  before = jax.tree.map(np.asarray, run.init())
  batch = next(run.objective.batches(0))
  batch = train.trim_text({k: batch[k] for k in run.objective.batch_keys}, c.input.text_lengths)
  after, metrics = run.train_step(run.init(), data.to_global(batch, run.batch_sharding))
  after = jax.tree.map(np.asarray, after)

  grads = jax.jit(jax.grad(lambda p: run.objective.loss(p, before["batch_stats"], batch,
                                                        jax.random.PRNGKey(0))[0]))(before["params"])
  norms = {part: float(optax_norm(grads["model"][part])) for part in ("clap", "clap_project", "gpt")}
  assert min(norms.values()) > 0
  np.testing.assert_allclose(float(metrics["grad_norm"]),
                             np.sqrt(sum(norms[p] ** 2 for p in trained)), rtol=1e-5)
  for part in norms:
    got, want = after["params"]["model"][part], before["params"]["model"][part]
    if part in trained:
      assert _moved(got, want), part
    else:
      trees.assert_trees_equal(got, want)
  # A frozen audio encoder runs in inference mode: its BatchNorm statistics stay.
  assert _moved(after["batch_stats"], before["batch_stats"]) == ("clap" in trained)
  adam_size = 2 * sum(x.size for p in trained for x in jax.tree.leaves(before["params"]["model"][p]))
  assert sum(x.size for x in jax.tree.leaves(after["opt_state"])) < adam_size + 100
