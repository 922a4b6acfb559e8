"""Test set-up: 8 simulated CPU devices (a TPU slice in miniature) for every test, and
XLA's backend at -O0 (tests/cli.py: XLA_FLAGS)."""

import os

from tests import cli

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" {cli.XLA_FLAGS}"
                           " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402  (after XLA_FLAGS)

import r1jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")

# JAX's persistent compilation cache, shared by the test processes (xdist workers and
# the CLI subprocesses, whose --compilation_cache default is ~/.cache/r1jax/xla): the
# many identical small programs of the stage tests compile once per machine.
r1jax.use_compilation_cache()


def pytest_configure(config):
  config.addinivalue_line(
      "markers", "slow: a whole pipeline or multi-process run, a minute or more of CPU on "
      "2 cores; CI runs them, `-m 'not slow'` leaves them out of a quick local run.")
