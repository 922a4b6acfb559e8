"""Host side of the code-reward sandbox: launch one untrusted program, collect its output.

See ``r1jax.rewards.code`` for the threat model.  This module knows nothing
about tests or scoring; it runs ``source`` once, feeding ``stdin`` or evaluating
one ``call`` expression, and returns what came out (bytes), how it ended, and
whether a limit was hit.  The child never receives anything it could use to
decide whether it passed.

Two isolation modes, chosen once per process by :func:`sandbox_capabilities`:

``namespaces``
    The runner (``_sandbox_runner.py``, with ``_sandbox_jail``) unshares mount,
    network, pid, ipc and uts namespaces (plus a user namespace when the judge is
    not root), builds a minimal read-only root (``/usr``, the interpreter's
    prefix, a few devices, private ``/tmp``, ``/dev/shm`` and ``/work`` (the
    program's directory, holding a copy of ``main.py``) on tmpfs capped at
    ``tmpfs_mb`` and ``max_files`` each), ``pivot_root``s into it and detaches
    the host tree, and runs the program as pid 2 under rlimits with a unique
    unprivileged uid (root judge) or with every capability dropped (non-root
    judge), ``no_new_privs`` set.  Nothing the program writes reaches a host
    disk.  The new network namespace has only a downed loopback, so no
    connection can be made.  When pid 1 of the namespace exits or is killed, the
    kernel kills every process in it; pid 1 has ``PDEATHSIG=SIGKILL``, so
    killing the runner (the judge's backstop) takes the namespace down too.

    Residual risks: rlimits are per process, so memory is bounded by
    ``memory_mb * max_processes`` plus the three tmpfs (no cgroups); the program
    may create user namespaces of its own where the host allows unprivileged ones
    (kernel attack surface; there is no host filesystem left in its mount
    namespace to reach); no seccomp filter.

``fallback``
    No namespaces (e.g. a container without ``CAP_SYS_ADMIN`` and no
    unprivileged user namespaces).  The program runs in its own session in a
    fresh temp directory under rlimits, with a unique uid when the judge is
    root, behind a ``sys.addaudithook`` hook installed before the program is
    compiled (``_sandbox_audit``): sockets, new programs, ctypes, signals to
    other processes, file access outside the work directory / interpreter files
    and more than ``max_files`` new files are refused.  The runner (a trusted
    supervisor, see ``_sandbox_runner``) measures the work directory and kills
    the program when it holds more than ``tmpfs_mb``; it kills the program's
    session when it exits or times out and then sweeps any process left with the
    sandbox uid (root) or the per-run marker in its environment (non-root); the
    judge repeats the sweep as a backstop.  This is defence in depth, not a
    kernel boundary.

Time: ``timeout_s`` is the program's own time, from when it starts (after the
sandbox is built and it compiled), not counting the time its main thread waits
for a CPU on a loaded host; the runner kills it once that is spent, and in any
case after ``_MAX_STRETCH * timeout_s + 1`` s of wall-clock time.  Its CPU time
is capped by ``RLIMIT_CPU`` (``int(timeout_s) + 1`` s a process); dying of
SIGXCPU is a timeout too.  So a verdict does not depend on how busy the machine
is, up to a slow-down of ``_MAX_STRETCH``.

In both modes the runner watches a lifeline pipe from the judge, so a judge
that dies mid-run (OOM, SIGKILL) leaves no sandbox process behind.  A batch may
instead fork its runners from one pre-started server (``_sandbox_batch``,
``run_program(server=...)``; namespaces mode, root judge): the same sandbox per
program, without an interpreter start per program.
"""

from __future__ import annotations

import contextlib
import dataclasses
import marshal
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from typing import Literal

from r1jax.rewards import _sandbox_host as host
from r1jax.rewards._sandbox_host import MARKER_ENV  # noqa: F401 - re-exported

RUNNER_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_sandbox_runner.py")
_UID_BASE = host.UID_BASE  # the tests find sandbox uids from these
_UID_BLOCK = host.UID_BLOCK
_python = host.python
_SETUP_S = 30.0  # wall-clock cap on building the sandbox before the program starts
_MAX_STRETCH = 4.0  # however busy the host, a program is killed after this x timeout_s
_BACKSTOP_S = 2.0  # judge-side grace on top of the runner's own caps
_DRAIN_AFTER_RUNNER_S = 0.2  # how long output may trail the runner's exit
_STDERR_KEEP = 64 << 10

Isolation = Literal["auto", "namespaces", "fallback"]


class SandboxError(RuntimeError):
  """The sandbox itself could not be set up (never raised for program failures)."""


@dataclasses.dataclass(frozen=True)
class SandboxConfig:
  """Resource limits and isolation mode for one sandboxed program run."""

  isolation: Isolation = "auto"
  memory_mb: int = 512  # RLIMIT_AS per process
  # RLIMIT_NPROC: processes + threads of the sandbox uid.  Exact with a root judge
  # (unique uid per run); with a non-root judge the kernel counts the judge
  # user's processes too (fallback) or per user namespace (namespaces).
  max_processes: int = 8
  max_open_files: int = 64  # RLIMIT_NOFILE
  max_file_mb: int = 16  # RLIMIT_FSIZE
  max_output_bytes: int = 1 << 20  # stdout (and call result) cap; over it the run fails
  # Size of each private scratch filesystem (/work, /tmp, /dev/shm; namespaces mode),
  # and the most the work directory may hold (fallback mode).  Above max_file_mb, so
  # one big file meets RLIMIT_FSIZE ("File too large") before the disk is full.
  tmpfs_mb: int = 32
  # Files and directories a program may create (tmpfs inodes; audit hook in fallback).
  max_files: int = 1024

  def __post_init__(self) -> None:
    if self.isolation not in ("auto", "namespaces", "fallback"):
      raise ValueError(
          f"isolation must be 'auto', 'namespaces' or 'fallback', got {self.isolation!r}"
      )
    for name in ("memory_mb", "max_processes", "max_open_files", "max_file_mb",
                 "max_output_bytes", "tmpfs_mb", "max_files"):
      value = getattr(self, name)
      if not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    if self.max_open_files < 16:
      raise ValueError("max_open_files must be at least 16 (the interpreter needs some)")
    if self.max_files < 16:
      raise ValueError("max_files must be at least 16 (the program's directory needs some)")


@dataclasses.dataclass(frozen=True)
class RunResult:
  """Everything observed about one run; all of it is untrusted program output."""

  stdout: bytes
  stderr: bytes
  result: bytes | None  # repr of the call's value (function-style runs)
  exit_code: int | None  # >= 0 exit code, < 0 killed by that signal, None if unknown
  timed_out: bool
  output_exceeded: bool
  compile_error: str | None
  started: bool  # the program got as far as running
  wall_s: float
  disk_exceeded: bool = False  # fallback: the work directory outgrew tmpfs_mb
  limit_detail: str = ""  # what the runner saw when it stopped the program for a limit


# ---------------------------------------------------------------------------
# capabilities probe
# ---------------------------------------------------------------------------

_caps_lock = threading.Lock()
_caps: dict | None = None


def sandbox_capabilities() -> dict:
  """Which isolation this host allows; probed once by running a trivial program.

  Keys: ``isolation`` (``"namespaces"`` or ``"fallback"``), ``network``
  (``"network-namespace"`` or ``"audit-hook"``), ``filesystem``, ``processes``,
  ``user``, ``as_root``, ``proc_mounted`` and ``fallback_reason`` (why namespaces
  are unavailable, else None).
  """
  global _caps
  with _caps_lock:
    if _caps is None:
      _caps = _probe()
    return dict(_caps)


def _probe() -> dict:
  """Try namespaces (with /proc, then without), else fallback; raise if neither runs."""
  as_root = os.geteuid() == 0
  reasons = []
  for mount_proc in (True, False):
    try:
      res = _run("print('ok')", None, None, 10.0, SandboxConfig(), "namespaces", mount_proc)
    except SandboxError as e:
      reasons.append(str(e))
      continue
    if res.exit_code == 0 and res.stdout == b"ok\n":
      return {
          "isolation": "namespaces",
          "network": "network-namespace",
          "filesystem": ("pivot_root into a minimal read-only root; private tmpfs /work, /tmp, "
                         "/dev/shm"),
          "processes": "pid-namespace",
          "user": "unique-uid" if as_root else "user-namespace (no capabilities)",
          "as_root": as_root,
          "proc_mounted": mount_proc,
          "fallback_reason": None,
      }
    reasons.append(f"probe program failed: exit={res.exit_code} stderr={res.stderr[-300:]!r}")
  caps = {
      "isolation": "fallback",
      "network": "audit-hook",
      "filesystem": "temp dir + audit-hook path policy + runner disk quota",
      "processes": "process-group kill + sweep",
      "user": "unique-uid" if as_root else "same-uid",
      "as_root": as_root,
      "proc_mounted": False,
      "fallback_reason": "; ".join(reasons),
  }
  res = _run("print('ok')", None, None, 10.0, SandboxConfig(), "fallback", False)
  if res.exit_code != 0 or res.stdout != b"ok\n":
    raise SandboxError(f"sandbox unusable even in fallback mode: {res}")
  return caps


def _mode_for(config: SandboxConfig) -> tuple[str, bool]:
  """The isolation mode ``config`` gets on this host, and whether /proc is mounted."""
  caps = sandbox_capabilities()
  if config.isolation == "fallback":
    return "fallback", False
  if config.isolation == "namespaces" and caps["isolation"] != "namespaces":
    raise SandboxError(f"namespaces requested but unavailable: {caps['fallback_reason']}")
  return caps["isolation"], caps["proc_mounted"]


# ---------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------


def run_program(
    source: str,
    *,
    stdin: str | None = None,
    call: str | None = None,
    timeout_s: float,
    config: SandboxConfig = SandboxConfig(),
    server=None,
) -> RunResult:
  """Run ``source`` once in a fresh sandbox, feeding ``stdin`` or evaluating ``call``.

  ``server``: a batch's ``_sandbox_batch.SandboxServer`` to fork the sandbox from,
  instead of starting a runner of its own (the same sandbox, sooner).
  """
  if stdin is not None and call is not None:
    raise ValueError("give stdin (stdin/stdout test) or call (function test), not both")
  if not (isinstance(timeout_s, (int, float)) and 0 < timeout_s < float("inf")):
    raise ValueError(f"timeout_s must be a positive finite number, got {timeout_s!r}")
  if server is not None:
    return server.run(source, stdin, call, timeout_s, config)
  mode, mount_proc = _mode_for(config)
  return _run(source, stdin, call, timeout_s, config, mode, mount_proc)


def _run(source: str, stdin: str | None, call: str | None, timeout_s: float,
         config: SandboxConfig, mode: str, mount_proc: bool) -> RunResult:
  as_root = os.geteuid() == 0
  top = tempfile.mkdtemp(prefix="r1jax-sbx-")
  try:
    os.chmod(top, 0o711)
    work = os.path.join(top, "work")
    os.mkdir(work, 0o700)
    os.mkdir(os.path.join(top, "root"), 0o755)
    with open(os.path.join(work, "main.py"), "w", encoding="utf-8", errors="surrogatepass") as f:
      f.write(source)
    stdin_path = os.path.join(top, "stdin")  # outside work/, read only by the judge
    with open(os.open(stdin_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
      f.write((stdin or "").encode("utf-8", "surrogatepass"))
    slot = host.uid_slot() if as_root else contextlib.nullcontext(None)
    with slot as uid:
      if uid is not None and mode == "fallback":  # namespaces: /work is a private tmpfs
        for path in (work, os.path.join(work, "main.py")):
          os.chown(path, uid, uid)
      return _launch(top, work, stdin_path, call, timeout_s, config, mode, mount_proc, uid)
  finally:
    _rmtree(top)


def _rmtree(path: str) -> None:
  """Remove a run's directory whatever the program did to its permissions."""

  def fix(func, p, exc):
    with contextlib.suppress(OSError):
      os.chmod(os.path.dirname(p), 0o700)
      os.chmod(p, 0o700)
    with contextlib.suppress(OSError):
      func(p)

  shutil.rmtree(path, onerror=fix)


def program_cfg(call: str | None, timeout_s: float, config: SandboxConfig,
                uid: int | None) -> dict:
  """The runner's settings that belong to one program (limits, clock, identity)."""
  return {
      "as_root": uid is not None,
      "uid": uid,
      "gid": uid,
      "timeout_s": timeout_s,
      "wall_cap_s": _MAX_STRETCH * timeout_s + 1.0,
      "setup_s": _SETUP_S,
      "call": call,
      "tmpfs_mb": config.tmpfs_mb,
      "disk_bytes": config.tmpfs_mb << 20,
      "max_files": config.max_files,
      "limits": {
          "cpu_s": int(timeout_s) + 1,
          "as_bytes": config.memory_mb << 20,
          "fsize_bytes": config.max_file_mb << 20,
          "nproc": config.max_processes,
          "nofile": config.max_open_files,
      },
  }


def runner_cfg(mode: str, mount_proc: bool, top: str, work: str) -> dict:
  """The runner's settings that belong to the host and the run's directory ``top``."""
  return {
      "serve": False,
      "mode": mode,
      "marker_env": MARKER_ENV,
      "workdir": work,
      "rootdir": os.path.join(top, "root"),
      "binds": host.binds(),
      "read_roots": host.read_roots(),
      "mount_proc": mount_proc,
  }


def runner_env(mode: str, work: str, token: str) -> dict[str, str]:
  """The whole environment of the runner and the program (nothing inherited)."""
  return {
      "PATH": "/usr/local/bin:/usr/bin:/bin",
      "LANG": "C.UTF-8",
      "LC_ALL": "C.UTF-8",
      "HOME": "/work" if mode == "namespaces" else work,
      "TMPDIR": "/tmp" if mode == "namespaces" else work,
      MARKER_ENV: token,
  }


def runner_argv(cfg: dict) -> list[str]:
  """The command that starts a runner (or a batch server) with ``cfg``."""
  return [host.python(), "-I", "-S", "-B", "-X", "utf8", RUNNER_PATH, marshal.dumps(cfg).hex()]


def output_pipes(call: str | None) -> tuple[dict[str, int], dict[str, int]]:
  """Read and write ends of a run's stdout, stderr, status and (function call) result."""
  names = ("stdout", "stderr", "status") + (("result",) if call is not None else ())
  pipes = {name: os.pipe() for name in names}
  return {n: r for n, (r, _) in pipes.items()}, {n: w for n, (_, w) in pipes.items()}


def _launch(top: str, work: str, stdin_path: str, call: str | None, timeout_s: float,
            config: SandboxConfig, mode: str, mount_proc: bool, uid: int | None) -> RunResult:
  """Start the runner on a prepared directory, collect its output, and judge how it ended."""
  token = host.marker_prefix() + secrets.token_hex(8)
  reads, writes = output_pipes(call)
  # The runner watches the read end; EOF means this judge process died.
  lifeline_r, lifeline_w = os.pipe()
  cfg = runner_cfg(mode, mount_proc, top, work)
  cfg.update(program_cfg(call, timeout_s, config, uid))
  cfg.update(status_fd=writes["status"], result_fd=writes.get("result", -1),
             lifeline_fd=lifeline_r)
  pass_fds = (writes["status"], lifeline_r) + ((writes["result"],) if call is not None else ())
  start = time.monotonic()
  try:
    with open(stdin_path, "rb") as stdin_file:
      proc = subprocess.Popen(
          runner_argv(cfg),
          stdin=stdin_file if call is None else subprocess.DEVNULL,
          stdout=writes["stdout"],
          stderr=writes["stderr"],
          pass_fds=pass_fds,
          cwd=work,
          env=runner_env(mode, work, token),
          start_new_session=True,
      )
  except BaseException:
    for fd in [lifeline_w, *reads.values()]:
      os.close(fd)
    raise
  finally:
    for fd in [lifeline_r, *writes.values()]:
      os.close(fd)
  try:
    backstop = start + _SETUP_S + cfg["wall_cap_s"] + _BACKSTOP_S  # the runner's caps, and more
    streams, killed_timeout, exceeded = collect(reads, backstop, config.max_output_bytes)
  finally:
    _kill_all(proc, mode, uid, token)
    os.close(lifeline_w)
  return judge_run(streams, killed_timeout, exceeded, start, call, config, mode,
                   f"exit {proc.returncode}")


def judge_run(streams: dict[str, bytearray], killed_timeout: bool, exceeded: bool,
              start: float, call: str | None, config: SandboxConfig, mode: str,
              runner_end: str) -> RunResult:
  """How a run ended, from what its runner reported; raises if the sandbox itself broke."""
  wall = time.monotonic() - start
  tokens = _parse_status(streams["status"])
  if "E" in tokens:
    raise SandboxError(f"sandbox setup failed ({mode}): {tokens['E']}")
  killed = killed_timeout or exceeded
  started = "R" in tokens
  if not killed and not started and "S" not in tokens:
    raise SandboxError(
        f"sandbox runner ended without a status ({runner_end}): "
        f"{streams['stderr'][-500:]!r}")
  exit_code = os.waitstatus_to_exitcode(int(tokens["X"])) if "X" in tokens else None
  out_of_cpu = exit_code == -signal.SIGXCPU  # RLIMIT_CPU: out of time, counted in CPU
  if "T" in tokens:
    detail = f"time: {tokens['T']}"
  elif out_of_cpu:
    detail = "time: out of CPU time (SIGXCPU)"
  elif "D" in tokens:
    detail = f"disk: its files took {int(tokens['D']) >> 20} MiB, over {config.tmpfs_mb} MiB"
  elif exceeded:
    detail = f"output: over {config.max_output_bytes} bytes"
  elif killed_timeout:
    detail = f"time: the judge's backstop fired after {wall:.2f}s"
  else:
    detail = ""
  return RunResult(
      stdout=bytes(streams["stdout"]),
      stderr=bytes(streams["stderr"]),
      result=bytes(streams["result"]) if call is not None else None,
      exit_code=exit_code,
      timed_out=killed_timeout or "T" in tokens or out_of_cpu,
      output_exceeded=exceeded,
      compile_error=tokens["S"] if "S" in tokens else None,
      started=started,
      wall_s=wall,
      disk_exceeded="D" in tokens,
      limit_detail=detail,
  )


def collect(reads: dict[str, int], deadline: float, cap: int
            ) -> tuple[dict[str, bytearray], bool, bool]:
  """Drain a run's pipes (and close them) until EOF, the deadline, or the output cap.

  Only the runner holds the status pipe, so its EOF means the runner is gone;
  anything still holding stdout/stderr/result after a short drain is a
  leftover (e.g. the runner itself was killed) and is dealt with by the caller.
  """
  streams = {name: bytearray() for name in ("stdout", "stderr", "status", "result")}
  limits = {"stdout": cap, "result": cap, "stderr": None, "status": 1 << 16}
  sel = selectors.DefaultSelector()
  for name, fd in reads.items():
    os.set_blocking(fd, False)
    sel.register(fd, selectors.EVENT_READ, name)
  timed_out = exceeded = False
  runner_gone_at = None
  try:
    while sel.get_map():
      now = time.monotonic()
      if runner_gone_at is not None and now - runner_gone_at > _DRAIN_AFTER_RUNNER_S:
        break
      remaining = deadline - now
      if remaining <= 0:
        timed_out = True
        break
      if runner_gone_at is not None:
        remaining = min(remaining, _DRAIN_AFTER_RUNNER_S)
      for key, _ in sel.select(remaining):
        try:
          data = os.read(key.fd, 1 << 16)
        except BlockingIOError:
          continue
        if not data:
          sel.unregister(key.fd)
          if key.data == "status":
            runner_gone_at = time.monotonic()
          continue
        name, buf = key.data, streams[key.data]
        limit = limits[name]
        if limit is None:  # stderr: keep the head, drain the rest
          buf += data[: max(0, _STDERR_KEEP - len(buf))]
        elif len(buf) + len(data) > limit:
          exceeded = True
        else:
          buf += data
      if exceeded:
        break
  finally:
    sel.close()
    for fd in reads.values():
      os.close(fd)
  return streams, timed_out, exceeded


def _kill_all(proc: subprocess.Popen, mode: str, uid: int | None, token: str) -> None:
  """Make sure nothing the program started outlives this call."""
  if proc.poll() is None:
    # The runner's session: in namespaces mode killing it takes the pid
    # namespace down (its init has PDEATHSIG=SIGKILL).
    with contextlib.suppress(ProcessLookupError, PermissionError):
      os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
      proc.kill()
  proc.wait()
  if mode == "fallback":
    with contextlib.suppress(ProcessLookupError, PermissionError):
      os.killpg(proc.pid, signal.SIGKILL)
    if uid is not None:
      swept, what = host.sweep(lambda: host.pids_with_uid(uid)), f"uid {uid}"
    else:
      swept, what = host.sweep(lambda: host.pids_with_marker(token)), f"marker {token}"
    if not swept:
      raise SandboxError(f"could not kill the processes left by a sandboxed program ({what})")


def _parse_status(raw: bytes) -> dict[str, str]:
  """The runner's status lines as {token: message}, first of each token only."""
  tokens: dict[str, str] = {}
  for line in raw.decode("utf-8", "replace").splitlines():
    key, _, msg = line.partition(" ")
    if key in ("R", "S", "E", "X", "T", "D") and key not in tokens:
      tokens[key] = msg
  return tokens
