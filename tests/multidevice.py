"""Runs a Python snippet in a fresh process with N virtual CPU devices (XLA_FLAGS only applies
before jax starts), and returns what it printed last as JSON; waits for launched processes with a
deadline."""
import json
import os
import subprocess
import sys
import textwrap
import threading
import time

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)


def env(devices: int) -> dict:
  return {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
          "JAX_PLATFORMS": "cpu", "PYTHONPATH": os.pathsep.join([TESTS, REPO, os.environ.get("PYTHONPATH", "")])}


def run(code: str, devices: int, timeout: float = 600):
  """Runs `code` (which prints one JSON line last) with `devices` CPU devices; -> that JSON."""
  result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env(devices), cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
  if result.returncode:
    raise AssertionError(f"subprocess failed ({result.returncode}):\n{result.stderr[-5000:]}")
  return json.loads(result.stdout.strip().splitlines()[-1])


def finish(processes: list[subprocess.Popen], timeout: float) -> list[str]:
  """Waits for `processes` (started with stdout=PIPE) -> their outputs; each must exit 0 within
  `timeout` seconds. The first failure or the deadline kills them all: a process of a
  multi-process run would otherwise wait for its dead peer until CI gives up."""
  outputs = [None] * len(processes)

  def read(i):
    out = processes[i].communicate()[0]
    outputs[i] = out.decode(errors="replace") if isinstance(out, bytes) else out

  readers = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(len(processes))]
  for reader in readers:
    reader.start()
  deadline = time.monotonic() + timeout
  while True:
    codes = [p.poll() for p in processes]
    failed = next((i for i, c in enumerate(codes) if c not in (None, 0)), None)
    if failed is not None or all(c == 0 for c in codes) or time.monotonic() > deadline:
      break
    time.sleep(0.1)
  for p in processes:
    if p.poll() is None:
      p.kill()
  for reader in readers:
    reader.join(timeout=30)
  if failed is not None:
    raise AssertionError(f"process {failed} exited with {codes[failed]}:\n"
                         f"{(outputs[failed] or '')[-4000:]}")
  if not all(c == 0 for c in codes):
    raise AssertionError(f"still running after {timeout} s, killed:\n"
                         + "\n---\n".join((o or "")[-2000:] for o in outputs))
  return outputs


def poll_until(condition, process: subprocess.Popen, timeout: float) -> None:
  """Waits until `condition()` holds while `process` runs; kills it at the deadline."""
  deadline = time.monotonic() + timeout
  while not condition():
    if process.poll() is not None:
      raise AssertionError(f"exited with {process.returncode} first:\n"
                           f"{process.communicate()[0][-3000:]}")
    if time.monotonic() > deadline:
      process.kill()
      raise AssertionError(f"not reached within {timeout} s (process killed)")
    time.sleep(0.02)
