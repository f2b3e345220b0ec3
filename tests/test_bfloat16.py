"""bfloat16 compute (`model.dtype`; parameters and the front end stay float32) against float32: the
full-size CLAP towers on real ESC-50 clips and the 50 ESC-50 prompts, and a training step.

Random weights (no download in tests): their zero-shot scores lie within a few hundredths of each
other, much closer than a trained model's, so the ranking check is the harsher one here."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from clap_jax import audio, data, schema, text, weights
from clap_jax.eval import tasks
from clap_jax.models import config as model_configs
from clap_jax.models.clap import CLAP
from clap_jax.train import loop as train
from test_train import demo_batch
import trees

pytestmark = pytest.mark.slow


def _unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _towers(config, variables, waveforms, tokens, dtype: str):
  config = config.copy_and_resolve_references()
  config.dtype = dtype
  model = CLAP(config)
  audio_embeddings = jax.jit(lambda v, w: model.apply(v, w, method="encode_audio"))(
      variables, waveforms)
  text_embeddings = jax.jit(lambda v, i, m: model.apply(v, i, m, method="encode_text"))(
      variables, tokens["input_ids"], tokens["attention_mask"])
  assert audio_embeddings.dtype == text_embeddings.dtype == jnp.dtype(dtype)
  return _unit(audio_embeddings), _unit(text_embeddings)


def test_full_towers_in_bfloat16_keep_embeddings_and_zero_shot_ranking(shared_data):
  """Unit embeddings against float32's: audio within 2e-3 per component and at a cosine of at
  least 0.9999 (measured 7e-4, 0.999985), text within 5e-3 and 0.9995 (measured 1.5e-3, 0.99994);
  ESC-50 zero-shot on its 6 clips: the same top-1 class, at least 4 of the top 5, Spearman 0.99
  over the 50 classes (measured: 5 of 5, 0.996 and more). Feeding the front end bfloat16 samples
  (it must stay float32) brings an audio cosine down to 0.99946."""
  config = model_configs.clap_2023()
  variables = weights.random_variables(config, seed=0)
  files = sorted((shared_data / "audio" / "esc50" / "audio").glob("*.wav"))
  assert len(files) == 6
  waveforms = np.stack([audio.repeat_pad(audio.load_audio(f, config.audio.sample_rate),
                                         config.audio.clip_samples) for f in files])
  task = tasks.get("esc50")
  prompts = task.prompts()
  assert len(task.templates) == 1 and len(prompts) == 50
  tokens = text.Tokenizer.load(text.GPT2_FILES)([p for (p,) in prompts])
  full = _towers(config, variables, waveforms, tokens, "float32")
  half = _towers(config, variables, waveforms, tokens, "bfloat16")
  for f, b, (largest, cosine) in zip(full, half, ((2e-3, 0.9999), (5e-3, 0.9995))):
    assert np.abs(f - b).max() < largest
    assert (f * b).sum(axis=-1).min() > cosine
  full_scores, half_scores = (a @ t.T for a, t in (full, half))
  np.testing.assert_array_equal(half_scores.argmax(axis=1), full_scores.argmax(axis=1))
  for f, b in zip(full_scores, half_scores):
    assert len(set(np.argsort(-f)[:5]) & set(np.argsort(-b)[:5])) >= 4
    assert stats.spearmanr(f, b).statistic > 0.99


def test_bfloat16_training_step_is_finite_and_close_to_float32():
  """One step of the smoke model from the same state and batch (randomness off), bfloat16 against
  float32: the loss and the gradient norm within 2% (measured 0.4%, 0.5%), every parameter finite,
  the update (new - initial parameters, all of them) at a cosine of at least 0.999 to float32's
  (measured 0.99975) and no parameter more than half a learning rate away (measured 0.44). Adam's
  eps is 1e-3, as in test_train: near-zero gradients would otherwise become +-lr updates."""
  mesh = jax.make_mesh((1, 1), ("data", "fsdp"), (jax.sharding.AxisType.Auto,) * 2)
  results = {}
  for dtype in ("float32", "bfloat16"):
    config = schema.smoke(schema.training())
    config.model.dtype = dtype
    config.optim.warmup_steps = 0
    config.optim.eps = 1e-3
    config.evals.zeroshot.tasks = ()
    run = train.build(config, mesh)
    initial = jax.tree.map(np.asarray, run.init()["params"])
    state, metrics = run.train_step(run.init(), data.to_global(demo_batch(config),
                                                               run.batch_sharding))
    results[dtype] = jax.tree.map(np.asarray, (state["params"], metrics))
  (full, full_metrics), (half, half_metrics) = results["float32"], results["bfloat16"]
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(half))
  np.testing.assert_allclose(half_metrics["loss"], full_metrics["loss"], rtol=2e-2)
  np.testing.assert_allclose(half_metrics["grad_norm"], full_metrics["grad_norm"], rtol=2e-2)
  assert trees.assert_trees_close(half, full, atol=0.5 * config.optim.lr) > 10
  update = {k: np.concatenate([(a - b).ravel() for _, a, b in trees.leaf_pairs(p, initial)])
            for k, (p, _) in results.items()}
  cosine = update["float32"] @ update["bfloat16"] / (
      np.linalg.norm(update["float32"]) * np.linalg.norm(update["bfloat16"]))
  assert cosine > 0.999, cosine
