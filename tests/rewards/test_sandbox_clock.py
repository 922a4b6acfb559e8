"""The sandbox clock's accounting on a scripted /proc (``_sandbox_clock``).

A fake /proc directory plays the program's main thread: its run time and run-queue
wait (schedstat), its state and CPU ticks (stat), under a scripted monotonic clock.
Each case states what an idle machine would take and checks the charge against it:
time stolen from a virtual CPU (wall time passes, the thread is "running", but neither
its run time nor its run-queue wait grows: the reading CI saw, wall=1.01s cpu=0.44s
cpu_wait=0.00s) and a run-queue wait still in progress must not be charged; sleep must.
"""

from __future__ import annotations

import os

import pytest

from r1jax.rewards import _sandbox_clock

PID = 4242
TICK = os.sysconf("SC_CLK_TCK")


class FakeThread:
  """Writes /proc/<PID>/{schedstat,stat,task/<PID>/children} under ``root``."""

  def __init__(self, root) -> None:
    self.dir = root / str(PID)
    (self.dir / "task" / str(PID)).mkdir(parents=True)
    (self.dir / "task" / str(PID) / "children").write_text("")
    self.set(ran=0.0, waited=0.0, state="R")

  def set(self, ran: float, waited: float, state: str) -> None:
    # In place (same inode): the clock keeps its descriptors open and preads them.
    with open(self.dir / "schedstat", "r+" if (self.dir / "schedstat").exists() else "w") as f:
      f.truncate(0)
      f.write(f"{int(ran * 1e9)} {int(waited * 1e9)} 7\n")
    ticks = int(round(ran * TICK))
    fields = [state, "1", "1", "1", "0", "-1", "0", "0", "0", "0", "0", str(ticks), "0",
              "0", "0"]
    with open(self.dir / "stat", "r+" if (self.dir / "stat").exists() else "w") as f:
      f.truncate(0)
      f.write(f"{PID} (python3) " + " ".join(fields) + "\n")


@pytest.fixture
def scripted(tmp_path, monkeypatch):
  """(fake thread, set the clock's time, make a Clock)."""
  now = [100.0]
  monkeypatch.setattr(_sandbox_clock.time, "monotonic", lambda: now[0])
  thread = FakeThread(tmp_path)
  proc_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
  clocks = []

  def make(timeout_s=1.0):
    cfg = {"timeout_s": timeout_s, "wall_cap_s": 4 * timeout_s + 1, "mode": "fallback",
           "limits": {"cpu_s": 100}}
    clocks.append(_sandbox_clock.Clock(cfg, proc_fd, PID))
    return clocks[-1]

  def at(t):
    now[0] = 100.0 + t

  yield thread, at, make
  for c in clocks:
    c.close()
  os.close(proc_fd)


def _run(thread, at, clock, script):
  """Play (time, ran, waited, state) samples; return the deadline after the last."""
  deadline = None
  for t, ran, waited, state in script:
    thread.set(ran, waited, state)
    at(t)
    deadline = clock.deadline()
  return deadline


def test_stolen_time_is_not_charged(scripted):
  thread, at, make = scripted
  clock = make()
  # Runnable throughout; it gets 0.44 s on the CPU in 1.01 s and no run-queue wait
  # shows: the rest was stolen from the virtual CPU. An idle machine gives 0.44 s.
  script = [(0.1 * i, 0.044 * i, 0.0, "R") for i in range(1, 11)] + [(1.01, 0.44, 0.0, "R")]
  deadline = _run(thread, at, clock, script)
  assert deadline == pytest.approx(100.0 + 1.01 + (1.0 - 0.44))
  assert "charged=0.44s" in clock.summary() and "cpu_wait=0.57s" in clock.summary()


def test_a_wait_in_progress_is_not_charged(scripted):
  thread, at, make = scripted
  clock = make()
  # Ran 0.3 s, then sat in the run queue 0.8 s; the kernel adds that wait to schedstat
  # only when the thread runs again, so the samples show no wait at all.
  deadline = _run(thread, at, clock, [(0.3, 0.3, 0.0, "R"), (0.7, 0.3, 0.0, "R"),
                                     (1.1, 0.3, 0.0, "R")])
  assert deadline > 100.0 + 1.1, "killed for time it spent waiting for a CPU"
  # Then it runs and the wait is booked: nothing changes in the charge.
  deadline = _run(thread, at, clock, [(1.5, 0.7, 0.8, "R")])
  assert deadline == pytest.approx(100.0 + 1.5 + 0.3)


def test_sleep_is_charged(scripted):
  thread, at, make = scripted
  clock = make()
  # Runs 0.1 s, then sleeps (time.sleep, a blocking read): an idle machine waits too.
  deadline = _run(thread, at, clock, [(0.1, 0.1, 0.0, "R"), (0.5, 0.1, 0.0, "S"),
                                     (0.9, 0.1, 0.0, "S")])
  assert deadline == pytest.approx(100.0 + 1.0)
  at(1.0)
  assert clock.deadline() == clock.start  # out of time: a deadline in the past


def test_run_queue_wait_booked_across_a_sleep_is_not_charged(scripted):
  thread, at, make = scripted
  clock = make(timeout_s=2.0)
  # 0.2 s asleep, woken, 0.5 s in the run queue (booked), 0.3 s running, asleep again.
  deadline = _run(thread, at, clock, [(0.2, 0.0, 0.0, "S"), (1.0, 0.3, 0.5, "S")])
  assert clock.charged == pytest.approx(0.2 + 0.3)
  assert deadline == pytest.approx(100.0 + 1.0 + 1.5)


def test_the_wall_cap_holds_whatever_the_credit(scripted):
  thread, at, make = scripted
  clock = make()
  # Never runs, never sleeps: starved throughout. The cap (4 x timeout + 1 s) kills it.
  deadline = _run(thread, at, clock, [(t, 0.0, 0.0, "R") for t in (1.0, 3.0, 5.0)])
  assert deadline == pytest.approx(100.0 + 5.0)


def test_without_proc_the_clock_is_wall_time(tmp_path, monkeypatch):
  now = [50.0]
  monkeypatch.setattr(_sandbox_clock.time, "monotonic", lambda: now[0])
  proc_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)  # no /proc/<pid> at all
  try:
    clock = _sandbox_clock.Clock({"timeout_s": 1.0, "wall_cap_s": 5.0, "mode": "fallback",
                                  "limits": {"cpu_s": 100}}, proc_fd, PID)
    now[0] = 50.4
    assert clock.deadline() == pytest.approx(51.0)
    now[0] = 51.0
    assert clock.deadline() == clock.start
  finally:
    os.close(proc_fd)


def test_a_thread_gone_before_the_first_sample_is_charged_as_asleep(scripted, tmp_path):
  thread, at, make = scripted
  (thread.dir / "stat").write_text("")  # exited between 'R' and the clock's start:
  clock = make()  # its files open but read nothing
  at(0.4)
  assert clock.deadline() == pytest.approx(100.0 + 1.0)  # wall time, no crash
