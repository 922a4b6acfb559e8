"""Functional tests for the code accuracy reward: extraction, validation, honest scoring.

Adversarial programs live in ``test_code_adversarial.py``.  Every scoring test
runs in both isolation modes: ``auto`` (namespaces where the kernel allows it)
and ``fallback`` (the audit-hook sandbox used when it does not).
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
import threading

import pytest

from r1jax.rewards import _sandbox
from r1jax.rewards.code import (
    SandboxConfig,
    code_reward,
    code_rewards,
    extract_code,
    parse_tests,
    run_tests,
    sandbox_capabilities,
)

MODES = ["auto", "fallback"]
TIMEOUT = 5.0  # honest programs finish in well under a second; slack for a loaded CI machine
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def fenced(src: str, lang: str = "python") -> str:
  return f"Let me think.\n\n```{lang}\n{textwrap.dedent(src).strip()}\n```\nDone."


DOUBLER = fenced("n = int(input())\nprint(n * 2)")
STDIO_TESTS = [
    {"input": "3\n", "output": "6\n"},
    {"input": "21", "output": "42"},
    {"input": "-5\n", "output": "-10"},
]
ADDER = fenced("""
    def add(a, b):
        return a + b

    class Solution:
        def twoSum(self, nums, target):
            seen = {}
            for i, x in enumerate(nums):
                if target - x in seen:
                    return [seen[target - x], i]
                seen[x] = i
""")
CALL_TESTS = [
    {"call": "add(1, 2)", "expected": "3"},
    {"call": "add('a', 'b')", "expected": "'ab'"},
    {"call": "Solution().twoSum([2, 7, 11, 15], 9)", "expected": "[0, 1]"},
    {"call": "add([1], [2])", "expected": "[1, 2]"},
]


@pytest.fixture(params=MODES)
def cfg(request) -> SandboxConfig:
  return SandboxConfig(isolation=request.param)


# ---------------------------------------------------------------------------
# extraction and validation
# ---------------------------------------------------------------------------


def test_extract_code_takes_last_python_block():
  text = "```python\nfirst()\n```\nthen\n```cpp\nint main(){}\n```\n```py\nsecond()\n```\ntail"
  assert extract_code(text) == "second()\n"


def test_extract_code_accepts_unlabelled_and_python3_and_skips_other_languages():
  assert extract_code("```\nx = 1\n```") == "x = 1\n"
  assert extract_code("```python3\nx = 2\n```") == "x = 2\n"
  assert extract_code("```python\nx = 3\n```\n```bash\nrm -rf /\n```") == "x = 3\n"


def test_extract_code_none_without_a_complete_block():
  assert extract_code("no code at all") is None
  assert extract_code("```python\nprint(1)\n") is None  # truncated, never closed
  assert extract_code("inline ```print(1)``` is not a block") is None
  assert extract_code("```bash\nls\n```") is None


def test_extract_code_rejects_non_str():
  with pytest.raises(TypeError):
    extract_code(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "tests, message",
    [
        ([{"stdin": "1", "stdout": "1"}], "allowed are exactly"),
        ([{"input": "1", "output": "1", "call": "f()"}], "allowed are exactly"),
        ([{"input": "1"}], "allowed are exactly"),
        ([{"call": "f()", "expected": 3}], "'expected' must be a str"),
        ([{"call": "f()", "expected": "float('nan')"}], "not a Python literal"),
        ([{"call": "import os", "expected": "1"}], "not an expression"),
        ([], "must not be empty"),
        ("input", "list of dicts"),
        ([["input", "output"]], "must be a dict"),
    ],
)
def test_parse_tests_rejects_malformed(tests, message):
  with pytest.raises(ValueError, match=message):
    parse_tests(tests)


def test_bad_tests_raise_before_anything_runs(monkeypatch):
  def boom(*args, **kwargs):
    raise AssertionError("nothing may run for an invalid batch")

  monkeypatch.setattr("r1jax.rewards.code.run_program", boom)
  with pytest.raises(ValueError, match="allowed are exactly"):
    code_rewards([DOUBLER, DOUBLER], [STDIO_TESTS, [{"inp": "1", "output": "2"}]])


def test_argument_validation():
  with pytest.raises(ValueError, match="2 completions but 1"):
    code_rewards([DOUBLER, DOUBLER], [STDIO_TESTS])
  with pytest.raises(ValueError, match="timeout_s"):
    code_reward(DOUBLER, STDIO_TESTS, timeout_s=0)
  with pytest.raises(ValueError, match="max_workers"):
    code_rewards([DOUBLER], [STDIO_TESTS], max_workers=0)
  with pytest.raises(ValueError, match="isolation"):
    SandboxConfig(isolation="none")  # type: ignore[arg-type]
  with pytest.raises(ValueError, match="memory_mb"):
    SandboxConfig(memory_mb=0)


def test_public_signature():
  params = inspect.signature(code_reward).parameters
  assert list(params)[:2] == ["completion", "tests"]
  assert params["timeout_s"].kind is inspect.Parameter.KEYWORD_ONLY
  assert params["timeout_s"].default == 5.0


def test_no_code_block_scores_zero_without_running(monkeypatch):
  def boom(*args, **kwargs):
    raise AssertionError("no program should be started")

  monkeypatch.setattr("r1jax.rewards.code.run_program", boom)
  assert code_reward("I would print 6.", STDIO_TESTS) == 0.0
  assert code_reward("```python\n   \n```", STDIO_TESTS) == 0.0
  assert [o.verdict for o in run_tests(None, STDIO_TESTS)] == ["no_code"] * 3


# ---------------------------------------------------------------------------
# honest programs
# ---------------------------------------------------------------------------


def test_stdio_full_partial_zero(cfg):
  assert code_reward(DOUBLER, STDIO_TESTS, timeout_s=TIMEOUT, config=cfg) == 1.0
  off_for_negatives = fenced("n = int(input())\nprint(abs(n) * 2)")
  assert code_reward(off_for_negatives, STDIO_TESTS, timeout_s=TIMEOUT, config=cfg) == 2 / 3
  wrong = fenced("n = int(input())\nprint(n * 3)")
  assert code_reward(wrong, STDIO_TESTS, timeout_s=TIMEOUT, config=cfg) == 0.0


def test_stdio_whitespace_normalised_but_tokens_exact(cfg):
  prog = fenced("import sys\nxs = sys.stdin.read().split()\nprint('  ', *xs, '\\n\\n')")
  tests = [
      {"input": "1 2\n3\n", "output": "1 2 3"},
      {"input": "a b", "output": "a\nb\n"},
      {"input": "a b", "output": "a b c"},
      {"input": "a b", "output": "ab"},
  ]
  verdicts = [o.verdict for o in run_tests(extract_code(prog), tests, timeout_s=TIMEOUT,
                                           config=cfg)]
  assert verdicts == ["passed", "passed", "wrong_answer", "wrong_answer"]


def test_stdio_requires_clean_exit(cfg):
  prog = "print(6)\nraise RuntimeError('after the answer')"
  out = run_tests(prog, [{"input": "3", "output": "6"}], timeout_s=TIMEOUT, config=cfg)[0]
  assert out.verdict == "runtime_error"
  assert "RuntimeError" in out.detail


def test_stdio_sys_exit_zero_after_correct_answer_passes(cfg):
  prog = "import sys\nprint(int(input()) * 2)\nsys.exit(0)"
  assert run_tests(prog, STDIO_TESTS, timeout_s=TIMEOUT, config=cfg)[0].passed


def test_stdio_large_input_and_unicode(cfg):
  numbers = list(range(100_000))
  tests = [
      {"input": "\n".join(map(str, numbers)), "output": str(sum(numbers))},
      {"input": "héllo wörld ✓", "output": "✓ wörld héllo"},
  ]
  prog = ("import sys\ndata = sys.stdin.read().split()\n"
          "print(sum(map(int, data)) if data[0].isdigit() else ' '.join(reversed(data)))")
  assert [o.verdict for o in run_tests(prog, tests, timeout_s=TIMEOUT, config=cfg)] == [
      "passed", "passed"]


def test_stdio_program_runs_as_main_and_threads_are_joined(cfg):
  prog = textwrap.dedent("""
      import sys, threading
      def main():
          sys.setrecursionlimit(10000)
          def depth(n):
              return 0 if n == 0 else 1 + depth(n - 1)
          print(depth(int(input())))
      if __name__ == "__main__":
          threading.stack_size(32 * 1024 * 1024)
          threading.Thread(target=main).start()
  """)
  assert run_tests(prog, [{"input": "5000", "output": "5000"}], timeout_s=TIMEOUT,
                   config=cfg)[0].passed


def test_stdio_program_may_use_its_own_directory(cfg):
  prog = textwrap.dedent("""
      import os, tempfile
      with open("scratch.txt", "w") as f:
          f.write(input())
      with tempfile.NamedTemporaryFile("w+") as t:
          t.write("tmp"); t.flush(); t.seek(0); extra = t.read()
      print(open("scratch.txt").read(), extra, os.path.basename(__file__))
  """)
  out = run_tests(prog, [{"input": "kept", "output": "kept tmp main.py"}],
                  timeout_s=TIMEOUT, config=cfg)[0]
  assert out.passed, out


def test_function_full_partial_zero(cfg):
  assert code_reward(ADDER, CALL_TESTS, timeout_s=TIMEOUT, config=cfg) == 1.0
  half = fenced("def add(a, b):\n    return a + b if isinstance(a, int) else None")
  assert code_reward(half, CALL_TESTS, timeout_s=TIMEOUT, config=cfg) == 0.25
  assert code_reward(fenced("def add(a, b):\n    return 0"), CALL_TESTS[:1],
                     timeout_s=TIMEOUT, config=cfg) == 0.0


def test_function_value_comparison(cfg):
  prog = textwrap.dedent("""
      def f(x):
          return x
      def tup():
          return (1, 2)
      def flt():
          return 0.1 + 0.2
      def nested():
          return {"a": [1, 2.0, None], "b": {3, 4}}
  """)
  tests = [
      {"call": "flt()", "expected": "0.3"},                                      # tolerance
      {"call": "nested()", "expected": "{'b': {4, 3}, 'a': [1, 2, None]}"},      # 2.0 == 2
      {"call": "tup()", "expected": "(1, 2)"},
      {"call": "tup()", "expected": "[1, 2]"},                                   # tuple != list
      {"call": "f(True)", "expected": "1"},                                      # bool != int
      {"call": "f('3')", "expected": "3"},                                       # str != int
      {"call": "f(b'x')", "expected": "b'x'"},
  ]
  verdicts = [o.verdict for o in run_tests(prog, tests, timeout_s=TIMEOUT, config=cfg)]
  assert verdicts == ["passed", "passed", "passed", "wrong_answer", "wrong_answer",
                      "wrong_answer", "passed"]


def test_function_module_name_is_not_main(cfg):
  prog = "def f():\n    return __name__\nif __name__ == '__main__':\n    input()"
  out = run_tests(prog, [{"call": "f()", "expected": "'solution'"}], timeout_s=TIMEOUT,
                  config=cfg)[0]
  assert out.passed, out


def test_function_exception_is_runtime_error(cfg):
  out = run_tests("def f():\n    return 1 // 0", [{"call": "f()", "expected": "0"}],
                  timeout_s=TIMEOUT, config=cfg)[0]
  assert out.verdict == "runtime_error" and "ZeroDivisionError" in out.detail


def test_mixed_formats_in_one_test_list(cfg):
  prog = fenced("def f(x):\n    return x * 2\n"
                "if __name__ == '__main__':\n    print(f(int(input())))")
  tests = [{"input": "4", "output": "8"}, {"call": "f(5)", "expected": "10"},
           {"call": "f(5)", "expected": "11"}]
  assert code_reward(prog, tests, timeout_s=TIMEOUT, config=cfg) == 2 / 3


def test_batch_matches_serial_and_keeps_order(cfg):
  completions = [DOUBLER, ADDER, "no code here", fenced("print(6)"), fenced("def f(:")]
  tests_list = [STDIO_TESTS, CALL_TESTS, STDIO_TESTS, STDIO_TESTS, CALL_TESTS]
  expected = [1.0, 1.0, 0.0, 1 / 3, 0.0]
  pooled = code_rewards(completions, tests_list, timeout_s=TIMEOUT, max_workers=4, config=cfg)
  serial = code_rewards(completions, tests_list, timeout_s=TIMEOUT, max_workers=1, config=cfg)
  assert pooled == serial == expected


def test_pool_runs_tests_in_parallel(cfg, monkeypatch):
  # Counted, not timed: how many sandboxes are running at once (a speed-independent check).
  in_flight, peak, lock = [0], [0], threading.Lock()
  real_run = _sandbox.run_program

  def counting_run(*args, **kwargs):
    with lock:
      in_flight[0] += 1
      peak[0] = max(peak[0], in_flight[0])
    try:
      return real_run(*args, **kwargs)
    finally:
      with lock:
        in_flight[0] -= 1

  monkeypatch.setattr("r1jax.rewards.code.run_program", counting_run)
  sleeper = fenced("import time\ntime.sleep(0.5)\nprint(int(input()) * 2)")
  scores = code_rewards([sleeper] * 4, [STDIO_TESTS[:2]] * 4, timeout_s=TIMEOUT,
                        max_workers=8, config=cfg)
  assert scores == [1.0] * 4
  # 8 programs, 8 workers: they run together (serially the peak would be 1).
  assert peak[0] >= 4, f"at most {peak[0]} sandboxes ran at once with 8 workers"


def test_compile_error_short_circuits(cfg):
  outcomes = run_tests("def broken(:\n    pass", STDIO_TESTS, timeout_s=TIMEOUT, max_workers=1,
                       config=cfg)
  assert [o.verdict for o in outcomes] == ["compile_error"] * 3
  assert "SyntaxError" in outcomes[0].detail
  assert all(o.detail == "skipped" for o in outcomes[1:])


# ---------------------------------------------------------------------------
# what isolation is active
# ---------------------------------------------------------------------------


def test_capabilities_describe_the_active_mode():
  caps = sandbox_capabilities()
  assert caps["isolation"] in ("namespaces", "fallback")
  assert caps["as_root"] == (os.geteuid() == 0)
  if caps["isolation"] == "namespaces":
    assert caps["network"] == "network-namespace"
    assert caps["processes"] == "pid-namespace"
    assert caps["fallback_reason"] is None
  else:
    assert caps["network"] == "audit-hook"
    assert caps["fallback_reason"]


def test_program_identity_matches_capabilities(cfg):
  """The program never runs as root, and namespaces mode shows a private root and pid space."""
  prog = textwrap.dedent(f"""
      import os, json
      print(json.dumps({{"uid": os.getuid(), "euid": os.geteuid(), "ppid": os.getppid(),
                        "root": sorted(os.listdir("/")), "env": sorted(os.environ),
                        "repo_visible": os.path.exists({REPO + "/r1jax"!r})}}))
  """)
  res = _sandbox.run_program(prog, stdin="", timeout_s=TIMEOUT, config=cfg)
  info = json.loads(res.stdout)
  mode = _sandbox._mode_for(cfg)[0]
  if os.geteuid() == 0:
    assert info["uid"] == info["euid"] != 0
    assert info["uid"] >= _sandbox._UID_BASE
  else:
    assert info["uid"] == os.getuid()
  assert set(info["env"]) <= {"PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", _sandbox.MARKER_ENV,
                              "LC_CTYPE"}
  if mode == "namespaces":
    assert info["ppid"] == 1  # our init, pid 1 of a private pid namespace
    assert "work" in info["root"] and "home" not in info["root"]
    assert info["repo_visible"] is False


def test_forced_namespaces_mode_errors_clearly_when_unavailable():
  caps = sandbox_capabilities()
  cfg = SandboxConfig(isolation="namespaces")
  if caps["isolation"] == "namespaces":
    assert code_reward(DOUBLER, STDIO_TESTS, timeout_s=TIMEOUT, config=cfg) == 1.0
  else:
    with pytest.raises(_sandbox.SandboxError, match="namespaces requested"):
      code_reward(DOUBLER, STDIO_TESTS, timeout_s=TIMEOUT, config=cfg)


NON_ROOT_JUDGE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from r1jax.rewards.code import SandboxConfig, code_reward, run_tests, sandbox_capabilities
out = {"caps": sandbox_capabilities()}
for mode in ("auto", "fallback"):
    cfg = SandboxConfig(isolation=mode)
    out[mode] = {
        "honest": code_reward("```python\nprint(int(input()) * 2)\n```",
                              [{"input": "2", "output": "4"}, {"input": "5", "output": "10"}],
                              timeout_s=2, config=cfg),
        "net": run_tests("import socket\nsocket.create_connection(('127.0.0.1', 9), 1)\nprint(1)",
                         [{"input": "", "output": "1"}], timeout_s=2, config=cfg)[0].verdict,
        "write": run_tests("open('/tmp/r1jax_nonroot_escape', 'w').write('x')\nprint(1)",
                           [{"input": "", "output": "1"}], timeout_s=2, config=cfg)[0].verdict,
    }
print(json.dumps(out))
"""


def _unprivileged_python() -> str:
  """An interpreter of this Python version that uid 65534 can run (pyenv under /root may not be)."""
  want = f"{sys.version_info[0]}.{sys.version_info[1]}"
  candidates = [_sandbox._python(), sys.executable, f"/usr/bin/python{want}",
                f"/usr/local/bin/python{want}"]
  for python in dict.fromkeys(candidates):
    try:
      proc = subprocess.run(
          [python, "-I", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
          capture_output=True, text=True, timeout=30, user=65534, group=65534,
          extra_groups=[], cwd="/", env={})
    except OSError:
      continue
    if proc.returncode == 0 and proc.stdout.strip() == want:
      return python
  pytest.skip(f"no Python {want} on this host is executable by uid 65534; "
              "the non-root path cannot be exercised from a root test run")


def test_non_root_judge():
  """The non-root code path (user namespaces or fallback) works and still isolates."""
  if os.geteuid() != 0:
    # This whole suite already runs through the non-root path; make that explicit.
    assert sandbox_capabilities()["user"] in ("user-namespace (no capabilities)", "same-uid")
    return
  python = _unprivileged_python()
  proc = subprocess.run(
      [python, "-I", "-c", NON_ROOT_JUDGE, REPO], capture_output=True, text=True,
      timeout=60, user=65534, group=65534, extra_groups=[], cwd="/",
      env={"PATH": "/usr/bin:/bin"},
  )
  assert proc.returncode == 0, proc.stderr
  out = json.loads(proc.stdout)
  assert out["caps"]["as_root"] is False
  assert out["caps"]["user"] in ("user-namespace (no capabilities)", "same-uid")
  for mode in ("auto", "fallback"):
    assert out[mode]["honest"] == 1.0
    assert out[mode]["net"] == "runtime_error"
  # Refused in fallback mode; in namespaces mode /tmp is a private tmpfs.
  assert out["fallback"]["write"] == "runtime_error"
  if out["caps"]["isolation"] == "namespaces":
    assert out["auto"]["write"] == "passed"
  assert not os.path.exists("/tmp/r1jax_nonroot_escape")


def test_no_sandbox_directories_left_behind(cfg, tmp_path, monkeypatch):
  monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
  code_reward(DOUBLER, STDIO_TESTS, timeout_s=TIMEOUT, config=cfg)
  code_reward(fenced("open('junk', 'w').write('x' * 1000)\n"
                     "import os\nos.mkdir('d')\nos.chmod('d', 0)"),
              STDIO_TESTS[:1], timeout_s=TIMEOUT, config=cfg)
  assert os.listdir(tmp_path) == []


if __name__ == "__main__":
  sys.exit(pytest.main([__file__, "-q"]))
