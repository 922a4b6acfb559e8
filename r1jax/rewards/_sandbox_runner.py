"""Trusted launcher executed as the sandbox child process (see ``r1jax.rewards._sandbox``).

This file is run as a script by a fresh interpreter (``python -I -S -B``), so it
must stay standalone: standard library only, no ``r1jax`` imports.  Everything
here runs *before* the untrusted program is loaded, with the privileges needed
to build the sandbox, and then drops them for good.

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

# Captured before any untrusted code runs: the program may rebind builtins.
_write = os.write
_close = os.close
_exit = os._exit
_type = type
_repr = repr
_eval = eval
_exec = exec
_compile = compile
_isinstance = isinstance
_len = len

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

MNT_DETACH = 2
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "arm64": 41, "riscv64": 41,
                   "ppc64le": 203, "s390x": 217}
SYS_MOUNT_SETATTR = 442  # same number on x86_64 and aarch64
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4

_libc = None


def _c():
  """Lazily load libc through ctypes (namespaces mode only)."""
  global _libc
  if _libc is None:
    import ctypes

    _libc = ctypes.CDLL(None, use_errno=True)
  return _libc


def _check(ret: int, what: str) -> None:
  if ret != 0:
    import ctypes

    err = ctypes.get_errno()
    raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(src, target, fstype, flags, data=None):
  enc = lambda s: None if s is None else os.fsencode(s)  # noqa: E731
  _check(
      _c().mount(enc(src), enc(target), enc(fstype), flags, enc(data)),
      f"mount {src} -> {target}",
  )


def _make_readonly(path: str) -> None:
  """Make ``path`` and every mount below it read-only, nosuid, nodev."""
  import ctypes

  class MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]

  attr = MountAttr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0, 0, 0)
  ret = _c().syscall(
      SYS_MOUNT_SETATTR, AT_FDCWD, os.fsencode(path), AT_RECURSIVE,
      ctypes.byref(attr), ctypes.sizeof(attr),
  )
  if ret != 0:  # kernel < 5.12: remount the top mount only
    _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _report(fd: int, token: str, msg: str = "") -> None:
  line = (token + (" " + msg.replace("\n", " ")[:500] if msg else "") + "\n").encode()
  try:
    _write(fd, line)
  except OSError:
    pass


# ---------------------------------------------------------------------------
# namespaces mode
# ---------------------------------------------------------------------------


def _build_root(cfg: dict) -> None:
  """Inside the new mount namespace: assemble a minimal root and pivot into it."""
  root = cfg["rootdir"]
  os.umask(0o022)
  _mount(None, "/", None, MS_REC | MS_PRIVATE)
  _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
  for kind, path, target in cfg["binds"]:
    dst = root + path
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if kind == "link":
      os.symlink(target, dst)
    elif kind == "dir":
      os.makedirs(dst, exist_ok=True)
      _mount(path, dst, None, MS_BIND | MS_REC)
      _make_readonly(dst)
    else:  # a single file, e.g. /etc/ld.so.cache
      open(dst, "wb").close()
      _mount(path, dst, None, MS_BIND)
      _make_readonly(dst)
  # /dev: a few harmless character devices, bound from the host.
  dev = root + "/dev"
  os.makedirs(dev, exist_ok=True)
  _mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755")
  for name in ("null", "zero", "full", "random", "urandom"):
    open(f"{dev}/{name}", "wb").close()
    _mount(f"/dev/{name}", f"{dev}/{name}", None, MS_BIND)
  for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                       ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
    os.symlink(target, f"{dev}/{name}")
  os.makedirs(dev + "/shm", exist_ok=True)
  _mount(None, dev, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC)
  # /proc of the new pid namespace: only the sandbox's own processes.
  os.makedirs(root + "/proc", exist_ok=True)
  if cfg["mount_proc"]:
    _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
  # Private, size-capped scratch space; vanishes with the namespace.
  for path in ("/tmp", "/dev/shm"):
    os.makedirs(root + path, exist_ok=True)
    _mount("tmpfs", root + path, "tmpfs", MS_NOSUID | MS_NODEV,
           f"size={cfg['tmpfs_mb']}m,mode=1777")
  # The program's own directory, the only host directory it can write.
  os.makedirs(root + "/work", exist_ok=True)
  _mount(cfg["workdir"], root + "/work", None, MS_BIND)
  _mount(None, root + "/work", None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV)
  _mount(None, root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
  # pivot_root, then detach the old root: unlike a bare chroot, the host tree
  # is no longer mounted anywhere in this namespace, so even a program that
  # regains CAP_SYS_CHROOT in a user namespace of its own has nothing to escape to.
  os.chdir(root)
  _check(_c().syscall(_SYS_PIVOT_ROOT[os.uname().machine], b".", b"."), "pivot_root")
  _check(_c().umount2(b".", MNT_DETACH), "umount old root")
  os.chdir("/")
  os.chroot(".")
  os.chdir("/work")


def _drop_capabilities() -> None:
  """Drop every capability (user-namespace mode, where the uid cannot change)."""
  import ctypes

  libc = _c()
  for cap in range(64):
    libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # EINVAL past the last cap: fine
  libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)

  class Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

  class Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]

  data = (Data * 2)()
  _check(libc.capset(ctypes.byref(Header(0x20080522, 0)), data), "capset")


def _enter_namespaces(cfg: dict) -> None:
  """Arm PDEATHSIG and unshare the namespaces (plus a user namespace if not root)."""
  libc = _c()
  libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
  if os.getppid() == 1:  # the judge died before we armed PDEATHSIG
    _exit(1)
  flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
  try:
    if not cfg["as_root"]:
      uid, gid = os.getuid(), os.getgid()
      _check(libc.unshare(flags | CLONE_NEWUSER), "unshare")
      with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
      with open("/proc/self/uid_map", "w") as f:
        f.write(f"{uid} {uid} 1")
      with open("/proc/self/gid_map", "w") as f:
        f.write(f"{gid} {gid} 1")
    else:
      _check(libc.unshare(flags), "unshare")
  except OSError as e:
    _report(cfg["status_fd"], "E", f"namespaces: {e}")
    _exit(1)


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
        _exit(1)
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
    _c().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    _build_root(cfg)
    user_pid = os.fork()
    if user_pid == 0:
      _user_main(cfg, src, setup_w)  # never returns
    while True:
      pid, status = os.waitpid(-1, 0)
      if pid == user_pid:
        break
    _report(setup_w, "X", str(status))
  except BaseException as e:  # noqa: BLE001 - report anything, then die
    _report(setup_w, "E", f"init: {type(e).__name__}: {e}")
  _exit(0)  # init exiting kills every process left in the namespace


# ---------------------------------------------------------------------------
# both modes: become unprivileged, then run the program
# ---------------------------------------------------------------------------


def _set_limits(cfg: dict) -> None:
  import resource

  lim = cfg["limits"]
  pairs = {
      resource.RLIMIT_CPU: (lim["cpu_s"], lim["cpu_s"] + 1),
      resource.RLIMIT_AS: (lim["as_bytes"], lim["as_bytes"]),
      resource.RLIMIT_FSIZE: (lim["fsize_bytes"], lim["fsize_bytes"]),
      resource.RLIMIT_NPROC: (lim["nproc"], lim["nproc"]),
      resource.RLIMIT_NOFILE: (lim["nofile"], lim["nofile"]),
      resource.RLIMIT_CORE: (0, 0),
  }
  for res, (soft, hard) in pairs.items():
    cur_hard = resource.getrlimit(res)[1]
    if cur_hard != resource.RLIM_INFINITY:
      hard = min(hard, cur_hard)
      soft = min(soft, hard)
    resource.setrlimit(res, (soft, hard))
  stack_soft, stack_hard = resource.getrlimit(resource.RLIMIT_STACK)
  want = 8 << 20
  if stack_hard == resource.RLIM_INFINITY or stack_hard >= want:
    resource.setrlimit(resource.RLIMIT_STACK, (want, stack_hard))


def _drop_privileges(cfg: dict) -> None:
  if cfg["as_root"]:
    uid, gid = cfg["uid"], cfg["gid"]
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid:
      raise OSError("uid switch did not take effect")
  elif cfg["mode"] == "namespaces":
    _drop_capabilities()
  if cfg["mode"] == "namespaces":
    _check(_c().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def _pin_import_path() -> None:
  """Reach the standard library through directory fds opened while still root.

  Without a chroot the interpreter's prefix may sit under a directory the
  sandbox uid cannot traverse (e.g. ``/root/.pyenv``); ``/proc/self/fd/N``
  resolves straight to the already-open directory.
  """
  pinned = {}
  for entry in sys.path:
    try:
      fd = os.open(entry, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
      continue
    pinned[entry] = f"/proc/self/fd/{fd}"

  def repin(path: str) -> str:
    for entry, fd_path in pinned.items():
      if path.startswith(entry + "/"):
        return fd_path + path[len(entry):]
    return path

  for module in list(sys.modules.values()):
    search = getattr(module, "__path__", None)
    if isinstance(search, list):  # packages imported so far
      search[:] = [repin(p) for p in search]
  sys.path[:] = list(pinned.values())
  sys.path_importer_cache.clear()


def _user_main(cfg: dict, src: bytes, report_fd: int) -> None:
  """Finish confinement, compile, signal readiness on the trusted pipe, run."""
  try:
    try:  # if the host runs out of memory, kill the program, not the judge
      with open("/proc/self/oom_score_adj", "w") as f:
        f.write("1000")
    except OSError:
      pass
    if cfg["mode"] == "fallback" and cfg["as_root"]:
      _pin_import_path()
    _set_limits(cfg)
    _drop_privileges(cfg)
    if cfg["mode"] == "fallback":
      _install_audit_hook(cfg)
  except BaseException as e:  # noqa: BLE001
    _report(report_fd, "E", f"confine: {type(e).__name__}: {e}")
    _exit(1)
  try:
    code = _compile(src, "main.py", "exec", dont_inherit=True)
    call_code = None
    if cfg["call"] is not None:
      call_code = _compile(cfg["call"], "<call>", "eval", dont_inherit=True)
  except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
    _report(report_fd, "S", f"{type(e).__name__}: {e}")
    _exit(1)
  _report(report_fd, "R")
  _close(report_fd)
  # Nothing trusted is reachable from here on: the status/setup pipes are closed.
  sys.argv = ["main.py"]
  del src
  _run_program(code, call_code, cfg["result_fd"])


def _plain(value, depth: int = 0):
  """Rebuild ``value`` from exact built-in types only (no user __repr__/__eq__)."""
  if depth > 200:
    raise ValueError("result nested too deeply")
  t = _type(value)
  if t in (int, float, str, bool, bytes, complex) or value is None:
    return value
  if t is list:
    return [_plain(v, depth + 1) for v in value]
  if t is tuple:
    return tuple(_plain(v, depth + 1) for v in value)
  if t is dict:
    return {_plain(k, depth + 1): _plain(v, depth + 1) for k, v in value.items()}
  if t is set:
    return {_plain(v, depth + 1) for v in value}
  raise TypeError(f"result of type {t.__name__} is not a plain literal value")


def _run_program(code, call_code, result_fd: int) -> None:
  import builtins

  rc = 0
  namespace = {
      "__name__": "__main__" if call_code is None else "solution",
      "__builtins__": builtins,
      "__file__": "main.py",
  }
  try:
    _exec(code, namespace)
    if call_code is not None:
      payload = _repr(_plain(_eval(call_code, namespace))).encode("utf-8")
      view = memoryview(payload)
      while view:
        view = view[_write(result_fd, view):]
  except SystemExit as e:
    rc = e.code if _type(e.code) is int else (0 if e.code is None else 1)
  except BaseException:  # noqa: BLE001 - the program's own failure
    rc = 1
    try:
      import traceback

      traceback.print_exc()
    except BaseException:  # noqa: BLE001
      pass
  # Mimic a normal interpreter exit: wait for threads, run atexit, flush.
  try:
    if "threading" in sys.modules:
      sys.modules["threading"]._shutdown()
    import atexit

    atexit._run_exitfuncs()
  except BaseException:  # noqa: BLE001
    rc = rc or 1
  for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
    try:
      stream.flush()
    except BaseException:  # noqa: BLE001
      pass
  _exit(rc & 0xFF)


# ---------------------------------------------------------------------------
# fallback mode: audit hook (no namespaces available)
# ---------------------------------------------------------------------------

_BLOCKED_EVENTS = frozenset({
    # network
    "socket.__new__", "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg",
    "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
    # new programs (would start without this hook)
    "os.exec", "os.posix_spawn", "os.spawn", "os.system", "os.forkpty", "subprocess.Popen",
    "os.startfile",
    # raw memory / foreign calls, and the ways to reach or rewrite this hook
    "ctypes.dlopen", "ctypes.dlsym", "ctypes.dlsym/handle", "ctypes.call_function",
    "ctypes.cdata", "ctypes.addressof", "ctypes.string_at", "ctypes.wstring_at",
    "gc.get_objects", "gc.get_referrers", "gc.get_referents",
    "sys.addaudithook", "cpython.run_interactivehook", "sys.setprofile", "sys.settrace",
    "os.chroot", "os.mknod", "os.mkfifo", "os.symlink",
})
_BLOCKED_IMPORTS = frozenset({"_posixsubprocess", "_ctypes", "ctypes"})
_WRITE_EVENTS = frozenset({
    "os.mkdir", "os.rmdir", "os.remove", "os.chmod", "os.chown", "os.truncate",
    "os.utime", "os.setxattr", "os.removexattr", "shutil.rmtree", "os.chflags", "os.lchflags",
})


def _install_audit_hook(cfg: dict) -> None:
  """Best-effort policy for when the kernel gives us no namespaces.

  Blocks sockets, starting new programs, ctypes, signals to other processes,
  symlinks, ``..`` in relative paths, writes outside the work directory, and
  reads outside the work directory, the interpreter's own files and a few
  device files.  The hook and its helpers only use names bound in this
  closure, never module globals or builtins, which the program could rebind.
  Known limits (why this is defence in depth only): path checks race with
  concurrent renames, and a check cannot see the ``dir_fd`` of an ``open``.
  """
  import posix
  import stat as _stat

  lstat, readlink, getcwd, getpid = posix.lstat, posix.readlink, posix.getcwd, posix.getpid
  S_ISLNK, S_ISDIR = _stat.S_ISLNK, _stat.S_ISDIR
  workdir = cfg["workdir"]
  read_roots = tuple(cfg["read_roots"]) + (workdir,)
  write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
  devices = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random", "/dev/full")
  blocked_events, blocked_imports = _BLOCKED_EVENTS, _BLOCKED_IMPORTS
  write_events = _WRITE_EVENTS
  str_, bytes_, int_, fspath, isinstance_, len_, any_ = (
      str, bytes, int, os.fspath, isinstance, len, any)
  permission_error = PermissionError

  def deny(event):
    raise permission_error(f"sandbox: {event} is not allowed")

  def canon(path, dir_fd=None):
    """Absolute path with symlinks resolved (None for an open descriptor)."""
    if isinstance_(path, int_):
      return None
    path = fspath(path)
    if isinstance_(path, bytes_):
      path = bytes_.decode(path, "utf-8", "surrogateescape")
    path = str_.__str__(path)  # an exact str: a subclass could lie in startswith/split
    if not path.startswith("/"):
      if ".." in path.split("/"):
        deny(f"relative path with '..' ({path})")
      base = getcwd() if dir_fd in (None, -1) else readlink(f"/proc/self/fd/{dir_fd}")
      path = base + "/" + path
    parts, hops = [], 0
    todo = [p for p in path.split("/") if p]
    while todo:
      part = todo.pop(0)
      if part == ".":
        continue
      if part == "..":
        if parts:
          parts.pop()
        continue
      candidate = "/" + "/".join(parts + [part])
      try:
        is_link = S_ISLNK(lstat(candidate).st_mode)
      except OSError:
        is_link = False
      if is_link and hops < 40:
        hops += 1
        target = readlink(candidate)
        if target.startswith("/proc/self") or candidate.startswith("/proc/"):
          parts.append(part)  # don't chase magic /proc links
          continue
        if target.startswith("/"):
          parts = []
        todo = [p for p in target.split("/") if p] + todo
      else:
        parts.append(part)
    return "/" + "/".join(parts)

  def under(path, roots):
    return any_(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)

  def readable(path):
    if path.startswith("/proc/"):
      own = f"/proc/{getpid()}"
      return path in ("/proc/self", own) or path.startswith(("/proc/self/", own + "/"))
    return path in devices or under(path, read_roots)

  def require_inside(event, path, dir_fd=None):
    p = canon(path, dir_fd)
    if p is not None and not under(p, (workdir,)):
      deny(f"{event} {p}")

  def hook(event, args):
    if event in blocked_events:
      deny(event)
    if event == "import":
      if str_.__str__(args[0]) in blocked_imports:
        deny(f"import {args[0]}")
    elif event == "open":
      path, mode, flags = args[0], args[1], args[2]
      p = canon(path)
      if p is None:
        return
      writing = (isinstance_(flags, int_) and flags & write_flags) or (
          isinstance_(mode, str_) and any_(c in mode for c in "wax+"))
      if writing:
        if p not in devices and not under(p, (workdir,)):
          deny(f"writing {p}")
      elif not readable(p):
        deny(f"reading {p}")
      elif not under(p, (workdir,)):
        try:  # no directory descriptors outside the work dir (for *at calls)
          is_dir = S_ISDIR(lstat(p).st_mode)
        except OSError:
          is_dir = False
        if is_dir:
          deny(f"opening directory {p}")
    elif event in write_events:
      dir_fd = args[-1] if len_(args) > 1 and isinstance_(args[-1], int_) else None
      require_inside(event, args[0], dir_fd)
    elif event in ("os.rename", "os.link"):  # (src, dst, src_dir_fd, dst_dir_fd)
      require_inside(event, args[0], args[2])
      require_inside(event, args[1], args[3])
    elif event == "os.chdir":
      if isinstance_(args[0], int_):
        deny("fchdir")
      require_inside(event, args[0])
    elif event in ("os.kill", "os.killpg"):
      if args[0] not in (0, getpid()):
        deny(event)
    elif event in ("os.listdir", "os.scandir"):
      p = canon(args[0]) if args and args[0] is not None else None
      if p is not None and p.startswith("/proc/") and not readable(p):
        deny(f"listing {p}")

  sys.addaudithook(hook)


# ---------------------------------------------------------------------------


def main() -> None:
  cfg = marshal.loads(bytes.fromhex(sys.argv[1]))  # marshal: no import cost, unlike json
  with open("main.py", "rb") as f:  # cwd is the program's work directory
    src = f.read()
  namespaces = cfg["mode"] == "namespaces"
  if namespaces:
    _enter_namespaces(cfg)
  setup_r, setup_w = os.pipe()
  pid = os.fork()
  if pid == 0:
    for fd in (cfg["status_fd"], cfg["lifeline_fd"], setup_r):
      _close(fd)
    if namespaces:
      _init_main(cfg, src, setup_w)  # never returns
    os.setsid()  # the program's own session: the supervisor kills it as a group
    _user_main(cfg, src, setup_w)  # never returns
  _close(setup_w)
  messages, status, timed_out = _supervise(cfg, pid, setup_r)
  if timed_out:
    _report(cfg["status_fd"], "T")
  if not namespaces and status is not None:
    messages += f"X {status}\n".encode()  # (namespaces: init reports the program's)
  try:
    _write(cfg["status_fd"], messages)
  except OSError:
    pass
  _exit(0)


if __name__ == "__main__":
  main()
