"""The one timeout of answer comparison: a helper subprocess, killed when it overruns.

sympy work cannot be interrupted in-process from an arbitrary thread (signals reach
the main thread only), so `ask` sends each comparison to one persistent helper
subprocess per process and waits at most `timeout_s` for the verdict. A helper that
overruns is killed (the verdict is False) and a replacement is started at once, so
its start-up overlaps the caller's other work. Threads of one process take turns on
the helper; waiting for one's turn or for the helper to start (about a second; call
`warmup()` to pay it early) is not counted in `timeout_s`. The helper is a plain
subprocess, not a multiprocessing child, so this works from any thread, in worker
processes and in daemonic pool workers. It caps its own address space (4 GiB) and
CPU time (60 s a request) in case its parent dies mid-request.

r1jax.rewards.scoring kills a reward worker that overruns its own (longer) timeout;
that is the outer bound of a whole reward call. Sharing one mechanism would mean the
scorer running comparisons in its workers without a helper, a change to scoring.py.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
from typing import Any

from absl import logging

from r1jax.rewards import _math_compare as compare

_STARTUP_TIMEOUT_S = 60.0
_ADDRESS_SPACE = 4 << 30  # helper's own memory cap (bytes)
_CPU_PER_REQUEST_S = 60  # helper's own CPU cap per request, if its parent died
# The helper imports this package from the same checkout as its parent, not the cwd.
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_BOOT = ("import sys;sys.path.insert(0,sys.argv[1]);"
         "from r1jax.rewards import _math_timeout as m;m.serve()")


def serve() -> None:
  """Helper main loop: read JSON requests on stdin, answer '1'/'0' lines."""
  try:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or hard > _ADDRESS_SPACE:
      resource.setrlimit(resource.RLIMIT_AS, (_ADDRESS_SPACE, hard))
  except Exception:  # noqa: BLE001 - no resource module, or limits not allowed
    resource = None  # type: ignore[assignment]
  sys.setrecursionlimit(10000)
  import sympy  # noqa: F401 - warm the import before reporting ready

  compare.compare_safe("x^2+2x+1", "(x+1)^2")
  compare.compare_safe("\\frac{1}{2}", "0.5")
  out = sys.stdout.buffer
  out.write(b"R\n")
  out.flush()
  stdin = sys.stdin.buffer
  while True:
    line = stdin.readline()
    if not line:
      return
    try:
      req = json.loads(line)
    except ValueError:
      out.write(b"0\n")
      out.flush()
      continue
    if resource is not None:
      try:  # backstop if the parent dies mid-request: die on SIGXCPU
        ru = resource.getrusage(resource.RUSAGE_SELF)
        lim = int(ru.ru_utime + ru.ru_stime) + _CPU_PER_REQUEST_S
        hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
        if hard == resource.RLIM_INFINITY or lim <= hard:
          resource.setrlimit(resource.RLIMIT_CPU, (lim, hard))
      except Exception:  # noqa: BLE001
        pass
    if req.get("sleep"):  # used by the tests to exercise the timeout path
      time.sleep(min(float(req["sleep"]), 600.0))
    ok = compare.compare_safe(req.get("p"), req.get("g"))
    out.write(b"1\n" if ok else b"0\n")
    out.flush()


class _HelperDied(Exception):
  pass


class _Helper:
  """One helper subprocess and its line protocol."""

  def __init__(self) -> None:
    cmd = [sys.executable]
    if sys.version_info >= (3, 11):
      cmd.append("-P")  # no cwd on sys.path
    cmd += ["-c", _BOOT, _ROOT]
    self.proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, close_fds=True, bufsize=0,
    )
    self.ready = False
    self.buf = b""

  def _read_line(self, deadline: float) -> bytes | None:
    fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
    while b"\n" not in self.buf:
      remaining = max(0.0, deadline - time.monotonic())
      r, _, _ = select.select([fd], [], [], remaining)
      if not r:
        return None
      chunk = os.read(fd, 65536)
      if not chunk:
        raise _HelperDied()
      self.buf += chunk
    line, _, self.buf = self.buf.partition(b"\n")
    return line

  def ask(self, pred: str, gold: str, timeout_s: float, sleep: float = 0.0) -> bool | None:
    """True/False, or None on timeout (the caller kills this helper)."""
    if not self.ready:
      if self._read_line(time.monotonic() + _STARTUP_TIMEOUT_S) != b"R":
        raise _HelperDied()
      self.ready = True
    req: dict[str, Any] = {"p": pred, "g": gold}
    if sleep:
      req["sleep"] = sleep
    try:
      self.proc.stdin.write((json.dumps(req) + "\n").encode())  # type: ignore[union-attr]
    except (BrokenPipeError, OSError) as e:
      raise _HelperDied() from e
    line = self._read_line(time.monotonic() + timeout_s)
    if line is None:
      return None
    return line == b"1"

  def kill(self) -> None:
    try:
      self.proc.kill()
      self.proc.wait(timeout=5)
    except Exception:  # noqa: BLE001 - already gone
      pass
    for f in (self.proc.stdin, self.proc.stdout):
      try:
        f.close()  # type: ignore[union-attr]
      except Exception:  # noqa: BLE001
        pass


_lock = threading.Lock()  # one caller at a time talks to the helper
_helper: _Helper | None = None
_warned = False


def _after_fork() -> None:
  """A forked child must not share its parent's helper or a lock held at the fork."""
  global _lock, _helper
  _lock, _helper = threading.Lock(), None


os.register_at_fork(after_in_child=_after_fork)


def _replace(respawn: bool) -> None:
  """Kill the helper (under _lock); start its replacement now if `respawn`."""
  global _helper
  if _helper is not None:
    _helper.kill()
    _helper = None
  if respawn:
    try:
      _helper = _Helper()
    except Exception:  # noqa: BLE001 - the next ask reports it
      pass


def _shutdown() -> None:
  with _lock:
    _replace(respawn=False)


atexit.register(_shutdown)


def warmup() -> None:
  """Start the helper now, so the first comparison does not wait for it."""
  global _helper
  if _lock.acquire(blocking=False):
    try:
      if _helper is None:
        _helper = _Helper()
    except Exception:  # noqa: BLE001 - the next ask reports it
      pass
    finally:
      _lock.release()


def ask(pred: str, gold: str, timeout_s: float, _sleep: float = 0.0) -> bool:
  """compare(pred, gold) in the helper; False when it takes over `timeout_s` seconds."""
  global _helper, _warned
  with _lock:
    for _ in range(2):  # a helper that died is replaced once
      try:
        if _helper is None:
          _helper = _Helper()
      except Exception as e:  # noqa: BLE001 - cannot start a helper at all
        if not _warned:
          _warned = True
          logging.error("math_equiv: cannot start helper process (%s); answering False", e)
        return False
      try:
        res = _helper.ask(pred, gold, timeout_s, _sleep)
      except _HelperDied:
        _replace(respawn=False)
        continue
      except BaseException:
        _replace(respawn=False)
        raise
      if res is None:  # timed out
        _replace(respawn=True)
        return False
      return res
  return False
