"""GRPO advantages and loss against a plain-Python reference written from eqs. 1-3."""

import math
import statistics

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax.train import grpo


def _ref_advantages(rewards, g, scale=True):
  out = []
  for i in range(0, len(rewards), g):
    grp = rewards[i:i + g]
    m = sum(grp) / g
    if max(grp) == min(grp):
      out += [0.0] * g
    elif scale:
      s = statistics.stdev(grp)  # Bessel-corrected
      out += [(r - m) / (s + 1e-4) for r in grp]
    else:
      out += [r - m for r in grp]
  return out


def test_group_advantages():
  rewards = [1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5, 2.0, 0.0, 1.0, 1.0]
  np.testing.assert_allclose(grpo.group_advantages(jnp.asarray(rewards), 4),
                             _ref_advantages(rewards, 4), rtol=1e-6)
  np.testing.assert_allclose(grpo.group_advantages(jnp.asarray(rewards), 4, scale_by_std=False),
                             _ref_advantages(rewards, 4, scale=False), rtol=1e-6)
  # Analytic: {1,0} -> mean .5, sample std .7071 -> +-0.7070.
  np.testing.assert_allclose(grpo.group_advantages(jnp.asarray([1.0, 0.0]), 2),
                             [0.5 / (math.sqrt(0.5) + 1e-4), -0.5 / (math.sqrt(0.5) + 1e-4)],
                             rtol=1e-6)
  with pytest.raises(ValueError, match="group_size=5"):
    grpo.group_advantages(jnp.zeros(12), 5)


def _ref_loss(logp, old, ref, adv, mask, eps, beta, eps_hi, agg):
  per_seq, tok_sum, tok_n = [], 0.0, 0
  for i in range(logp.shape[0]):
    terms = []
    for t in range(logp.shape[1]):
      if not mask[i, t]:
        continue
      ratio = math.exp(logp[i, t] - old[i, t])
      clip = min(max(ratio, 1 - eps), 1 + eps_hi)
      surr = min(ratio * adv[i], clip * adv[i])
      kl = math.exp(ref[i, t] - logp[i, t]) - (ref[i, t] - logp[i, t]) - 1
      terms.append(-(surr - beta * kl))
    per_seq.append(sum(terms) / max(len(terms), 1))
    tok_sum += sum(terms)
    tok_n += len(terms)
  return sum(per_seq) / len(per_seq) if agg == "sequence_mean" else tok_sum / tok_n


@pytest.mark.parametrize("agg,eps_hi", [("sequence_mean", None), ("token_mean", 0.28)])
def test_loss_matches_reference(agg, eps_hi):
  rng = np.random.default_rng(0)
  n, t = 6, 9
  logp = rng.normal(-2, 0.5, (n, t))
  old = logp + rng.normal(0, 0.3, (n, t))  # ratios well outside [0.8, 1.2] too
  ref = logp + rng.normal(0, 0.2, (n, t))
  adv = rng.normal(0, 1, n)
  mask = np.zeros((n, t), bool)
  for i, length in enumerate([9, 3, 5, 1, 7, 9]):
    mask[i, :length] = True
  loss, m = grpo.grpo_loss(*(jnp.asarray(x) for x in (logp, old, ref, adv, mask)), epsilon=0.2,
                           beta=0.04, epsilon_high=eps_hi, aggregation=agg)
  expected = _ref_loss(logp, old, ref, adv, mask, 0.2, 0.04, eps_hi or 0.2, agg)
  np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
  assert 0 < float(m["clip/low_fraction"]) + float(m["clip/high_fraction"]) < 1


def test_on_policy_gradient_is_advantage_weighted_score():
  # With logp == old == ref: loss = -mean_i mean_t A_i * ratio, so d loss / d logp[i,t]
  # = -A_i / (T_i * N) (sequence mean), and the KL term has zero gradient.
  logp = jnp.asarray(np.random.default_rng(1).normal(-1, 0.3, (3, 4)))
  adv = jnp.asarray([1.0, -2.0, 0.5])
  mask = jnp.asarray([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], jnp.float32)
  g = jax.grad(lambda lp: grpo.grpo_loss(lp, jax.lax.stop_gradient(lp),
                                         jax.lax.stop_gradient(lp), adv, mask, epsilon=0.2,
                                         beta=0.5)[0])(logp)
  expected = -adv[:, None] * mask / mask.sum(1, keepdims=True) / 3
  np.testing.assert_allclose(g, expected, rtol=1e-6, atol=1e-7)


def test_clipped_tokens_have_no_gradient():
  # Positive advantage and ratio above 1+eps: the clipped branch is the min -> no gradient.
  logp = jnp.asarray([[0.0]])
  old = jnp.asarray([[-1.0]])  # ratio e ~ 2.7 > 1.2
  g = jax.grad(lambda lp: grpo.grpo_loss(lp, old, lp, jnp.asarray([1.0]), jnp.ones((1, 1)),
                                         epsilon=0.2, beta=0.0)[0])(logp)
  assert float(g[0, 0]) == 0.0
