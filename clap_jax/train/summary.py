"""The lines a run ends with: what was done, where it is, how good it is, and what to run next."""
import ml_collections

from clap_jax.data import demo
from clap_jax.eval import tasks as tasks_lib


def chance(config: ml_collections.ConfigDict, name: str) -> float | None:
  """The chance level of a 'task/topK' result (K / classes), where the class count is known."""
  task, _, metric = name.partition("/")
  if not metric.startswith("top"):
    return None
  if task == "demo":
    classes = len(demo.LABELS)
  elif task in config.tasks:
    classes = config.tasks[task].num_labels
  elif task in tasks_lib.TASKS:
    classes = len(tasks_lib.TASKS[task].labels)
  else:
    return None
  return min(1.0, int(metric.removeprefix("top")) / classes)


def text(config: ml_collections.ConfigDict, workdir, *, first_step: int, step: int, seconds: float,
         results: dict, checkpoint_step: int | None) -> str:
  trained = step - first_step
  lines = [f"done: step {step} of {config.total_steps}"
           + (f" ({trained} trained in this run, {seconds:.0f} s)" if trained else
              " (nothing left to train)")]
  if checkpoint_step is not None:
    lines.append(f"checkpoint: {workdir}/checkpoints/{checkpoint_step}")
  for name, value in sorted(results.items()):
    level = chance(config, name)
    lines.append(f"eval {name} = {value:.4f}" + (f" (chance {level:.4f})" if level else ""))
  if config.objective == "contrastive":
    lines.append(f"next: python launch/eval.py --config configs/zeroshot.py --checkpoint {workdir} "
                 f"--workdir {workdir}/eval")
  lines.append(f"      tensorboard --logdir {workdir}" if config.objective == "contrastive" else
               f"next: tensorboard --logdir {workdir}")
  return "\n".join(lines)
