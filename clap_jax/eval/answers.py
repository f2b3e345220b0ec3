"""Held-out evaluation of audio tasks answered in text (objective 'prefix_lm' on config.tasks).

Per task, on its held-out shards, after the audio prefix and the task's prompt:
  class    'accuracy': the class whose name (tokens ' <|endoftext|>' included, as trained) is the
           most likely continuation: decoding constrained to the label set;
           'exact': greedy decoding, stopped at ' <|endoftext|>', gives the class name exactly
  classes  'mAP' over per-class scores (each name's log-likelihood alone);
           'exact': the greedy answer, split at ', ', is exactly the set of the clip's class names
  caption  the caption metrics (clap_jax.eval.caption_metrics: CIDEr-D, ...) of greedy captions
           against all the clip's captions

`AnswersEvaluator(...).run(variables)` yields ('task/metric', value) as the other evaluators do.
Every process reads its share of the shards; the jitted steps run on the global batch and their
outputs are gathered, so every process scores every clip once. A task whose shards one process
cannot read (absent, damaged) is given up by all processes together (multihost.GivenUp), with one
reason; `run` logs it and goes on with the other tasks.
"""
from collections.abc import Iterator, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from clap_jax import caption, data, sharding
from clap_jax.data import answers
from clap_jax.eval import caption_metrics, metrics, multihost
from clap_jax.eval import sources as sources_lib
from clap_jax.models.clapcap import ClapCap


def candidate_scores(model: ClapCap, variables: dict, audio_embeddings: jax.Array,
                     rows: dict) -> jax.Array:
  """(B, embed_dim) embeddings, `rows` of answers.prompted for C candidates (each (C, W)) ->
  (B, C): sum over each candidate's target tokens of log p(token | prefix, earlier tokens)."""
  prefix = model.apply(variables, audio_embeddings, method=ClapCap.prefix)
  batch = prefix.shape[0]

  def one(row):  # one candidate for every clip: (B, W, vocab) logits at a time
    ids, attention, target = (jnp.broadcast_to(row[k], (batch, row[k].shape[0]))
                              for k in ("input_ids", "attention_mask", "target_mask"))
    logits = model.apply(variables, prefix, ids, attention, method=ClapCap.continuation_logits)
    log_p = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    token = jnp.take_along_axis(log_p, ids[..., None], axis=-1)[..., 0]
    return (token * target).sum(-1)

  return jax.lax.map(one, rows).T


def candidate_rows(tokenizer, prompt: Sequence[int], classes: Sequence[str]) -> dict[str, np.ndarray]:
  """answers.prompted rows of `prompt` then each class name (as trained), cut after the longest."""
  names = tokenizer(list(classes))
  rows = answers.prompted([prompt] * len(classes), names["input_ids"], names["attention_mask"])
  used = int(rows["attention_mask"].sum(1).max())
  return {k: v[:, :used] for k, v in rows.items()}


class AnswersEvaluator:
  """`model`: the run's ClapCap; `tasks`: answers.AnswerTasks with held-out shards; `tokenizer`:
  the model's GPT-2 tokenizer; `batch_size`: global, split over the mesh."""

  def __init__(self, model: ClapCap, tasks: Sequence[answers.AnswerTask], mesh: jax.sharding.Mesh,
               *, tokenizer, batch_size: int, clip_samples: int, max_length: int):
    missing = [t.name for t in tasks if not t.heldout]
    if missing:
      raise ValueError(f"tasks {missing} are to be evaluated but have no held-out shards "
                       "(config.tasks.<name>.heldout)")
    self.model, self.tasks, self.tokenizer = model, list(tasks), tokenizer
    self.batch_size, self.clip_samples, self.max_length = batch_size, clip_samples, max_length
    self.batch_sharding = sharding.batch_sharding(mesh)
    self.stop = tokenizer.encode(caption.STOP_TEXT)[0]
    self._embed = jax.jit(lambda v, audio: model.apply(v, audio, method=ClapCap.audio_embeddings))
    self._scores = jax.jit(lambda v, e, rows: candidate_scores(model, v, e, rows))
    self._greedy = jax.jit(
        lambda v, e, prompt: caption.generate(model, v, e, beam_size=1, max_length=max_length,
                                              stop_token=self.stop, prompt_ids=prompt).tokens[:, 0],
        static_argnums=2)

  def run(self, variables) -> Iterator[tuple[str, float]]:
    for task in self.tasks:
      try:
        values = self.evaluate_task(variables, task)
      except multihost.GivenUp as e:
        logging.warning("answers evaluator: %s skipped: %s", task.name, e)
        continue
      yield from values.items()

  def evaluate_task(self, variables, task: answers.AnswerTask) -> dict[str, float]:
    prompt = tuple(self.tokenizer.encode(task.prompt)) if task.prompt else ()
    rows = candidate_rows(self.tokenizer, prompt, task.classes) if task.classes else None
    gathered = self._heldout_pass(variables, task, prompt, rows)
    answers_text = [self._text(tokens) for tokens in gathered["greedy"]]
    name = task.name
    if task.answer == "class":
      label = gathered["label"]
      truth = [task.classes[l] for l in label]
      return {f"{name}/accuracy": float(np.mean(gathered["scores"].argmax(1) == label)),
              f"{name}/exact": float(np.mean([a == t for a, t in zip(answers_text, truth)]))}
    if task.answer == "classes":
      hot = gathered["label"] > 0
      truth = [{task.classes[i] for i in np.flatnonzero(h)} for h in hot]
      said = [{n.strip() for n in a.split(answers.SEPARATOR)} - {""} for a in answers_text]
      return {f"{name}/mAP": metrics.mean_average_precision(hot, gathered["scores"]),
              f"{name}/exact": float(np.mean([a == t for a, t in zip(said, truth)]))}
    references = {str(i): [self._text(c[m > 0]) for c, m, keep in zip(*clip) if keep]
                  for i, clip in enumerate(zip(gathered["captions_input_ids"],
                                               gathered["captions_attention_mask"],
                                               gathered["caption_mask"]))}
    values, _ = caption_metrics.score({str(i): a for i, a in enumerate(answers_text)}, references)
    return {f"{name}/{metric}": value for metric, value in values.items()}

  def _heldout_pass(self, variables, task, prompt, rows) -> dict[str, np.ndarray]:
    """Every held-out clip's greedy tokens, candidate scores, labels (and captions), gathered."""
    keys = (["label"] if task.classes else
            ["captions_input_ids", "captions_attention_mask", "caption_mask"])
    def batches():  # a generator, so that even finding the shards fails inside next(), caught
      yield from data.eval_batches(
          task.heldout.split(","), batch_size=self.batch_size, clip_samples=self.clip_samples,
          num_labels=len(task.classes) if task.answer == "classes" else None)
    out = {}
    # Every process has as many batches (eval_batches pads), so they run out together.
    for batch in multihost.in_lockstep(
        batches(), lambda e: sources_lib.failure_reason(e, task.heldout)):
      step = data.to_global({k: batch[k] for k in ["audio", "mask", *keys]}, self.batch_sharding)
      embeddings = self._embed(variables, step.pop("audio"))
      step["greedy"] = self._greedy(variables, embeddings, prompt)
      if rows is not None:
        step["scores"] = self._scores(variables, embeddings, rows)
      gathered = multihost_utils.process_allgather(step, tiled=True)
      keep = gathered.pop("mask")
      for k, v in gathered.items():
        out.setdefault(k, []).append(np.asarray(v)[keep])
    return {k: np.concatenate(v) for k, v in out.items()}

  def _text(self, tokens: np.ndarray) -> str:
    """Tokens up to the stop token -> the stripped text."""
    tokens = list(np.asarray(tokens))
    end = tokens.index(self.stop) if self.stop in tokens else len(tokens)
    return self.tokenizer.decode(tokens[:end]).strip()
