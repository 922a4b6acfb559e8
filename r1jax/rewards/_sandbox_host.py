"""What the judge's host provides to the code-reward sandbox (see ``r1jax.rewards._sandbox``).

Unique uids for sandboxed programs (root judge), the per-run marker, finding and
killing whatever a program left running, and the interpreter and host paths the
sandboxed program may see.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
import time
from typing import Callable, Iterator

MARKER_ENV = "R1JAX_SANDBOX_RUN"
"""Environment variable set (to a random per-run token) in every sandboxed process."""

# Unique uids for sandboxed programs when the judge runs as root.  Each judge
# process (keyed by pid) owns a block of 65536 uids and cycles through it, so a
# uid is not reused until 65536 runs later: in fallback mode killed processes
# are reaped by the host's init, and until then they still count against
# RLIMIT_NPROC of their uid.
UID_BASE = 1_000_000_000
UID_BLOCK = 1 << 16
MAX_SLOTS = 64  # concurrent sandboxes per judge process

_slot_lock = threading.Lock()
_slot_sem = threading.BoundedSemaphore(MAX_SLOTS)
_uids_in_use: set[int] = set()
_uid_counter = 0


def uid_block() -> tuple[int, int]:
  """The [start, stop) range of sandbox uids this judge process uses (root judge)."""
  start = UID_BASE + (os.getpid() % 16384) * UID_BLOCK
  return start, start + UID_BLOCK


def marker_prefix() -> str:
  """Prefix of the marker value of every sandbox this judge process starts."""
  return f"{os.getpid()}-"


@contextlib.contextmanager
def uid_slot() -> Iterator[int]:
  """Lease a uid that no other live sandbox uses and that was not used recently."""
  global _uid_counter
  _slot_sem.acquire()
  block = uid_block()[0]
  with _slot_lock:
    while True:
      uid = block + _uid_counter % UID_BLOCK
      _uid_counter += 1
      if uid not in _uids_in_use:
        break
    _uids_in_use.add(uid)
  try:
    yield uid
  finally:
    with _slot_lock:
      _uids_in_use.discard(uid)
    _slot_sem.release()


# ---------------------------------------------------------------------------
# process sweeping
# ---------------------------------------------------------------------------


def _live_pids(match: Callable[[str], bool]) -> list[int]:
  """Pids of non-zombie processes for which ``match(pid)`` is true."""
  found = []
  for name in os.listdir("/proc"):
    if not name.isdigit():
      continue
    try:
      with open(f"/proc/{name}/stat", "rb") as f:
        state = f.read().rsplit(b")", 1)[1].split()[0]
      if state in (b"Z", b"X") or not match(name):
        continue
    except (OSError, IndexError):
      continue
    found.append(int(name))
  return found


def pids_with_uid(uid: int) -> list[int]:
  """Live processes whose real uid is ``uid``."""

  def match(pid: str) -> bool:
    with open(f"/proc/{pid}/status", "rb") as f:
      for line in f:
        if line.startswith(b"Uid:"):
          return int(line.split()[1]) == uid
    return False

  return _live_pids(match)


def pids_with_marker(token: str) -> list[int]:
  """Live processes (readable by us) whose initial environment holds the run marker."""
  needle = f"{MARKER_ENV}={token}".encode()

  def match(pid: str) -> bool:
    with open(f"/proc/{pid}/environ", "rb") as f:
      return needle in f.read().split(b"\0")

  return _live_pids(match)


def sweep(find: Callable[[], list[int]]) -> bool:
  """SIGKILL what ``find()`` returns until it returns nothing; False if that never happens."""
  for _ in range(200):
    pids = find()
    if not pids:
      return True
    for pid in pids:
      with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.005)
  return False


# ---------------------------------------------------------------------------
# interpreter and filesystem layout
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def python() -> str:
  """The real interpreter binary (not a venv shim) that runs the sandbox."""
  return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


@functools.lru_cache(maxsize=None)
def binds() -> tuple[tuple[str, str, str], ...]:
  """Host paths the chrooted program sees, read-only: system dirs and the interpreter."""
  out: list[tuple[str, str, str]] = []
  dirs: list[str] = []
  for path in ("/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin"):
    if os.path.islink(path):
      out.append(("link", path, os.readlink(path)))
    elif os.path.isdir(path):
      out.append(("dir", path, ""))
      dirs.append(path)
  prefixes = {sys.base_prefix, sys.base_exec_prefix, os.path.dirname(os.path.dirname(python()))}
  for prefix in sorted(os.path.realpath(p) for p in prefixes):
    if prefix == "/" or not os.path.isdir(prefix):
      continue
    if not any(prefix == d or prefix.startswith(d + "/") for d in dirs):
      out.append(("dir", prefix, ""))
      dirs.append(prefix)
  if os.path.isfile("/etc/ld.so.cache"):
    out.append(("file", "/etc/ld.so.cache", ""))
  return tuple(out)


@functools.lru_cache(maxsize=None)
def read_roots() -> tuple[str, ...]:
  """Paths a fallback-mode program may read besides its own directory."""
  roots = {sys.base_prefix, sys.base_exec_prefix, os.path.dirname(os.path.dirname(python())),
           "/usr/lib", "/usr/lib64", "/usr/share/zoneinfo"}
  return tuple(sorted(os.path.realpath(r) for r in roots))

