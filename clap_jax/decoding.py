"""Beam search and greedy decoding under jit, with static shapes, as msclap's
CLAPWrapper._generate_beam decodes clapcap's captions; batched over prompts and beams.

The model is a `step(cache, tokens, index) -> (logits, cache)` function over a key/value cache
(one row per prompt and beam), so each step costs one token, not the whole sequence. msclap's
rules, kept exactly:
  - log-probabilities are `log(softmax(logits / temperature))` (temperature <= 0 means 1);
  - the first step takes the top `beam_size` tokens of the single prompt distribution;
  - later steps rank every (beam, token) by (score + log p) / length, where a stopped beam's
    only continuation is token 0 at no cost and its length no longer grows;
  - a beam stops when it emits `stop_token`, a prompt when all its beams have stopped, the
    search when every prompt has (or after `max_length` tokens);
  - beams end ranked by score / length, best first; a beam's tokens include its stop token.
"""
import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp


class Beams(NamedTuple):
  tokens: jax.Array  # (B, K, max_length) int32, best beam first; 0 after a beam's length
  lengths: jax.Array  # (B, K) int32, the stop token included
  scores: jax.Array  # (B, K) float32 length-normalised log-probabilities, descending
  steps: jax.Array  # () int32: tokens generated before every prompt had stopped


def _log_probs(logits, temperature):
  temperature = jnp.where(temperature > 0, temperature, 1.0)
  return jnp.log(jax.nn.softmax(logits.astype(jnp.float32) / temperature, axis=-1))  # as msclap


def beam_search(step: Callable, cache, logits: jax.Array, *, beam_size: int, max_length: int,
                stop_token: int, temperature=1.0) -> Beams:
  """Decodes B prompts at once.

  Args:
    step: (cache, tokens (B * K,), index) -> (logits (B * K, V), cache), feeding the token at
      `index` (0 for the first generated token) of every row; rows are prompt-major.
    cache: the model's cache after the prompts, one row per prompt (every leaf batch-first).
    logits: (B, V) next-token logits after the prompts.
    beam_size: K. max_length: the most tokens a caption gets. stop_token: ends a beam.
    temperature: divides the logits; may be traced.
  """
  batch, vocab = logits.shape
  k = beam_size
  scores, first = jax.lax.top_k(_log_probs(logits, temperature), k)  # (B, K)
  tokens = jnp.zeros((batch, k, max_length), jnp.int32).at[:, :, 0].set(first)
  lengths = jnp.ones((batch, k), jnp.float32)  # float, as msclap's seq_lengths
  stopped = first == stop_token
  cache = jax.tree.map(lambda x: jnp.repeat(x, k, axis=0), cache)
  only_pad = jnp.where(jnp.arange(vocab) == 0, 0.0, -jnp.inf)  # a stopped beam's continuation

  def body(state):
    i, tokens, scores, lengths, stopped, cache = state
    last = jax.lax.dynamic_index_in_dim(tokens, i - 1, axis=2, keepdims=False)  # (B, K)
    logits, cache = step(cache, last.reshape(-1), i - 1)
    log_p = _log_probs(logits, temperature).reshape(batch, k, vocab)
    log_p = jnp.where(stopped[..., None], only_pad, log_p)
    grown = lengths + ~stopped
    average = (scores[..., None] + log_p) / grown[..., None]
    best, flat = jax.lax.top_k(average.reshape(batch, k * vocab), k)
    # Prompts whose beams had all stopped keep their state: msclap has left its loop for them
    # (running on would permute their beams and re-round their scores each step).
    active = ~jnp.all(stopped, axis=1, keepdims=True)  # (B, 1)
    source = jnp.where(active, flat // vocab, jnp.arange(k))  # (B, K) beam each new beam extends
    token = flat % vocab
    new_lengths = jnp.take_along_axis(grown, source, axis=1)
    new_tokens = jnp.take_along_axis(tokens, source[..., None], axis=1)
    new_tokens = jax.lax.dynamic_update_index_in_dim(new_tokens, token[..., None], i, axis=2)
    new_stopped = jnp.take_along_axis(stopped, source, axis=1) | (token == stop_token)
    if k > 1:
      rows = (jnp.arange(batch)[:, None] * k + source).reshape(-1)
      cache = jax.tree.map(lambda x: x[rows], cache)
    keep = lambda new, old: jnp.where(active.reshape(-1, *[1] * (old.ndim - 1)), new, old)
    return (i + 1, keep(new_tokens, tokens), keep(best * new_lengths, scores),
            keep(new_lengths, lengths), keep(new_stopped, stopped), cache)

  def running(state):
    i, stopped = state[0], state[4]
    return (i < max_length) & ~jnp.all(stopped)

  steps, tokens, scores, lengths, stopped, _ = jax.lax.while_loop(
      running, body, (jnp.int32(1), tokens, scores, lengths, stopped, cache))
  scores = scores / lengths
  order = jnp.argsort(-scores, axis=1, stable=True)
  return Beams(jnp.take_along_axis(tokens, order[..., None], axis=1),
               jnp.take_along_axis(lengths, order, axis=1).astype(jnp.int32),
               jnp.take_along_axis(scores, order, axis=1), steps)


# With one beam, (score + log p) / length ranks tokens as log p does: beam search is greedy.
greedy_search = functools.partial(beam_search, beam_size=1)
