"""The GRPO loop: a crash-and-rerun resumes to the uninterrupted trajectory; failures are
clear errors."""

import importlib.util
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax import configs, pipeline, sharding
from r1jax.stages import common
from r1jax.train import checkpoint as ckpt_lib
from r1jax.rewards import scoring
from r1jax.train import rl

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _config():
  spec = importlib.util.spec_from_file_location(
      "r1_zero_tiny", os.path.join(ROOT, "experiments", "r1_zero_tiny.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  c = mod.get_config("smoke")
  c.model = configs.model_config(vocab_size=c.model.vocab_size, max_seq_len=128, n_layers=1)
  c.mesh = configs.mesh_config(data=1, fsdp=-1)
  c.stages = ("r1_zero",)  # GRPO alone, from random weights (the stage's input)
  r = c.r1_zero
  r.input = "random"
  r.steps = 3
  r.checkpoint_every = 1
  r.eval_every = 0
  r.reward_workers = 0
  r.max_new_tokens = 8
  r.optimizer.learning_rate = 1e-2
  r.reward_weights = configs.ConfigDict({"accuracy": 1.0, "format": 0.1, "parity": 1.0})
  return c


def _parity_reward(completion, example):
  """A reward that varies across random completions (so advantages are non-zero)."""
  return float(len(completion) % 2)


@pytest.fixture(autouse=True)
def parity_reward(monkeypatch):
  monkeypatch.setitem(scoring.REWARD_FNS, "parity", _parity_reward)


def _rows(d):
  return [json.loads(l) for l in open(os.path.join(d, "r1_zero", "metrics.jsonl"))]


def test_crash_and_rerun_equals_uninterrupted(tmp_path):
  c = _config()
  full = str(tmp_path / "full")
  pipeline.train_and_evaluate(c, full)
  crashed = str(tmp_path / "crashed")
  with pytest.raises(KeyboardInterrupt):
    pipeline.train_and_evaluate(c, crashed, crash_after_step=2)
  assert [r["step"] for r in _rows(crashed)] == [1, 2]
  assert not os.path.exists(os.path.join(crashed, "r1_zero", "output.json"))
  pipeline.train_and_evaluate(c, crashed)
  a, b = _rows(full), _rows(crashed)
  assert [r["step"] for r in a] == [r["step"] for r in b] == [1, 2, 3]
  for ra, rb in zip(a, b):
    for key in ("train/loss", "rl/kl", "reward/total_mean", "completion/length_mean",
                "grads/all/norm"):
      assert ra[key] == pytest.approx(rb[key], rel=1e-6, abs=1e-9), (ra["step"], key)
  # The policy moved (else equality would be trivial).
  assert all(r["grads/all/norm"] > 0 for r in a)
  assert a[-1]["rl/kl"] > 0
  # The exported final weights are the same too.
  mesh = sharding.make_mesh(c.mesh)
  pa, pb = (common.load_params(os.path.join(d, "r1_zero", "params"), c.model, mesh,
                               c.mesh.rules) for d in (full, crashed))
  for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(pb)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-7)


def test_corrupt_checkpoint_names_directory(tmp_path):
  c = _config()
  d = str(tmp_path / "run")
  with pytest.raises(KeyboardInterrupt):
    pipeline.train_and_evaluate(c, d, crash_after_step=1)
  step_dir = os.path.join(d, "r1_zero", "checkpoints", "1")
  for root, _, files in os.walk(step_dir):
    for f in files:
      if "state" in root and not f.startswith("_"):
        with open(os.path.join(root, f), "wb") as fh:
          fh.write(b"garbage")
  with pytest.raises(ckpt_lib.CheckpointError, match="checkpoints"):
    pipeline.train_and_evaluate(c, d)


def test_repeated_nonfinite_losses_stop_with_clear_error(tmp_path):
  c = _config()
  c.r1_zero.optimizer.learning_rate = 1e30  # weights overflow after the first update
  c.r1_zero.optimizer.grad_clip = 0.0
  c.r1_zero.steps = 6
  with pytest.raises(rl.TrainingError, match="non-finite"):
    pipeline.train_and_evaluate(c, str(tmp_path / "nan"))


def test_completion_mask_and_inputs():
  mask = np.asarray(rl.completion_mask(4, jnp.asarray([2, 0, 3]), 8))
  # Targets are tokens[1:]: completion tokens sit at sequence indices 4..4+len-1.
  assert mask[0].tolist() == [0, 0, 0, 1, 1, 0, 0]
  assert mask[1].sum() == 0 and mask[2].tolist() == [0, 0, 0, 1, 1, 1, 0]
  x = rl.sequence_inputs(jnp.arange(16).reshape(2, 8), jnp.asarray([2, 0]))
  assert np.asarray(x["positions"][0]).tolist() == [0, 0, 0, 1, 2, 3, 4]
  assert np.asarray(x["key_mask"][0]).tolist() == [False, False, True, True, True, True, True]
