"""Runs the real CLIs (`python -m r1jax.main`, `python -m r1jax.evaluate`) in a
subprocess on the host's devices, as a user would."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(module: str, *args: str, check: bool = True, timeout: int = 900,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
  """`python -m module args...` from the repository root; asserts success if `check`."""
  full_env = {**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu", **(env or {})}
  out = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=full_env,
                       capture_output=True, text=True, timeout=timeout)
  if check:
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
  return out
