"""A training run's evaluators, chosen by its config as big_vision's `evaluators/common.py` does.

`config.evals` maps a name to an entry `{'type', 'every_steps', ...}`; `type` picks the evaluator
below and the rest are its settings (`defaults(type)`). Every evaluator yields
('task/metric', value) pairs; the loop logs them under 'eval/'.

  zeroshot  clap_jax.eval.zeroshot over registry tasks (`tasks`, `data_dir`, `sources`,
            `templates`, ...); the task 'demo' is clap_jax.data.demo's held-out clips.
  answers   clap_jax.eval.answers: audio tasks answered in text (objective 'prefix_lm' on
            config.tasks) on their held-out shards: constrained and exact-match accuracy, mAP,
            caption metrics.
  captioning  clap_jax.eval.captioning: captions of a clapcap model scored on the registry's
            captioning tasks (`tasks`, `data_dir`, `sources`, `beam_size`, `max_length`, ...);
            the task 'demo' is clap_jax.data.demo's held-out clips with their kind's phrasings.
"""
import jax
import ml_collections

from clap_jax import text
from clap_jax.data import demo
from clap_jax.data.items import Item
from clap_jax.eval import answers, captioning, paper, sources as sources_lib, tasks as tasks_lib
from clap_jax.eval import zeroshot


def defaults(kind: str) -> ml_collections.ConfigDict:
  """The entry of an evaluator of type `kind`, with every key it reads."""
  if kind == "zeroshot":
    c = zeroshot.settings()
    c.tasks = ()  # none: evaluation off
    c.data_dir = "."
    c.num_clips = 256  # task 'demo': held-out clips
  elif kind == "answers":
    c = ml_collections.ConfigDict()
    c.tasks = ()  # names in config.tasks, each with held-out shards
    c.batch_size = 64
    c.max_length = 24  # tokens of a greedy answer (the stop token included)
  elif kind == "captioning":
    c = captioning.settings()
    c.tasks = ()  # none: evaluation off
    c.data_dir = "."
    c.num_clips = 64  # task 'demo': held-out clips
  else:
    raise ValueError(f"unknown evaluator type {kind!r}: one of {TYPES}")
  c.type = kind
  c.every_steps = 0  # 0: only at the end of the run
  return c


def demo_task(config: ml_collections.ConfigDict, num_clips: int
              ) -> tuple[tasks_lib.Task, sources_lib.Source]:
  """clap_jax.data.demo's classes as a zero-shot task, on clips drawn with a seed training never
  uses."""
  audio_config = config.model.audio
  audio, labels = demo.eval_set(num_clips=num_clips, sample_rate=audio_config.sample_rate,
                                clip_samples=audio_config.clip_samples,
                                seed=config.input.seed + 1_000_003)
  task = tasks_lib.Task("demo", "Demo", "Demo", tasks_lib.SINGLE_LABEL, demo.LABELS, source={},
                        templates=(demo.PROMPT,))
  items = [Item(f"demo/{i}", (clip,), rate=audio_config.sample_rate, labels=(int(l),))
           for i, (clip, l) in enumerate(zip(audio, labels))]
  return task, sources_lib.ListSource(items)


def demo_captioning_task(config: ml_collections.ConfigDict, num_clips: int
                         ) -> tuple[tasks_lib.Task, sources_lib.Source]:
  """clap_jax.data.demo's held-out clips (demo_task's) as a captioning task: the references of a
  clip are all the phrasings of its kind."""
  audio_config = config.model.audio
  audio, labels = demo.eval_set(num_clips=num_clips, sample_rate=audio_config.sample_rate,
                                clip_samples=audio_config.clip_samples,
                                seed=config.input.seed + 1_000_003)
  task = tasks_lib.Task("demo", "Demo", "Audio Captioning", tasks_lib.CAPTIONING, (), source={})
  items = [Item(f"demo/{i}", (clip,), rate=audio_config.sample_rate, captions=demo.CAPTIONS[l])
           for i, (clip, l) in enumerate(zip(audio, labels))]
  return task, sources_lib.ListSource(items)


def _with_demo(entry, config, make_demo) -> tuple[list, dict]:
  """An entry's tasks (registry names), the name 'demo' built by `make_demo` with its source."""
  tasks, sources = [], {}
  for name in entry.tasks:
    if name == "demo":
      task, sources["demo"] = make_demo(config, entry.num_clips)
      tasks.append(task)
    else:
      tasks.append(name)
  return tasks, sources


def _zeroshot(entry, config, objective, mesh):
  tasks, sources = _with_demo(entry, config, demo_task)
  return zeroshot.from_settings(
      objective.model, entry, mesh, tasks=tasks, sources=sources, progress=False,
      tokenizer=text.for_model(config.model, config.tokenizer))


def _answers(entry, config, objective, mesh):
  own = {t.name: t for t in objective.tasks}
  unknown = [name for name in entry.tasks if name not in own]
  if unknown:
    raise ValueError(f"answers evaluator: tasks {unknown} are not tasks of config.tasks "
                     f"{sorted(own)}")
  return answers.AnswersEvaluator(objective.model, [own[name] for name in entry.tasks], mesh,
                                  tokenizer=objective.tokenizer, batch_size=entry.batch_size,
                                  clip_samples=config.model.audio.clip_samples,
                                  max_length=entry.max_length)


def _captioning(entry, config, objective, mesh):
  del mesh  # each process decodes its share of the clips on its own devices
  tasks, sources = _with_demo(entry, config, demo_captioning_task)
  return captioning.from_settings(objective.model.config, entry, progress=False, tasks=tasks,
                                  sources=sources,
                                  tokenizer=text.for_model(objective.model.config, config.tokenizer))


_BUILDERS = {"zeroshot": _zeroshot, "answers": _answers, "captioning": _captioning}
TYPES = tuple(_BUILDERS)


class Evaluator:
  """One `config.evals` entry: `due(step)` says whether it runs after `step`; `run(state)` ->
  {'task/metric': value}."""

  def __init__(self, name: str, entry, config, objective, mesh: jax.sharding.Mesh):
    if entry.type not in _BUILDERS:
      raise ValueError(f"evals.{name}.type {entry.type!r}: one of {TYPES}")
    self.name, self.every_steps, self.total_steps = name, entry.every_steps, config.total_steps
    self._evaluator = _BUILDERS[entry.type](entry, config, objective, mesh)

  def due(self, step: int) -> bool:
    return self.every_steps > 0 and step % self.every_steps == 0 and step < self.total_steps

  def run(self, state: dict) -> dict[str, float]:
    variables = {"params": state["params"]["model"], "batch_stats": state["batch_stats"]}
    return dict(self._evaluator.run(variables))

  def zero_shot_score(self, values: dict[str, float]) -> float | None:
    """The Zero-Shot score of `values` from `run` (clap_jax.eval.paper.training_score); zero-shot
    evaluators only."""
    if not isinstance(self._evaluator, zeroshot.ZeroShotEvaluator):
      raise ValueError(f"evals.{self.name} is not a zero-shot evaluator: it has no Zero-Shot score")
    return paper.training_score(values, self._evaluator.tasks)


def from_config(config: ml_collections.ConfigDict, objective, mesh: jax.sharding.Mesh
                ) -> list[Evaluator]:
  """The run's evaluators: the entries of `config.evals` that have tasks."""
  return [Evaluator(name, entry, config, objective, mesh)
          for name, entry in sorted(config.evals.items()) if entry.tasks]
