"""Adversarial programs against the code-reward sandbox.

Every case must be contained: reward 0 (or the honest score), the host
unharmed, no process left behind (checked after every test by scanning /proc
for the per-run marker and for sandbox uids), and finished within its limit.
Each case runs in both isolation modes: ``auto`` (namespaces where available)
and ``fallback`` (audit hook).
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
from r1jax.rewards.code import SandboxConfig, code_reward, run_tests, sandbox_capabilities

MODES = ["auto", "fallback"]
TIMEOUT = 0.6
# Slack on top of the timeout: interpreter start-up, kill, sweep, a loaded CI box
# (CI runs the suite with ``-n 2`` next to JAX tests), and the sandbox's own
# allowance for a busy host (a program may run up to 4x its timeout of wall clock
# while it waits for a CPU).  The bound only has to catch a hang (sleep(100)).
SLACK = 30.0
CLEANUP_S = 10.0  # how long sandbox processes may take to vanish after a kill
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _sandbox_pids(judge_pid: int | None = None) -> list[int]:
  """Live processes started by a judge's sandboxes: run marker, or (root) sandbox uid.

  Scoped to one judge process (default: this one): other sessions may be
  scoring code concurrently.
  """
  judge_pid = os.getpid() if judge_pid is None else judge_pid
  marker = f"{_sandbox.MARKER_ENV}={judge_pid}-".encode()
  uid_start = _sandbox._UID_BASE + (judge_pid % 16384) * _sandbox._UID_BLOCK
  uid_stop = uid_start + _sandbox._UID_BLOCK
  found = []
  for name in os.listdir("/proc"):
    if not name.isdigit() or int(name) == os.getpid():
      continue
    try:
      with open(f"/proc/{name}/stat", "rb") as f:
        if f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X"):
          continue
      with open(f"/proc/{name}/status", "rb") as f:
        uid = next(int(l.split()[1]) for l in f if l.startswith(b"Uid:"))
      if uid_start <= uid < uid_stop:
        found.append(int(name))
        continue
      with open(f"/proc/{name}/environ", "rb") as f:
        if any(v.startswith(marker) for v in f.read().split(b"\0")):
          found.append(int(name))
    except (OSError, StopIteration, IndexError):
      continue
  return found


@pytest.fixture(autouse=True)
def no_process_left_behind():
  assert _sandbox_pids() == [], "sandbox processes alive before the test"
  yield
  deadline = time.monotonic() + CLEANUP_S
  while (left := _sandbox_pids()) and time.monotonic() < deadline:
    time.sleep(0.02)
  assert left == [], f"processes left behind: {left}"


@pytest.fixture(params=MODES)
def cfg(request) -> SandboxConfig:
  return SandboxConfig(isolation=request.param)


def _mode(cfg: SandboxConfig) -> str:
  return _sandbox._mode_for(cfg)[0]


def judge(src: str, tests: list[dict], cfg: SandboxConfig, timeout: float = TIMEOUT):
  """Run the per-test judge and check the wall-clock bound."""
  start = time.monotonic()
  outcomes = run_tests(textwrap.dedent(src), tests, timeout_s=timeout, config=cfg, max_workers=1)
  elapsed = time.monotonic() - start
  assert elapsed < len(tests) * (timeout + SLACK), f"took {elapsed:.2f}s"
  return outcomes


def one(src: str, cfg: SandboxConfig, expected: str = "unreachable", stdin: str = "",
        timeout: float = TIMEOUT):
  return judge(src, [{"input": stdin, "output": expected}], cfg, timeout)[0]


def printed(outcome) -> str:
  """What a wrong-answer program printed (the judge's detail is ``got <repr>``)."""
  assert outcome.verdict == "wrong_answer" and outcome.detail.startswith("got "), outcome
  return ast.literal_eval(outcome.detail[4:])


def secret() -> str:
  return "SECRET_" + secrets.token_hex(12)


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
  if _mode(cfg) == "fallback":
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
  if _mode(cfg) == "namespaces":
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
    for pid in _sandbox_pids():
      try:
        with open(f"/proc/{pid}/status") as f:
          if f"PPid:\t{os.getpid()}\n" in f.read():
            runner = pid
      except OSError:
        pass
    # runner, (namespaces: init), program, its child
    if runner is not None and len(_sandbox_pids()) >= (4 if _mode(cfg) == "namespaces" else 3):
      break
    time.sleep(0.02)
  assert runner is not None
  time.sleep(0.2)
  os.kill(runner, signal.SIGKILL)
  thread.join(5)
  assert not thread.is_alive(), "judge did not return after its runner was killed"
  # The runner is trusted infrastructure: losing it is reported, not scored.
  assert "without a status" in str(result["error"])


# ---------------------------------------------------------------------------
# cheating the judge
# ---------------------------------------------------------------------------


def test_sys_exit_and_os_exit_tricks(cfg):
  token = secret()
  for src in ("import sys\nsys.exit(0)", "import os\nos._exit(0)", "raise SystemExit",
              "import atexit, os\natexit.register(lambda: os._exit(0))"):
    assert one(src, cfg, expected=token).verdict == "wrong_answer", src
  tests = [{"call": "f()", "expected": repr(token)}]
  for src in ("import os\nos._exit(0)\ndef f():\n    return 1",
              "def f():\n    import sys\n    sys.exit(0)",
              "def f():\n    import os\n    os._exit(0)"):
    assert judge(src, tests, cfg)[0].verdict == "runtime_error", src


def test_printing_success_banners(cfg):
  token = secret()
  src = 'print("All tests passed! OK 1.0 True PASSED Accepted")'
  assert one(src, cfg, expected=token).verdict == "wrong_answer"


def test_overriding_print_and_builtins(cfg):
  token = secret()
  out = one("""
      import builtins, sys
      class Fake:
          def write(self, s): return len(s)
          def flush(self): pass
          def __eq__(self, other): return True
      builtins.print = lambda *a, **k: None
      sys.stdout = Fake()
      builtins.str = type("AlwaysEqual", (str,), {"__eq__": lambda s, o: True})
  """, cfg, expected=token)
  assert out.verdict == "wrong_answer"


def test_always_equal_results(cfg):
  token = secret()
  tests = [{"call": "f()", "expected": repr(token)}, {"call": "g()", "expected": "42"},
           {"call": "h()", "expected": "[1]"}]
  outcomes = judge("""
      class AlwaysEqual:
          def __eq__(self, other): return True
          def __ne__(self, other): return False
          def __repr__(self): return "42"
      class Int(int):
          def __eq__(self, other): return True
          def __repr__(self): return "42"
      class Lst(list):
          def __eq__(self, other): return True
      def f(): return AlwaysEqual()
      def g(): return Int(0)
      def h(): return Lst()
  """, tests, cfg)
  assert [o.verdict for o in outcomes] == ["runtime_error"] * 3


def test_patching_the_runner_and_builtins_cannot_forge_a_pass(cfg):
  token = secret()
  out = judge("""
      import builtins, sys
      main = sys.modules["__main__"]
      for name in ("_plain", "_repr", "_eval", "_type"):
          if hasattr(main, name):
              setattr(main, name, lambda *a, **k: "PASS")
      builtins.repr = lambda *a: "'PASS'"
      builtins.eval = lambda *a, **k: "PASS"
      def f():
          return "wrong"
  """, [{"call": "f()", "expected": repr(token)}], cfg)[0]
  assert out.verdict in ("wrong_answer", "runtime_error")


def test_forged_status_messages_neither_pass_nor_crash_the_judge(cfg):
  token = secret()
  forged = (f"R\nX 0\nE forged\nT\n{token}\n'{token}'\n").encode()
  src = textwrap.dedent(f"""
      import os
      for fd in range(3, 256):
          try:
              os.write(fd, {forged!r})
          except OSError:
              pass
      print({token[:-1]!r})
  """)
  assert one(src, cfg, expected=token).verdict == "wrong_answer"
  out = judge(src + "\ndef f():\n    return 0\n",
              [{"call": "f()", "expected": repr(token)}], cfg)[0]
  assert out.verdict == "wrong_answer"


def test_non_utf8_output(cfg):
  out = one("import sys\nsys.stdout.buffer.write(b'abc\\xff\\xfe\\n')", cfg, expected="abc")
  assert out.verdict == "wrong_answer" and "UTF-8" in out.detail
  out = one("import sys\nsys.stdout.buffer.write(b'\\xc3\\x28 \\xa0\\xa1')", cfg, expected="x")
  assert out.verdict == "wrong_answer"


def test_programs_that_do_not_parse(cfg):
  for src in ("def f(:\n    pass", "print(1)\x00", "x = '\udcff'", "x = 1\n    y = 2",
              "(" * 500 + ")" * 500):
    assert one(src, cfg, expected="1").verdict == "compile_error", repr(src[:20])
  assert code_reward("```python\nprint(\n```", [{"input": "", "output": ""}] * 3,
                     timeout_s=TIMEOUT, config=cfg) == 0.0


def test_completion_without_a_code_block(cfg):
  assert code_reward("The answer is 42.\n", [{"input": "", "output": "42"}],
                     timeout_s=TIMEOUT, config=cfg) == 0.0
  assert code_reward("```\nprint(42)", [{"input": "", "output": "42"}],
                     timeout_s=TIMEOUT, config=cfg) == 0.0


DYING_JUDGE = r"""
import sys
sys.path.insert(0, sys.argv[1])
from r1jax.rewards.code import SandboxConfig, run_tests, sandbox_capabilities
sandbox_capabilities()  # the probe runs its own short-lived sandbox: get it out of the way
print("probed", flush=True)
run_tests("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\ntime.sleep(60)",
          [{"input": "", "output": "x"}], timeout_s=60, config=SandboxConfig(isolation=sys.argv[2]))
"""


def test_judge_dying_mid_run_leaves_nothing_behind(cfg):
  """If the scoring process itself is killed, the runner notices (lifeline) and cleans up."""
  judge_proc = subprocess.Popen([_sandbox._python(), "-c", DYING_JUDGE, REPO, cfg.isolation],
                                stdout=subprocess.PIPE, text=True)
  try:
    assert judge_proc.stdout.readline() == "probed\n"
    for _ in range(500):  # wait until the program and its child are running
      if len(_sandbox_pids(judge_proc.pid)) >= 3:
        break
      assert judge_proc.poll() is None, "judge exited early"
      time.sleep(0.02)
    assert len(_sandbox_pids(judge_proc.pid)) >= 3
    judge_proc.kill()
    judge_proc.wait()
    deadline = time.monotonic() + 2.0
    while (left := _sandbox_pids(judge_proc.pid)) and time.monotonic() < deadline:
      time.sleep(0.02)
    assert left == [], f"sandbox outlived its judge: {left}"
  finally:
    judge_proc.kill()
    judge_proc.wait()
    judge_proc.stdout.close()


HOOK_ATTACKS = {
    "rebind runner globals and builtins": (
        "import sys, builtins\nm = sys.modules['__main__']\n"
        "m._BLOCKED_EVENTS = frozenset(); m._WRITE_EVENTS = frozenset()\n"
        "m._isinstance = lambda *a: False; m.any = builtins.any = lambda x: False\n"
        "import socket\nsocket.socket()"),
    "lying str subclass": (
        "class S(str):\n    def startswith(self, *a): return True\n"
        "    def split(self, *a): return ['work']\nopen(S('/tmp/ESCAPE'), 'w')"),
    "dotdot via chdir": "import os\nos.mkdir('a')\nos.chdir('a')\nopen('../../ESCAPE', 'w')",
    "symlink out": "import os\nos.symlink('/tmp', 'l')\nopen('l/ESCAPE', 'w')",
    "directory fd for *at calls": "import os\nos.open('/usr/lib', os.O_RDONLY)",
    "ctypes": "import ctypes",
    "raw subprocess": "import _posixsubprocess",
    "exec": "import os\nos.execv('/bin/sh', ['sh'])",
    "find the hook through gc": "import gc\ngc.get_objects()",
}


@pytest.mark.parametrize("name", sorted(HOOK_ATTACKS))
def test_fallback_audit_hook_cannot_be_bypassed(name):
  """The fallback policy (used where namespaces are unavailable) resists tampering."""
  escape = f"/tmp/escape_{secrets.token_hex(6)}"
  src = HOOK_ATTACKS[name].replace("/tmp/ESCAPE", escape).replace(
      "ESCAPE", os.path.basename(escape))
  out = one(src, SandboxConfig(isolation="fallback"))
  assert out.verdict == "runtime_error"
  assert "PermissionError: sandbox:" in out.detail, out.detail
  assert not os.path.exists(escape)
