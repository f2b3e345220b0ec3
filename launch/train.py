r"""Trains CLAP (or resumes the run in --workdir): the one training loop, configured by a file.

  python launch/train.py --config configs/demo.py                  # workdir: workdirs/demo
  python launch/train.py --config configs/pretrain.py --workdir gs://... \
      --config.input.train='/data/shards/*/*.tfrecord' --config.optim.lr=1e-4

Without --workdir a run lives in workdirs/<config name>[_<its argument>]. Re-running in a workdir
resumes its run; a changed config is printed, and refused where the model differs.

Several processes (hosts): pass --coordinator_address=host:port --num_processes=N --process_id=i
(or set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID), or --distributed to let JAX
detect the cluster (SLURM, Open MPI, Kubernetes, Cloud TPU). Each process runs this same command.
"""
import os

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", "configs/demo.py", "Training config file.")
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Checkpoints, TensorBoard events; a run here is resumed. Default: "
    "workdirs/<config name>[_<config argument>].")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False,
                                 "Initialise jax.distributed from the cluster's environment.")


def _initialise_distributed() -> None:
  import jax  # pylint: disable=g-import-not-at-top
  given = _COORDINATOR.value or os.environ.get("JAX_COORDINATOR_ADDRESS")
  if not (given or _DISTRIBUTED.value):
    return  # one process (a TPU pod's hosts find each other without this)
  # CPU collectives between processes (tests, CPU clusters); accelerators use their own.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  num_processes = _NUM_PROCESSES.value or os.environ.get("JAX_NUM_PROCESSES")
  process_id = _PROCESS_ID.value
  if process_id is None and "JAX_PROCESS_ID" in os.environ:
    process_id = int(os.environ["JAX_PROCESS_ID"])
  jax.distributed.initialize(coordinator_address=given or None,
                             num_processes=int(num_processes) if num_processes else None,
                             process_id=process_id)


def default_workdir(config_filename: str) -> str:
  """configs/pretrain.py:smoke -> workdirs/pretrain_smoke: one workdir per config and argument."""
  path, _, arg = config_filename.partition(":")
  name = os.path.splitext(os.path.basename(path))[0]
  return os.path.join("workdirs", name + (f"_{arg.replace(',', '_')}" if arg else ""))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # orbax narrates every save at INFO
  _initialise_distributed()
  from clap_jax.train import ConfigError, loop  # pylint: disable=g-import-not-at-top
  workdir = _WORKDIR.value or default_workdir(config_flags.get_config_filename(flags.FLAGS["config"]))
  try:
    loop.main(_CONFIG.value, workdir)
  except ConfigError as e:  # a config that cannot run: one line, not a traceback
    raise app.UsageError(str(e)) from None


if __name__ == "__main__":
  from clap_jax import schema  # pylint: disable=g-import-not-at-top
  from clap_jax.train import host  # pylint: disable=g-import-not-at-top
  host.use_huge_pages()
  app.run(main, flags_parser=schema.parse_flags)
