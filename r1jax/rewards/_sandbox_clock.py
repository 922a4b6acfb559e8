"""The sandboxed program's clock, kept by its runner (``_sandbox_runner``).

Standard library only, no ``r1jax`` imports (it runs in the sandbox's runner).  The
program's time starts when it is about to run (``R``).  On a busy machine a runnable
program waits in the run queue; that wait, of its main thread
(``/proc/<pid>/schedstat``), is not charged against ``timeout_s``, so a verdict does
not depend on how loaded the host is.  Two bounds keep the credit honest:

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
    self.fd, self.last_wait, self.last_cpu = None, 0.0, 0.0
    if main is not None:
      try:
        self.fd = os.open(f"{main}/schedstat", os.O_RDONLY, dir_fd=proc_fd)
      except OSError:
        pass
    self.wait0, self.cpu0 = self._waited(), self._cpu()

  def _waited(self) -> float:
    """Seconds the program's main thread spent runnable but not running, so far."""
    if self.fd is not None:
      try:
        self.last_wait = int(os.pread(self.fd, 128, 0).split()[1]) / 1e9
      except (OSError, IndexError, ValueError):  # the thread is gone: keep the last value
        pass
    return self.last_wait

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
    """When the program's time runs out, as of now (moves later while it is starved)."""
    return min(self.start + self.timeout_s + max(0.0, self._waited() - self.wait0), self.hard)

  def out_of_cpu(self) -> bool:
    """Whether the program's processes together used up its CPU budget."""
    return self._cpu() - self.cpu0 >= self.cpu_budget

  def summary(self) -> str:
    """How long the program had, for the verdict's detail."""
    return (f"wall={time.monotonic() - self.start:.2f}s "
            f"cpu_wait={max(0.0, self._waited() - self.wait0):.2f}s "
            f"cpu={max(0.0, self._cpu() - self.cpu0):.2f}s")

  def close(self) -> None:
    """Close the schedstat descriptor."""
    if self.fd is not None:
      os.close(self.fd)
      self.fd = None


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
