"""clap_jax.optim against PyTorch's AdamW with clip_grad_norm_, step by step."""
import jax
import ml_collections
import numpy as np
import optax
import pytest
import torch

from clap_jax.train import optim


def _config(**overrides):
  c = ml_collections.ConfigDict(dict(lr=1e-2, warmup_steps=2, end_lr_ratio=0.1, b1=0.9, b2=0.98,
                                     eps=1e-6, weight_decay=0.2, clip_norm=1.0, frozen="",
                                     schedule="cosine",
                                     plateau=dict(factor=0.1, patience=15, every_steps=1,
                                                  rtol=1e-4, atol=0.0, cooldown=0, min_scale=0.0)))
  c.update(overrides)
  return c


def _params(rng):
  return {"model": {"dense": {"kernel": rng.normal(size=(5, 3)).astype(np.float32),
                              "bias": rng.normal(size=(3,)).astype(np.float32)},
                    "frozen": {"scale": rng.normal(size=(4,)).astype(np.float32)}}}


def test_matches_torch_adamw_with_clipping_decay_mask_and_frozen_parameters():
  rng = np.random.default_rng(0)
  config = _config(frozen="^model/frozen/")
  params = _params(rng)
  # Adam does not see a constant factor on every gradient, so clipped and unclipped steps alternate.
  scales = [0.05, 20.0, 0.1, 5.0, 0.02, 50.0]
  steps = len(scales)
  grads = [jax.tree.map(lambda p: (scale * rng.normal(size=p.shape)).astype(np.float32), params)
           for scale in scales]
  tx, schedule = optim.make(config, params, total_steps=steps)

  # PyTorch: decay on matrices only, the frozen tensor outside the optimizer.
  kernel, bias = (torch.tensor(params["model"]["dense"][k]) for k in ("kernel", "bias"))
  kernel.requires_grad_(), bias.requires_grad_()
  reference = torch.optim.AdamW(
      [{"params": [kernel], "weight_decay": config.weight_decay},
       {"params": [bias], "weight_decay": 0.0}],
      lr=config.lr, betas=(config.b1, config.b2), eps=config.eps)

  state, ours = tx.init(params), params
  clipped = []
  for step, grad in enumerate(grads):
    updates, state = tx.update(grad, state, ours, value=0.0)
    ours = optax.apply_updates(ours, updates)
    kernel.grad, bias.grad = (torch.tensor(grad["model"]["dense"][k]) for k in ("kernel", "bias"))
    norm = torch.nn.utils.clip_grad_norm_([kernel, bias], config.clip_norm)
    clipped.append(float(norm) > config.clip_norm)
    for group in reference.param_groups:
      group["lr"] = float(schedule(step))
    reference.step()
  assert clipped == [scale > 1 for scale in scales]
  np.testing.assert_allclose(ours["model"]["dense"]["kernel"], kernel.detach().numpy(), rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(ours["model"]["dense"]["bias"], bias.detach().numpy(), rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_array_equal(ours["model"]["frozen"]["scale"], params["model"]["frozen"]["scale"])
  # The frozen tensor has no say in the clipping norm either (it is part of neither side's norm).
  assert np.abs(ours["model"]["dense"]["kernel"] - params["model"]["dense"]["kernel"]).max() > 1e-3


def test_learning_rate_warms_up_then_decays_to_the_end_ratio():
  config = _config(warmup_steps=10, end_lr_ratio=0.1)
  _, schedule = optim.make(config, _params(np.random.default_rng(0)), total_steps=110)
  assert float(schedule(0)) == 0.0
  np.testing.assert_allclose(float(schedule(5)), 0.5 * config.lr, rtol=1e-6)
  np.testing.assert_allclose(float(schedule(10)), config.lr, rtol=1e-6)
  np.testing.assert_allclose(float(schedule(60)), 0.55 * config.lr, rtol=1e-5)  # cosine midpoint
  np.testing.assert_allclose(float(schedule(110)), 0.1 * config.lr, rtol=1e-6)


def test_freezing_everything_is_refused():
  with pytest.raises(ValueError, match="freezes every parameter"):
    optim.make(_config(frozen="^model/"), _params(np.random.default_rng(0)), total_steps=4)


def _plateau_scales(losses, **plateau):
  """The lr factor after each of `losses` fed to optim.make's 'plateau' transformation."""
  config = _config(schedule="plateau", warmup_steps=0)
  config.plateau.update(plateau)
  params = _params(np.random.default_rng(0))
  tx, schedule = optim.make(config, params, total_steps=len(losses))
  state, scales = tx.init(params), []
  grads = jax.tree.map(np.ones_like, params)
  for step, loss in enumerate(losses):
    _, state = tx.update(grads, state, params, value=np.float32(loss))
    scales.append(float(schedule(step)) * float(optim.lr_scale(state)) / config.lr)
  return scales


def test_plateau_drops_tenfold_at_the_fifteenth_evaluation_without_improvement():
  # Evaluation 1 sets the best; 2..16 are 15 without improvement: the 15th of them (index 15)
  # drops the factor; the count restarts, so the next drop is 15 evaluations later.
  scales = _plateau_scales([1.0] * 31)
  np.testing.assert_allclose(scales, [1.0] * 15 + [0.1] * 15 + [0.01], rtol=1e-6)
  # Any improvement beyond rtol restarts the count; one within rtol does not.
  scales = _plateau_scales([1.0] * 10 + [0.5] + [0.5] * 15)
  np.testing.assert_allclose(scales, [1.0] * 25 + [0.1], rtol=1e-6)
  scales = _plateau_scales([1.0] * 10 + [1.0 - 1e-5] + [1.0] * 5)
  np.testing.assert_allclose(scales, [1.0] * 15 + [0.1], rtol=1e-6)


def test_plateau_evaluation_is_the_mean_loss_of_every_steps_steps():
  # Pairs of steps: means 1.0, then 1.0 (0.5 and 1.5) fifteen times: no improvement.
  losses = [1.0, 1.0] + [0.5, 1.5] * 15
  scales = _plateau_scales(losses, every_steps=2)
  np.testing.assert_allclose(scales, [1.0] * 31 + [0.1], rtol=1e-6)


def test_plateau_schedule_warms_up_to_a_constant():
  config = _config(schedule="plateau", warmup_steps=4)
  _, schedule = optim.make(config, _params(np.random.default_rng(0)), total_steps=100)
  np.testing.assert_allclose([float(schedule(s)) for s in (0, 2, 4, 50, 99)],
                             [0.0, 0.5 * config.lr, config.lr, config.lr, config.lr], rtol=1e-6)
  config = _config(schedule="plateau", warmup_steps=0)
  _, schedule = optim.make(config, _params(np.random.default_rng(0)), total_steps=100)
  np.testing.assert_allclose(float(schedule(0)), config.lr, rtol=1e-7)


def test_unknown_schedule_is_refused():
  with pytest.raises(ValueError, match="optim.schedule 'step'"):
    optim.make(_config(schedule="step"), _params(np.random.default_rng(0)), total_steps=4)
