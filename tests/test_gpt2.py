"""GPT-2 text tower and its converter against transformers' GPT2Model (the model msclap wraps)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clap_jax.convert.gpt2 import gpt2_params
from clap_jax.convert.tensors import ConversionError, StateReader
from clap_jax.models import config as model_config
from clap_jax.models.gpt2 import GPT2
from clap_jax.text import Tokenizer, pooling_index
from reference import gpt2_config, torch, transformers
import trees

PREFIX = "caption_encoder.base."
CAPTIONS = [
    "A dog barks loudly while cars pass by on a wet street.",
    "Wow! Someone claps!! and then the crowd cheers !",
    "!",
    "",
    "Rain falls on a tin roof as thunder rumbles in the distance, growing closer.",
    "Birds chirp.",
]


def build_torch_gpt2(config, seed=0):
  """A random GPT2Model with every parameter perturbed (LayerNorms away from 1/0), eval mode."""
  torch.manual_seed(seed)
  model = transformers.GPT2Model(gpt2_config(config))
  with torch.no_grad():
    for p in model.parameters():
      p.add_(torch.randn_like(p) * 0.05)
  return model.eval()


def state_dict(model):
  return {PREFIX + k: v.detach().numpy() for k, v in model.state_dict().items()}


def convert(state, text_config):
  reader = StateReader(state)
  params = gpt2_params(reader, PREFIX, text_config)
  reader.raise_if_bad()
  return params


@pytest.fixture(scope="module")
def tokens(gpt2_tokenizer_dir):
  return Tokenizer.load(gpt2_tokenizer_dir)(CAPTIONS)


@pytest.fixture(scope="module")
def tiny():
  config = model_config.tiny()
  model = build_torch_gpt2(config)
  return config, model, state_dict(model)


def max_errors(config, torch_model, state, tokens):
  """Max abs error over the non-padded positions and over the pooled positions (both modes)."""
  ids, mask = tokens["input_ids"], tokens["attention_mask"]
  ours = jax.jit(GPT2(config.text).apply)({"params": convert(state, config.text)}, ids, mask)
  with torch.no_grad():
    ref = torch_model(input_ids=torch.tensor(ids, dtype=torch.long),
                      attention_mask=torch.tensor(mask, dtype=torch.long))[0].numpy()
  assert ours.shape == ref.shape == (len(ids), 77, config.text.n_embd)
  err = np.abs(np.asarray(ours) - ref)
  rows = np.arange(len(ids))
  pooled = max(err[rows, np.asarray(pooling_index(ids, mask, mode))].max()
               for mode in ("msclap", "last_token"))
  return err[mask.astype(bool)].max(), pooled


def test_matches_transformers_tiny(tiny, tokens):
  config, model, state = tiny
  # The '!' captions pool before <|endoftext|> in msclap mode: both positions are checked.
  assert (np.asarray(pooling_index(tokens["input_ids"], tokens["attention_mask"], "msclap"))
          != np.asarray(pooling_index(tokens["input_ids"], tokens["attention_mask"], "last_token"))).any()
  unpadded, pooled = max_errors(config, model, state, tokens)
  assert unpadded < 2e-5 and pooled < 2e-5, (unpadded, pooled)  # measured 2e-6


@pytest.mark.slow
def test_matches_transformers_full_size(tokens):
  config = model_config.clap_2023()
  model = build_torch_gpt2(config)
  unpadded, pooled = max_errors(config, model, state_dict(model), tokens)
  assert unpadded < 5e-5 and pooled < 5e-5, (unpadded, pooled)  # measured 7e-6


def test_converter_rejects_missing_key(tiny):
  config, _, state = tiny
  state = dict(state)
  del state[PREFIX + "h.1.mlp.c_fc.bias"]
  with pytest.raises(ConversionError, match=r"missing parameters: caption_encoder\.base\.h\.1\.mlp\.c_fc\.bias"):
    convert(state, config.text)


def test_converter_rejects_unused_key(tiny):
  config, _, state = tiny
  with pytest.raises(ConversionError, match=r"unused keys: caption_encoder\.base\.h\.0\.attn\.q_attn\.weight"):
    convert({**state, PREFIX + "h.0.attn.q_attn.weight": np.zeros((64, 64))}, config.text)


def test_converter_rejects_wrong_shape(tiny):
  config, _, state = tiny
  key = PREFIX + "h.0.attn.c_attn.weight"
  transposed = {**state, key: state[key].T}  # as if it had been stored (out, in)
  with pytest.raises(ConversionError, match=r"h\.0\.attn\.c_attn\.weight: shape \(192, 64\), expected \(64, 192\)"):
    convert(transposed, config.text)


@pytest.mark.parametrize("mask_dtype", [bool, np.uint8])
def test_converter_tolerates_old_transformers_buffers(tiny, mask_dtype):
  config, _, state = tiny
  n = config.text.n_positions
  causal = np.tril(np.ones((n, n), mask_dtype))[None, None]
  old = dict(state, **{PREFIX + "position_ids": np.arange(n)[None]})
  for i in range(config.text.n_layer):
    old[f"{PREFIX}h.{i}.attn.bias"] = causal
    old[f"{PREFIX}h.{i}.attn.masked_bias"] = np.array(-1e4, np.float32)
  trees.assert_trees_equal(convert(old, config.text), convert(state, config.text))


def test_converter_rejects_a_wrong_causal_mask(tiny):
  config, _, state = tiny
  n = config.text.n_positions
  with pytest.raises(ConversionError, match=r"h\.0\.attn\.bias: buffer differs"):
    convert({**state, PREFIX + "h.0.attn.bias": np.ones((1, 1, n, n), bool)}, config.text)


def test_dropout_only_in_train_mode(tiny, tokens):
  config, _, state = tiny
  params = {"params": convert(state, config.text)}
  ids, mask = tokens["input_ids"], tokens["attention_mask"]
  model = GPT2(config.text)
  train = jax.jit(lambda key: model.apply(params, ids, mask, train=True, rngs={"dropout": key}))
  run = lambda seed: train(jax.random.key(seed))
  eval_out = jax.jit(model.apply)(params, ids, mask)
  assert not np.allclose(run(0), eval_out, atol=1e-3)
  assert not np.allclose(run(0), run(1), atol=1e-3)
  np.testing.assert_array_equal(run(0), run(0))
  with pytest.raises(Exception, match="dropout"):  # train mode needs a 'dropout' rng
    model.apply(params, ids, mask, train=True)


def test_remat_same_params_outputs_and_gradients(tiny, tokens):
  config, _, state = tiny
  params = convert(state, config.text)
  ids, mask = tokens["input_ids"], tokens["attention_mask"]
  rngs = {"dropout": jax.random.key(0)}

  def loss_and_grad(model):
    init = jax.eval_shape(model.init, jax.random.key(1), ids, mask)
    assert jax.tree.structure(init["params"]) == jax.tree.structure(params)
    loss = lambda p: jnp.sum(model.apply({"params": p}, ids, mask, train=True, rngs=rngs) ** 2)
    return jax.jit(jax.value_and_grad(loss))(params)

  (loss, grad), (remat_loss, remat_grad) = loss_and_grad(GPT2(config.text)), loss_and_grad(
      GPT2(config.text, remat=True))
  np.testing.assert_allclose(remat_loss, loss, rtol=1e-6)
  trees.assert_trees_close(remat_grad, grad, rtol=1e-5, atol=1e-5)


def test_bfloat16_compute_keeps_float32_params(tiny, tokens):
  config, _, state = tiny
  ids, mask = tokens["input_ids"], tokens["attention_mask"]
  model = GPT2(config.text, dtype=jnp.bfloat16)
  init = jax.eval_shape(model.init, jax.random.key(0), ids, mask)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(init))
  params = {"params": convert(state, config.text)}
  out = jax.jit(model.apply)(params, ids, mask)
  assert out.dtype == jnp.bfloat16
  full = jax.jit(GPT2(config.text).apply)(params, ids, mask)
  valid = mask.astype(bool)
  assert np.abs(np.asarray(out, np.float32) - np.asarray(full))[valid].max() < 0.1


def test_rejects_more_tokens_than_positions(tiny):
  config, _, _ = tiny
  ids = jnp.zeros((1, config.text.n_positions + 1), jnp.int32)
  with pytest.raises(ValueError, match="positions"):
    GPT2(config.text).init(jax.random.key(0), ids, jnp.ones_like(ids))
