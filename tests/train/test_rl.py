"""The GRPO loop: a crash-and-rerun resumes to the uninterrupted trajectory; failures are
clear errors."""

import importlib.util
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax import configs, model, pipeline, sharding
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
  c.mesh = configs.mesh_config(data=1)
  c.rl.steps = 3
  c.rl.checkpoint_every = 1
  c.rl.reward_workers = 0
  c.rl.max_new_tokens = 8
  c.rl.optimizer.learning_rate = 1e-2
  c.rl.reward_weights = configs.ConfigDict({"accuracy": 1.0, "format": 0.1, "parity": 1.0})
  return c


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  c = _config()
  wd = str(tmp_path_factory.mktemp("tok"))
  tok = pipeline.run_tokenizer(c, wd)
  mesh = sharding.make_mesh(c.mesh, devices=jax.devices()[:1])
  params = model.init_params(c.model, jax.random.key(0))
  return c, tok, mesh, params


def _parity_reward(completion, example):
  """A reward that varies across random completions (so advantages are non-zero)."""
  return float(len(completion) % 2)


@pytest.fixture(autouse=True)
def parity_reward(monkeypatch):
  monkeypatch.setitem(scoring.REWARD_FNS, "parity", _parity_reward)


def _rows(d):
  return [json.loads(l) for l in open(os.path.join(d, "metrics.jsonl"))]


def test_crash_and_rerun_equals_uninterrupted(setup, tmp_path):
  c, tok, mesh, params = setup
  fn = pipeline.rl_prompts_fn(c)
  full = str(tmp_path / "full")
  rl.run_grpo(c, full, tok, params, mesh, fn, log=lambda s: None)
  crashed = str(tmp_path / "crashed")
  with pytest.raises(KeyboardInterrupt):
    rl.run_grpo(c, crashed, tok, params, mesh, fn, log=lambda s: None, _crash_after_step=2)
  assert [r["step"] for r in _rows(crashed)] == [1, 2]
  rl.run_grpo(c, crashed, tok, params, mesh, fn, log=lambda s: None)
  a, b = _rows(full), _rows(crashed)
  assert [r["step"] for r in a] == [r["step"] for r in b] == [1, 2, 3]
  for ra, rb in zip(a, b):
    for key in ("train/loss", "rl/kl", "reward/total_mean", "completion/length_mean",
                "grads/all/norm"):
      assert ra[key] == pytest.approx(rb[key], rel=1e-6, abs=1e-9), (ra["step"], key)
  # The policy moved (else equality would be trivial).
  assert all(r["grads/all/norm"] > 0 for r in a)
  assert a[-1]["rl/kl"] > 0


def test_corrupt_checkpoint_names_directory(setup, tmp_path):
  c, tok, mesh, params = setup
  d = str(tmp_path / "run")
  with pytest.raises(KeyboardInterrupt):
    rl.run_grpo(c, d, tok, params, mesh, pipeline.rl_prompts_fn(c), log=lambda s: None,
                _crash_after_step=1)
  step_dir = os.path.join(d, "checkpoints", "1")
  for root, _, files in os.walk(step_dir):
    for f in files:
      if "state" in root and not f.startswith("_"):
        with open(os.path.join(root, f), "wb") as fh:
          fh.write(b"garbage")
  with pytest.raises(ckpt_lib.CheckpointError, match="checkpoints"):
    rl.run_grpo(c, d, tok, params, mesh, pipeline.rl_prompts_fn(c), log=lambda s: None)


def test_repeated_nonfinite_losses_stop_with_clear_error(setup, tmp_path):
  c, tok, mesh, params = setup
  bad = jax.tree.map(lambda x: x, params)
  bad["final_norm"] = bad["final_norm"] * jnp.nan
  with pytest.raises(rl.TrainingError, match="non-finite"):
    rl.run_grpo(c, str(tmp_path / "nan"), tok, bad, mesh, pipeline.rl_prompts_fn(c),
                log=lambda s: None)


def test_completion_mask_and_inputs():
  mask = np.asarray(rl.completion_mask(4, jnp.asarray([2, 0, 3]), 8))
  # Targets are tokens[1:]: completion tokens sit at sequence indices 4..4+len-1.
  assert mask[0].tolist() == [0, 0, 0, 1, 1, 0, 0]
  assert mask[1].sum() == 0 and mask[2].tolist() == [0, 0, 0, 1, 1, 1, 0]
  x = rl.sequence_inputs(jnp.arange(16).reshape(2, 8), jnp.asarray([2, 0]))
  assert np.asarray(x["positions"][0]).tolist() == [0, 0, 0, 1, 2, 3, 4]
  assert np.asarray(x["key_mask"][0]).tolist() == [False, False, True, True, True, True, True]
