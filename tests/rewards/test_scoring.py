"""Tests for r1jax.rewards.scoring.RewardScorer."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from r1jax.rewards.scoring import REWARD_FNS, RewardScorer


# Module-level so spawned workers can unpickle them by reference.
def boom(completion, example):
  if "boom" in completion:
    raise RuntimeError("kaboom")
  return 1.0


def hang(completion, example):
  if "hang" in completion:
    time.sleep(600)
  return 0.5


def nan_fn(completion, example):
  return float("nan")


def length_fn(completion, example):
  return float(len(completion))


GOOD = "<think>t</think><answer>\\boxed{5}</answer>"
BATCH = [
    (GOOD, {"answer": "5"}),
    ("<think>t</think><answer>6</answer>", {"answer": "5"}),
    ("The answer is \\boxed{\\frac{1}{2}}", {"answer": "0.5"}),
    ("no answer at all", {"answer": "1"}),
    ("<think>a</think><answer>x = 1, 2</answer>", {"answer": "\\{2, 1\\}"}),
    ("<think>a</think><answer>(1,2)</answer>", {"answer": "(2,1)"}),
    ("<think>a</think><answer>10^{10^{10}}</answer>", {"answer": "1"}),
    ("<think>a</think><answer>1,000</answer>", {"answer": 1000}),
]
COMPLETIONS = [c for c, _ in BATCH]
EXAMPLES = [e for _, e in BATCH]
WANT_ACC = [1, 0, 1, 0, 1, 0, 0, 1]
WANT_FMT = [1, 1, 0, 0, 1, 1, 1, 1]


def test_registry_names():
  assert {"accuracy", "format", "code"} <= set(REWARD_FNS)


def test_unknown_name_lists_valid_names():
  with pytest.raises(ValueError) as e:
    RewardScorer({"acuracy": 1.0}, num_workers=0)
  msg = str(e.value)
  assert "acuracy" in msg and "accuracy" in msg and "format" in msg and "code" in msg


@pytest.mark.parametrize("bad", [{}, {"format": float("nan")}, {"format": "1"}])
def test_bad_weights(bad):
  with pytest.raises(ValueError):
    RewardScorer(bad, num_workers=0)


def test_bad_options():
  with pytest.raises(ValueError):
    RewardScorer({"format": 1.0}, num_workers=-1)
  with pytest.raises(ValueError):
    RewardScorer({"format": 1.0}, num_workers=0, timeout_s=0)
  with pytest.raises(ValueError, match="picklable"):
    RewardScorer({"f": 1.0}, num_workers=1, reward_fns={"f": lambda c, e: 1.0})


def test_in_process_weights_and_shapes():
  s = RewardScorer({"accuracy": 1.0, "format": 0.25}, num_workers=0)
  r = s(COMPLETIONS, EXAMPLES)
  assert r.total.dtype == np.float32 and r.total.shape == (len(BATCH),)
  np.testing.assert_array_equal(r.per_fn["accuracy"], np.array(WANT_ACC, np.float32))
  np.testing.assert_array_equal(r.per_fn["format"], np.array(WANT_FMT, np.float32))
  np.testing.assert_allclose(r.total, np.array(WANT_ACC) + 0.25 * np.array(WANT_FMT))
  assert r.failures == {"accuracy": 0, "format": 0}
  empty = s([], [])
  assert empty.total.shape == (0,) and empty.per_fn["format"].shape == (0,)
  with pytest.raises(ValueError):
    s(COMPLETIONS, EXAMPLES[:-1])
  s.close()


def test_in_process_failures_counted_and_logged(caplog):
  s = RewardScorer({"boom": 2.0, "nan": 1.0, "format": 1.0}, num_workers=0,
                   reward_fns={"boom": boom, "nan": nan_fn})
  with caplog.at_level(logging.WARNING):
    r = s(["ok", "boom", GOOD], [{}, {}, {}])
  np.testing.assert_array_equal(r.per_fn["boom"], [1.0, 0.0, 1.0])
  assert r.failures == {"boom": 1, "nan": 3, "format": 0}
  np.testing.assert_allclose(r.total, [2.0, 0.0, 3.0])
  warnings = [rec for rec in caplog.records if rec.levelno == logging.WARNING]
  assert len(warnings) == 1 and "kaboom" in warnings[0].getMessage()


def test_parallel_equals_serial_and_failures():
  weights = {"accuracy": 1.0, "format": 0.5, "boom": 0.1, "len": 0.001, "code": 0.0}
  fns = {"boom": boom, "len": length_fn}
  comps = COMPLETIONS * 3 + ["boom"]
  exs = EXAMPLES * 3 + [{"answer": "0"}]
  serial = RewardScorer(weights, num_workers=0, reward_fns=fns)(comps, exs)
  with RewardScorer(weights, num_workers=2, reward_fns=fns) as par:
    r = par(comps, exs)
    r2 = par(comps, exs)  # workers are reused across batches
  for res in (r, r2):
    np.testing.assert_array_equal(res.total, serial.total)
    for k in weights:
      np.testing.assert_array_equal(res.per_fn[k], serial.per_fn[k])
    assert res.failures == serial.failures
  assert serial.failures["boom"] == 1
  # "code" has no "tests" in these examples (or no module yet): every sample fails, scores 0.
  assert serial.failures["code"] == len(comps)
  np.testing.assert_array_equal(r.per_fn["accuracy"][: len(BATCH)], WANT_ACC)


def test_hanging_fn_times_out_and_training_continues(caplog):
  # timeout_s leaves a slow machine time for the calls that do return; the hang is 600 s.
  with RewardScorer({"hang": 1.0, "format": 1.0}, num_workers=2, timeout_s=3.0,
                    reward_fns={"hang": hang}) as s:
    comps = ["a", "hang", GOOD, "b"]
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING):
      r = s(comps, [{}] * 4)
    assert time.monotonic() - t0 < 300  # not the hang's 600 s
    np.testing.assert_array_equal(r.per_fn["hang"], [0.5, 0.0, 0.5, 0.5])
    assert r.failures == {"hang": 1, "format": 0}
    assert r.worker_failures == 1  # the hung worker was killed
    assert any("timed out" in rec.getMessage() for rec in caplog.records)
    # The killed worker was replaced; the next batch is clean.
    r2 = s(["a", GOOD], [{}, {}])
    np.testing.assert_array_equal(r2.total, [0.5, 1.5])
    assert r2.failures == {"hang": 0, "format": 0} and r2.worker_failures == 0
    assert s.worker_failures == 1


def test_close_stops_workers():
  s = RewardScorer({"format": 1.0}, num_workers=2)
  procs = [w.proc for w in s._workers]
  assert s([GOOD], [{}]).total.tolist() == [1.0]
  s.close()
  s.close()  # idempotent
  assert not any(p.is_alive() for p in procs)
  with pytest.raises(RuntimeError):
    s([GOOD], [{}])
