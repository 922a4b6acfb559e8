"""r1jax caps glibc's malloc arenas when imported (r1jax.limit_malloc_arenas): checked in
fresh processes by counting the arenas glibc reports (malloc_info) once 8 threads have
each called malloc, with the cap, without it, and with the user's own setting."""

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc",
    reason="malloc arenas are glibc's")

# 8 threads each malloc and stay alive, so none can reuse another's arena; then glibc's
# own report, one <heap nr=...> element per arena (the main one included).
_PROBE = r"""
import ctypes, os, sys, tempfile, threading
import r1jax
libc = ctypes.CDLL(None)
libc.malloc.restype = libc.fopen.restype = ctypes.c_void_p
gate = threading.Barrier(9)
def worker():
  libc.malloc(1000)
  gate.wait(); gate.wait()
threads = [threading.Thread(target=worker) for _ in range(8)]
for t in threads:
  t.start()
gate.wait()
path = os.path.join(tempfile.mkdtemp(), "info.xml")
fp = ctypes.c_void_p(libc.fopen(path.encode(), b"w"))
libc.malloc_info(0, fp)
libc.fclose(fp)
gate.wait()
for t in threads:
  t.join()
print(open(path).read().count("<heap nr="), r1jax.limit_malloc_arenas())
"""


def _arenas(**env) -> tuple[int, str]:
  full = {k: v for k, v in os.environ.items()
          if k not in ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES", "R1JAX_MALLOC_ARENAS")}
  out = subprocess.run([sys.executable, "-c", _PROBE], env={**full, **env},
                       capture_output=True, text=True, check=True,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  count, again = out.stdout.split()
  return int(count), again


def test_import_caps_the_arenas_that_threads_spread_over():
  # glibc alone gives each of the 8 threads an arena (its cap is 8 per core, >= 8 here).
  uncapped, _ = _arenas(R1JAX_MALLOC_ARENAS="0")
  assert uncapped >= 9
  capped, again = _arenas()
  assert capped == 1  # r1jax.MALLOC_ARENAS: the main arena alone
  assert again == "True"  # calling it again is harmless
  assert _arenas(R1JAX_MALLOC_ARENAS="3")[0] == 3


def test_the_users_own_setting_wins():
  count, set_here = _arenas(MALLOC_ARENA_MAX="4")
  assert (count, set_here) == (4, "False")
  count, set_here = _arenas(GLIBC_TUNABLES="glibc.malloc.arena_max=5")
  assert (count, set_here) == (5, "False")


def test_a_bad_count_is_a_clear_error():
  out = subprocess.run([sys.executable, "-c", "import r1jax"], capture_output=True, text=True,
                       env={**os.environ, "R1JAX_MALLOC_ARENAS": "two"},
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert out.returncode != 0
  assert "R1JAX_MALLOC_ARENAS='two': give a whole number" in out.stderr
