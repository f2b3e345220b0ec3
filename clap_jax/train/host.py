"""Host-memory setting for launch/train.py: transparent huge pages for glibc's large blocks.

XLA on CPU allocates a step's temporaries (activations, every gradient) afresh each step, and glibc
serves blocks that large by mapping new memory from the kernel and unmapping it on free, so every
step faults all of it in again, 4 KiB at a time (the README's Performance section has the cost).
glibc's `glibc.malloc.hugetlb=1` tunable backs those blocks with 2 MiB transparent huge pages. Tunables are read
when the process starts, so the setting takes a restart of the process (an exec, same pid).
"""
import os
import sys

TUNABLE = "glibc.malloc.hugetlb"
OPT_OUT = "CLAP_JAX_HUGE_PAGES"  # set to 0 to keep glibc's default


def use_huge_pages() -> None:
  """Re-executes this process once with the tunable set, unless it is set, opted out of, or the
  platform is not Linux. Call it first thing in an entry script, before any real work."""
  tunables = os.environ.get("GLIBC_TUNABLES", "")
  if sys.platform != "linux" or os.environ.get(OPT_OUT) == "0" or TUNABLE in tunables:
    return
  os.environ["GLIBC_TUNABLES"] = ":".join(filter(None, [tunables, f"{TUNABLE}=1"]))
  sys.stdout.flush()
  sys.stderr.flush()
  os.execv(sys.executable, sys.orig_argv)  # orig_argv keeps -m/-c and interpreter options
