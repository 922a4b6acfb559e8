"""Training streams: quotas, mixtures at a fixed ratio (a generated split with a finite
one), determinism in (seed, step), and clear errors for bad weights."""

import collections
import json
import os

import pytest

from r1jax import configs
from r1jax.data import streams, tasks


def test_quotas_sum_and_follow_the_weights():
  assert streams.quotas(16, (0.5, 0.5)) == [8, 8]
  assert streams.quotas(10, (3, 1)) == [8, 2]  # 7.5 / 2.5: the tie goes to the first
  assert streams.quotas(7, (1, 1, 1)) == [3, 2, 2]
  assert streams.quotas(5, (0, 1)) == [0, 5]
  for n in range(0, 40):
    q = streams.quotas(n, (0.7, 0.2, 0.1))
    assert sum(q) == n
    assert all(abs(x - n * w) < 1 for x, w in zip(q, (0.7, 0.2, 0.1)))


@pytest.fixture
def registry(tmp_path):
  c = configs.run_config(seed=3)
  c.data_dir = str(tmp_path)
  os.makedirs(tmp_path / "rl")
  with open(tmp_path / "rl" / "a.jsonl", "w") as f:
    for i in range(6):
      f.write(json.dumps({"prompt": f"q{i}", "answer": str(i)}) + "\n")
  c.tasks.rl = tasks.config("jsonl", train="{data_dir}/rl/a.jsonl")
  c.tasks.gen = tasks.config("synthetic", name="last_digit")
  return tasks.Registry(c, str(tmp_path / "w"))


def test_mixture_takes_fixed_counts_per_step_and_walks_each_source(registry):
  s = streams.Stream(registry, ("gen:train", "rl:train"), seed=3, salt=1, weights=(3, 1))
  finite = []
  for step in range(6):
    items = s.batch(step, 8)
    kinds = collections.Counter(t.name for t, _ in items)
    assert kinds == {"gen": 6, "rl": 2}
    finite += [x["question"] for t, x in items if t.name == "rl"]
  # The finite source is walked epoch by epoch: every row once per 6 items.
  assert sorted(finite[:6]) == sorted(finite[6:12]) == [f"q{i}" for i in range(6)]
  again = streams.Stream(registry, ("gen:train", "rl:train"), seed=3, salt=1, weights=(3, 1))
  assert [x for _, x in again.batch(4, 8)] == [x for _, x in s.batch(4, 8)]
  # Fresh generated problems per step, different between steps.
  gen = lambda st: [x["question"] for t, x in s.batch(st, 8) if t.name == "gen"]
  assert gen(0) != gen(1)


def test_pooling_a_generated_split_needs_weights(registry):
  with pytest.raises(configs.ConfigError, match="mix sources with weights"):
    streams.Stream(registry, ("gen:train", "rl:train"), seed=3, salt=1)
  with pytest.raises(configs.ConfigError, match="one non-negative weight per source"):
    streams.Stream(registry, ("gen:train", "rl:train"), seed=3, salt=1, weights=(1,))
  with pytest.raises(configs.ConfigError, match="not all 0"):
    streams.Stream(registry, ("gen:train", "rl:train"), seed=3, salt=1, weights=(0, 0))
