"""configs/pretrain.py is the CLAP 2023 paper's recipe, field by field; one step of it on the tiny
model; its reduce-on-plateau through the training step; the CLIP-style variant."""
import math
import pathlib

import jax
import numpy as np
import optax
import pytest

from clap_jax import data, text
from clap_jax.data import demo
from clap_jax.train import loop as train, optim
import multidevice
from test_configs import load

PRETRAIN = pathlib.Path(multidevice.REPO) / "configs" / "pretrain.py"
EPOCH = math.ceil(4_600_000 / 1536)  # the paper's 4.6M pairs at its batch


def demo_batch(config) -> dict:
  batches = demo.train_batches(
      batch_size=config.input.global_batch, sample_rate=config.model.audio.sample_rate,
      clip_samples=config.model.audio.clip_samples, tokenizer=text.for_model(config.model),
      seed=0, start_step=0)
  return {k: v for k, v in next(batches).items() if k in ("audio", "input_ids", "attention_mask")}


@pytest.mark.parametrize("arg", [None, "2022", "htsat,bert"])
def test_paper_fields(arg):
  c = load(PRETRAIN, arg)
  assert c.input.global_batch == 1536
  # Adam: no weight decay (optax.adamw with 0 is Adam), PyTorch's moments.
  assert (c.optim.weight_decay, c.optim.b1, c.optim.b2, c.optim.eps) == (0.0, 0.9, 0.999, 1e-8)
  assert c.optim.lr == 1e-3 and c.optim.warmup_steps == 0
  assert c.optim.schedule == "plateau"
  assert (c.optim.plateau.factor, c.optim.plateau.patience) == (0.1, 15)
  assert c.optim.plateau.every_steps == EPOCH  # the plateau is measured once an epoch
  assert c.total_steps == 40 * EPOCH
  assert c.optim.frozen == ""  # both towers trained
  assert c.model.logit_scale_init == pytest.approx(math.log(1 / 0.07))  # msclap's, not "0.007"
  assert c.loss.kind == "softmax"
  assert c.evals.zeroshot.every_steps == EPOCH  # the paper picks the best epoch by zero-shot
  audio = c.model.audio
  assert audio.clip_samples == audio.clip_seconds * audio.sample_rate
  assert audio.clip_seconds == (5 if arg == "2022" else 7)  # CNN14 keeps its own clip


def test_clip_variant_fields():
  c = load(PRETRAIN, "clip")
  assert c.input.global_batch == 1024 and c.total_steps == 180_000
  assert (c.optim.schedule, c.optim.lr, c.optim.warmup_steps) == ("cosine", 1e-4, 2000)
  assert (c.optim.weight_decay, c.optim.b2, c.optim.eps) == (0.2, 0.98, 1e-6)
  assert c.model.audio.clip_seconds == 7 and c.optim.frozen == ""


def test_one_step_of_the_paper_recipe_on_the_tiny_model():
  """Adam's first step moves every parameter with a gradient by lr (m / sqrt(v) = sign(g)):
  the largest change is the paper's 1e-3 (the CLIP recipe would be 0 at its first warmup step)."""
  c = load(PRETRAIN, "smoke")
  c.evals.zeroshot.tasks = ()
  run = train.build(c)
  state = run.init()
  before = jax.tree.map(np.asarray, state["params"])
  np.testing.assert_allclose(before["model"]["logit_scale"], math.log(1 / 0.07), rtol=1e-6)
  state, metrics = run.train_step(state, data.to_global(demo_batch(c), run.batch_sharding))
  assert np.isfinite(float(metrics["loss"]))
  np.testing.assert_allclose(float(metrics["learning_rate"]), 1e-3, rtol=1e-6)
  change = max(float(np.abs(np.asarray(a) - b).max())
               for a, b in zip(jax.tree.leaves(state["params"]), jax.tree.leaves(before)))
  np.testing.assert_allclose(change, 1e-3, rtol=1e-3)


def test_plateau_drops_the_learning_rate_after_15_evaluations_without_improvement():
  """Through the loop's jitted step: the same batch every step, no randomness and a learning
  rate too small to move the loss beyond the plateau's rtol, so no evaluation after the first
  improves. The rate is 1e-10 for 15 steps and 1e-11 from the 16th (the 15th without improvement),
  and the plateau's best value is the first step's loss (the step feeds it the loss)."""
  c = load(PRETRAIN, "smoke")
  c.evals.zeroshot.tasks = ()
  c.optim.lr = 1e-10
  c.optim.plateau.every_steps = 1
  c.total_steps = 17
  c.model.projection_dropout = c.model.text.dropout = c.model.audio.drop_path_rate = 0.0
  c.model.audio.spec_augment = False
  c.augment.mixup_alpha = 0.0
  run = train.build(c)
  state = run.init()
  batch = data.to_global(demo_batch(c), run.batch_sharding)
  rates, losses = [], []
  for _ in range(c.total_steps):
    state, metrics = run.train_step(state, batch)
    rates.append(float(metrics["learning_rate"]))
    losses.append(float(metrics["loss"]))
  np.testing.assert_allclose(rates, [1e-10] * 15 + [1e-11] * 2, rtol=1e-5)
  assert max(losses) - min(losses) < 1e-4 * losses[0]
  is_plateau = lambda x: isinstance(x, optax.contrib.ReduceLROnPlateauState)
  plateau = [x for x in jax.tree.leaves(state["opt_state"], is_leaf=is_plateau) if is_plateau(x)]
  np.testing.assert_allclose(float(plateau[0].best_value), losses[0], rtol=1e-6)
  np.testing.assert_allclose(float(optim.lr_scale(state["opt_state"])), 0.1, rtol=1e-6)

