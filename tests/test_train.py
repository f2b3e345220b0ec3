"""The train step: one device equals eight, accumulation, frozen parameters, pretrained
initialisation, the loop's stop on a non-finite loss, and the sigmoid loss's bias through the loop."""
import shutil

import jax
import numpy as np
import pytest

from clap_jax import convert, data, schema, text
from clap_jax.data import demo as demo_data
from clap_jax.train import checkpoint, loop as train, optim, step as step_lib
import multidevice
import trees


def small_config(batch: int = 8):
  """The smoke config: every source of randomness switched on (dropout, stochastic depth,
  SpecAugment, mixup), so that their per-device draws are checked too."""
  c = schema.smoke(schema.training())
  c.input.global_batch = batch
  c.model.text.dropout = 0.1
  c.model.projection_dropout = 0.5
  c.model.audio.drop_path_rate = 0.1
  c.model.audio.spec_augment = True
  c.augment.mixup_alpha = 0.5
  c.optim.lr = 1e-3
  c.optim.warmup_steps = 0  # (warmup starts at a learning rate of 0)
  c.evals.zeroshot.tasks = ()
  return c


def demo_batch(config, step: int = 0) -> dict:
  tokenizer = text.for_model(config.model, config.tokenizer)
  batches = demo_data.train_batches(
      batch_size=config.input.global_batch, sample_rate=config.model.audio.sample_rate,
      clip_samples=config.model.audio.clip_samples, tokenizer=tokenizer, seed=0, start_step=step)
  return {k: v for k, v in next(batches).items() if k in ("audio", "input_ids", "attention_mask")}


def run_steps(config, mesh, steps: int = 2):
  """-> (losses, params as numpy, the state's partition specs) after `steps` steps on `mesh`."""
  run = train.build(config, mesh)
  state = run.init()
  losses = []
  for i in range(steps):
    state, metrics = run.train_step(state, data.to_global(demo_batch(config, i), run.batch_sharding))
    losses.append(float(metrics["loss"]))
  specs = [str(s.spec) for s in jax.tree.leaves(run.state_shardings)]
  return losses, jax.tree.map(np.asarray, state["params"]), specs


def test_eight_devices_equal_one():
  """Two steps on a (data=2, fsdp=4) mesh with every array that divides split over fsdp, against
  one device. Tolerance: loss 1e-5 relative, parameters 1e-6 absolute (lr 1e-3; the reductions
  are ordered differently). Adam's eps is raised to 1e-3 for the comparison: Adam divides by
  |g| + eps, so with the default 1e-8 a gradient that is zero in exact arithmetic (attention's
  key bias) but 1e-10 in float32 becomes an update of up to +-lr in either run."""
  result = multidevice.run("""
    import json
    import jax, numpy as np
    from clap_jax import sharding
    import trees
    from test_train import small_config, run_steps
    config = small_config(batch=16)  # 2 examples per device: mixup pairs stay on one device
    config.optim.eps = 1e-3
    config.sharding.min_size = 0
    one = run_steps(config, sharding.make_mesh(config.mesh, devices=jax.devices()[:1]))
    config.mesh.data, config.mesh.fsdp = 2, 4
    eight = run_steps(config, sharding.make_mesh(config.mesh))
    pairs = trees.leaf_pairs(one[1], eight[1])
    diff = max(float(np.max(np.abs(a - b))) for _, a, b in pairs)
    print(json.dumps({"one": one[0], "eight": eight[0], "param_diff": diff, "leaves": len(pairs),
                      "sharded": sum("fsdp" in s for s in eight[2])}))
  """, devices=8)
  assert result["sharded"] > 10 and result["leaves"] > 10, result  # FSDP really split the state
  np.testing.assert_allclose(result["eight"], result["one"], rtol=1e-5)
  assert result["param_diff"] < 1e-6, result


class _MeanOfMicrobatchLosses:
  """The loss that accumulation over `count` microbatches stands for, on the whole batch at once:
  the mean of the objective's loss on examples j, j + count, ... for each j, with the batch_stats
  averaged over those microbatches (the BatchNorm contract of clap_jax.train.step)."""

  def __init__(self, objective, count: int):
    self.objective, self.count, self.mesh = objective, count, objective.mesh
    self.constrain = objective.constrain

  def loss(self, params, batch_stats, batch, rng):
    outs = [self.objective.loss(params, batch_stats, {k: v[j::self.count] for k, v in batch.items()},
                                jax.random.fold_in(rng, j)) for j in range(self.count)]
    mean = lambda *xs: sum(xs) / self.count
    loss = mean(*(o[0] for o in outs))
    metrics, stats = jax.tree.map(mean, *(o[1] for o in outs))
    return loss, (metrics, stats)


def accumulation_steps(config, accum_steps: int):
  """-> ((state, metrics) after one accumulated step, (state, metrics) after one step of the
  mean of the microbatch losses), from the same initial state and the same global batch."""
  mesh = jax.make_mesh((1, 1), ("data", "fsdp"), (jax.sharding.AxisType.Auto,) * 2)
  config.optim.accum_steps = accum_steps
  run = train.build(config, mesh)
  batch = data.to_global(demo_batch(config), run.batch_sharding)
  got = run.train_step(run.init(), batch)
  abstract_params = run.abstract_state["params"]
  tx, schedule = optim.make(config.optim, abstract_params, config.total_steps)
  reference = jax.jit(step_lib.make_train_step(
      _MeanOfMicrobatchLosses(run.objective, accum_steps), tx, schedule, 1,
      optim.trained_mask(abstract_params, config.optim.frozen)))
  want = reference(run.init(), batch)
  return jax.tree.map(np.asarray, got), jax.tree.map(np.asarray, want)


def test_accumulation_is_the_step_of_the_mean_microbatch_loss():
  """Two different microbatches of four clips (randomness off: dropout, mixup, SpecAugment):
  parameters, Adam's moments and BatchNorm's averages as one step on the whole batch of the mean
  of the microbatch losses. Summing the gradients (Adam's moments twice, four times as large),
  stepping on one microbatch, or updating the averages once per microbatch fails it. Clipping is
  off: clipped to a norm of 1, the sum and the mean are the same gradient. Adam's eps is 1e-3 as
  in test_eight_devices_equal_one (gradients zero in exact arithmetic)."""
  config = schema.smoke(schema.training())
  config.input.global_batch = 8
  config.optim.warmup_steps = 0
  config.optim.eps = 1e-3
  config.optim.clip_norm = 1e9
  config.evals.zeroshot.tasks = ()
  (got, got_metrics), (want, want_metrics) = accumulation_steps(config, accum_steps=2)
  batch = demo_batch(config)
  assert not np.allclose(batch["audio"][0::2], batch["audio"][1::2])  # the microbatches differ
  assert got["step"] == want["step"] == 1
  assert trees.assert_trees_close(got["params"], want["params"], atol=1e-6) > 10
  assert trees.assert_trees_close(got["opt_state"], want["opt_state"], rtol=1e-4, atol=1e-9,
                                  scaled_atol=1e-5) > 10
  assert trees.assert_trees_close(got["batch_stats"], want["batch_stats"], rtol=1e-5) >= 2
  # The step did move the averages (else the last check is empty of meaning).
  assert not np.allclose(got["batch_stats"]["audio_encoder"]["htsat"]["bn0"]["mean"], 0)
  np.testing.assert_allclose(got_metrics["grad_norm"], want_metrics["grad_norm"], rtol=1e-5)
  np.testing.assert_allclose(got_metrics["loss"], want_metrics["loss"], rtol=1e-6)


def test_frozen_text_encoder():
  config = small_config(batch=4)
  config.optim.frozen = "^model/caption_encoder/gpt2/"
  mesh = jax.make_mesh((1, 1), ("data", "fsdp"), (jax.sharding.AxisType.Auto,) * 2)
  run = train.build(config, mesh)
  before = jax.tree.map(np.asarray, run.init()["params"]["model"])
  after, _ = run.train_step(run.init(), data.to_global(demo_batch(config), run.batch_sharding))
  after = jax.tree.map(np.asarray, after["params"]["model"])
  trees.assert_trees_equal(after["caption_encoder"]["gpt2"], before["caption_encoder"]["gpt2"])
  assert not np.allclose(after["audio_encoder"]["htsat"]["patch_embed"]["proj"]["kernel"],
                         before["audio_encoder"]["htsat"]["patch_embed"]["proj"]["kernel"])
  # The frozen parameters have no optimizer state.
  assert sum(x.size for x in jax.tree.leaves(run.abstract_state["opt_state"])) < \
      sum(x.size for x in jax.tree.leaves(before))


def _model_variables(state):
  return jax.tree.map(np.asarray, {"params": state["params"]["model"],
                                   "batch_stats": state["batch_stats"]})


def test_init_from_converted_and_audio_only(tmp_path):
  config = small_config(batch=4)
  config.total_steps = 1  # one step at a learning rate of 0: the parameters stay as initialised
  config.optim.lr = 0.0
  other = config.copy_and_resolve_references()
  other.seed = 1
  mesh = jax.make_mesh((1, 1), ("data", "fsdp"), (jax.sharding.AxisType.Auto,) * 2)
  source = _model_variables(train.build(other, mesh).init())
  fresh = _model_variables(train.build(config, mesh).init())
  convert.save_variables(source, tmp_path / "converted", config.model)

  config.init.clap_from = str(tmp_path / "converted")
  train.main(config, tmp_path / "whole")
  _, whole = checkpoint.load_inference_variables(tmp_path / "whole")
  trees.assert_trees_equal(whole["params"], source["params"])

  config.init.clap_from = ""
  config.init.audio_from = str(tmp_path / "whole")  # a training workdir
  train.main(config, tmp_path / "audio")
  _, audio = checkpoint.load_inference_variables(tmp_path / "audio")
  for part, want in (("htsat", source), ("projection", fresh)):
    trees.assert_trees_equal(audio["params"]["audio_encoder"][part],
                             want["params"]["audio_encoder"][part])
  trees.assert_trees_equal(audio["params"]["caption_encoder"], fresh["params"]["caption_encoder"])


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
  config = small_config(batch=4)
  config.total_steps = 6
  config.optim.lr = 1e38  # the first update blows the parameters up
  config.optim.warmup_steps = 0
  config.checkpoint.every_steps = 1
  with pytest.raises(train.NonFiniteLoss, match=r"at step (\d).*last good checkpoint is step"):
    train.main(config, tmp_path)
  steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
  assert steps and max(steps) < 6
  checkpoint.load_inference_variables(tmp_path)  # the latest is complete and readable


def _saved_state(workdir, config, step: int) -> dict:
  """The whole train state of `step` (optimizer and loss parameters included), as numpy."""
  run = train.build(config)
  ckpt = checkpoint.Checkpointer(workdir, config.checkpoint)
  state, _ = ckpt.restore(step, run.abstract_state, run.state_shardings)
  ckpt.close()
  return jax.tree.map(np.asarray, state)


def test_sigmoid_loss_trains_saves_and_resumes_its_bias(tmp_path, capsys):
  """SigLIP's loss through the loop: its bias is trained (it moves, and Adam holds moments for
  it), saved with the state, and restored on resume: a run resumed after step 1 ends as the
  uninterrupted one, bias and optimizer state included (1e-6, as tests/test_resume.py)."""
  config = small_config(batch=4)
  config.loss.kind = "sigmoid"
  config.total_steps = 2
  config.checkpoint.every_steps = 1
  train.main(config, tmp_path / "straight")
  shutil.copytree(tmp_path / "straight" / "checkpoints", tmp_path / "resumed" / "checkpoints")
  shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "2")  # as if stopped after step 1
  capsys.readouterr()
  train.main(config, tmp_path / "resumed")
  assert "resuming at step 1 of 2" in capsys.readouterr().out  # (a fresh start ends the same)
  want = _saved_state(tmp_path / "straight", config, 2)
  got = _saved_state(tmp_path / "resumed", config, 2)
  first = _saved_state(tmp_path / "straight", config, 1)
  bias = [float(s["params"]["loss"]["bias"]) for s in (first, want)]
  assert config.loss.sigmoid_bias_init != bias[0] != bias[1], bias
  moments = [v for p, v in jax.tree_util.tree_leaves_with_path(want["opt_state"])
             if "['loss']['bias']" in jax.tree_util.keystr(p)]
  assert len(moments) == 2 and all(np.all(m != 0) for m in moments), moments  # mu and nu
  assert trees.assert_trees_close(got, want, atol=1e-6) > 10
