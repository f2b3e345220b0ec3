"""Official msclap checkpoints -> Flax variables, and torch-free storage of the converted tree.

    variables = convert_checkpoint("CLAP_weights_2023.pth", clap_2023())  # or 2022's, clap_2022()
    save_variables(variables, "clap2023_flax", config)   # once
    variables = load_variables("clap2023_flax")          # later, without torch

Conversion is strict: a parameter that is missing, left unused or of the wrong shape is an error
naming the keys. Only buffers we recompute (STFT kernels, mel filters, window masks, relative
position indices, GPT-2 causal masks, position ids, BERT's token type ids) may be absent, and where
present they are checked against ours. Which model a file holds (2023 or 2022) is read from its keys.
"""
from clap_jax.convert.clap import (abstract_variables, check_against_model, checkpoint_version,
                                   convert_checkpoint, convert_state_dict)
from clap_jax.convert.files import (CONFIG_FILE, VARIABLES_FILE, load_state_dict, load_variables,
                                    save_variables)
from clap_jax.convert.tensors import ConversionError
