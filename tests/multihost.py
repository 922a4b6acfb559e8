"""Starts N processes of one command on localhost as a multi-process JAX run (CPU
collectives over gloo), the way a pod runs one process per host."""

import os
import socket
import subprocess
import sys
from typing import Sequence

from tests import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def start(argv: Sequence[str], *, processes: int = 2, devices_per_process: int = 4,
          log_prefix: str, env: dict[str, str] | None = None) -> list[subprocess.Popen]:
  """`python argv...` once per process with --coordinator_address/--num_processes/
  --process_id appended; each process's output goes to `log_prefix`.p<i>.log."""
  port = free_port()
  procs = []
  for i in range(processes):
    full_env = cli.child_env(devices=devices_per_process, PYTHONPATH=ROOT, **(env or {}))
    log = open(f"{log_prefix}.p{i}.log", "w")
    procs.append(subprocess.Popen(
        [sys.executable, *argv, f"--coordinator_address=localhost:{port}",
         f"--num_processes={processes}", f"--process_id={i}"],
        cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT))
    log.close()
  return procs


def wait(procs: list[subprocess.Popen], log_prefix: str, timeout: int = 900) -> None:
  """Waits for every process; asserts each exited 0 (showing its log's tail if not)."""
  for i, p in enumerate(procs):
    try:
      p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      raise
  for i, p in enumerate(procs):
    assert p.returncode == 0, f"process {i} exited {p.returncode}:\n" + read_log(log_prefix, i)[-4000:]


def read_log(log_prefix: str, i: int) -> str:
  with open(f"{log_prefix}.p{i}.log") as f:
    return f.read()
