"""Adversarial programs against the code-reward sandbox: cheating the judge (exit
tricks, forged banners and status messages, patched builtins, a dying judge, the
fallback audit hook's bypasses). Same rules as test_code_adversarial.py: contained, no
process left behind, both isolation modes.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import textwrap
import time

import pytest

from r1jax.rewards import _sandbox
from r1jax.rewards.code import SandboxConfig, code_reward
from tests.rewards.adversarial import REPO, TIMEOUT, judge, one, sandbox_pids, secret
from tests.rewards.adversarial import cfg, no_process_left_behind  # noqa: F401 (fixtures)


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
      if len(sandbox_pids(judge_proc.pid)) >= 3:
        break
      assert judge_proc.poll() is None, "judge exited early"
      time.sleep(0.02)
    assert len(sandbox_pids(judge_proc.pid)) >= 3
    judge_proc.kill()
    judge_proc.wait()
    deadline = time.monotonic() + 2.0
    while (left := sandbox_pids(judge_proc.pid)) and time.monotonic() < deadline:
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
