"""clap_jax.host: the entry scripts' restart with glibc's huge-page tunable."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

# Allocates a 256 MiB block with libc's malloc (numpy would ask for huge pages itself), touches it
# and reports how much of this process's anonymous memory is backed by huge pages.
CHILD = """
import ctypes, json, os, sys
from clap_jax.train import host
host.use_huge_pages()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
size = 256 << 20
block = libc.malloc(ctypes.c_size_t(size))
ctypes.memset(block, 1, size)
rollup = open("/proc/self/smaps_rollup").read().split("\\n")
huge_kb = sum(int(l.split()[1]) for l in rollup if l.startswith("AnonHugePages:"))
print(json.dumps({"tunables": os.environ.get("GLIBC_TUNABLES"), "argv": sys.argv[1:],
                  "huge_mib": huge_kb / 1024}))
"""


def _run(env_changes):
  env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "CLAP_JAX_HUGE_PAGES")}
  env.update(env_changes)
  out = subprocess.run([sys.executable, "-c", CHILD, "--flag", "value"], env=env, check=True,
                       capture_output=True, text=True, timeout=120).stdout
  return json.loads(out.strip().splitlines()[-1])


def _thp_mode():
  path = pathlib.Path("/sys/kernel/mm/transparent_hugepage/enabled")
  return path.read_text() if path.exists() else "[never]"


@pytest.mark.skipif(sys.platform != "linux", reason="glibc tunables are Linux-only")
def test_restart_sets_the_tunable_keeps_arguments_and_backs_big_blocks_with_huge_pages():
  result = _run({})
  assert result["tunables"] == "glibc.malloc.hugetlb=1"
  assert result["argv"] == ["--flag", "value"]
  if "[madvise]" in _thp_mode():  # with [always] every process gets them; with [never] none does
    baseline = _run({"CLAP_JAX_HUGE_PAGES": "0"})
    assert baseline["tunables"] is None
    # Half the block is margin for a fragmented machine, where not every 2 MiB can be found.
    assert result["huge_mib"] >= 128 > baseline["huge_mib"]


@pytest.mark.skipif(sys.platform != "linux", reason="glibc tunables are Linux-only")
def test_existing_tunables_are_kept():
  result = _run({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1048576"})
  assert result["tunables"] == "glibc.malloc.trim_threshold=1048576:glibc.malloc.hugetlb=1"
  already = _run({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"})
  assert already["tunables"] == "glibc.malloc.hugetlb=0"  # the user's choice stands
