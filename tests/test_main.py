"""The real CLI: config file + overrides, config.json, metrics, skip of a finished stage."""

import json
import os
import subprocess
import sys

import pytest

from tests import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(workdir, *extra, check=True):
  cmd = [sys.executable, "-m", "r1jax.main", "--config=experiments/r1_zero_tiny.py:smoke",
         f"--workdir={workdir}", *extra]
  out = subprocess.run(cmd, cwd=ROOT, env=cli.child_env(), capture_output=True, text=True,
                       timeout=600)
  if check:
    assert out.returncode == 0, out.stderr[-3000:]
  return out


def test_cli_smoke_run_and_skip(tmp_path):
  wd = str(tmp_path / "run")
  out = _run(wd, "--config.pretrain_base.steps=4",
           "--config.pretrain_base.checkpoint_every=2")
  cfg = json.load(open(os.path.join(wd, "config.json")))
  assert cfg["pretrain_base"]["steps"] == 4 and cfg["model"]["attention"] == "mla"
  rows = [json.loads(l) for l in open(os.path.join(wd, "pretrain_base", "metrics.jsonl"))]
  assert [r["step"] for r in rows] == [1, 2, 3, 4]
  assert all(r["train/loss"] > 0 for r in rows)
  assert rows[-1]["train/loss"] < rows[0]["train/loss"]
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(os.path.join(wd, "pretrain_base")))
  summary = json.load(open(os.path.join(wd, "summary.json")))
  assert summary["stages"]["pretrain_base"]["final_loss"] == pytest.approx(rows[-1]["train/loss"])
  # R1-Zero ran: per-step RL metrics, eval before/after with the paper's protocol, plots.
  rl_rows = [json.loads(l) for l in open(os.path.join(wd, "r1_zero", "metrics.jsonl"))]
  assert [r["step"] for r in rl_rows] == [0, 1, 2]
  for key in ("reward/accuracy_mean", "reward/format_mean", "rl/kl", "rl/entropy",
              "completion/length_mean", "completion/truncated_fraction",
              "reward/zero_spread_groups", "grads/all/norm", "eval/pass@1",
              "time/sampled_tokens_per_s", "train/learning_rate"):
    assert key in rl_rows[-1], key
  assert all(r["reward/worker_failures"] == 0 for r in rl_rows[1:])  # no worker lost
  ev = json.load(open(os.path.join(wd, "eval.json")))
  for stage in ("base", "final"):
    for key in ("pass@1", "cons@k", "k", "format_rate", "mean_response_tokens", "num_problems",
                "think_rate", "accuracy_thinking", "accuracy_not_thinking"):
      assert key in ev[stage], (stage, key)
    assert ev[stage]["k"] == 2 and ev[stage]["num_problems"] == 4
    assert 0 <= ev[stage]["pass@1"] <= 1
  # The held-out problems came from the task's TFDS builder (test split), prepared once.
  assert os.listdir(os.path.join(wd, "data", "r1jax_arithmetic"))
  for png in ("accuracy.png", "response_length.png"):
    with open(os.path.join(wd, png), "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  assert "held-out" in out.stdout and "final" in out.stdout
  # The same command again finds the finished stages and skips them.
  again = _run(wd, "--config.pretrain_base.steps=4",
           "--config.pretrain_base.checkpoint_every=2")
  assert "pretrain_base: finished" in again.stdout
  assert "r1_zero: finished" in again.stdout
  assert len(open(os.path.join(wd, "pretrain_base", "metrics.jsonl")).readlines()) == 4


def test_cli_misspelt_override_lists_valid_keys(tmp_path):
  out = _run(str(tmp_path / "bad"), "--config.model.n_head=4", check=False)
  assert out.returncode != 0
  assert "'n_head' is not a key of model" in out.stderr and "'n_heads'" in out.stderr


def test_cli_invalid_combination_fails_before_compiling(tmp_path):
  out = _run(str(tmp_path / "bad2"), "--config.model.moe.num_experts_per_tok=9", check=False)
  assert out.returncode != 0
  assert "num_experts_per_tok=9 must be in [1, n_routed_experts=4]" in out.stderr
