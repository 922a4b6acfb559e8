"""Namespaces mode of the sandbox child: unshare, build a minimal root, pivot into it.

Runs inside the runner process (``_sandbox_runner``), before any untrusted code
is loaded: standard library only, no ``r1jax`` imports (see that module).  Also
holds the small helpers every child-side module shares: libc through ctypes and
the one-line reports on the trusted status/setup pipes.
"""

import os
import signal

# Captured before any untrusted code runs: the program may rebind builtins.
_write = os.write
_exit = os._exit

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


def libc():
  """Lazily load libc through ctypes (namespaces mode only)."""
  global _libc
  if _libc is None:
    import ctypes

    _libc = ctypes.CDLL(None, use_errno=True)
  return _libc


def check(ret: int, what: str) -> None:
  """Raise OSError (with errno) when a libc call returned non-zero."""
  if ret != 0:
    import ctypes

    err = ctypes.get_errno()
    raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(src, target, fstype, flags, data=None):
  enc = lambda s: None if s is None else os.fsencode(s)  # noqa: E731
  check(
      libc().mount(enc(src), enc(target), enc(fstype), flags, enc(data)),
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
  ret = libc().syscall(
      SYS_MOUNT_SETATTR, AT_FDCWD, os.fsencode(path), AT_RECURSIVE,
      ctypes.byref(attr), ctypes.sizeof(attr),
  )
  if ret != 0:  # kernel < 5.12: remount the top mount only
    _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def report(fd: int, token: str, msg: str = "") -> None:
  """Write one status line (``token msg``) on a trusted pipe; never raises."""
  line = (token + (" " + msg.replace("\n", " ")[:500] if msg else "") + "\n").encode()
  try:
    _write(fd, line)
  except OSError:
    pass


def build_root(cfg: dict, src: bytes) -> None:
  """Inside the new mount namespace: assemble a minimal root and pivot into it."""
  build_skeleton(cfg)
  mount_scratch(cfg, src, cfg["rootdir"])
  enter_root(cfg["rootdir"])
  os.chdir("/work")


def build_skeleton(cfg: dict) -> None:
  """The read-only part of the root at ``cfg["rootdir"]``, with empty mount points for
  what every program gets fresh (``mount_scratch``); a batch server builds it once."""
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
  for path in ("/proc", "/tmp", "/work"):
    os.makedirs(root + path, exist_ok=True)
  _mount(None, root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def mount_scratch(cfg: dict, src: bytes, root: str) -> None:
  """A program's own mounts on the skeleton at ``root`` (in its pid namespace's init).

  /proc of the new pid namespace (only the sandbox's own processes), and private,
  size- and inode-capped scratch space in memory: /tmp, /dev/shm and /work, which
  holds a copy of main.py.  They vanish with the namespace; no write reaches a disk.
  """
  if cfg["mount_proc"]:
    _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
  scratch = f"size={cfg['tmpfs_mb']}m,nr_inodes={cfg['max_files']}"
  for path in ("/tmp", "/dev/shm", "/work"):
    mode = "0700" if path == "/work" else "1777"
    _mount("tmpfs", root + path, "tmpfs", MS_NOSUID | MS_NODEV, f"{scratch},mode={mode}")
  main_py = root + "/work/main.py"
  with open(os.open(main_py, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), "wb") as f:
    f.write(src)
  if cfg["as_root"]:
    for path in (root + "/work", main_py):
      os.chown(path, cfg["uid"], cfg["gid"])


def enter_root(root: str) -> None:
  """pivot_root into ``root``, then detach the old root.

  Unlike a bare chroot, the host tree is no longer mounted anywhere in this
  namespace, so even a program that regains CAP_SYS_CHROOT in a user namespace of
  its own has nothing to escape to.
  """
  os.chdir(root)
  check(libc().syscall(_SYS_PIVOT_ROOT[os.uname().machine], b".", b"."), "pivot_root")
  check(libc().umount2(b".", MNT_DETACH), "umount old root")
  os.chdir("/")
  os.chroot(".")


def drop_capabilities() -> None:
  """Drop every capability (user-namespace mode, where the uid cannot change)."""
  import ctypes

  c = libc()
  for cap in range(64):
    c.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # EINVAL past the last cap: fine
  c.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)

  class Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

  class Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]

  data = (Data * 2)()
  check(c.capset(ctypes.byref(Header(0x20080522, 0)), data), "capset")


def host_pid(proc_fd: int) -> int:
  """This process's pid in the host's pid namespace (``proc_fd``: the host's /proc)."""
  return int(os.readlink("self", dir_fd=proc_fd))


def host_ppid(proc_fd: int) -> int:
  """The parent's pid in the host's pid namespace: 0 from pid 1 of a new pid
  namespace, whose ``getppid()`` cannot name a parent outside it."""
  fd = os.open("self/stat", os.O_RDONLY, dir_fd=proc_fd)
  try:
    return int(os.read(fd, 1024).rsplit(b")", 1)[1].split()[1])
  finally:
    os.close(fd)


def enter_namespaces(cfg: dict) -> None:
  """Arm PDEATHSIG and unshare the namespaces (plus a user namespace if not root).

  A batch server's runner (``cfg["serve"]``) is already pid 1 of the program's pid
  namespace, with PDEATHSIG armed: it unshares the others only."""
  c = libc()
  flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
  if not cfg["serve"]:
    c.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the judge died before we armed PDEATHSIG
      _exit(1)
    flags |= CLONE_NEWPID
  try:
    if not cfg["as_root"]:
      uid, gid = os.getuid(), os.getgid()
      check(c.unshare(flags | CLONE_NEWUSER), "unshare")
      with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
      with open("/proc/self/uid_map", "w") as f:
        f.write(f"{uid} {uid} 1")
      with open("/proc/self/gid_map", "w") as f:
        f.write(f"{gid} {gid} 1")
    else:
      check(c.unshare(flags), "unshare")
  except OSError as e:
    report(cfg["status_fd"], "E", f"namespaces: {e}")
    _exit(1)

