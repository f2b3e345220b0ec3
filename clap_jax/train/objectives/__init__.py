"""Training objectives: what the one training loop optimises, chosen by `config.objective`.

An objective builds its model and its initial parameters, names the batch fields it reads, builds
its input stream, turns a batch into a loss and metrics, projects parameters back into their
allowed range after an update, and names its default evaluators (clap_jax.eval.registry). Its
parameters are `{'model': the model's params, ...}`, so `{'params': params['model'],
'batch_stats': ...}` are always the model's inference variables, whatever else (loss parameters)
the objective trains.

    objective = objectives.get(config, mesh)
    params, batch_stats = objective.init(rng)
    batches = objective.batches(start_step)   # this process's share, numpy
    loss, (metrics, batch_stats) = objective.loss(params, batch_stats, batch, rng)
    params = objective.constrain(params)
"""
import ml_collections

from clap_jax.train.objectives.contrastive import Contrastive
from clap_jax.train.objectives.prefix_lm import PrefixLM

OBJECTIVES = {"contrastive": Contrastive, "prefix_lm": PrefixLM}


def _class(name: str):
  if name not in OBJECTIVES:
    raise ValueError(f"unknown objective {name!r}: one of {sorted(OBJECTIVES)}")
  return OBJECTIVES[name]


def get(config: ml_collections.ConfigDict, mesh):
  return _class(config.objective)(config, mesh)


def default_evals(name: str) -> ml_collections.ConfigDict:
  """`config.evals` of a new config of objective `name`."""
  return _class(name).default_evals()


def check_inputs(config: ml_collections.ConfigDict) -> None:
  """Raises a one-line ValueError for missing or contradictory input settings, before anything
  is built."""
  _class(config.objective).check_inputs(config)
