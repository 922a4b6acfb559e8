"""Runs the real CLIs (`python -m r1jax.main`, `python -m r1jax.evaluate`) in a
subprocess on the host's devices, as a user would."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# XLA flags of every test process (conftest.py, and the CLIs the tests start): LLVM at
# -O0, and XLA:CPU's older elemental emitters for fusions instead of its MLIR fusion
# emitters. Compiling is most of what the suite spends, and these take a quarter of the
# CPU time to compile: the r1_zero_tiny smoke demo from a cold cache, 86 s -> 42 s (-O0)
# -> 19 s (both). The HLO passes, and so the programs' arithmetic, are unchanged; only
# their machine code is less optimised, and no test measures speed.
XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"


def child_env(*, devices: int | None = None, **extra: str) -> dict[str, str]:
  """This process's environment for a CLI a test starts: JAX on CPU with the tests' XLA
  flags (and `devices` simulated devices; default one), then `extra`."""
  flags = XLA_FLAGS + (f" --xla_force_host_platform_device_count={devices}" if devices else "")
  return {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu", **extra}


def run(module: str, *args: str, check: bool = True, timeout: int = 900,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
  """`python -m module args...` from the repository root; asserts success if `check`."""
  out = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT,
                       env=child_env(**(env or {})), capture_output=True, text=True,
                       timeout=timeout)
  if check:
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
  return out
