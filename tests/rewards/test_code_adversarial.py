"""Adversarial programs against the code-reward sandbox: exhausting resources and
escaping the box (cheating the judge: test_code_cheating.py).

Every case must be contained: reward 0 (or the honest score), the host
unharmed, no process left behind (checked after every test by scanning /proc
for the per-run marker and for sandbox uids), and finished within its limit.
Each case runs in both isolation modes: ``auto`` (namespaces where available)
and ``fallback`` (audit hook). Shared pieces: tests/rewards/adversarial.py.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import secrets
import shutil
import signal
import socket
import subprocess
import textwrap
import threading
import time

import pytest

from r1jax.rewards import _sandbox
from r1jax.rewards.code import run_tests, sandbox_capabilities
from tests.rewards.adversarial import (REPO, TIMEOUT, judge, mode_of, one, printed,
                                       sandbox_pids, secret)
from tests.rewards.adversarial import cfg, no_process_left_behind  # noqa: F401 (fixtures)


# ---------------------------------------------------------------------------
# resource exhaustion
# ---------------------------------------------------------------------------


def test_infinite_loop(cfg):
  assert one("while True:\n    pass", cfg).verdict == "timeout"


def test_sleeping_past_the_limit(cfg):
  assert one("import time\ntime.sleep(100)", cfg).verdict == "timeout"


def test_correct_answer_then_sleeping_past_the_limit(cfg):
  out = one("print(int(input()) * 2, flush=True)\nimport time\ntime.sleep(100)", cfg, "8", "4")
  assert out.verdict == "timeout"


def test_fork_bomb(cfg):
  out = one("""
      import os
      while True:
          try:
              os.fork()
          except OSError:
              pass
  """, cfg)
  assert out.verdict in ("timeout", "runtime_error")
  # The host can still fork.
  assert subprocess.run(["true"]).returncode == 0


def test_process_limit_is_enforced(cfg):
  out = one("""
      import os, time
      n = 0
      for _ in range(64):
          try:
              pid = os.fork()
          except OSError:
              break
          if pid == 0:
              time.sleep(0.3)
              os._exit(0)
          n += 1
      print(n)
  """, cfg)
  assert 0 < int(printed(out)) < cfg.max_processes


def test_memory_bomb(cfg):
  assert one("x = bytearray(1 << 40)", cfg).verdict == "runtime_error"
  small = dataclasses.replace(cfg, memory_mb=128)  # reach the cap quickly on a busy box
  out = one("x = []\nwhile True:\n    x.append(bytearray(1 << 24))", small)
  assert out.verdict == "runtime_error" and "MemoryError" in out.detail


def test_deep_python_recursion(cfg):
  out = one("""
      import sys
      sys.setrecursionlimit(10 ** 8)
      def f(n):
          return f(n + 1) + 1
      f(0)
  """, cfg)
  assert out.verdict in ("runtime_error", "timeout")


def test_deep_c_recursion_crashes_only_the_child(cfg):
  out = one("""
      import sys
      sys.setrecursionlimit(10 ** 8)
      class A:
          def __repr__(self):
              return repr(A())
      repr(A())
  """, cfg)
  assert out.verdict == "runtime_error"


def test_gigabytes_of_stdout(cfg):
  out = one("import sys\nb = 'x' * 65536\nwhile True:\n    sys.stdout.write(b)", cfg,
            timeout=10.0)
  assert out.verdict == "output_limit"  # cut off at the cap, long before the timeout


def test_gigabytes_of_stderr(cfg):
  out = one("import sys\nb = 'x' * 65536\nwhile True:\n    sys.stderr.write(b)", cfg)
  assert out.verdict == "timeout"


def test_huge_function_result(cfg):
  out = judge("def f():\n    return 'x' * (4 << 20)", [{"call": "f()", "expected": "''"}], cfg)[0]
  assert out.verdict == "output_limit"


def test_file_size_and_open_file_limits(cfg):
  out = one("f = open('big', 'wb')\nwhile True:\n    f.write(b'x' * (1 << 20))", cfg)
  assert out.verdict == "runtime_error" and "File too large" in out.detail
  out = one("fs = [open('f%d' % i, 'w') for i in range(100000)]", cfg)
  assert out.verdict == "runtime_error" and "Too many open files" in out.detail


def test_rlimits_are_applied(cfg):
  out = one("""
      import resource as r
      print([r.getrlimit(x)[0] for x in
             (r.RLIMIT_CPU, r.RLIMIT_AS, r.RLIMIT_FSIZE, r.RLIMIT_NPROC, r.RLIMIT_NOFILE,
              r.RLIMIT_CORE)])
  """, cfg)
  assert ast.literal_eval(printed(out)) == [int(TIMEOUT) + 1, cfg.memory_mb << 20,
                                            cfg.max_file_mb << 20, cfg.max_processes,
                                            cfg.max_open_files, 0]


# ---------------------------------------------------------------------------
# escaping the box
# ---------------------------------------------------------------------------


def test_writing_outside_its_directory(cfg, tmp_path):
  open_dir = tmp_path / "world_writable"
  open_dir.mkdir()
  os.chmod(tmp_path, 0o755)
  os.chmod(open_dir, 0o777)
  name = "escape_" + secrets.token_hex(6)
  targets = [str(open_dir / name), f"/tmp/{name}", f"/dev/shm/{name}", f"{REPO}/{name}",
             f"../{name}", f"../../{name}", f"/var/tmp/{name}"]
  out = one(f"""
      import os
      ok = 0
      for path in {targets!r}:
          try:
              with open(path, "w") as f:
                  f.write("pwned")
              ok += 1
          except OSError:
              pass
      try:
          os.symlink("/etc/passwd", "link")
          open("link", "a").write("pwned")
      except OSError:
          pass
      print(ok)
  """, cfg)
  assert out.verdict in ("wrong_answer", "runtime_error")
  for path in [str(open_dir / name), f"/tmp/{name}", f"/dev/shm/{name}", f"{REPO}/{name}",
               f"/var/tmp/{name}"]:
    assert not os.path.exists(path), path
  assert "pwned" not in open("/etc/passwd").read()
  if mode_of(cfg) == "fallback":
    assert printed(out).strip() == "0"  # every write was refused


@pytest.fixture
def host_secret(monkeypatch):
  """A secret in the judge's environment and in a world-readable host file."""
  token = secret()
  monkeypatch.setenv("R1JAX_TEST_SECRET", token)
  directory = f"/tmp/r1jax-secret-{secrets.token_hex(6)}"
  os.mkdir(directory, 0o755)
  path = os.path.join(directory, "secret.txt")
  with open(path, "w") as f:
    f.write(token)
  os.chmod(path, 0o644)
  yield token, path
  shutil.rmtree(directory)


# The snooper walks files (slow behind the audit hook; slower on a loaded CI machine).
SNOOP_TIMEOUT = 15.0
SNOOP = """
    import os, sys
    found = []
    def look(data):
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        for word in data.replace("\\0", " ").replace("=", " ").split():
            if word.startswith("SECRET_"):
                found.append(word.strip("'\\""))
    look(" ".join(sys.argv))
    look(" ".join(f"{k}={v}" for k, v in os.environ.items()))
    for path in EXTRA_PATHS:
        try:
            look(open(path, "rb").read())
        except Exception:
            pass
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except Exception:
        pids = []
    for pid in pids + ["self", str(os.getppid())]:
        for what in ("environ", "cmdline"):
            try:
                look(open(f"/proc/{pid}/{what}", "rb").read())
            except Exception:
                pass
    for fd in range(100):
        try:
            os.set_blocking(fd, False)
            look(os.read(fd, 1 << 20))
        except Exception:
            pass
    budget = [3000]
    skip = ("/usr", "/lib", "/proc", "/sys", "/dev", "/root/.pyenv")
    for top in ("/work", "/tmp", "/dev/shm", os.getcwd(), os.path.dirname(os.getcwd())):
        for root, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if not os.path.join(root, d).startswith(skip)]
            for name in files:
                budget[0] -= 1
                if budget[0] < 0:
                    break
                try:
                    look(open(os.path.join(root, name), "rb").read(1 << 16))
                except Exception:
                    pass
    RESULT
"""


def test_reading_the_parents_environment_or_files(cfg, host_secret):
  token, path = host_secret
  src = SNOOP.replace("EXTRA_PATHS", repr([path, "/proc/1/environ"])).replace(
      "RESULT", "print(found[0] if found else 'nothing')")
  out = one(src, cfg, expected=token, timeout=SNOOP_TIMEOUT)
  assert out.verdict == "wrong_answer", out
  assert token not in out.detail


def test_reading_the_expected_outputs(cfg):
  token = secret()
  stdio = SNOOP.replace("EXTRA_PATHS", "[]").replace(
      "RESULT", "print(found[0] if found else 'nothing')")
  out = one(stdio, cfg, expected=token, stdin="the input", timeout=SNOOP_TIMEOUT)
  assert out.verdict == "wrong_answer", out
  func = textwrap.dedent(SNOOP.replace("EXTRA_PATHS", "[]").replace("RESULT", "")) + (
      "\ndef f():\n    return found[0] if found else 'nothing'\n")
  out = judge(func, [{"call": "f()", "expected": repr(token)}], cfg, SNOOP_TIMEOUT)[0]
  assert out.verdict == "wrong_answer", out


def test_opening_a_network_connection(cfg):
  listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
  listener.bind(("127.0.0.1", 0))
  listener.listen(8)
  listener.settimeout(0.2)
  udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
  udp.bind(("127.0.0.1", 0))
  udp.settimeout(0.2)
  port, uport = listener.getsockname()[1], udp.getsockname()[1]
  try:
    out = one(f"""
        import socket
        errors = []
        for attempt in (
            lambda: socket.create_connection(("127.0.0.1", {port}), 0.5).sendall(b"hi"),
            lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(
                b"hi", ("127.0.0.1", {uport})),
            lambda: socket.getaddrinfo("example.com", 80),
            lambda: socket.create_connection(("1.1.1.1", 53), 0.5),
        ):
            try:
                attempt()
                print("connected")
            except Exception as e:
                errors.append(repr(e))
        print(errors)
    """, cfg, expected="connected")
    assert out.verdict == "wrong_answer", out
    assert "connected" not in out.detail
    with pytest.raises(socket.timeout):
      listener.accept()
    with pytest.raises(socket.timeout):
      udp.recvfrom(16)
  finally:
    listener.close()
    udp.close()
  if mode_of(cfg) == "namespaces":
    assert sandbox_capabilities()["network"] == "network-namespace"
    assert "sandbox:" not in out.detail  # refused by the kernel, not by the hook
    assert "unreachable" in out.detail.lower() or "Errno 101" in out.detail
  else:
    assert "sandbox: socket" in out.detail  # refused by the audit hook


def test_signalling_its_parent_and_other_processes(cfg):
  sentinel = subprocess.Popen(["sleep", "60"])
  try:
    out = one(f"""
        import os, signal
        for pid in (os.getppid(), {os.getpid()}, {sentinel.pid}, 1, -1):
            try:
                os.kill(pid, signal.SIGKILL)
            except Exception:
                pass
        try:
            os.killpg({os.getpgid(0)}, signal.SIGKILL)
        except Exception:
            pass
        for name in os.listdir("/proc"):
            if name.isdigit() and int(name) != os.getpid():
                try:
                    os.kill(int(name), signal.SIGKILL)
                except Exception:
                    pass
        print("done")
    """, cfg)
    assert out.verdict in ("wrong_answer", "runtime_error")
    assert sentinel.poll() is None, "the program killed a host process"
  finally:
    sentinel.kill()
    sentinel.wait()


def test_process_left_behind_by_a_daemon(cfg):
  # A double-forked, setsid'd child that closes its pipes and sleeps: the
  # autouse fixture checks it is gone once the judge returns.
  out = one("""
      import os, time
      if os.fork() == 0:
          os.setsid()
          if os.fork() == 0:
              for fd in (0, 1, 2):
                  os.close(fd)
              time.sleep(30)
          os._exit(0)
      print(int(input()) * 2)
  """, cfg, expected="8", stdin="4")
  assert out.verdict == "passed"


def test_killing_the_runner_takes_the_whole_sandbox_down(cfg):
  """SIGKILL on the runner (supervisor) leaves nothing behind and the judge returns.

  Namespaces: init has PDEATHSIG and takes the pid namespace with it.
  Fallback: the judge kills the runner's session and sweeps the sandbox uid/marker.
  """
  result = {}
  src = textwrap.dedent("""
      import os, time
      if os.fork() == 0:
          for fd in (0, 1, 2):
              os.close(fd)
          time.sleep(30)
      time.sleep(30)
  """)
  def target():
    try:
      result["out"] = run_tests(src, [{"input": "", "output": "x"}], timeout_s=20,
                                config=cfg)[0]
    except _sandbox.SandboxError as e:
      result["error"] = e

  thread = threading.Thread(target=target)
  thread.start()
  runner = None
  for _ in range(200):
    for pid in sandbox_pids():
      try:
        with open(f"/proc/{pid}/status") as f:
          if f"PPid:\t{os.getpid()}\n" in f.read():
            runner = pid
      except OSError:
        pass
    # runner, (namespaces: init), program, its child
    if runner is not None and len(sandbox_pids()) >= (4 if mode_of(cfg) == "namespaces" else 3):
      break
    time.sleep(0.02)
  assert runner is not None
  time.sleep(0.2)
  os.kill(runner, signal.SIGKILL)
  thread.join(5)
  assert not thread.is_alive(), "judge did not return after its runner was killed"
  # The runner is trusted infrastructure: losing it is reported, not scored.
  assert "without a status" in str(result["error"])
