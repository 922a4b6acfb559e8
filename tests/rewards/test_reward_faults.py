"""Faults injected on purpose: what a program or a dead reward worker may break, and what not.

Sandbox cases run a program that exhausts memory, processes or disk, check it gets a
failing verdict that names the reason, and that ordinary programs scored in the same
batch (the same judge process, the same pool) still pass. Scorer cases kill a reward
worker with SIGKILL while it holds a row (or while it waits for work), and check the
row is a failure, the lost worker is counted, and later batches score normally.

No assertion here depends on how fast the machine is: waits are bounded only to turn
a hang into a failure, with margins of minutes.
"""

from __future__ import annotations

import os
import signal
import textwrap
import threading
import time

import numpy as np
import pytest

from r1jax.rewards.code import SandboxConfig, code_rewards, run_tests
from r1jax.rewards.scoring import RewardScorer
from tests.rewards.adversarial import mode_of, sandbox_pids

MODES = ["auto", "fallback"]
TIMEOUT = 5.0
HANG_S = 120.0  # only a hang takes this long

HONEST = "```python\nprint(int(input()) * 2)\n```"
HONEST_TESTS = [{"input": "4", "output": "8"}, {"input": "-1", "output": "-2"}]
ANY_OUTPUT = [{"input": "", "output": "unreachable"}]

MEMORY_HOG = """
    x = []
    while True:
        x.append(bytearray(1 << 24))
"""
FORK_UNTIL_REFUSED = """
    import os, time
    while True:
        if os.fork() == 0:
            time.sleep(60)  # each child holds a process slot
"""
FORK_BOMB = """
    import os
    while True:
        try:
            os.fork()
        except OSError:
            pass
"""
DISK_FILLER = """
    i = 0
    while True:
        with open("fill%d" % i, "wb") as f:
            f.write(b"x" * (1 << 20))
        i += 1
"""
INODE_FILLER = """
    for i in range(10 ** 6):
        open("e%d" % i, "w").close()
"""


@pytest.fixture(params=MODES)
def cfg(request) -> SandboxConfig:
  return SandboxConfig(isolation=request.param, memory_mb=128)


def _fenced(src: str) -> str:
  return f"```python\n{textwrap.dedent(src).strip()}\n```"


def _verdict(src: str, cfg: SandboxConfig):
  return run_tests(textwrap.dedent(src), ANY_OUTPUT, timeout_s=TIMEOUT, config=cfg)[0]


def _wait_for(predicate, what: str, limit_s: float = HANG_S):
  deadline = time.monotonic() + limit_s
  while time.monotonic() < deadline:
    value = predicate()
    if value:
      return value
    time.sleep(0.02)
  raise AssertionError(f"gave up waiting for {what}")


# ---------------------------------------------------------------------------
# sandboxed programs that exhaust a resource
# ---------------------------------------------------------------------------


def test_memory_exhaustion_is_its_own_failure(cfg):
  out = _verdict(MEMORY_HOG, cfg)
  assert out.verdict == "runtime_error" and "MemoryError" in out.detail, out


def test_process_exhaustion_is_its_own_failure(cfg):
  out = _verdict(FORK_UNTIL_REFUSED, cfg)
  assert out.verdict == "runtime_error", out
  assert "BlockingIOError" in out.detail or "Resource temporarily unavailable" in out.detail
  out = _verdict(FORK_BOMB, cfg)  # never gives up: stopped by the clock
  assert out.verdict in ("timeout", "runtime_error"), out
  assert out.detail, "the verdict names no reason"


def test_disk_exhaustion_is_its_own_failure(cfg):
  out = _verdict(DISK_FILLER, cfg)
  assert out.verdict == "runtime_error", out
  if mode_of(cfg) == "namespaces":  # a full private tmpfs
    assert "No space left on device" in out.detail, out
  else:  # killed by the runner's quota
    assert out.detail.startswith("killed: disk:"), out
  out = _verdict(INODE_FILLER, cfg)
  assert out.verdict == "runtime_error", out
  if mode_of(cfg) == "namespaces":
    assert "No space left on device" in out.detail, out
  else:
    assert f"creating more than {cfg.max_files} files" in out.detail, out


def test_big_file_hits_the_file_size_limit(cfg):
  out = _verdict("f = open('big', 'wb')\nwhile True:\n    f.write(b'x' * (1 << 20))", cfg)
  assert out.verdict == "runtime_error" and "File too large" in out.detail, out


def test_exhaustion_leaves_the_rest_of_the_batch_alone(cfg, tmp_path, monkeypatch):
  """Resource hogs and honest programs in one pooled batch: each gets its own verdict."""
  monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
  hogs = [MEMORY_HOG, FORK_UNTIL_REFUSED, DISK_FILLER, INODE_FILLER, FORK_BOMB]
  completions, tests = [], []
  for hog in hogs:
    completions += [_fenced(hog), HONEST]
    tests += [HONEST_TESTS, HONEST_TESTS]
  for workers in (1, 4):
    scores = code_rewards(completions, tests, timeout_s=TIMEOUT, max_workers=workers,
                          config=cfg)
    assert scores == [0.0, 1.0] * len(hogs), (workers, scores)
  assert sandbox_pids(os.getpid()) == []
  assert os.listdir(tmp_path) == []  # every run's directory is gone, whatever it held


# ---------------------------------------------------------------------------
# reward workers killed mid-batch
# ---------------------------------------------------------------------------


# Module-level so spawned workers can unpickle them by reference.
def stall(completion, example):
  """1.0, except for "stall": announce this worker's pid in a file and wait to be killed."""
  if "stall" in completion:
    with open(example["pidfile"] + ".tmp", "w") as f:
      f.write(str(os.getpid()))
    os.rename(example["pidfile"] + ".tmp", example["pidfile"])
    time.sleep(600)
  return 1.0


def crash(completion, example):
  """1.0, except for "crash": the worker process dies on the spot."""
  if "crash" in completion:
    os._exit(3)
  return 1.0


def _score_in_thread(scorer, completions, examples):
  result = {}
  thread = threading.Thread(target=lambda: result.update(r=scorer(completions, examples)))
  thread.start()
  return thread, result


def _read_pid(path: str) -> int | None:
  try:
    with open(path) as f:
      return int(f.read())
  except (OSError, ValueError):
    return None


def test_worker_killed_mid_batch_fails_its_row_and_scoring_goes_on(tmp_path):
  pidfile = str(tmp_path / "pid")
  with RewardScorer({"stall": 1.0, "format": 0.5}, num_workers=2, timeout_s=HANG_S,
                    reward_fns={"stall": stall}) as s:
    comps = ["a", "b", "stall", "c", "d", "e"]
    exs = [{"pidfile": pidfile} for _ in comps]
    thread, result = _score_in_thread(s, comps, exs)
    pid = _wait_for(lambda: _read_pid(pidfile), "the stalling reward call")
    assert pid in [w.proc.pid for w in s._workers]
    os.kill(pid, signal.SIGKILL)
    thread.join(HANG_S)
    assert not thread.is_alive(), "scoring hung after its worker was killed"
    r = result["r"]
    np.testing.assert_array_equal(r.per_fn["stall"], [1, 1, 0, 1, 1, 1])
    assert r.failures == {"stall": 1, "format": 0}
    assert r.worker_failures == 1
    assert all(w.proc.is_alive() for w in s._workers)  # replaced
    for _ in range(2):  # later batches: clean
      r2 = s(["a", "b", "c"], [{}] * 3)
      np.testing.assert_array_equal(r2.per_fn["stall"], [1, 1, 1])
      assert r2.failures == {"stall": 0, "format": 0} and r2.worker_failures == 0
    assert s.worker_failures == 1


def test_worker_crash_and_idle_death_are_counted():
  with RewardScorer({"crash": 1.0}, num_workers=2, timeout_s=HANG_S,
                    reward_fns={"crash": crash}) as s:
    r = s(["a", "crash", "b", "crash", "c"], [{}] * 5)
    np.testing.assert_array_equal(r.total, [1, 0, 1, 0, 1])
    assert r.failures == {"crash": 2} and r.worker_failures == 2
    # A worker dies between batches (e.g. the OOM killer): the next batch notices.
    victim = s._workers[0].proc
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(HANG_S)
    r = s(["a", "b", "c", "d"], [{}] * 4)
    np.testing.assert_array_equal(r.total, [1, 1, 1, 1])
    assert r.failures == {"crash": 0}
    assert r.worker_failures == 1
    assert s.worker_failures == 3


def test_worker_killed_while_judging_code_leaves_no_sandbox_behind():
  """SIGKILL on a worker inside the code reward: its sandboxes die too (lifeline)."""
  sleeper = "```python\nimport time\ntime.sleep(600)\nprint(8)\n```"
  honest = {"tests": [{"input": "4", "output": "8"}]}
  asleep = {"tests": [{"input": "asleep", "output": "8"}]}
  with RewardScorer({"code": 1.0}, num_workers=2, timeout_s=HANG_S) as s:
    thread, result = _score_in_thread(s, [HONEST, sleeper, HONEST], [honest, asleep, honest])
    pids = {w.proc.pid: w for w in s._workers}

    def judging_sleeper():
      """The worker whose sandbox reads "asleep" on stdin (the sleeper's test input)."""
      for pid in pids:
        for spid in sandbox_pids(pid):
          try:
            with open(f"/proc/{spid}/fd/0", "rb") as f:
              if f.read() == b"asleep":
                return pid
          except OSError:
            pass
      return None

    pid = _wait_for(judging_sleeper, "the sleeping program's sandbox")
    os.kill(pid, signal.SIGKILL)
    thread.join(HANG_S)
    assert not thread.is_alive(), "scoring hung after its worker was killed"
    r = result["r"]
    np.testing.assert_array_equal(r.total, [1, 0, 1])
    assert r.failures == {"code": 1} and r.worker_failures == 1
    _wait_for(lambda: not sandbox_pids(pid), "the dead worker's sandboxes to go")
    r = s([HONEST, HONEST], [honest] * 2)
    np.testing.assert_array_equal(r.total, [1, 1])
    assert r.worker_failures == 0
