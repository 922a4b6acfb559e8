"""Fallback mode's policy: an audit hook, for hosts that give the sandbox no namespaces.

Installed in the program's process (``_sandbox_confine``) before the program is
compiled: standard library only, no ``r1jax`` imports.
"""

import os
import sys

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


def install(cfg: dict) -> None:
  """Best-effort policy for when the kernel gives us no namespaces.

  Blocks sockets, starting new programs, ctypes, signals to other processes,
  symlinks, ``..`` in relative paths, writes outside the work directory, more
  than ``max_files`` new names in it (per process; the runner caps the bytes),
  and reads outside the work directory, the interpreter's own files and a few
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
  max_files, created = cfg["max_files"], [0]

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
    return p

  def count_new(p):
    """Charge a new name in the work directory against the program's file budget."""
    if p is None:
      return
    try:
      lstat(p)
      return  # already there: no new file
    except OSError:
      pass
    created[0] += 1
    if created[0] > max_files:
      deny(f"creating more than {max_files} files")

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
        if p in devices:
          return
        if not under(p, (workdir,)):
          deny(f"writing {p}")
        count_new(p)
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
      p = require_inside(event, args[0], dir_fd)
      if event == "os.mkdir":
        count_new(p)
    elif event in ("os.rename", "os.link"):  # (src, dst, src_dir_fd, dst_dir_fd)
      require_inside(event, args[0], args[2])
      p = require_inside(event, args[1], args[3])
      if event == "os.link":
        count_new(p)
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


