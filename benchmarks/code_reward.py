"""Code-reward throughput at full isolation vs a plain fork-and-exec checker (programs/s).

The workload is what the code reward mostly sees: ordinary programs that define a
function and check it with asserts (several generated variants, each run once; one
"program" is one sandboxed run, the unit of work of ``r1jax.rewards.code``). Two
checkers score the same batch:

* ``sandbox``: ``code_rewards`` with every defence of the active isolation mode
  (namespaces on a host that allows them, or the fallback audit hook);
* ``plain``: write the program to a file, fork and exec the same interpreter with the
  same flags (``python -I -S -B main.py``, no isolation of any kind), pass on exit 0;
  the same thread pool size.

Both run at each pool size in one interleaved loop (sandbox, plain, sandbox, plain...,
``--rounds`` times) so they meet the same spells of load on a shared machine; the table
gives the median rate of each and the ratio sandbox / plain (>= 1 means the isolated
checker is at least as fast).

Usage::

    python benchmarks/code_reward.py                       # 1, 2, 8 workers, 5 rounds
    python benchmarks/code_reward.py --programs 64 --workers 1 2 4 8 --isolation fallback
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from r1jax.rewards import _sandbox  # noqa: E402
from r1jax.rewards.code import SandboxConfig, code_rewards, sandbox_capabilities  # noqa: E402

PROGRAM = '''\
def solve(xs, k):
    """The k-th smallest of xs, and how many times it occurs."""
    ordered = sorted(xs)
    value = ordered[k]
    return value, ordered.count(value)

def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a

assert solve([5, 1, 4, 1, 3], 0) == (1, 2)
assert solve([5, 1, 4, 1, 3], {k}) == {want!r}
assert fib({n}) == {fib_n}
assert [fib(i) for i in range(8)] == [0, 1, 1, 2, 3, 5, 8, 13]
assert "".join(reversed("{word}")) == "{drow}"
'''


def _fib(n: int) -> int:
  a, b = 0, 1
  for _ in range(n):
    a, b = b, a + b
  return a


def programs(n: int) -> list[str]:
  """``n`` function-with-asserts programs that all pass (variants, not n copies)."""
  xs = [5, 1, 4, 1, 3]
  out = []
  for i in range(n):
    k = i % len(xs)
    value = sorted(xs)[k]
    word = f"prog{i}"
    out.append(PROGRAM.format(k=k, want=(value, sorted(xs).count(value)), n=10 + i % 20,
                              fib_n=_fib(10 + i % 20), word=word, drow=word[::-1]))
  return out


def run_sandbox(srcs: list[str], workers: int, config: SandboxConfig, timeout_s: float
                ) -> float:
  """Programs/s of the sandboxed code reward (one test each: exit 0, no output)."""
  completions = [f"```python\n{src}```" for src in srcs]
  tests = [[{"input": "", "output": ""}]] * len(srcs)
  start = time.perf_counter()
  scores = code_rewards(completions, tests, timeout_s=timeout_s, max_workers=workers,
                        config=config)
  elapsed = time.perf_counter() - start
  if scores != [1.0] * len(srcs):
    raise RuntimeError(f"a benchmark program failed in the sandbox: {scores}")
  return len(srcs) / elapsed


def _plain_one(python: str, src: str, timeout_s: float) -> bool:
  with tempfile.TemporaryDirectory(prefix="plain-") as d:
    path = os.path.join(d, "main.py")
    with open(path, "w") as f:
      f.write(src)
    proc = subprocess.run([python, "-I", "-S", "-B", path], cwd=d, capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=timeout_s)
    return proc.returncode == 0 and not proc.stdout.strip()


def run_plain(srcs: list[str], workers: int, timeout_s: float) -> float:
  """Programs/s of fork-and-exec with no isolation, on a pool of ``workers`` threads."""
  python = _sandbox._python()
  start = time.perf_counter()
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    ok = list(pool.map(lambda s: _plain_one(python, s, timeout_s), srcs))
  elapsed = time.perf_counter() - start
  if not all(ok):
    raise RuntimeError("a benchmark program failed under the plain checker")
  return len(srcs) / elapsed


def main() -> None:
  """Print programs/s of the sandbox and the plain checker, interleaved, and their ratio."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--programs", type=int, default=48, help="programs per measurement")
  parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 8],
                      help="pool sizes to measure (1 = serial)")
  parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
  parser.add_argument("--isolation", choices=["auto", "namespaces", "fallback"], default="auto")
  parser.add_argument("--timeout", type=float, default=20.0)
  args = parser.parse_args()

  config = SandboxConfig(isolation=args.isolation)
  caps = sandbox_capabilities()
  mode = _sandbox._mode_for(config)[0]
  print(f"isolation={mode} user={caps['user']} cpus={os.cpu_count()} "
        f"python={sys.version.split()[0]} load={os.getloadavg()[0]:.2f}")
  srcs = programs(args.programs)
  run_sandbox(srcs[:4], 2, config, args.timeout)  # warm-up: page cache, probe
  run_plain(srcs[:4], 2, args.timeout)
  rates: dict[tuple[str, int], list[float]] = {}
  for _ in range(args.rounds):
    for workers in args.workers:
      rates.setdefault(("sandbox", workers), []).append(
          run_sandbox(srcs, workers, config, args.timeout))
      rates.setdefault(("plain", workers), []).append(run_plain(srcs, workers, args.timeout))
  print(f"{'workers':>7s} {'sandbox/s':>10s} {'plain/s':>10s} {'ratio':>6s}   "
        f"(median of {args.rounds} interleaved rounds of {args.programs} programs)")
  for workers in args.workers:
    ours = statistics.median(rates[("sandbox", workers)])
    plain = statistics.median(rates[("plain", workers)])
    print(f"{workers:7d} {ours:10.1f} {plain:10.1f} {ours / plain:6.2f}", flush=True)
  print(f"load at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
  main()
