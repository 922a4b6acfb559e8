"""The sandboxed program's own process: confine it, compile it, run it, send its result.

Runs in the child forked by the runner (``_sandbox_runner``; in namespaces mode by
its init, after the root is built): standard library only, no ``r1jax`` imports.
The process lowers its rlimits, gives up its privileges (a unique uid, or every
capability in a user namespace), installs the fallback audit hook where there are
no namespaces, compiles the program, reports ``R`` (or ``S``) on the trusted setup
pipe, closes it, and only then runs untrusted code.
"""

import os
import sys

import _sandbox_audit as audit
import _sandbox_jail as jail

# Captured before any untrusted code runs: the program may rebind builtins.
_write = os.write
_close = os.close
_exit = os._exit
_type = type
_repr = repr
_eval = eval
_exec = exec
_compile = compile

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
    jail.drop_capabilities()
  if cfg["mode"] == "namespaces":
    jail.check(jail.libc().prctl(jail.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


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


def main(cfg: dict, src: bytes, report_fd: int) -> None:
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
      audit.install(cfg)
  except BaseException as e:  # noqa: BLE001
    jail.report(report_fd, "E", f"confine: {type(e).__name__}: {e}")
    _exit(1)
  try:
    code = _compile(src, "main.py", "exec", dont_inherit=True)
    call_code = None
    if cfg["call"] is not None:
      call_code = _compile(cfg["call"], "<call>", "eval", dont_inherit=True)
  except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
    jail.report(report_fd, "S", f"{type(e).__name__}: {e}")
    _exit(1)
  jail.report(report_fd, "R")
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

