"""GRPO (DeepSeekMath arXiv 2402.03300; DeepSeek-R1 arXiv 2501.12948, eqs. 1-3).

For each question, G completions o_1..o_G are sampled from pi_old and scored; the
advantage of o_i is its group-normalised reward (eq. 3). The objective (eq. 1) is the
PPO-style clipped ratio against pi_old minus beta times the k3 estimator of
KL(pi_theta || pi_ref) (eq. 2), averaged over each completion's tokens and then over
completions. `grpo_loss` returns its negation (a loss to minimise).

Shape letters: N completions (B prompts x G), T completion tokens.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

Array = jax.Array


def group_advantages(rewards: Array, group_size: int, *, scale_by_std: bool = True) -> Array:
  """A_i = (r_i - mean) / (std + 1e-4) within each group of `group_size` consecutive rewards.

  std uses Bessel's correction (as TRL's GRPO); a group with no spread gets 0. With
  scale_by_std=False (Dr. GRPO) A_i = r_i - mean.
  """
  r = jnp.asarray(rewards, jnp.float32)
  if r.ndim != 1 or r.shape[0] % group_size:
    raise ValueError(f"rewards of shape {r.shape} is not a flat multiple of group_size="
                     f"{group_size}.")
  return _group_advantages(r, group_size, scale_by_std)


# One program (op by op, the first call compiled ~13 tiny ones: 0.3 s of a GRPO run's
# first step, none of them kept by the persistent compilation cache).
@functools.partial(jax.jit, static_argnums=(1, 2))
def _group_advantages(r: Array, group_size: int, scale_by_std: bool) -> Array:
  g = r.reshape(-1, group_size)
  centred = g - g.mean(axis=1, keepdims=True)
  if scale_by_std:
    std = jnp.std(g, axis=1, ddof=1, keepdims=True) if group_size > 1 else jnp.zeros_like(g)
    centred = centred / (std + 1e-4)
  return jnp.where(jnp.ptp(g, axis=1, keepdims=True) > 0, centred, 0.0).reshape(-1)


def grpo_loss(logp: Array, old_logp: Array, ref_logp: Array, advantages: Array, mask: Array,
              *, epsilon: float, beta: float, epsilon_high: float | None = None,
              aggregation: str = "sequence_mean") -> tuple[Array, dict[str, Array]]:
  """Negated GRPO objective (eq. 1) and diagnostics; logp/old/ref/mask are [N, T].

  aggregation: 'sequence_mean' (the paper: mean over each completion's tokens, then over
  completions) or 'token_mean' (DAPO: one mean over all tokens of the batch).
  epsilon_high: upper clip bound 1+epsilon_high (clip-higher, DAPO); default epsilon.
  """
  if aggregation not in ("sequence_mean", "token_mean"):
    raise ValueError(f"aggregation={aggregation!r}; allowed: 'sequence_mean', 'token_mean'.")
  eps_hi = epsilon if epsilon_high is None else epsilon_high
  mask = mask.astype(jnp.float32)
  adv = advantages[:, None]
  ratio = jnp.exp(logp - old_logp)
  clipped = jnp.clip(ratio, 1.0 - epsilon, 1.0 + eps_hi)
  surrogate = jnp.minimum(ratio * adv, clipped * adv)
  d = ref_logp - logp
  kl = jnp.exp(d) - d - 1.0  # k3 estimator of KL(pi_theta || pi_ref), eq. 2
  per_token = -(surrogate - beta * kl)
  if aggregation == "sequence_mean":
    per_seq = (per_token * mask).sum(1) / jnp.maximum(mask.sum(1), 1.0)
    loss = per_seq.mean()
    mean = lambda x: ((x * mask).sum(1) / jnp.maximum(mask.sum(1), 1.0)).mean()
  else:
    loss = (per_token * mask).sum() / jnp.maximum(mask.sum(), 1.0)
    mean = lambda x: (x * mask).sum() / jnp.maximum(mask.sum(), 1.0)
  low = (ratio < 1.0 - epsilon) & (adv < 0)
  high = (ratio > 1.0 + eps_hi) & (adv > 0)
  return loss, {"kl": mean(kl), "clip/low_fraction": mean(low.astype(jnp.float32)),
                "clip/high_fraction": mean(high.astype(jnp.float32))}
