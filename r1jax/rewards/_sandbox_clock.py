"""The sandboxed program's clock, kept by its runner (``_sandbox_runner``).

Standard library only, no ``r1jax`` imports (it runs in the sandbox's runner).  The
program's time starts when it is about to run (``R``).  It is charged the time its
main thread ran plus the time it slept (blocked on input, a child, ``time.sleep``):
what it would take on an idle machine.  The time it was runnable but not running is
not charged, so a verdict does not depend on how loaded the host is.  That time has two
parts, neither of them visible as the thread's CPU time:

* waiting in the run queue (``/proc/<pid>/schedstat``'s run delay, which the kernel
  adds only when the wait ends);
* a virtual CPU stolen by the hypervisor while the thread is "running" (steal time:
  it shows in no per-thread counter at all).

So the clock samples the main thread (``/proc/<pid>/schedstat`` for the nanoseconds it
ran and waited, ``/proc/<pid>/stat`` for its state) every poll: between two samples
that both find it runnable, it is charged what it ran; otherwise it is also charged the
rest of the interval that neither its run time nor its run-queue wait explains (its
sleep).  Two bounds keep the credit honest:

* the CPU time of all the program's processes together (``/proc/<pid>/stat`` of the
  process tree, reaped children included) may not exceed ``limits.cpu_s``, the same
  budget ``RLIMIT_CPU`` gives each process: a program whose own processes starve its
  main thread (a fork bomb) is not credited for that;
* whatever the load, the program is killed after ``wall_cap_s`` of wall clock.

Where ``/proc`` shows none of this, the clock is plain wall time from ``R``.
"""

import os
import time

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


class Clock:
  """Time and CPU the program has had since it started."""

  def __init__(self, cfg: dict, proc_fd: int, child: int) -> None:
    """``child``: the runner's child (namespaces: init, whose descendants are the
    program's processes; fallback: the program itself); ``proc_fd``: the host's /proc."""
    self.start = time.monotonic()
    self.timeout_s = cfg["timeout_s"]
    self.hard = self.start + cfg["wall_cap_s"]
    self.cpu_budget = cfg["limits"]["cpu_s"]
    self.proc_fd, self.child = proc_fd, child
    self.count_child = cfg["mode"] == "fallback"  # init's own CPU is not the program's
    main = child if self.count_child else _only_child(proc_fd, child)
    self.fds, self.last_cpu = None, 0.0
    if main is not None:
      try:
        self.fds = [os.open(f"{main}/{name}", os.O_RDONLY, dir_fd=proc_fd)
                    for name in ("schedstat", "stat")]
      except OSError:
        self.fds = None
    self.charged, self.sample = 0.0, (self.start, 0.0, 0.0, False)  # if already gone
    self.sample = self._thread()
    self.cpu0 = self._cpu()

  def _thread(self) -> tuple[float, float, float, bool] | None:
    """(now, seconds the main thread ran, seconds it waited runnable, whether it is
    runnable now), or None where ``/proc`` does not show them."""
    now = time.monotonic()
    if self.fds is None:
      return None
    try:
      ran, waited = os.pread(self.fds[0], 128, 0).split()[:2]
      state = os.pread(self.fds[1], 1024, 0).rsplit(b")", 1)[1].split()[0]
      return now, int(ran) / 1e9, int(waited) / 1e9, state == b"R"
    except (OSError, IndexError, ValueError):  # the thread is gone: it runs no more
      return now, self.sample[1], self.sample[2], False

  def _charge(self) -> float:
    """Seconds charged to the program so far (see the module's docstring)."""
    last, new = self.sample, self._thread()
    if new is None:
      return time.monotonic() - self.start
    ran, waited = new[1] - last[1], new[2] - last[2]
    self.charged += ran
    if not (last[3] and new[3]):  # it slept at some point of the interval
      self.charged += max(0.0, new[0] - last[0] - ran - waited)
    self.sample = new
    return self.charged

  def _cpu(self) -> float:
    """CPU seconds of the program's whole process tree, reaped children included."""
    ticks, todo = 0, [self.child]
    while todo:
      pid = todo.pop()
      try:
        fields = _read(self.proc_fd, f"{pid}/stat").rsplit(b")", 1)[1].split()
        own = int(fields[11]) + int(fields[12])  # utime, stime
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime: reaped children
        if pid != self.child or self.count_child:
          ticks += own
        tasks = os.open(f"{pid}/task", os.O_RDONLY | os.O_DIRECTORY, dir_fd=self.proc_fd)
        try:
          for tid in os.listdir(tasks):
            todo += [int(c) for c in _read(tasks, f"{tid}/children").split()]
        finally:
          os.close(tasks)
      except (OSError, IndexError, ValueError):
        continue
    self.last_cpu = max(self.last_cpu, ticks * _TICK_S)
    return self.last_cpu

  def deadline(self) -> float:
    """When the program's time runs out, as of now (moves later while it is starved).

    Called at every poll: each call is one sample of the main thread."""
    left = self.timeout_s - self._charge()
    return min(time.monotonic() + left, self.hard) if left > 0 else self.start

  def out_of_cpu(self) -> bool:
    """Whether the program's processes together used up its CPU budget."""
    return self._cpu() - self.cpu0 >= self.cpu_budget

  def summary(self) -> str:
    """How long the program had, for the verdict's detail: ``cpu_wait`` is the wall
    time not charged (run-queue wait and stolen time)."""
    wall = time.monotonic() - self.start
    charged = self._charge()
    return (f"wall={wall:.2f}s charged={charged:.2f}s "
            f"cpu_wait={max(0.0, wall - charged):.2f}s "
            f"cpu={max(0.0, self._cpu() - self.cpu0):.2f}s")

  def close(self) -> None:
    """Close the /proc descriptors."""
    for fd in self.fds or ():
      os.close(fd)
    self.fds = None


def _read(dir_fd: int, path: str) -> bytes:
  fd = os.open(path, os.O_RDONLY, dir_fd=dir_fd)
  try:
    return os.read(fd, 4096)
  finally:
    os.close(fd)


def _only_child(proc_fd: int, pid: int) -> int | None:
  """Host pid of init's one child, the program's process (None if not exactly one)."""
  try:
    children = _read(proc_fd, f"{pid}/task/{pid}/children").split()
    return int(children[0]) if len(children) == 1 else None
  except (OSError, ValueError):
    return None
