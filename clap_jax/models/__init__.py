"""Flax modules of the CLAP model: front end, HTSAT, GPT-2, projection heads."""
