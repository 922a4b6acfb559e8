"""A pre-started runner that forks one fresh sandbox per program (namespaces mode).

Started by the judge (``r1jax.rewards._sandbox_batch``) for one batch of programs, as
``_sandbox_runner.py`` with ``serve`` set: standard library only, no ``r1jax``
imports.  It saves each program the interpreter start and the imports of a runner of
its own, and one process per program: for each request the server forks the runner
straight into a new pid namespace (``_fork_into_new_pid_namespace``), so the runner is
that namespace's init and forks the program itself, where a runner started on its own
needs an init between them.  Everything else is per program as before: the runner
unshares new mount, network, ipc and uts namespaces, mounts the program's scratch
space, supervises it and reports on the request's own status pipe
(``_sandbox_runner.run_one``).

Requests arrive on a ``SOCK_SEQPACKET`` socket, one message each: a marshalled dict
(``op`` ``"run"``: the program's settings, ``id``; ``"kill"``: ``id``) and, for a
run, the descriptors ``[source, stdin, stdout, stderr, status]`` plus ``result`` for
a function call.  The forked runner keeps only its own descriptors (stdio on 0-2,
status, lifeline, result and the host's /proc on 3-6) before it does anything else.
The server exits when the socket closes (the batch is over) or the judge's lifeline
reads EOF, and kills its runners first; each runner also has ``PDEATHSIG=SIGKILL``
on the server, and is its sandbox's init (when init dies the kernel kills every process
of its pid namespace), so killing the server takes every sandbox down.  The program
runs under a uid of its own and cannot signal or trace its runner (root), which it
sees as pid 1.

The server builds the read-only part of the root (``_sandbox_jail.build_skeleton``)
once, in a mount namespace of its own, and pivots into it; a runner's new mount
namespace is a copy of that, to which it adds the program's own /proc, /tmp,
/dev/shm and /work (``mount_scratch``).  No host tree is mounted where runners or
programs live.
"""

import fcntl
import gc
import marshal
import os
import select
import signal
import socket

import _sandbox_jail as jail

_HIGH_FD = 1000  # where a forked runner parks its descriptors while it closes the rest
_MAX_FDS = 8
SERVER_NICE = -10  # the server's and its runners' scheduling priority (root judge)


def serve(cfg: dict, run_one) -> None:
  """Answer requests until the socket closes or the judge dies; never returns."""
  # What every forked runner and program needs, loaded once here instead of per program.
  for name in ("resource", "traceback"):  # the program's limits, a failing program's report
    __import__(name)

  jail.libc()  # ctypes: namespaces, mounts, pivot_root
  # Every program of the batch passes through this one process and a runner of its
  # own: on a busy host they must not queue for a CPU behind the programs they start
  # (benchmarks/README.md, code reward). Each program goes back to the judge's
  # priority before anything of it runs (``_sandbox_runner.run_one``).
  cfg["program_nice"] = os.getpriority(os.PRIO_PROCESS, 0)
  try:
    os.setpriority(os.PRIO_PROCESS, 0, SERVER_NICE)
  except OSError:
    pass
  # The read-only part of every program's root, built once in a mount namespace of
  # the server's own; each runner's new mount namespace starts as a copy of it.
  jail.check(jail.libc().unshare(jail.CLONE_NEWNS), "unshare")
  jail.build_skeleton(cfg)
  jail.enter_root(cfg["rootdir"])
  # Keep the collector off what exists now: a forked runner, init or program that
  # walked these objects would copy every page of the server's heap.
  gc.freeze()
  sock = socket.socket(fileno=cfg["request_fd"])
  lifeline = cfg["lifeline_fd"]
  wake_r, wake_w = os.pipe()
  os.set_blocking(wake_w, False)
  signal.set_wakeup_fd(wake_w)
  signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes select through wake_r
  runners: dict[int, int] = {}  # request id -> pid of its runner, while alive
  server_pid = os.getpid()
  # The server's own pid namespace, to which it returns after each runner's fork.
  own_pid_ns = os.open("self/ns/pid", os.O_RDONLY, dir_fd=cfg["proc_fd"])
  while True:
    _reap(runners)
    ready = select.select([sock, lifeline, wake_r], [], [])[0]
    if wake_r in ready:
      os.read(wake_r, 4096)
    # The lifeline is only ever readable at EOF: the judge is gone.
    if lifeline in ready or (sock in ready and not _handle(sock, cfg, runners, server_pid,
                                                           own_pid_ns, run_one)):
      for pid in runners.values():
        _kill(pid)
      os._exit(0)


def _handle(sock: socket.socket, cfg: dict, runners: dict, server_pid: int,
            own_pid_ns: int, run_one) -> bool:
  """Serve one request; False when the socket is closed (the batch is over)."""
  try:
    msg, fds, _, _ = socket.recv_fds(sock, 1 << 16, _MAX_FDS)
  except OSError:
    return False
  if not msg:
    for fd in fds:
      os.close(fd)
    return False
  req = marshal.loads(msg)
  if req["op"] == "kill":
    if req["id"] in runners:
      _kill(runners[req["id"]])
    return True
  pid = _fork_into_new_pid_namespace(own_pid_ns)
  if pid == 0:
    _runner(cfg, req, fds, server_pid, run_one)  # never returns
  runners[req["id"]] = pid
  for fd in fds:
    os.close(fd)
  return True


def _fork_into_new_pid_namespace(own_pid_ns: int) -> int:
  """``os.fork``, the child being pid 1 of a new pid namespace; the server stays in its
  own (``unshare(CLONE_NEWPID)`` only places the caller's next children, and
  ``setns`` back to its own namespace undoes that for every later fork)."""
  jail.check(jail.libc().unshare(jail.CLONE_NEWPID), "unshare(CLONE_NEWPID)")
  pid = -1
  try:
    pid = os.fork()
  finally:
    if pid != 0:
      jail.check(jail.libc().setns(own_pid_ns, jail.CLONE_NEWPID), "setns")
  return pid


def _runner(cfg: dict, req: dict, fds: list, server_pid: int, run_one) -> None:
  """In the forked runner (pid 1 of the program's pid namespace): keep only this
  program's descriptors, then run it."""
  try:
    jail.libc().prctl(jail.PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    # The parent is outside this pid namespace (getppid() is 0): ask the host's /proc.
    if jail.host_ppid(cfg["proc_fd"]) != server_pid:  # the server died before PDEATHSIG
      os._exit(1)
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    src_fd, stdin_fd, out_fd, err_fd, status_fd = fds[:5]
    result_fd = fds[5] if len(fds) > 5 else -1
    src = b""
    while chunk := os.pread(src_fd, 1 << 20, len(src)):
      src += chunk
    for target, fd in ((0, stdin_fd), (1, out_fd), (2, err_fd)):
      os.dup2(fd, target)
    keep = [status_fd, cfg["lifeline_fd"], result_fd, cfg["proc_fd"]]
    parked = [fcntl.fcntl(fd, fcntl.F_DUPFD, _HIGH_FD) if fd != -1 else -1 for fd in keep]
    os.closerange(3, _HIGH_FD)  # the socket, other requests' descriptors, everything else
    for target, fd in zip((3, 4, 5, 6), parked):
      if fd != -1:
        os.dup2(fd, target)
    os.closerange(_HIGH_FD, _HIGH_FD + 64)
    run_cfg = dict(cfg)
    run_cfg.update(req["cfg"])
    run_cfg.update(status_fd=3, lifeline_fd=4, result_fd=5 if result_fd != -1 else -1,
                   proc_fd=6)
  except BaseException:  # noqa: BLE001 - no status: the judge reports a broken sandbox
    os._exit(1)
  run_one(run_cfg, src)


def _reap(runners: dict) -> None:
  """Collect runners that have exited (their status went to the judge already)."""
  while True:
    try:
      pid, _ = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
      return
    if not pid:
      return
    for key, value in list(runners.items()):
      if value == pid:
        del runners[key]


def _kill(pid: int) -> None:
  """SIGKILL a runner, its sandbox's init: its whole pid namespace goes with it."""
  try:
    os.kill(pid, signal.SIGKILL)
  except ProcessLookupError:
    pass
