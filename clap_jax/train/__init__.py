"""Training: the loop (`loop.main`), its pure step, optimizer, losses, objectives, checkpoints,
initialisation from existing weights, resume checks and the run's closing summary."""


class ConfigError(ValueError):
  """A config that cannot run (missing input, a workdir of another model): one line for the user."""
