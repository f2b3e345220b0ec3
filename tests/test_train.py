"""The train step: one device equals eight, accumulation, frozen parameters, pretrained
initialisation, and the loop's stop on a non-finite loss."""
import jax
import numpy as np
import pytest

from clap_jax import convert, data, schema
from clap_jax.data import demo as demo_data
from clap_jax.train import loop as train
from clap_jax.text import Tokenizer
import multidevice


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
  tokenizer = Tokenizer.load(config.tokenizer)
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
    from test_train import small_config, run_steps
    config = small_config(batch=16)  # 2 examples per device: mixup pairs stay on one device
    config.optim.eps = 1e-3
    config.sharding.min_size = 0
    one = run_steps(config, sharding.make_mesh(config.mesh, devices=jax.devices()[:1]))
    config.mesh.data, config.mesh.fsdp = 2, 4
    eight = run_steps(config, sharding.make_mesh(config.mesh))
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(one[1]),
                                                            jax.tree.leaves(eight[1])))
    print(json.dumps({"one": one[0], "eight": eight[0], "param_diff": diff,
                      "sharded": sum("fsdp" in s for s in eight[2])}))
  """, devices=8)
  assert result["sharded"] > 10, result  # FSDP really split the state
  np.testing.assert_allclose(result["eight"], result["one"], rtol=1e-5)
  assert result["param_diff"] < 1e-6, result


def test_accumulation_averages_microbatch_gradients():
  """Two identical microbatches must give the step of one (randomness off: dropout, mixup)."""
  config = schema.smoke(schema.training())
  config.input.global_batch = 4
  config.optim.warmup_steps = 0
  config.evals.zeroshot.tasks = ()
  half = demo_batch(config)
  mesh = jax.make_mesh((1, 1), ("data", "fsdp"), (jax.sharding.AxisType.Auto,) * 2)
  run = train.build(config, mesh)
  want, _ = run.train_step(run.init(), data.to_global(half, run.batch_sharding))
  config.optim.accum_steps = 2
  run = train.build(config, mesh)
  # Microbatch j takes rows j, j + 2, ...: interleave the batch with itself.
  doubled = {k: np.repeat(v, 2, axis=0) for k, v in half.items()}
  got, _ = run.train_step(run.init(), data.to_global(doubled, run.batch_sharding))
  for a, b in zip(jax.tree.leaves(got["params"]), jax.tree.leaves(want["params"])):
    np.testing.assert_allclose(a, b, atol=1e-6)
  assert got["step"] == 1


def test_frozen_text_encoder():
  config = small_config(batch=4)
  config.optim.frozen = "^model/caption_encoder/gpt2/"
  mesh = jax.make_mesh((1, 1), ("data", "fsdp"), (jax.sharding.AxisType.Auto,) * 2)
  run = train.build(config, mesh)
  before = jax.tree.map(np.asarray, run.init()["params"]["model"])
  after, _ = run.train_step(run.init(), data.to_global(demo_batch(config), run.batch_sharding))
  after = jax.tree.map(np.asarray, after["params"]["model"])
  for a, b in zip(jax.tree.leaves(after["caption_encoder"]["gpt2"]),
                  jax.tree.leaves(before["caption_encoder"]["gpt2"])):
    np.testing.assert_array_equal(a, b)
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
  from clap_jax.train import checkpoint
  _, whole = checkpoint.load_inference_variables(tmp_path / "whole")
  for a, b in zip(jax.tree.leaves(whole["params"]), jax.tree.leaves(source["params"])):
    np.testing.assert_array_equal(a, b)

  config.init.clap_from = ""
  config.init.audio_from = str(tmp_path / "whole")  # a training workdir
  train.main(config, tmp_path / "audio")
  _, audio = checkpoint.load_inference_variables(tmp_path / "audio")
  for part, want in (("htsat", source), ("projection", fresh)):
    for a, b in zip(jax.tree.leaves(audio["params"]["audio_encoder"][part]),
                    jax.tree.leaves(want["params"]["audio_encoder"][part])):
      np.testing.assert_array_equal(a, b)
  for a, b in zip(jax.tree.leaves(audio["params"]["caption_encoder"]),
                  jax.tree.leaves(fresh["params"]["caption_encoder"])):
    np.testing.assert_array_equal(a, b)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
  config = small_config(batch=4)
  config.total_steps = 6
  config.optim.lr = 1e38  # the first update blows the parameters up
  config.optim.warmup_steps = 0
  config.checkpoint.every_steps = 1
  with pytest.raises(train.NonFiniteLoss, match=r"at step (\d).*last good checkpoint is step"):
    train.main(config, tmp_path)
  from clap_jax.train import checkpoint
  steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
  assert steps and max(steps) < 6
  checkpoint.load_inference_variables(tmp_path)  # the latest is complete and readable
