"""r1jax.inspection: GRPO loss pieces against grpo_loss and numpy, a GRPO batch through the
stage's own pieces, expert load with and without the selection bias."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax import colab, configs, inspection, model, pipeline
from r1jax.rewards import scoring
from r1jax.train import grpo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _inputs(n=6, t=7, seed=0):
  rng = np.random.default_rng(seed)
  logp = rng.normal(-2.0, 0.5, (n, t)).astype(np.float32)
  old = (logp + rng.normal(0, 0.3, (n, t))).astype(np.float32)  # ratios well past 1 +- eps
  ref = (logp + rng.normal(0, 0.2, (n, t))).astype(np.float32)
  adv = rng.normal(0, 1, (n,)).astype(np.float32)
  mask = (np.arange(t)[None] < rng.integers(1, t + 1, (n, 1))).astype(np.float32)
  return logp, old, ref, adv, mask


@pytest.mark.parametrize("aggregation", ["sequence_mean", "token_mean"])
def test_loss_pieces_are_grpo_loss(aggregation):
  logp, old, ref, adv, mask = _inputs()
  kw = dict(epsilon=0.2, beta=0.04, epsilon_high=0.28, aggregation=aggregation)
  p = inspection.loss_pieces(logp, old, ref, adv, mask, **kw)
  total, m = grpo.grpo_loss(*map(jnp.asarray, (logp, old, ref, adv, mask)), **kw)
  assert p.total == pytest.approx(float(total), rel=1e-5)
  assert p.total == pytest.approx(p.policy + p.beta * p.kl, rel=1e-5)
  assert p.kl == pytest.approx(float(m["kl"]), rel=1e-5)
  assert p.clip_low_fraction == pytest.approx(float(m["clip/low_fraction"]))
  assert p.clip_low_fraction > 0 and p.clip_high_fraction > 0  # both clips are exercised
  # Per token, against numpy (paper eqs. 1-2).
  ratio = np.exp(logp - old)
  a = adv[:, None]
  surrogate = np.minimum(ratio * a, np.clip(ratio, 0.8, 1.28) * a)
  d = ref - logp
  np.testing.assert_allclose(p.ratio_NxT, np.where(mask > 0, ratio, 1.0), rtol=1e-5)
  np.testing.assert_allclose(p.policy_NxT, -surrogate * mask, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(p.kl_NxT, (np.exp(d) - d - 1) * mask, rtol=1e-4, atol=1e-7)
  if aggregation == "sequence_mean":
    assert p.per_completion_N.mean() == pytest.approx(p.total, rel=1e-5)


def _moe_config():
  return configs.tiny_moe_config(vocab_size=32, max_seq_len=16)


def test_expert_load_and_bias():
  mc = _moe_config()
  params = model.init_params(mc, jax.random.key(0))
  tokens = np.asarray(jax.random.randint(jax.random.key(1), (3, 8), 0, 32))
  mask = np.ones((3, 8), bool)
  mask[2, 5:] = False
  n_moe, k = model.layer_counts(mc)[1], mc.moe.num_experts_per_tok
  load = inspection.expert_load(params, mc, tokens, mask)
  assert load.shape == (n_moe, mc.moe.n_routed_experts)
  assert (load.sum(-1) == mask.sum() * k).all()  # real tokens only, k experts each
  np.testing.assert_array_equal(inspection.router_bias(params), 0.0)
  np.testing.assert_array_equal(inspection.expert_load(params, mc, tokens, mask, use_bias=False),
                                load)
  # A large bias on expert 0 makes every token choose it; zeroed, routing is as before.
  moe_p = dict(params["moe_layers"]["moe"])
  moe_p["router_bias"] = moe_p["router_bias"].at[:, 0].set(10.0)
  biased = {**params, "moe_layers": {**params["moe_layers"], "moe": moe_p}}
  assert (inspection.expert_load(biased, mc, tokens, mask)[:, 0] == mask.sum()).all()
  np.testing.assert_array_equal(inspection.expert_load(biased, mc, tokens, mask, use_bias=False),
                                load)
  np.testing.assert_allclose(inspection.max_over_mean(np.array([[1, 1, 2, 0], [1, 1, 1, 1]])),
                             [2.0, 1.0])


def _parity_reward(completion, example):
  """Varies across random completions, so that advantages are non-zero."""
  return float(len(completion) % 2)


@pytest.mark.slow
def test_grpo_batch_and_router_trace(monkeypatch, tmp_path):
  monkeypatch.setitem(scoring.REWARD_FNS, "parity", _parity_reward)
  monkeypatch.chdir(ROOT)
  c = colab.load_experiment("r1_zero_tiny", "smoke")
  c.stages = ("pretrain_base",)
  c.pretrain_base.checkpoint_every = 2
  c.pretrain_base.max_to_keep = 10
  r = c.r1_zero
  r.reward_workers = 0  # the parity reward lives in this process only
  r.reward_weights = configs.ConfigDict({"accuracy": 1.0, "format": 0.1, "parity": 1.0})
  r.optimizer.learning_rate, r.optimizer.warmup_steps = 1e-2, 0
  r.num_iterations = 2  # the batch carries pi_old (the rollout policy) for the updates
  work = str(tmp_path)
  pipeline.train_and_evaluate(c, work)

  ins = inspection.GRPOInspector(c, work, "r1_zero")
  try:
    b = ins.batch(0)
    n = r.batch_prompts * r.group_size
    assert len(b.prompts) == len(b.completions) == n and b.group_size == r.group_size
    assert set(b.rewards) == {"accuracy", "format", "parity"}
    np.testing.assert_array_equal(b.rewards["parity"],
                                  [len(t) % 2 for t in b.completions])
    np.testing.assert_allclose(b.advantages, grpo.group_advantages(b.total_reward, r.group_size))
    assert np.abs(b.advantages).max() > 0
    np.testing.assert_array_equal(b.old_logp, b.ref_logp)  # the policy is the reference
    lengths = b.mask.sum(1)
    assert all(len(b.completion_tokens(i)) == lengths[i] for i in range(n))
    rows = ins.token_rows(b, 0)
    assert "".join(row["token"] for row in rows) == ins.tok.decode(b.completion_tokens(0))
    before = ins.pieces(b)
    assert before.kl == pytest.approx(0.0, abs=1e-9)
    assert "old_logp" in b.device_batch
    m = ins.update(b)
    assert m["train/loss"] == pytest.approx(before.total, abs=1e-6)  # the step's own loss
    after = ins.pieces(b)
    assert ins.update(b)["train/loss"] == pytest.approx(after.total, abs=1e-5)  # pi_old kept
    assert after.kl > 0 and np.abs(after.ratio_NxT - 1).max() > 1e-3
    assert after.total == pytest.approx(after.policy + after.beta * after.kl, rel=1e-5)
    assert "ratio" in ins.token_rows(b, 0, after)[0]
    table = inspection.group_table(b, 0).splitlines()
    assert len(table) == 2 + r.group_size and "parity" in table[1]
    assert os.path.exists(inspection.plot_pieces(b, after, r.epsilon, str(tmp_path / "p.png")))
  finally:
    ins.close()

  tokens, mask = inspection.probe_batch(c, work, "pretrain_base")
  assert tokens.shape == (c.pretrain_base.batch_size, c.pretrain_base.seq_len) and mask.any()
  trace = inspection.router_trace(c, work, ["pretrain_base"], tokens, mask)
  assert trace.steps == [0, 2, 4, 6] and trace.stages == ["pretrain_base"] * 4
  np.testing.assert_array_equal(trace.bias[0], 0.0)  # the stage's initial state
  rate = c.model.moe.bias_update_rate
  steps = np.abs(np.diff(trace.bias, axis=0))  # +-rate (or 0) per train step, 2 apart
  assert steps.max() <= 2 * rate + 1e-6 and np.abs(trace.bias[-1]).max() > 0
  assert (trace.load.sum(-1) == mask.sum() * c.model.moe.num_experts_per_tok).all()
  np.testing.assert_array_equal(trace.load[0], trace.load_no_bias[0])
  assert os.path.exists(inspection.plot_router(trace, str(tmp_path / "r.png")))
