"""Training objectives: what the one training loop optimises, chosen by `config.objective`.

An objective builds its model and its initial parameters, turns a batch into a loss and metrics,
and projects parameters back into their allowed range after an update. Its parameters are
`{'model': the model's params, ...}`, so `{'params': params['model'], 'batch_stats': ...}` are
always the model's inference variables, whatever else (loss parameters) the objective trains.

    objective = objectives.get(config, mesh)
    params, batch_stats = objective.init(rng)
    loss, (metrics, batch_stats) = objective.loss(params, batch_stats, batch, rng)
    params = objective.constrain(params)
"""
import ml_collections

from clap_jax.objectives.audio_multitask import AudioMultitask
from clap_jax.objectives.contrastive import Contrastive

OBJECTIVES = {"contrastive": Contrastive, "audio_multitask": AudioMultitask}


def get(config: ml_collections.ConfigDict, mesh):
  if config.objective not in OBJECTIVES:
    raise ValueError(f"unknown objective {config.objective!r}: one of {sorted(OBJECTIVES)}")
  return OBJECTIVES[config.objective](config, mesh)
