"""Runs a Python snippet in a fresh process with N virtual CPU devices (XLA_FLAGS only applies
before jax starts), and returns what it printed last as JSON."""
import json
import os
import subprocess
import sys
import textwrap

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
