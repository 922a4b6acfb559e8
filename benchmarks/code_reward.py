"""Throughput of the sandboxed code reward: programs/s, serial vs pooled.

Each "program" is one sandboxed process (one test of one completion), which is
the unit of work of ``r1jax.rewards.code``.  Two workloads:

* trivial: read an int, print its double (dominated by sandbox start-up:
  interpreter launch, namespaces, mounts, teardown);
* cpu-heavy: a pure-Python loop of about ``--cpu-work`` iterations
  (dominated by the program itself, so pooled throughput scales with cores).

Usage::

    python benchmarks/code_reward.py                      # defaults
    python benchmarks/code_reward.py --programs 64 --workers 1 2 4 8 --isolation fallback
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from r1jax.rewards.code import SandboxConfig, code_rewards, sandbox_capabilities  # noqa: E402

TRIVIAL = "```python\nprint(int(input()) * 2)\n```"
CPU_HEAVY = """```python
n = int(input())
acc = 0
for i in range({work}):
    acc = (acc * 31 + i) % 1_000_003
print(n * 2)
```"""


def measure(completion: str, programs: int, workers: int, config: SandboxConfig,
            timeout_s: float) -> float:
    """Programs/s for ``programs`` single-test completions scored with ``workers`` threads."""
    tests = [[{"input": str(i), "output": str(2 * i)}] for i in range(programs)]
    start = time.perf_counter()
    scores = code_rewards([completion] * programs, tests, timeout_s=timeout_s,
                          max_workers=workers, config=config)
    elapsed = time.perf_counter() - start
    if scores != [1.0] * programs:
        raise RuntimeError(f"benchmark program failed: {scores}")
    return programs / elapsed


def main() -> None:
    """Print programs/s for trivial and CPU-heavy programs, serial and pooled."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--programs", type=int, default=32, help="programs per measurement")
    parser.add_argument("--workers", type=int, nargs="+",
                        default=[1, os.cpu_count() or 1, 2 * (os.cpu_count() or 1)],
                        help="pool sizes to measure (1 = serial)")
    parser.add_argument("--cpu-work", type=int, default=2_000_000,
                        help="loop iterations of the CPU-heavy program")
    parser.add_argument("--isolation", choices=["auto", "namespaces", "fallback"], default="auto")
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args()

    config = SandboxConfig(isolation=args.isolation)
    caps = sandbox_capabilities()
    mode = caps["isolation"] if args.isolation == "auto" else args.isolation
    print(f"isolation={mode} network={caps['network'] if mode == caps['isolation'] else 'audit-hook'}"
          f" user={caps['user']} cpus={os.cpu_count()} python={sys.version.split()[0]}")
    measure(TRIVIAL, 2, 1, config, args.timeout)  # warm-up (page cache, probe)
    workloads = [("trivial", TRIVIAL),
                 (f"cpu-heavy ({args.cpu_work:,} iters)", CPU_HEAVY.format(work=args.cpu_work))]
    print(f"{'workload':32s} {'workers':>7s} {'programs/s':>11s}")
    for name, completion in workloads:
        for workers in args.workers:
            rate = measure(completion, args.programs, workers, config, args.timeout)
            label = "serial" if workers == 1 else f"pool {workers}"
            print(f"{name:32s} {label:>7s} {rate:11.2f}", flush=True)


if __name__ == "__main__":
    main()
