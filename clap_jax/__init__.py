"""clap_jax: MS-CLAP 2023 in JAX/Flax."""
