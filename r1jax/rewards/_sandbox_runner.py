"""Trusted launcher executed as the sandbox child process (see ``r1jax.rewards._sandbox``).

This file is run as a script by a fresh interpreter (``python -I -S -B``), so it
and its sibling modules (``_sandbox_jail``: namespaces and the new root;
``_sandbox_confine``: the program's own process; ``_sandbox_audit``: the fallback
policy; ``_sandbox_clock``: the program's time; ``_sandbox_serve``: a batch's
pre-started runner that forks one runner per program) must stay standalone:
standard library only, no ``r1jax`` imports, no logging framework.  They are
imported from this directory, which is removed from ``sys.path`` again before any
untrusted code runs.  Everything here runs *before* the untrusted program is
loaded, with the privileges needed to build the sandbox, and then drops them for
good.

Process tree::

    judge (host)                       reads stdout/stderr/status/result pipes
      runner   (this file, main)       trusted supervisor: the program's clock,
                                       disk quota (fallback), the judge's lifeline
        init   (namespaces only)       pid 1 of a new pid namespace: builds the
                                       root, pivot_root, reaps, reports exit
          user                         rlimits, unprivileged uid, no capabilities,
                                       runs the untrusted program

In ``namespaces`` mode the runner unshares the namespaces and killing init
takes the whole pid namespace down.  A batch server (``_sandbox_serve``) forks each
runner straight into a new pid namespace, so there the runner is init itself (builds
nothing: the server built the root; mounts the program's scratch space, forks the
program, reaps orphans, and kills the namespace's other processes when the program
ends or times out).  In ``fallback`` mode the user process is
the runner's direct child, in its own session, behind an audit hook; the
runner kills its session and sweeps leftovers (by uid, or by the per-run
marker in the environment) as soon as it exits or times out.  If the judge
dies, the lifeline pipe reads EOF and the runner kills everything first.

The program's clock (``_sandbox_clock``) starts when it is about to run (``R``),
not when the runner starts, and charges its run time and sleep, not the time it
waits for a CPU on a busy host or loses to a hypervisor (stolen time), within a CPU budget for all its processes and a wall-clock cap;
sandbox setup has its own cap, ``setup_s``.

Protocol on the status pipe (runner -> judge, one token per line), written when
the run is over: ``R`` program about to start, ``S <msg>`` program does not
compile, ``E <msg>`` sandbox setup failed, ``X <wait status>`` exit of the user
process, ``T <msg>`` the program ran out of time, ``D <bytes>`` the program's
files outgrew the disk quota (fallback; namespaces mode uses a sized tmpfs).
The status pipe and the internal setup pipe are closed before untrusted code
runs, so the program cannot write to them.  The program's function-call result
goes to a separate result pipe; it is only a *claimed value* that the judge
compares against an expected value the child never sees.
"""

import marshal
import os
import select
import signal
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.append(_HERE)  # last: a sibling never shadows the standard library
try:
  import _sandbox_clock as clocks
  import _sandbox_confine as confine
  import _sandbox_jail as jail
  import _sandbox_serve as serve
finally:
  sys.path.remove(_HERE)
  sys.path_importer_cache.pop(_HERE, None)

_DISK_POLL_S = 0.05  # fallback mode: how often the work directory is measured
_CPU_POLL_S = 0.1  # how often the CPU time of the program's processes is added up


def _disk_usage(path: str, max_entries: int) -> int:
  """Bytes allocated under ``path``; over ``max_entries`` names counts as unbounded."""
  total, todo, seen = 0, [path], 0
  while todo:
    try:
      entries = os.scandir(todo.pop())
    except OSError:
      continue
    with entries:
      for entry in entries:
        seen += 1
        if seen > max_entries:
          return 1 << 62
        try:
          st = entry.stat(follow_symlinks=False)
        except OSError:
          continue
        total += st.st_blocks * 512
        if entry.is_dir(follow_symlinks=False):
          todo.append(entry.path)
  return total


def _supervise(cfg: dict, pid: int, setup_r: int, proc_fd: int
               ) -> tuple[bytes, int | None, str | None]:
  """Wait for the child, enforcing the program's clock and watching the judge's lifeline.

  Returns (setup-pipe messages, wait status of the child, why it was killed: a
  status token, or None).  The child is ``init`` (namespaces: killing it takes
  the whole pid namespace) or the program itself (fallback: its session is
  killed and leftovers swept).  ``proc_fd`` is the host's ``/proc``, opened
  before init's ``pivot_root`` moved this process into the sandbox's root too.
  """
  lifeline = cfg["lifeline_fd"]
  fallback = cfg["mode"] == "fallback"
  pid1 = cfg["serve"]  # a batch server forked this runner as pid 1
  # The clock's process tree: under init (this runner where it is pid 1 itself).
  tree = jail.host_pid(proc_fd) if pid1 else pid
  try:
    pidfd = os.pidfd_open(pid)
  except (AttributeError, OSError):  # kernel < 5.3 or a seccomp filter: poll
    pidfd = None
  watch = {setup_r, lifeline} | ({pidfd} if pidfd is not None else set())
  deadline = time.monotonic() + cfg["setup_s"]
  chunks, status, killed, clock = [], None, None, None
  next_disk_check = next_cpu_check = 0.0
  try:
    while True:
      if status is None:
        reaped, wait_status = os.waitpid(pid, os.WNOHANG)
        if reaped:
          status = wait_status
          if fallback:
            _kill_fallback(cfg, pid)  # whatever the program left running
          elif pid1:
            _kill_child(cfg, pid)  # as init's exit would: the rest of the namespace
      if pid1:
        _reap_orphans(pid)
      if status is not None and setup_r not in watch:
        return b"".join(chunks), status, killed
      now = time.monotonic()
      if killed is None and now >= deadline:
        deadline = clock.deadline() if clock is not None else deadline
        if now >= deadline:
          killed = "T " + (clock.summary() if clock else f"setup over {cfg['setup_s']:g}s")
          _kill_child(cfg, pid)
      if killed is None and clock is not None and now >= next_cpu_check:
        deadline = clock.deadline()  # each call samples the program's main thread
        if clock.out_of_cpu():
          killed = "T " + clock.summary() + " (CPU budget spent)"
          _kill_child(cfg, pid)
        next_cpu_check = now + _CPU_POLL_S
      if killed is None and clock is not None and fallback and now >= next_disk_check:
        used = _disk_usage(cfg["workdir"], 4 * cfg["max_files"])
        if used > cfg["disk_bytes"]:
          killed = f"D {used}"
          _kill_child(cfg, pid)
        next_disk_check = now + _DISK_POLL_S
      wait = None if killed is not None else max(deadline - now, 0.0)
      if wait is not None and clock is not None:
        wait = min(wait, _DISK_POLL_S if fallback else _CPU_POLL_S)
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
        if not data:
          watch.discard(fd)
          continue
        chunks.append(data)
        if clock is None and b"R" in b"".join(chunks).split(b"\n"):
          clock = clocks.Clock(cfg, proc_fd, tree)
          next_cpu_check = clock.start + _CPU_POLL_S
          deadline = clock.deadline()
  finally:
    if clock is not None:
      clock.close()


def _kill_child(cfg: dict, pid: int) -> None:
  if cfg["serve"]:  # this runner is pid 1 of the namespace
    try:
      os.kill(-1, signal.SIGKILL)  # from pid 1: every other process of its namespace
    except ProcessLookupError:
      pass
  elif cfg["mode"] == "namespaces":
    try:
      os.kill(pid, signal.SIGKILL)  # pid-ns init: takes the whole namespace
    except ProcessLookupError:
      pass
  else:
    _kill_fallback(cfg, pid)


def _reap_orphans(program: int) -> None:
  """As pid 1: collect the exited processes the program left behind (re-parented to
  init), as an init would; the program itself is left to ``_supervise``'s waitpid."""
  while True:
    try:
      info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
      return
    if info is None or info.si_pid == program:
      return
    os.waitpid(info.si_pid, 0)


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
    time.sleep(0.005)


def _become_init(cfg: dict, src: bytes) -> None:
  """A batch server's runner, pid 1 of the program's pid namespace: what init does
  before it forks the program (the program's own mounts; no signal but those handled
  reaches pid 1 from inside, so SIGINT is left unhandled)."""
  try:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    jail.mount_scratch(cfg, src, "")  # the server's skeleton is this namespace's root
    os.chdir("/work")
  except BaseException as e:  # noqa: BLE001 - report anything, then die
    jail.report(cfg["status_fd"], "E", f"init: {type(e).__name__}: {e}")
    jail._exit(1)


def _init_main(cfg: dict, src: bytes, setup_w: int) -> None:
  """pid 1 of the new pid namespace: build the root, fork the user process, reap."""
  try:
    # As pid 1 we only receive signals we have handlers for; drop Python's
    # SIGINT handler so the program cannot interrupt init (user-ns mode).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    jail.libc().prctl(jail.PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    jail.build_root(cfg, src)  # (a batch server's runner is init itself: _become_init)
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


def run_one(cfg: dict, src: bytes) -> None:
  """Start one program's sandbox, supervise it, report on the status pipe; never returns.

  A batch server's runner (``cfg["serve"]``) is already pid 1 of the program's new pid
  namespace: it mounts the program's scratch space and forks the program itself, with
  no init between them (one process fewer per program)."""
  namespaces = cfg["mode"] == "namespaces"
  pid1 = cfg["serve"]  # a batch server forked this runner as pid 1
  if namespaces:
    jail.enter_namespaces(cfg)
  setup_r, setup_w = os.pipe()
  proc_fd = cfg["proc_fd"]
  if pid1:
    _become_init(cfg, src)
  pid = os.fork()
  if pid == 0:
    for fd in (cfg["status_fd"], cfg["lifeline_fd"], setup_r, proc_fd):
      os.close(fd)
    if "program_nice" in cfg:  # a batch server's runner: back to the judge's priority
      os.setpriority(os.PRIO_PROCESS, 0, cfg["program_nice"])
    if namespaces and not pid1:
      _init_main(cfg, src, setup_w)  # never returns
    if not namespaces:
      os.setsid()  # the program's own session: the supervisor kills it as a group
    confine.main(cfg, src, setup_w)  # never returns
  os.close(setup_w)
  messages, status, killed = _supervise(cfg, pid, setup_r, proc_fd)
  if killed is not None:
    jail.report(cfg["status_fd"], killed[0], killed[2:])
  if (pid1 or not namespaces) and status is not None:
    messages += f"X {status}\n".encode()  # (else init reports the program's)
  try:
    os.write(cfg["status_fd"], messages)
  except OSError:
    pass
  jail._exit(0)


def main() -> None:
  """Run the program in this directory, or serve a batch (``_sandbox_serve``)."""
  cfg = marshal.loads(bytes.fromhex(sys.argv[1]))  # marshal: no import cost, unlike json
  # The host's /proc, for the program's clock: init's pivot_root moves this process
  # into the sandbox's root as well (one mount namespace).
  cfg["proc_fd"] = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)
  if cfg["serve"]:
    serve.serve(cfg, run_one)
  with open("main.py", "rb") as f:  # cwd is the program's host work directory
    src = f.read()
  run_one(cfg, src)


if __name__ == "__main__":
  main()
