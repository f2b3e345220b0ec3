"""python -m clap_jax.convert CHECKPOINT OUTPUT_DIR: convert an msclap checkpoint once."""
from absl import app, flags

from clap_jax import convert, weights
from clap_jax.models import config as model_config

_VERSION = flags.DEFINE_enum("version", None, sorted(model_config.VERSIONS),
                             "Which msclap model the checkpoint holds (default: told by its keys).")


def main(argv):
  if len(argv) != 3:
    raise app.UsageError("usage: python -m clap_jax.convert CHECKPOINT.pth OUTPUT_DIR")
  state = convert.load_state_dict(argv[1])
  version = _VERSION.value or convert.checkpoint_version(state, argv[1])
  config = model_config.for_version(version)
  variables = weights.convert_state(state, config, source=argv[1])
  convert.save_variables(variables, argv[2], config)
  print(f"wrote {argv[2]}/{convert.VARIABLES_FILE} ({version})")


if __name__ == "__main__":
  app.run(main)
