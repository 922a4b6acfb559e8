"""A batch of sandboxed programs served by one pre-started runner (namespaces, root judge).

:class:`SandboxServer` starts ``_sandbox_runner.py`` once in serve mode
(``_sandbox_serve``) and hands it each program: the runner forks, and the fork
builds that program's own namespaces, root and limits exactly as a runner started
for it alone would.  What a batch saves is one interpreter start and the runner's
imports per program; every defence is per program as before (fresh mount, pid,
network, ipc and uts namespaces, a fresh root with private tmpfs, a unique uid,
rlimits, its own clock), and so is everything the judge reads (stdout, stderr,
status and result pipes of its own).  Source and stdin travel as memfds.

Used where it applies, the judge's only choice: namespaces mode with a root judge
(the per-run uid is what tells programs apart; a non-root judge and the fallback
mode start one runner per program, ``_sandbox.run_program``).
"""

from __future__ import annotations

import contextlib
import itertools
import marshal
import os
import secrets
import signal
import socket
import subprocess
import tempfile
import threading
import time
from typing import Iterator

from r1jax.rewards import _sandbox
from r1jax.rewards import _sandbox_host as host

_CLOSE_WAIT_S = 5.0  # how long a server may take to exit once its batch is over


class SandboxServer:
  """One pre-started runner that forks a fresh sandbox per program; thread-safe."""

  def __init__(self, mount_proc: bool) -> None:
    self.top = tempfile.mkdtemp(prefix="r1jax-sbx-")
    os.chmod(self.top, 0o711)
    os.mkdir(os.path.join(self.top, "root"), 0o755)
    self._ids = itertools.count()
    self._lock = threading.Lock()
    self._sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    lifeline_r, self._lifeline = os.pipe()  # EOF at the server: this judge died
    cfg = _sandbox.runner_cfg("namespaces", mount_proc, self.top, self.top)
    cfg.update(serve=True, request_fd=theirs.fileno(), lifeline_fd=lifeline_r)
    token = host.marker_prefix() + secrets.token_hex(8)
    self._log = open(os.path.join(self.top, "server.log"), "w+b")
    try:
      self.proc = subprocess.Popen(
          _sandbox.runner_argv(cfg), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
          stderr=self._log, pass_fds=(theirs.fileno(), lifeline_r), cwd=self.top,
          env=_sandbox.runner_env("namespaces", self.top, token), start_new_session=True)
    except BaseException:
      self._log.close()
      self._sock.close()
      os.close(self._lifeline)
      _sandbox._rmtree(self.top)
      raise
    finally:
      theirs.close()
      os.close(lifeline_r)

  def run(self, source: str, stdin: str | None, call: str | None, timeout_s: float,
          config: _sandbox.SandboxConfig) -> _sandbox.RunResult:
    """Run one program in its own fresh sandbox (as ``_sandbox.run_program``)."""
    slot = host.uid_slot()
    with slot as uid:
      run_id = next(self._ids)
      cfg = _sandbox.program_cfg(call, timeout_s, config, uid)
      reads, writes = _sandbox.output_pipes(call)
      src_fd = _memfd("main.py", source)
      stdin_fd = _memfd("stdin", stdin or "")
      fds = [src_fd, stdin_fd, writes["stdout"], writes["stderr"], writes["status"]]
      fds += [writes["result"]] if call is not None else []
      start = time.monotonic()
      try:
        with self._lock:
          socket.send_fds(self._sock, [marshal.dumps({"op": "run", "id": run_id, "cfg": cfg})],
                          fds)
      except OSError as e:
        for fd in reads.values():
          os.close(fd)
        raise _sandbox.SandboxError(f"the batch's sandbox server is gone: {e}; "
                                    f"{self._log_tail()}") from e
      finally:
        for fd in fds:
          os.close(fd)
      backstop = start + _sandbox._SETUP_S + cfg["wall_cap_s"] + _sandbox._BACKSTOP_S
      streams, killed_timeout, exceeded = _sandbox.collect(reads, backstop,
                                                           config.max_output_bytes)
      if killed_timeout or exceeded:  # the runner is still there: the server kills it
        with self._lock, contextlib.suppress(OSError):
          self._sock.send(marshal.dumps({"op": "kill", "id": run_id}))
      return _sandbox.judge_run(streams, killed_timeout, exceeded, start, call, config,
                                "namespaces", f"batch server {self._state()}")

  def _state(self) -> str:
    rc = self.proc.poll()
    return "running" if rc is None else f"exited {rc}: {self._log_tail()}"

  def _log_tail(self) -> str:
    with contextlib.suppress(OSError):
      self._log.seek(0)
      return repr(self._log.read()[-500:])
    return ""

  def close(self) -> None:
    """End the batch: the server kills what is left, exits, and its directory goes."""
    self._sock.close()  # EOF: the server stops
    try:
      self.proc.wait(_CLOSE_WAIT_S)
    except subprocess.TimeoutExpired:
      with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(self.proc.pid, signal.SIGKILL)
      self.proc.kill()
      self.proc.wait()
    os.close(self._lifeline)
    self._log.close()
    _sandbox._rmtree(self.top)


def _memfd(name: str, text: str) -> int:
  """An anonymous in-memory file holding ``text`` (UTF-8), at offset 0."""
  fd = os.memfd_create(name, os.MFD_CLOEXEC)
  data = memoryview(text.encode("utf-8", "surrogatepass"))
  while data:
    data = data[os.write(fd, data):]
  os.lseek(fd, 0, os.SEEK_SET)
  return fd


@contextlib.contextmanager
def batch(config: _sandbox.SandboxConfig) -> Iterator[SandboxServer | None]:
  """A server for a batch where one applies (namespaces, root judge), else None."""
  mode, mount_proc = _sandbox._mode_for(config)
  if mode != "namespaces" or os.geteuid() != 0:
    yield None
    return
  server = SandboxServer(mount_proc)
  try:
    yield server
  finally:
    server.close()
