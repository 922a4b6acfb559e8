"""experiments/r1_tiny.py through the real CLI: every arm of R1 stages 1-2 runs (`:smoke`)
and reports the issue's eval.json keys, per-function rewards and plots."""

import json
import os

from tests import cli

KEYS = ("r1_zero/final", "r1/cold_start", "r1/reasoning_rl",
        "r1_no_language_reward/reasoning_rl")
METRICS = ("pass@1", "cons@k", "k", "language_mixing", "readability", "mean_response_tokens")


def test_r1_tiny_smoke_runs_every_arm(tmp_path):
  wd = str(tmp_path / "run")
  out = cli.run("r1jax.main", "--config=experiments/r1_tiny.py:smoke", f"--workdir={wd}")
  ev = json.load(open(os.path.join(wd, "eval.json")))
  assert set(KEYS) <= set(ev), sorted(ev)
  for key in KEYS:
    for m in METRICS:
      assert ev[key][m] is not None, (key, m)
    assert ev[key]["k"] == 2 and ev[key]["num_problems"] == 4
    assert 0 <= ev[key]["language_mixing"] <= 1 and 0 <= ev[key]["readability"] <= 1
  # The cold start trained on R1-format rows from the readability filter.
  sft = [json.loads(l) for l in open(os.path.join(wd, "cold_start", "metrics.jsonl"))]
  assert [r["step"] for r in sft if "train/loss" in r] == [1, 2, 3]
  # Per-function rewards in every RL arm; the language reward is reported (weight 0)
  # in the ablation, and scored against each prompt's language.
  for stage in ("reasoning_rl", "reasoning_rl_no_language_reward"):
    rows = [json.loads(l) for l in open(os.path.join(wd, stage, "metrics.jsonl"))]
    last = rows[-1]
    for k in ("reward/accuracy_mean", "reward/r1_format_mean", "reward/language_mean",
              "eval/language_mixing", "eval/readability"):
      assert k in last, (stage, k)
    assert last["reward/language_failures"] == 0
  cfg = json.load(open(os.path.join(wd, "config.json")))
  assert cfg["reasoning_rl"]["reward_weights"]["language"] == 1.0
  assert cfg["reasoning_rl_no_language_reward"]["reward_weights"]["language"] == 0.0
  for png in ("accuracy.png", "language_mixing.png"):
    with open(os.path.join(wd, png), "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  assert "r1/reasoning_rl" in out.stdout and "mixing" in out.stdout
