"""Shared fixtures: where the real test material lives, and the models' configs."""
import os
import pathlib

import pytest

from clap_jax import text

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = pathlib.Path(os.environ.get("CLAP_JAX_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
  """../shared/data (real audio, captions, tokenizers); tests that need it skip without it."""
  if not SHARED_DATA.is_dir():
    pytest.skip(f"{SHARED_DATA} is absent (a fresh clone without ../shared)")
  return SHARED_DATA


@pytest.fixture(scope="session")
def gpt2_tokenizer_dir() -> pathlib.Path:
  """The original GPT-2 BPE files, shipped with the package."""
  return text.GPT2_FILES
