"""clap_jax.decoding against msclap's CLAPWrapper._generate_beam, and GPT-2's cache against its
full forward pass.

The search is checked on a toy language model whose next-token logits depend on the last token and
on the sum of all inputs (so a beam that is not carried with its own cache gives other logits),
the stop token's growing with the number of inputs (so beams stop at varied lengths): msclap's
loop runs it in torch, ours as a step function whose cache is that sum and count.
"""
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clap_jax import decoding
from clap_jax.convert import clapcap as convert_clapcap
from clap_jax.models import config as model_config
from clap_jax.models import gpt2
from clap_jax.models.clapcap import ClapCap
from reference import torch
from reference_clapcap import STOP_TOKEN, _import_wrapper

VOCAB = 256  # GPT-2's first tokens: ' ' (220), msclap's stop token, is one of them
HISTORY = 0.02  # weight of the running sum of inputs in the toy model's logits
RAMP = 0.3  # the stop token's logit grows by this per input


def toy_table(seed=0):
  rng = np.random.default_rng(seed)
  return rng.standard_normal((VOCAB, VOCAB)).astype(np.float32) * 3


STOP = np.eye(VOCAB, dtype=np.float32)[STOP_TOKEN]


def _toy_logits(x, history, count, table, stop):
  """Both sides' model: x (..., VOCAB) the last input, history the sum of all `count` inputs,
  stop the stop token's one-hot vector (in the side's array type)."""
  return (x + HISTORY * history) @ table + RAMP * count[..., None] * stop


class ToyGPT(torch.nn.Module):
  """What _generate_beam uses of GPT2LMHeadModel: `transformer.wte` and `(inputs_embeds=).logits`."""

  def __init__(self, table):
    super().__init__()
    self.transformer = types.SimpleNamespace(wte=torch.nn.Embedding.from_pretrained(torch.eye(VOCAB)))
    self.table = torch.nn.Parameter(torch.from_numpy(table))

  def forward(self, inputs_embeds):
    history = torch.cumsum(inputs_embeds, dim=1)
    count = torch.arange(1, inputs_embeds.shape[1] + 1, dtype=torch.float32).expand(history.shape[:2])
    return types.SimpleNamespace(logits=_toy_logits(inputs_embeds, history, count, self.table, torch.from_numpy(STOP)))


class Tokens:
  """The tokenizer calls of _generate_beam, on ids."""

  def encode(self, text):
    assert text == " <|endoftext|>"
    return [STOP_TOKEN, 50256]

  def decode(self, ids):
    return tuple(int(i) for i in ids)


def msclap_beams(table, prompt, beam_size, max_length, temperature):
  """_generate_beam on one (P, VOCAB) prompt -> token tuples, best first."""
  w = object.__new__(_import_wrapper().CLAPWrapper)
  gpt = ToyGPT(table)
  w.clapcap = types.SimpleNamespace(gpt=gpt, eval=lambda: None, parameters=gpt.parameters)
  w.tokenizer = Tokens()
  return w._generate_beam(beam_size=beam_size, embed=torch.from_numpy(prompt)[None],
                          entry_length=max_length, temperature=temperature)


def jax_beams(table, prompts, beam_size, max_length, temperature):
  table = jnp.asarray(table)
  # The cache: sum of the inputs so far (B, VOCAB) and their number (B,).
  cache = jnp.asarray(prompts).sum(axis=1), jnp.full(len(prompts), prompts.shape[1], jnp.float32)
  logits = _toy_logits(prompts[:, -1], *cache, table, STOP)

  def step(cache, tokens, index):
    x = jax.nn.one_hot(tokens, VOCAB)
    cache = cache[0] + x, cache[1] + 1
    return _toy_logits(x, *cache, table, STOP), cache

  search = jax.jit(decoding.beam_search, static_argnums=0,
                   static_argnames=("beam_size", "max_length", "stop_token"))
  return search(step, cache, logits, beam_size=beam_size, max_length=max_length,
                stop_token=STOP_TOKEN, temperature=temperature)


@pytest.mark.parametrize("beam_size, max_length, temperature",
                         [(1, 30, 1.0), (3, 30, 0.7), (5, 30, 1.0), (5, 6, 0.0), (5, 30, 2.0)])
def test_beam_search_equals_msclap(beam_size, max_length, temperature):
  table = toy_table()
  rng = np.random.default_rng(1)
  prompts = rng.standard_normal((5, 4, VOCAB)).astype(np.float32)
  beams = jax_beams(table, prompts, beam_size, max_length, temperature)
  lengths_seen = set()
  for b, prompt in enumerate(prompts):  # msclap decodes one prompt at a time
    expected = msclap_beams(table, prompt, beam_size, max_length, temperature)
    ours = [tuple(int(t) for t in row[:n]) for row, n in zip(beams.tokens[b], beams.lengths[b])]
    assert ours == expected, b
    lengths_seen.update(int(n) for n in beams.lengths[b])
  if max_length == 30:
    assert len(lengths_seen) > 2 and max_length in lengths_seen  # stopped at several lengths, or not
  scores = np.asarray(beams.scores)
  assert np.all(np.diff(scores, axis=1) <= 0)


def test_search_ends_when_every_beam_has_stopped():
  table = toy_table()
  prompts = np.random.default_rng(2).standard_normal((3, 4, VOCAB)).astype(np.float32)
  beams = jax_beams(table, prompts, 3, 40, 1.0)
  assert int(beams.steps) == int(beams.lengths.max()) < 40
  stopped = np.take_along_axis(np.asarray(beams.tokens), np.asarray(beams.lengths)[..., None] - 1, 2)
  assert np.all(stopped == STOP_TOKEN)
  assert np.all(np.asarray(beams.tokens)[np.arange(40) >= np.asarray(beams.lengths)[..., None]] == 0)


def test_greedy_is_beam_one_and_argmax():
  table = toy_table()
  prompts = np.random.default_rng(3).standard_normal((2, 4, VOCAB)).astype(np.float32)
  beams = jax_beams(table, prompts, 1, 20, 1.0)
  history, count = prompts.sum(axis=1), np.full(2, 4.0)
  x = prompts[:, -1]
  for i in range(int(beams.lengths.max())):
    token = np.argmax(_toy_logits(x, history, count, table, STOP), axis=-1)
    live = i < np.asarray(beams.lengths)[:, 0]
    np.testing.assert_array_equal(np.asarray(beams.tokens)[live, 0, i], token[live])
    x = np.eye(VOCAB, dtype=np.float32)[token]
    history, count = history + x, count + 1


def _full_logits(model, prefix, tokens):
  return model.gpt.logits(model.gpt(tokens, prefix_embeds=prefix))


def test_cache_gives_the_full_forward_logits_at_every_step():
  """GPT-2 over the prefix then one token at a time == GPT2LMHeadModel over prefix + tokens."""
  config = model_config.tiny_clapcap()
  model = ClapCap(config)
  shapes = convert_clapcap.abstract_variables(config)
  keys = iter(jax.random.split(jax.random.key(0), 1000))
  variables = jax.tree.map(lambda s: 0.3 * jax.random.normal(next(keys), s.shape), shapes)
  prefix_length, steps = config.mapper.prefix_length, 12
  prefix = jax.random.normal(jax.random.key(1), (2, prefix_length, config.decoder.n_embd))
  tokens = jax.random.randint(jax.random.key(2), (2, steps), 0, config.decoder.vocab_size)
  full = model.apply(variables, prefix, tokens, method=_full_logits)  # (2, P + steps, V)

  cache = {"gpt": gpt2.init_cache(config.decoder, 2, prefix_length + steps)}
  decode = jax.jit(lambda cache, ids, index, prefix: model.apply(
      {**variables, "cache": cache}, ids, index, prefix, method=ClapCap.decode, mutable=["cache"]))
  logits, updated = decode(cache, None, 0, prefix)
  errors = [np.abs(logits - full[:, prefix_length - 1]).max()]
  for i in range(steps):
    logits, updated = decode(updated["cache"], tokens[:, i:i + 1], prefix_length + i, None)
    errors.append(np.abs(logits - full[:, prefix_length + i]).max())
  scale = np.abs(full).max()
  assert scale > 1 and max(errors) < 1e-5 * scale, (max(errors), scale)
