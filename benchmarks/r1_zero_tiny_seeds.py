"""Runs the README demo for several seeds and prints the base -> final table.

  python benchmarks/r1_zero_tiny_seeds.py --root=/tmp/r1_zero_seeds --seeds=0,1,2

Each seed runs `python -m r1jax.main --config=experiments/r1_zero_tiny.py
--workdir=ROOT/seedN --config.seed=N` (a finished workdir is skipped by the pipeline, so
re-running only tabulates). Prints one markdown row per seed: pass@1, cons@k, think
rate and mean response tokens of the base and final policies, the pass@1 gain, and the
wall time of the run.
"""

import json
import os
import subprocess
import sys
import time

from absl import app, flags

_ROOT = flags.DEFINE_string("root", "/tmp/r1_zero_seeds", "Parent of the seed workdirs.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds to run.")
_CONFIG = flags.DEFINE_string("config", "experiments/r1_zero_tiny.py", "Experiment config.")


def run_seed(seed: int) -> tuple[dict, float | None]:
  workdir = os.path.join(_ROOT.value, f"seed{seed}")
  cmd = [sys.executable, "-m", "r1jax.main", f"--config={_CONFIG.value}",
         f"--workdir={workdir}", f"--config.seed={seed}"]
  t0 = time.time()
  fresh = not os.path.exists(os.path.join(workdir, "summary.json"))
  subprocess.run(cmd, check=True)
  wall = time.time() - t0 if fresh else None
  with open(os.path.join(workdir, "eval.json")) as f:
    return json.load(f), wall


def main(argv):
  del argv
  rows = []
  for s in map(int, _SEEDS.value):
    ev, wall = run_seed(s)
    rows.append((s, ev["base"], ev["final"], wall))
  fmt = lambda r: (f"{r['pass@1']:.3f} | {r['cons@k']:.3f} | {r.get('think_rate', float('nan')):.2f}"
                   f" | {r['mean_response_tokens']:.1f}")
  print("| seed | base pass@1 | base cons@8 | base thinks | base tokens | final pass@1 | "
        "final cons@8 | final thinks | final tokens | pass@1 gain | wall |")
  print("|---|---|---|---|---|---|---|---|---|---|---|")
  for s, b, f, wall in rows:
    w = f"{wall / 60:.1f} min" if wall is not None else "(cached)"
    print(f"| {s} | {fmt(b)} | {fmt(f)} | {100 * (f['pass@1'] - b['pass@1']):+.1f} pts | {w} |")


if __name__ == "__main__":
  app.run(main)
