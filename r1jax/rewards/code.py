"""Code accuracy reward: run model-written Python against tests in a real sandbox.

DeepSeek-R1 rewards code by compiling the model's program and running it
against predefined tests.  :func:`code_reward` takes the last fenced Python
block of a completion and returns the fraction of tests it passes.  Two test
formats are accepted (exactly these keys, string values):

* ``{"input": str, "output": str}``: stdin/stdout.  The program gets ``input``
  on stdin and passes when it exits with status 0 and its stdout, decoded as
  strict UTF-8, equals ``output`` token by token (whitespace-normalised:
  ``stdout.split() == output.split()``).
* ``{"call": "f(1, 2)", "expected": "3"}``: function style.  The program is
  loaded as module ``solution``, ``call`` is evaluated in its namespace, and
  the value is compared with ``ast.literal_eval(expected)`` by value (floats
  with ``rel_tol=abs_tol=1e-9``, containers element-wise, otherwise exact
  type and ``==``).

Threat model
------------
The program is untrusted input written by a model under optimisation
pressure: assume it tries every way to cheat or damage the host it is allowed
to.  Defences, in ``r1jax.rewards._sandbox`` (host side) and ``_sandbox_runner``
(the child: ``_sandbox_jail``, ``_sandbox_confine``, ``_sandbox_audit``):

* One sandbox per test, with a minimal environment built from scratch (nothing
  inherited), ``python -I -S`` (standard library only), rlimits on CPU seconds,
  address space, file size, number of processes and open files, no core dumps.
  In ``namespaces`` mode with a root judge the sandboxes of a batch are forked
  from one pre-started server (``_sandbox_batch``), each with namespaces, root,
  uid and limits of its own; otherwise each test starts a runner of its own.
* A time limit (``timeout_s``, per test) that kills the whole sandbox: in
  ``namespaces`` mode the program is inside a new pid namespace whose init dies
  with it; in ``fallback`` mode the supervising runner kills the program's
  session and then sweeps every process left with the sandbox uid / per-run
  marker.  The limit is the program's own time (from when it starts: the time
  its main thread runs or sleeps, not the time it waits for a CPU on a loaded host
  or loses to a hypervisor, within a wall-clock cap of a few times
  ``timeout_s``), so verdicts do not depend on how busy the machine is.
  A dead judge is noticed through a lifeline pipe.  Stdout is capped
  (``SandboxConfig.max_output_bytes``); over the cap the run is killed and fails.
* Disk: nothing reaches a host disk in ``namespaces`` mode (``/work``, ``/tmp``
  and ``/dev/shm`` are private tmpfs of ``tmpfs_mb`` and ``max_files`` each); in
  ``fallback`` mode the runner kills a program whose directory outgrows
  ``tmpfs_mb``, and the audit hook refuses more than ``max_files`` new files.
* No network: a fresh network namespace (only a downed loopback) where the
  kernel allows it, otherwise a ``sys.addaudithook`` hook installed before the
  program is compiled refuses socket creation, connect, name lookups, starting
  new programs and ctypes.  :func:`sandbox_capabilities` says which is active
  (``caps["network"]`` is ``"network-namespace"`` or ``"audit-hook"``).
* Filesystem and privileges: in ``namespaces`` mode the program is moved
  (``pivot_root``, host tree detached) into a minimal root (read-only system
  dirs and interpreter, private size-capped ``/tmp``, its own directory at
  ``/work`` holding a copy of ``main.py``, a ``/proc`` showing only its own pid
  namespace) and runs as a unique unprivileged uid (root judge) or with all
  capabilities dropped in a user namespace (non-root judge), with
  ``no_new_privs``; other processes, the judge's files and environment are out
  of sight.  In ``fallback`` mode the uid switch (root judge) plus the audit
  hook's path policy apply (writes only in its directory, reads only there and
  in the interpreter's files).
* Residual risks (see ``_sandbox``): memory is bounded per process
  (``memory_mb * max_processes`` in total, plus the tmpfs in namespaces mode; no
  cgroups), no seccomp filter, and the fallback audit hook is defence in depth,
  not a kernel boundary.
* The judge compares outside the sandbox.  The child never receives the
  expected output (not in its files, environment, argv or stdin); it only
  produces stdout or a *claimed* return value (rebuilt from exact built-in
  types and sent on a separate pipe).  Printing, exit codes, patched
  ``print``/``builtins``/``__eq__`` cannot mark a test as passed: only
  producing the right value can.  Sandbox failures raise
  :class:`SandboxError` instead of silently scoring 0.

Scoring of a batch runs every (completion, test) pair in a bounded thread pool
(:func:`code_rewards`); each thread waits on one sandboxed program.
"""

from __future__ import annotations

import ast
import concurrent.futures
import dataclasses
import math
import os
import re
import signal
import threading
from typing import Literal, Mapping, Sequence

from r1jax.rewards import _sandbox_batch
from r1jax.rewards._sandbox import (
    RunResult,
    SandboxConfig,
    SandboxError,
    run_program,
    sandbox_capabilities,
)

__all__ = [
    "CallTest",
    "SandboxConfig",
    "SandboxError",
    "StdioTest",
    "TestOutcome",
    "code_reward",
    "code_rewards",
    "extract_code",
    "parse_tests",
    "run_tests",
    "sandbox_capabilities",
]

_PYTHON_LANGS = frozenset({"", "python", "py", "python3", "py3"})
_FENCE_RE = re.compile(
    r"^ {0,3}```[ \t]*([A-Za-z0-9_+.-]*)[^\n`]*\n(.*?)^ {0,3}```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
_MAX_WORKERS = 64  # the sandbox has this many unique-uid slots per judge process

Verdict = Literal[
    "passed", "wrong_answer", "runtime_error", "timeout", "output_limit", "compile_error",
    "no_code",
]


@dataclasses.dataclass(frozen=True)
class StdioTest:
  """A stdin/stdout test case."""

  input: str
  output: str


@dataclasses.dataclass(frozen=True)
class CallTest:
  """A function-style test case; ``expected_value`` is ``literal_eval(expected)``."""

  call: str
  expected: str
  expected_value: object


@dataclasses.dataclass(frozen=True)
class TestOutcome:
  """The judge's verdict on one test, with the (truncated) evidence."""

  __test__ = False  # not a pytest class

  verdict: Verdict
  detail: str = ""

  @property
  def passed(self) -> bool:
    """Whether the test passed."""
    return self.verdict == "passed"


def extract_code(completion: str) -> str | None:
  """Return the body of the last fenced Python (or unlabelled) block, or None."""
  if not isinstance(completion, str):
    raise TypeError(f"completion must be a str, got {type(completion).__name__}")
  blocks = [m.group(2) for m in _FENCE_RE.finditer(completion)
            if m.group(1).lower() in _PYTHON_LANGS]
  return blocks[-1] if blocks else None


def parse_tests(tests: Sequence[Mapping[str, str]]) -> list[StdioTest | CallTest]:
  """Validate test dicts and convert them; raises ValueError on any malformed test."""
  if isinstance(tests, (str, bytes, Mapping)) or not isinstance(tests, Sequence):
    raise ValueError(f"tests must be a list of dicts, got {type(tests).__name__}")
  if not tests:
    raise ValueError("tests must not be empty (the reward is a fraction of tests passed)")
  parsed: list[StdioTest | CallTest] = []
  for i, test in enumerate(tests):
    if not isinstance(test, Mapping):
      raise ValueError(f"test {i} must be a dict, got {type(test).__name__}")
    keys = set(test)
    if keys == {"input", "output"}:
      _require_str(test, i, ("input", "output"))
      parsed.append(StdioTest(test["input"], test["output"]))
    elif keys == {"call", "expected"}:
      _require_str(test, i, ("call", "expected"))
      try:
        ast.parse(test["call"], mode="eval")
      except SyntaxError as e:
        raise ValueError(f"test {i}: call {test['call']!r} is not an expression: {e}")
      try:
        value = ast.literal_eval(test["expected"])
      except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
        raise ValueError(
            f"test {i}: expected {test['expected']!r} is not a Python literal: {e}")
      parsed.append(CallTest(test["call"], test["expected"], value))
    else:
      raise ValueError(
          f"test {i} has keys {sorted(keys)}; allowed are exactly "
          "{'input', 'output'} (stdin/stdout) or {'call', 'expected'} (function)")
  return parsed


def _require_str(test: Mapping[str, object], i: int, keys: tuple[str, str]) -> None:
  for key in keys:
    if not isinstance(test[key], str):
      raise ValueError(f"test {i}: {key!r} must be a str, got {type(test[key]).__name__}")


def code_reward(
    completion: str,
    tests: Sequence[Mapping[str, str]],
    *,
    timeout_s: float = 5.0,
    max_workers: int | None = None,
    config: SandboxConfig | None = None,
) -> float:
  """Fraction of ``tests`` passed by the last fenced Python block of ``completion``."""
  return code_rewards([completion], [tests], timeout_s=timeout_s,
                      max_workers=max_workers, config=config)[0]


def code_rewards(
    completions: Sequence[str],
    tests_list: Sequence[Sequence[Mapping[str, str]]],
    *,
    timeout_s: float = 5.0,
    max_workers: int | None = None,
    config: SandboxConfig | None = None,
) -> list[float]:
  """Score a batch of completions, running all their tests in a bounded worker pool."""
  if len(completions) != len(tests_list):
    raise ValueError(
        f"got {len(completions)} completions but {len(tests_list)} test lists")
  outcomes = _judge_batch([extract_code(c) for c in completions],
                          [parse_tests(t) for t in tests_list],
                          timeout_s, max_workers, config)
  return [sum(o.passed for o in row) / len(row) for row in outcomes]


def run_tests(
    code: str | None,
    tests: Sequence[Mapping[str, str]],
    *,
    timeout_s: float = 5.0,
    max_workers: int | None = None,
    config: SandboxConfig | None = None,
) -> list[TestOutcome]:
  """Per-test verdicts for one program (``code`` is source, not a completion)."""
  return _judge_batch([code], [parse_tests(tests)], timeout_s, max_workers, config)[0]


def _judge_batch(
    codes: Sequence[str | None],
    tests_list: Sequence[list[StdioTest | CallTest]],
    timeout_s: float,
    max_workers: int | None,
    config: SandboxConfig | None,
) -> list[list[TestOutcome]]:
  if not (isinstance(timeout_s, (int, float)) and math.isfinite(timeout_s) and timeout_s > 0):
    raise ValueError(f"timeout_s must be a positive finite number, got {timeout_s!r}")
  if max_workers is None:
    max_workers = min(32, os.cpu_count() or 1)
  if not isinstance(max_workers, int) or not 1 <= max_workers <= _MAX_WORKERS:
    raise ValueError(f"max_workers must be an int in [1, {_MAX_WORKERS}], got {max_workers!r}")
  config = SandboxConfig() if config is None else config
  sandbox_capabilities()  # probe once, before the pool starts

  results: list[list[TestOutcome | None]] = [[None] * len(t) for t in tests_list]
  jobs = []
  for i, (code, tests) in enumerate(zip(codes, tests_list)):
    if code is None or not code.strip():
      results[i] = [TestOutcome("no_code")] * len(tests)
    else:
      jobs.extend((i, j) for j in range(len(tests)))
  if jobs:
    # One pre-started runner forks every program's sandbox, where that applies.
    with _sandbox_batch.batch(config) as server:
      _run_jobs(codes, tests_list, jobs, results, timeout_s, max_workers, config, server)
  return results  # type: ignore[return-value]


def _run_jobs(codes: Sequence[str | None], tests_list: Sequence[list[StdioTest | CallTest]],
              jobs: list[tuple[int, int]], results: list[list[TestOutcome | None]],
              timeout_s: float, max_workers: int, config: SandboxConfig,
              server: _sandbox_batch.SandboxServer | None) -> None:
  """Judge every (completion, test) job into ``results``, serially or in a thread pool."""
  uncompilable: set[int] = set()
  lock = threading.Lock()

  def judge(i: int, j: int) -> TestOutcome:
    with lock:
      if i in uncompilable:  # same source: it will not compile this time either
        return TestOutcome("compile_error", "skipped")
    outcome = _judge_one(codes[i], tests_list[i][j], timeout_s, config, server)
    if outcome.verdict == "compile_error":
      with lock:
        uncompilable.add(i)
    return outcome

  if max_workers == 1 or len(jobs) <= 1:
    for i, j in jobs:
      results[i][j] = judge(i, j)
  else:
    with concurrent.futures.ThreadPoolExecutor(max_workers, "code-reward") as pool:
      futures = {pool.submit(judge, i, j): (i, j) for i, j in jobs}
      try:
        for future in concurrent.futures.as_completed(futures):
          i, j = futures[future]
          results[i][j] = future.result()
      except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise


def _judge_one(code: str, test: StdioTest | CallTest, timeout_s: float,
               config: SandboxConfig, server: _sandbox_batch.SandboxServer | None
               ) -> TestOutcome:
  """Run one test in a fresh sandbox and judge what came out."""
  if isinstance(test, StdioTest):
    res = run_program(code, stdin=test.input, timeout_s=timeout_s, config=config,
                      server=server)
  else:
    res = run_program(code, call=test.call, timeout_s=timeout_s, config=config,
                      server=server)
  failure = _failure(res)
  if failure is not None:
    return failure
  if isinstance(test, StdioTest):
    if res.exit_code != 0:
      return TestOutcome("runtime_error", f"{_how_it_ended(res)}: {_tail(res.stderr)}")
    try:
      out = res.stdout.decode("utf-8")
    except UnicodeDecodeError as e:
      return TestOutcome("wrong_answer", f"stdout is not UTF-8: {e}")
    if out.split() == test.output.split():
      return TestOutcome("passed")
    return TestOutcome("wrong_answer", f"got {out[:200]!r}")
  if not res.result:
    return TestOutcome("runtime_error", f"{_how_it_ended(res)}: {_tail(res.stderr)}")
  try:
    value = ast.literal_eval(res.result.decode("utf-8"))
  except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError,
          UnicodeDecodeError) as e:
    return TestOutcome("wrong_answer", f"unparseable result: {type(e).__name__}")
  if _same_value(value, test.expected_value):
    return TestOutcome("passed")
  return TestOutcome("wrong_answer", f"got {res.result[:200]!r}")


def _failure(res: RunResult) -> TestOutcome | None:
  if res.compile_error is not None:
    return TestOutcome("compile_error", res.compile_error)
  if res.output_exceeded:
    return TestOutcome("output_limit", res.limit_detail)
  if res.timed_out:
    return TestOutcome("timeout", res.limit_detail or f"after {res.wall_s:.2f}s")
  if res.disk_exceeded:
    return TestOutcome("runtime_error", f"killed: {res.limit_detail}")
  return None


def _how_it_ended(res: RunResult) -> str:
  """``exit N``, or the signal that killed the program (e.g. SIGKILL when out of memory)."""
  if res.exit_code is None or res.exit_code >= 0:
    return f"exit {res.exit_code}"
  try:
    name = signal.Signals(-res.exit_code).name
  except ValueError:
    name = f"signal {-res.exit_code}"
  return f"killed by {name}"


def _tail(data: bytes) -> str:
  return data[-300:].decode("utf-8", "replace")


def _same_value(got: object, want: object, depth: int = 0) -> bool:
  """Value equality on plain literals; floats compare with a small tolerance."""
  if depth > 1000:
    return False
  tg, tw = type(got), type(want)
  if tg in (int, float) and tw in (int, float):
    if tg is float or tw is float:
      return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)  # type: ignore[arg-type]
    return got == want
  if tg is not tw:
    return False
  if tg in (list, tuple):
    return len(got) == len(want) and all(  # type: ignore[arg-type]
        _same_value(g, w, depth + 1) for g, w in zip(got, want))  # type: ignore[call-overload]
  if tg is dict:
    return got.keys() == want.keys() and all(  # type: ignore[union-attr]
        _same_value(got[k], want[k], depth + 1) for k in want)  # type: ignore[index]
  return got == want
