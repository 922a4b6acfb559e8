"""A batch's pre-started sandbox server: every program still gets a sandbox of its own.

The server (``r1jax.rewards._sandbox_batch``) forks one runner per program instead of
starting an interpreter for each; these tests check that nothing is shared between
the programs of a batch that a runner of their own would not share, and that the
server is gone when the batch is.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import threading
import time

import pytest

from r1jax.rewards import _sandbox, _sandbox_batch
from r1jax.rewards.code import SandboxConfig, code_rewards

CFG = SandboxConfig()


@pytest.fixture
def server():
  with _sandbox_batch.batch(CFG) as s:
    if s is None:
      pytest.skip("a batch server needs namespaces and a root judge")
    yield s


def _run(server, src: str, stdin: str = "") -> _sandbox.RunResult:
  return server.run(textwrap.dedent(src), stdin, None, 10.0, CFG)


def test_programs_of_a_batch_share_nothing(server):
  probe = """
      import json, os
      leftovers = sorted(os.listdir("/tmp")) + sorted(os.listdir("/dev/shm"))
      open("/tmp/mark", "w").write("x")
      open("/dev/shm/mark", "w").write("x")
      open("mine", "w").write("x")
      print(json.dumps({"uid": os.getuid(), "pid": os.getpid(), "ppid": os.getppid(),
                        "pids": sorted(p for p in os.listdir("/proc") if p.isdigit()),
                        "fds": sorted(os.listdir("/proc/self/fd")),
                        "work": sorted(os.listdir(".")), "leftovers": leftovers,
                        "host": os.path.exists("/etc/passwd")}))
  """
  seen = [json.loads(_run(server, probe).stdout) for _ in range(3)]
  assert len({s["uid"] for s in seen}) == 3  # a unique uid each
  for s in seen:
    assert s["uid"] != 0 and s["ppid"] == 1 and s["pid"] == 2  # its own pid namespace
    assert s["pids"] == ["1", "2"]  # sees its init and itself, nothing of the others
    assert s["leftovers"] == []  # fresh /tmp and /dev/shm
    assert s["work"] == ["main.py", "mine"]  # fresh /work
    assert s["fds"] == ["0", "1", "2", "3"]  # stdio and the listing itself: no server fd
    assert s["host"] is False


def _children(pid: int) -> list[int]:
  with open(f"/proc/{pid}/task/{pid}/children") as f:
    return [int(c) for c in f.read().split()]


def _status(pid: int, key: str) -> list[str]:
  with open(f"/proc/{pid}/status") as f:
    return next(line.split()[1:] for line in f if line.startswith(key + ":"))


def test_the_runner_is_the_programs_init(server):
  """Two processes per program: the runner the server forks is pid 1 of the program's
  pid namespace and forks the program itself (no init between them)."""
  out = {}
  run = threading.Thread(target=lambda: out.update(
      r=_run(server, "import time\ntime.sleep(8)\nprint('done')")))
  run.start()
  try:
    deadline = time.monotonic() + 60
    tree = None
    while tree is None and time.monotonic() < deadline and run.is_alive():
      try:
        for runner in _children(server.proc.pid):
          below = _children(runner)
          if below and _status(below[0], "Uid")[0] != "0":  # the program has its uid
            tree = runner, below
      except (OSError, StopIteration):  # a process went away while being read
        pass
      time.sleep(0.01)
    assert tree is not None, "no runner with the program as its child"
    runner, below = tree
    assert len(below) == 1
    assert _status(runner, "NSpid")[-1] == "1"  # init of the program's namespace
    assert _status(below[0], "NSpid")[-1] == "2"
    assert _status(runner, "Uid")[0] == "0"
    os.kill(below[0], signal.SIGKILL)  # seen: no need to wait out its sleep
  finally:
    run.join()
  assert out["r"].exit_code == -signal.SIGKILL and out["r"].stdout == b"", out["r"]


def test_programs_run_at_the_judges_priority(server):
  """The server and runners are boosted (they dispatch every program); the programs
  are not."""
  mine = os.getpriority(os.PRIO_PROCESS, 0)
  res = _run(server, "import os\nprint(os.getpriority(os.PRIO_PROCESS, 0))")
  assert int(res.stdout) == mine
  probe = subprocess.Popen(["sleep", "10"])
  try:  # whether this host lets the judge's user raise a priority (CAP_SYS_NICE)
    os.setpriority(os.PRIO_PROCESS, probe.pid, mine - 1)
    can_boost = True
  except PermissionError:
    can_boost = False
  finally:
    probe.kill()
    probe.wait()
  server_nice = os.getpriority(os.PRIO_PROCESS, server.proc.pid)
  assert server_nice < mine if can_boost else server_nice == mine


def test_orphans_are_reaped(server):
  """The runner, as init, collects the processes the program orphans."""
  res = _run(server, """
      import os, time
      for _ in range(20):
          if os.fork() == 0:
              if os.fork() == 0:
                  os._exit(0)  # orphaned once its parent exits
              os._exit(0)
          os.wait()
      deadline = time.monotonic() + 5
      while time.monotonic() < deadline:
          states = []
          for p in os.listdir("/proc"):
              if p.isdigit() and p not in ("1", str(os.getpid())):
                  try:
                      states.append(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[0])
                  except OSError:
                      pass
          if not states:
              break
          time.sleep(0.05)
      print(states)
  """)
  assert res.stdout == b"[]\n", res


def test_stdin_and_results_stay_with_their_program(server):
  outs = [_run(server, "print(input()[::-1])", stdin=f"abc{i}").stdout for i in range(4)]
  assert outs == [f"{i}cba\n".encode() for i in range(4)]
  res = server.run("def f(x):\n    return x * 2", None, "f(21)", 10.0, CFG)
  assert res.result == b"42"


def test_the_server_is_gone_with_its_batch():
  with _sandbox_batch.batch(CFG) as s:
    if s is None:
      pytest.skip("a batch server needs namespaces and a root judge")
    pid, top = s.proc.pid, s.top
    assert _run(s, "print(1)").stdout == b"1\n"
  assert s.proc.returncode is not None
  assert not os.path.exists(f"/proc/{pid}/status") or "Z" in open(f"/proc/{pid}/stat").read()
  assert not os.path.exists(top)


def test_a_dead_server_fails_the_batch_loudly(server):
  os.kill(server.proc.pid, 9)
  server.proc.wait()
  with pytest.raises(_sandbox.SandboxError):
    _run(server, "print(1)")


def test_pooled_batch_scores_like_single_runners():
  prog = "```python\nimport sys\nprint(sum(map(int, sys.stdin.read().split())))\n```"
  tests = [[{"input": f"{i} {i}", "output": str(2 * i)}] for i in range(12)]
  pooled = code_rewards([prog] * 12, tests, max_workers=8, config=CFG)
  fallback = code_rewards([prog] * 12, tests, max_workers=8,
                          config=SandboxConfig(isolation="fallback"))
  assert pooled == fallback == [1.0] * 12
