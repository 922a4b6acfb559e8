"""Shared by the adversarial sandbox suites (test_code_adversarial.py: exhausting
resources and escaping the box; test_code_cheating.py: cheating the judge): the
per-test check that no sandbox process is left behind, both isolation modes, and a
judge with a wall-clock bound that only has to catch a hang."""

from __future__ import annotations

import ast
import os
import secrets
import textwrap
import time

import pytest

from r1jax.rewards import _sandbox
from r1jax.rewards.code import SandboxConfig, run_tests

MODES = ["auto", "fallback"]
TIMEOUT = 0.6
# Slack on top of the timeout: interpreter start-up, kill, sweep, a loaded CI box
# (CI runs the suite with ``-n 2`` next to JAX tests), and the sandbox's own
# allowance for a busy host (a program may run up to 4x its timeout of wall clock
# while it waits for a CPU).  The bound only has to catch a hang (sleep(100)).
SLACK = 30.0
CLEANUP_S = 10.0  # how long sandbox processes may take to vanish after a kill
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sandbox_pids(judge_pid: int | None = None) -> list[int]:
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
  assert sandbox_pids() == [], "sandbox processes alive before the test"
  yield
  deadline = time.monotonic() + CLEANUP_S
  while (left := sandbox_pids()) and time.monotonic() < deadline:
    time.sleep(0.02)
  assert left == [], f"processes left behind: {left}"


@pytest.fixture(params=MODES)
def cfg(request) -> SandboxConfig:
  return SandboxConfig(isolation=request.param)


def mode_of(cfg: SandboxConfig) -> str:
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
