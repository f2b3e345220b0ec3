"""Shared fixtures: where the real test material lives, and the models' configs; one persistent
compilation cache for the suite."""
import os
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]
# Before jax starts. Many tests compile the same small models, in this process and in the ones
# they start (launch scripts, multi-device snippets inherit the environment); a run after the
# first reads them back. An empty JAX_COMPILATION_CACHE_DIR switches it off.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(REPO / ".cache" / "jax"))
# The processes tests start (launch scripts, a test file run as a script) import this checkout's
# clap_jax, not an editable install of another one (a git worktree's tests would test main's code).
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])

import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position

from clap_jax import text  # pylint: disable=g-import-not-at-top,wrong-import-position
import multitask_shards  # pylint: disable=g-import-not-at-top,wrong-import-position

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


@pytest.fixture(scope="module")
def task_dirs(gpt2_tokenizer_dir, tmp_path_factory) -> dict:
  """{task: its shard folder} for multitask_shards.TASKS (several shards each)."""
  return multitask_shards.write(tmp_path_factory.mktemp("multitask"), gpt2_tokenizer_dir)
