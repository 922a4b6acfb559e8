"""Runs experiments/distill_tiny.py for several seeds; prints the paper's Table 6 in
miniature (teacher; each student's base, RL-only and distilled arms) and the bar.

  python benchmarks/distill_tiny_seeds.py --root=/tmp/distill_tiny_seeds --seeds=0,1,2

Each seed runs `python -m r1jax.main --config=experiments/distill_tiny.py
--workdir=ROOT/seedN --config.seed=N` (a finished workdir is only tabulated).
"""

import json
import os
import subprocess
import sys
import time

from absl import app, flags

_ROOT = flags.DEFINE_string("root", "/tmp/distill_tiny_seeds", "Parent of the seed workdirs.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds to run.")
STUDENTS, ARMS = ("qwen2", "llama"), ("base", "rl", "distilled")


def run_seed(seed: int) -> tuple[dict, float | None]:
  workdir = os.path.join(_ROOT.value, f"seed{seed}")
  fresh = not os.path.exists(os.path.join(workdir, "summary.json"))
  t0 = time.time()
  subprocess.run([sys.executable, "-m", "r1jax.main", "--config=experiments/distill_tiny.py",
                  f"--workdir={workdir}", f"--config.seed={seed}"], check=True)
  with open(os.path.join(workdir, "eval.json")) as f:
    return json.load(f), (time.time() - t0 if fresh else None)


def main(argv):
  del argv
  results = {s: run_seed(s) for s in map(int, _SEEDS.value)}
  cols = [f"{s}/{a}" for s in STUDENTS for a in ARMS]
  print("| seed | teacher | " + " | ".join(cols) + " | distilled > rl | wall |")
  print("|---" * (len(cols) + 4) + "|")
  for s, (ev, wall) in results.items():
    cell = lambda k: f"{ev[k]['pass@1']:.3f} / {ev[k]['cons@k']:.3f}"
    bar = ", ".join(f"{st}: {'yes' if ev[f'{st}/distilled']['pass@1'] > ev[f'{st}/rl']['pass@1'] else 'NO'}"
                    for st in STUDENTS)
    w = f"{wall / 60:.1f} min" if wall is not None else "(cached)"
    print(f"| {s} | {cell('teacher')} | " + " | ".join(cell(k) for k in cols) +
          f" | {bar} | {w} |")
  print("\n(cells: pass@1 / cons@8, 200 held-out problems x 8 samples at T=0.6, top-p 0.95)")


if __name__ == "__main__":
  app.run(main)
