"""Trusted launcher executed as the sandbox child process (see ``r1jax.rewards._sandbox``).

This file is run as a script by a fresh interpreter (``python -I -S -B``), so it
and its sibling modules (``_sandbox_jail``: namespaces and the new root;
``_sandbox_confine``: the program's own process; ``_sandbox_audit``: the fallback
policy) must stay standalone: standard library only, no ``r1jax`` imports, no
logging framework.  They are imported from this directory, which is removed from
``sys.path`` again before any untrusted code runs.  Everything here runs *before*
the untrusted program is loaded, with the privileges needed to build the sandbox,
and then drops them for good.

Process tree::

    judge (host)                       reads stdout/stderr/status/result pipes
      runner   (this file, main)       trusted supervisor: wall-clock timer,
                                       watches the judge's lifeline pipe
        init   (namespaces only)       pid 1 of a new pid namespace: builds the
                                       root, pivot_root, reaps, reports exit
          user                         rlimits, unprivileged uid, no capabilities,
                                       runs the untrusted program

In ``namespaces`` mode the runner unshares the namespaces and killing init
takes the whole pid namespace down.  In ``fallback`` mode the user process is
the runner's direct child, in its own session, behind an audit hook; the
runner kills its session and sweeps leftovers (by uid, or by the per-run
marker in the environment) as soon as it exits or times out.  If the judge
dies, the lifeline pipe reads EOF and the runner kills everything first.

Protocol on the status pipe (runner -> judge, one token per line), written when
the run is over: ``R`` program about to start, ``S <msg>`` program does not
compile, ``E <msg>`` sandbox setup failed, ``X <wait status>`` exit of the user
process, ``T`` the runner's wall-clock timer fired.
The status pipe and the internal setup pipe are closed before untrusted code
runs, so the program cannot write to them.  The program's function-call result
goes to a separate result pipe; it is only a *claimed value* that the judge
compares against an expected value the child never sees.
"""

import marshal
import os
import signal
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.append(_HERE)  # last: a sibling never shadows the standard library
try:
  import _sandbox_confine as confine
  import _sandbox_jail as jail
finally:
  sys.path.remove(_HERE)
  sys.path_importer_cache.pop(_HERE, None)


def _supervise(cfg: dict, pid: int, setup_r: int) -> tuple[bytes, int | None, bool]:
  """Wait for the child, enforcing the wall clock and watching the judge's lifeline.

  Returns (setup-pipe messages, wait status of the child, timed out).  The
  child is ``init`` (namespaces: killing it takes the whole pid namespace) or
  the program itself (fallback: its session is killed and leftovers swept).
  """
  import select
  import time

  lifeline = cfg["lifeline_fd"]
  try:
    pidfd = os.pidfd_open(pid)
  except (AttributeError, OSError):  # kernel < 5.3 or a seccomp filter: poll
    pidfd = None
  watch = {setup_r, lifeline} | ({pidfd} if pidfd is not None else set())
  deadline = time.monotonic() + cfg["timeout_s"]
  chunks, status, timed_out = [], None, False
  while True:
    if status is None:
      reaped, wait_status = os.waitpid(pid, os.WNOHANG)
      if reaped:
        status = wait_status
        if cfg["mode"] == "fallback":
          _kill_fallback(cfg, pid)  # whatever the program left running
    if status is not None and setup_r not in watch:
      return b"".join(chunks), status, timed_out
    remaining = deadline - time.monotonic()
    if remaining <= 0 and not timed_out:
      timed_out = True
      _kill_child(cfg, pid)
    wait = None if timed_out else max(remaining, 0)
    if pidfd is None or pidfd not in watch:
      wait = 0.005 if wait is None else min(wait, 0.005)
    for fd in select.select(list(watch), [], [], wait)[0]:
      if fd == lifeline:  # EOF: the judge is gone; leave nothing behind
        _kill_child(cfg, pid)
        jail._exit(1)
      if fd == pidfd:
        watch.discard(pidfd)
        continue
      data = os.read(fd, 4096)
      if data:
        chunks.append(data)
      else:
        watch.discard(fd)


def _kill_child(cfg: dict, pid: int) -> None:
  if cfg["mode"] == "namespaces":
    try:
      os.kill(pid, signal.SIGKILL)  # pid-ns init: takes the whole namespace
    except ProcessLookupError:
      pass
  else:
    _kill_fallback(cfg, pid)


def _kill_fallback(cfg: dict, pid: int) -> None:
  """Kill the program's session, then every process with its uid / run marker."""
  try:
    os.killpg(pid, signal.SIGKILL)
  except (ProcessLookupError, PermissionError):
    pass
  uid = cfg["uid"] if cfg["as_root"] else None
  marker = f"{cfg['marker_env']}={os.environ[cfg['marker_env']]}".encode()
  me = os.getpid()
  for _ in range(200):
    found = False
    for name in os.listdir("/proc"):
      if not name.isdigit() or int(name) == me:
        continue
      try:
        with open(f"/proc/{name}/stat", "rb") as f:
          if f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X"):
            continue
        if uid is not None:
          with open(f"/proc/{name}/status", "rb") as f:
            match = any(line.startswith(b"Uid:") and int(line.split()[1]) == uid
                        for line in f)
        else:
          with open(f"/proc/{name}/environ", "rb") as f:
            match = marker in f.read().split(b"\0")
        if match:
          found = True
          os.kill(int(name), signal.SIGKILL)
      except (OSError, IndexError, ValueError):
        continue
    if not found:
      return
    import time

    time.sleep(0.005)


def _init_main(cfg: dict, src: bytes, setup_w: int) -> None:
  """pid 1 of the new pid namespace: build the root, fork the user process, reap."""
  try:
    # As pid 1 we only receive signals we have handlers for; drop Python's
    # SIGINT handler so the program cannot interrupt init (user-ns mode).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    jail.libc().prctl(jail.PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    jail.build_root(cfg)
    user_pid = os.fork()
    if user_pid == 0:
      confine.main(cfg, src, setup_w)  # never returns
    while True:
      pid, status = os.waitpid(-1, 0)
      if pid == user_pid:
        break
    jail.report(setup_w, "X", str(status))
  except BaseException as e:  # noqa: BLE001 - report anything, then die
    jail.report(setup_w, "E", f"init: {type(e).__name__}: {e}")
  jail._exit(0)  # init exiting kills every process left in the namespace


def main() -> None:
  """Read the run's config, start the sandbox, supervise it, report on the status pipe."""
  cfg = marshal.loads(bytes.fromhex(sys.argv[1]))  # marshal: no import cost, unlike json
  with open("main.py", "rb") as f:  # cwd is the program's host work directory
    src = f.read()
  namespaces = cfg["mode"] == "namespaces"
  if namespaces:
    jail.enter_namespaces(cfg)
  setup_r, setup_w = os.pipe()
  pid = os.fork()
  if pid == 0:
    for fd in (cfg["status_fd"], cfg["lifeline_fd"], setup_r):
      os.close(fd)
    if namespaces:
      _init_main(cfg, src, setup_w)  # never returns
    os.setsid()  # the program's own session: the supervisor kills it as a group
    confine.main(cfg, src, setup_w)  # never returns
  os.close(setup_w)
  messages, status, timed_out = _supervise(cfg, pid, setup_r)
  if timed_out:
    jail.report(cfg["status_fd"], "T")
  if not namespaces and status is not None:
    messages += f"X {status}\n".encode()  # (namespaces: init reports the program's)
  try:
    os.write(cfg["status_fd"], messages)
  except OSError:
    pass
  jail._exit(0)


if __name__ == "__main__":
  main()
