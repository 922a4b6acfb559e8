"""Runs experiments/r1_tiny.py for several seeds; prints the findings table and the bars.

  python benchmarks/r1_tiny_seeds.py --root=/tmp/r1_tiny_seeds --seeds=0,1,2

Each seed runs `python -m r1jax.main --config=experiments/r1_tiny.py --workdir=ROOT/seedN
--config.seed=N` (a finished workdir is skipped by the pipeline, so re-running only
tabulates). Prints, per seed and arm, pass@1, cons@k, language mixing, readability and
mean response tokens, then the issue's bars: finding 4 (the cold-started arm's final
pass@1 above pure RL's; also the mean of the held-out curve over RL steps, "more
accurate earlier") and finding 5 (mixing with the language reward at most half of that
without), each per seed; then the whole recipe's bars (issue 14): the final R1 policy
(r1/rl_all) against R1-Zero on readability, mixing and accuracy (within 3 points), its
helpfulness and harmful rate against the SFT checkpoint it starts from, and the reward
models' held-out pairwise accuracy (>= 0.8).
"""

import json
import os
import subprocess
import sys
import time

from absl import app, flags

_ROOT = flags.DEFINE_string("root", "/tmp/r1_tiny_seeds", "Parent of the seed workdirs.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds to run.")

KEYS = ("base", "r1_zero/final", "r1/cold_start", "r1/reasoning_rl",
        "r1_no_language_reward/reasoning_rl", "r1/sft", "r1/rl_all")
RMS = ("r1/reward_model_helpful", "r1/reward_model_harmless")


def run_seed(seed: int) -> tuple[dict, float | None]:
  workdir = os.path.join(_ROOT.value, f"seed{seed}")
  cmd = [sys.executable, "-m", "r1jax.main", "--config=experiments/r1_tiny.py",
         f"--workdir={workdir}", f"--config.seed={seed}"]
  fresh = not os.path.exists(os.path.join(workdir, "summary.json"))
  t0 = time.time()
  subprocess.run(cmd, check=True)
  with open(os.path.join(workdir, "eval.json")) as f:
    return json.load(f), (time.time() - t0 if fresh else None)


def curve_mean(seed: int, stage: str) -> float:
  """Mean held-out pass@1 over the RL stage's curve points (step 0 included)."""
  path = os.path.join(_ROOT.value, f"seed{seed}", stage, "metrics.jsonl")
  with open(path) as f:
    rows = [json.loads(line) for line in f]
  points = [r["eval/pass@1"] for r in rows if "eval/pass@1" in r]
  return sum(points) / len(points)


def main(argv):
  del argv
  results = {s: run_seed(s) for s in map(int, _SEEDS.value)}
  fmt = lambda v: "-" if v is None else f"{v:.3f}"
  print("| seed | arm/stage | pass@1 | cons@8 | mixing | readable | tokens | helpful (rule) "
        "| helpful (RM) | harmful | harmless (RM) |")
  print("|---|---|---|---|---|---|---|---|---|---|---|")
  for s, (ev, _) in results.items():
    for key in KEYS:
      r = ev[key]
      print(f"| {s} | {key} | {r['pass@1']:.3f} | {r['cons@k']:.3f} | "
            f"{r['language_mixing']:.3f} | {r['readability']:.3f} | "
            f"{r['mean_response_tokens']:.1f} | {fmt(r.get('helpfulness_rule'))} | "
            f"{fmt(r.get('helpfulness_rm'))} | {fmt(r.get('harmful_rate'))} | "
            f"{fmt(r.get('harmlessness_rm'))} |")
  print("\n| seed | finding 4: final pass@1, r1 vs r1_zero | mean curve pass@1, r1 vs "
        "r1_zero | finding 5: mixing with / without language reward | pass@1 with / "
        "without | wall |")
  print("|---|---|---|---|---|---|")
  for s, (ev, wall) in results.items():
    r1, zero = ev["r1/reasoning_rl"], ev["r1_zero/final"]
    abl = ev["r1_no_language_reward/reasoning_rl"]
    f4 = "yes" if r1["pass@1"] > zero["pass@1"] else "NO"
    f5 = "yes" if r1["language_mixing"] <= 0.5 * abl["language_mixing"] else "NO"
    w = f"{wall / 60:.1f} min" if wall is not None else "(cached)"
    c_r1, c_zero = curve_mean(s, "reasoning_rl"), curve_mean(s, "r1_zero")
    print(f"| {s} | {r1['pass@1']:.3f} vs {zero['pass@1']:.3f}: {f4} | "
          f"{c_r1:.3f} vs {c_zero:.3f} | "
          f"{r1['language_mixing']:.3f} / {abl['language_mixing']:.3f}: {f5} | "
          f"{r1['pass@1']:.3f} / {abl['pass@1']:.3f} | {w} |")
  print("\n| seed | R1 final vs R1-Zero: readable | mixing | pass@1 (within 3 pts) | "
        "rl_all vs sft: helpful (rule) | harmful | RM pairwise acc. helpful / harmless |")
  print("|---|---|---|---|---|---|---|")
  for s, (ev, _) in results.items():
    fin, zero, sft = ev["r1/rl_all"], ev["r1_zero/final"], ev["r1/sft"]
    ok = lambda b: "yes" if b else "NO"
    accs = [ev[k]["pairwise_accuracy"] for k in RMS]
    print(f"| {s} | {fin['readability']:.3f} vs {zero['readability']:.3f}: "
          f"{ok(fin['readability'] > zero['readability'])} | "
          f"{fin['language_mixing']:.3f} vs {zero['language_mixing']:.3f}: "
          f"{ok(fin['language_mixing'] < zero['language_mixing'])} | "
          f"{fin['pass@1']:.3f} vs {zero['pass@1']:.3f}: "
          f"{ok(fin['pass@1'] >= zero['pass@1'] - 0.03)} | "
          f"{fin['helpfulness_rule']:.3f} vs {sft['helpfulness_rule']:.3f}: "
          f"{ok(fin['helpfulness_rule'] > sft['helpfulness_rule'])} | "
          f"{fin['harmful_rate']:.3f} vs {sft['harmful_rate']:.3f}: "
          f"{ok(fin['harmful_rate'] < sft['harmful_rate'])} | "
          f"{accs[0]:.3f} / {accs[1]:.3f}: {ok(min(accs) >= 0.8)} |")


if __name__ == "__main__":
  app.run(main)
