"""python -m clap_jax.convert CHECKPOINT OUTPUT_DIR: convert an msclap checkpoint once."""
from absl import app, flags

from clap_jax import convert, weights
from clap_jax.models import config as model_config

_VERSION = flags.DEFINE_enum("version", "2023", ["2023", "clapcap"],
                             "Which msclap model the checkpoint holds.")
_CONFIGS = {"2023": model_config.clap_2023, "clapcap": model_config.clapcap}


def main(argv):
  if len(argv) != 3:
    raise app.UsageError("usage: python -m clap_jax.convert CHECKPOINT.pth OUTPUT_DIR")
  config = _CONFIGS[_VERSION.value]()
  variables = weights.convert_checkpoint(argv[1], config)
  convert.save_variables(variables, argv[2], config)
  print(f"wrote {argv[2]}/{convert.VARIABLES_FILE} ({_VERSION.value})")


if __name__ == "__main__":
  app.run(main)
