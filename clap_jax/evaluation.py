"""The periodic zero-shot evaluation of a training run (clap_jax.eval's evaluator).

`config.eval.tasks` names tasks of the registry (clap_jax.eval.tasks), whose data is found from
`eval.data_dir` or `eval.sources`, with prompts from `eval.templates` where given; the task 'demo'
is clap_jax.demo_data's held-out clips. Under the 'audio_multitask' objective `eval.tasks` names
tasks of `config.tasks` instead, scored by their heads on their held-out shards (clap_jax.eval.heads).
"""
import jax
import ml_collections

from clap_jax import demo_data
from clap_jax import eval as clap_eval
from clap_jax.eval import heads
from clap_jax.eval import sources as eval_sources
from clap_jax.text import Tokenizer


def demo_task(config: ml_collections.ConfigDict) -> tuple[clap_eval.Task, eval_sources.Source]:
  """demo_data's classes as a zero-shot task, on clips drawn with a seed training never uses."""
  audio_config = config.model.audio
  audio, labels = demo_data.eval_set(num_clips=config.eval.num_clips,
                                     sample_rate=audio_config.sample_rate,
                                     clip_samples=audio_config.clip_samples,
                                     seed=config.input.seed + 1_000_003)
  task = clap_eval.Task("demo", "Demo", "Demo", "single_label", demo_data.LABELS, source={},
                        templates=(demo_data.PROMPT,), in_paper=False)
  items = [eval_sources.Item(f"demo/{i}", (clip,), rate=audio_config.sample_rate, labels=(int(l),))
           for i, (clip, l) in enumerate(zip(audio, labels))]
  return task, eval_sources.ListSource(items)


class Evaluator:
  """`due(step)`: whether to evaluate after `step`; `run(state)` -> {'task/metric': value}."""

  def __init__(self, config: ml_collections.ConfigDict, objective, mesh: jax.sharding.Mesh):
    c = config.eval
    self.every_steps, self.total_steps = c.every_steps, config.total_steps
    self.enabled = bool(c.tasks)
    if not self.enabled:
      return
    if config.objective == "audio_multitask":
      own = {t.name: t for t in objective.tasks}
      unknown = [name for name in c.tasks if name not in own]
      if unknown:
        raise ValueError(f"eval.tasks {unknown} are not tasks of config.tasks {sorted(own)}")
      self._evaluator = heads.HeadsEvaluator(
          objective.model, [own[name] for name in c.tasks], mesh, batch_size=c.batch_size,
          clip_samples=config.model.audio.clip_samples)
      return
    tasks, sources = [], {name: dict(spec) for name, spec in c.sources.items()}
    for name in c.tasks:
      if name == "demo":
        task, sources["demo"] = demo_task(config)
        tasks.append(task)
      else:
        tasks.append(name)
    self._evaluator = clap_eval.ZeroShotEvaluator(
        objective.model, tasks, mesh,
        tokenizer=Tokenizer.load(config.tokenizer, config.model.text.context_length),
        batch_size=c.batch_size, sources=sources, data_dir=c.data_dir,
        templates={name: tuple(t) for name, t in c.templates.items()}, progress=False)

  def due(self, step: int) -> bool:
    return (self.enabled and self.every_steps > 0 and step % self.every_steps == 0
            and step < self.total_steps)

  def run(self, state: dict) -> dict[str, float]:
    variables = {"params": state["params"]["model"], "batch_stats": state["batch_stats"]}
    return dict(self._evaluator.run(variables))
