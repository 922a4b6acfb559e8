"""experiments/distill_tiny.py through the real CLI (`:smoke`): teacher samples as
sharded JSONL feed the students' SFT; every arm is evaluated under its eval.json key."""

import json
import os

import pytest

from r1jax import configs, stages
from r1jax.data import tasks
from tests import cli

KEYS = ["teacher"] + [f"{s}/{a}" for s in ("qwen2", "llama")
                      for a in ("base", "rl", "distilled")]


@pytest.mark.slow
def test_distill_tiny_smoke(tmp_path):
  wd = str(tmp_path / "run")
  cli.run("r1jax.main", "--config=experiments/distill_tiny.py:smoke", f"--workdir={wd}")
  ev = json.load(open(os.path.join(wd, "eval.json")))
  assert sorted(ev) == sorted(KEYS)
  for key in KEYS:
    assert ev[key]["k"] == 2 and ev[key]["num_problems"] == 4
    assert 0 <= ev[key]["pass@1"] <= 1 and 0 <= ev[key]["cons@k"] <= 1
  # The teacher's samples: sharded JSONL whose kept rows are what each student's SFT saw.
  shards = sorted(f for f in os.listdir(os.path.join(wd, "teacher_samples", "samples"))
                  if f.endswith(".jsonl"))
  rows = [json.loads(l) for f in shards
          for l in open(os.path.join(wd, "teacher_samples", "samples", f))]
  stats = json.load(open(os.path.join(wd, "teacher_samples", "stats.json")))
  assert len(shards) == 2 and len(rows) == stats["kept"] > 0
  assert all({"prompt", "completion"} <= set(r) for r in rows)
  out_json = lambda s: json.load(open(os.path.join(wd, s, "output.json")))
  teacher = out_json("r1_zero")["model"]
  for student, bias, tied in (("qwen2", True, True), ("llama", False, False)):
    assert out_json(f"{student}_distilled")["summary"]["examples"] == len(rows)
    m = out_json(f"{student}_base")["model"]
    assert (m["attention"], m["qkv_bias"], m["tie_embeddings"]) == ("gqa", bias, tied)
    assert m["moe"]["n_routed_experts"] == 0 and teacher["attention"] == "mla"
    assert out_json(f"{student}_rl")["model"] == m == out_json(f"{student}_distilled")["model"]


def test_pretrain_model_needs_random_input():
  c = configs.run_config()
  c.tasks.digits = tasks.config("synthetic")
  c.tokenizer.train_task = "digits"
  c.a = stages.config("pretrain", input="random", train=("digits:train",), steps=1)
  c.b = stages.config("pretrain", input="a", train=("digits:train",), steps=1)
  c.b.model = configs.model_config(d_model=32)
  c.stages = ("a", "b")
  with pytest.raises(configs.ConfigError, match="b.input must be 'random'"):
    configs.validate(c, 8)
  c.b.input = "random"
  c.b.model.n_kv_heads = 3
  with pytest.raises(configs.ConfigError, match="b.model"):
    configs.validate(c, 8)
