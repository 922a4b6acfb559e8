"""The GRPO loss path's log-probs: `model.target_logprobs` (a hand-written VJP) and the
head at completion positions only (`rl.token_logprobs(completion_len=)`) compute the
same values and gradients as autodiff of log_softmax over the full logits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax import configs, model, sampling
from r1jax.stages import grpo as grpo_stage
from r1jax.train import grpo, rl


def _cfg(tie: bool) -> configs.ConfigDict:
  return configs.model_config(vocab_size=96, d_model=32, mlp_dim=64, n_layers=2, n_heads=4,
                              n_kv_heads=2, head_dim=8, qkv_bias=True, tie_embeddings=tie,
                              max_seq_len=64)


def _plain(params, hidden, targets, cfg):
  """log_softmax of the full logits, gathered; entropy: the formulation it replaces."""
  logp_all = jax.nn.log_softmax(model.logits_from_hidden(params, hidden, cfg), -1)
  logp = jnp.take_along_axis(logp_all, targets[..., None], axis=-1)[..., 0]
  return logp, -(jnp.exp(logp_all) * logp_all).sum(-1)


@pytest.mark.parametrize("tie", [False, True])
def test_target_logprobs_values_and_gradients(tie):
  cfg = _cfg(tie)
  params = model.init_params(cfg, jax.random.key(0))
  k1, k2, k3, k4 = jax.random.split(jax.random.key(1), 4)
  hidden = jax.random.normal(k1, (3, 5, cfg.d_model))
  targets = jax.random.randint(k2, (3, 5), 0, cfg.vocab_size)
  w_lp, w_ent = jax.random.normal(k3, (3, 5)), jax.random.normal(k4, (3, 5))

  def objective(fn):
    def f(p, h):
      lp, ent = fn(p, h, targets, cfg)
      return jnp.sum(w_lp * lp) + jnp.sum(w_ent * ent)  # both outputs carry a gradient
    return jax.value_and_grad(f, argnums=(0, 1))(params, hidden)

  ours, ref = objective(model.target_logprobs), objective(_plain)
  for a, b in zip(model.target_logprobs(params, hidden, targets, cfg),
                  _plain(params, hidden, targets, cfg)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(ours[0], ref[0], rtol=1e-6)
  for a, b in zip(jax.tree.leaves(ours[1]), jax.tree.leaves(ref[1])):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def _grpo_batch(cfg, n, prompt_width, new_tokens, seed=0):
  """A GRPO train batch as `GRPOTrainer.make_batch` lays it out: left-padded prompts of
  `prompt_width`, then the completion bucket."""
  rng = np.random.RandomState(seed)
  gen = sampling.length_bucket(new_tokens)
  pad = rng.randint(0, prompt_width - 1, n).astype(np.int32)
  lengths = rng.randint(1, gen + 1, n).astype(np.int32)
  tokens = rng.randint(1, cfg.vocab_size, (n, prompt_width + gen)).astype(np.int32)
  length = tokens.shape[1]
  return {"tokens": jnp.asarray(tokens), "prompt_pad": jnp.asarray(pad),
          "loss_mask": rl.completion_mask(prompt_width, jnp.asarray(lengths), length
                                          ).astype(jnp.float32),
          "advantages": jnp.asarray(rng.randn(n).astype(np.float32)),
          "ref_logp": jnp.asarray(-3.0 + 0.1 * rng.randn(n, length - 1).astype(np.float32))}


def test_completion_only_head_matches_full_positions():
  cfg = _cfg(False)
  params = model.init_params(cfg, jax.random.key(0))
  section = grpo_stage.default_config()
  section.max_new_tokens = 12  # bucket 12
  batch = _grpo_batch(cfg, 4, 7, section.max_new_tokens)
  gen = sampling.length_bucket(section.max_new_tokens)
  full_lp, full_ent, _ = rl.token_logprobs(params, cfg, batch)
  lp, ent, _ = rl.token_logprobs(params, cfg, batch, completion_len=gen)
  np.testing.assert_allclose(lp[:, -gen:], full_lp[:, -gen:], rtol=1e-6)
  np.testing.assert_allclose(ent[:, -gen:], full_ent[:, -gen:], rtol=1e-6)
  assert not np.any(lp[:, :-gen]) and not np.any(ent[:, :-gen])  # prompt targets: 0
  # The mask never reaches before the completion bucket.
  assert not np.any(np.asarray(batch["loss_mask"])[:, :-gen])

  def reference_loss(params, batch, rng):
    """grpo_loss_fn's loss over autodiff of log_softmax at every position."""
    x = rl.sequence_inputs(batch["tokens"], batch["prompt_pad"])
    hidden, _, aux = model.apply(params, x["inputs"], cfg, positions=x["positions"],
                                 key_mask=x["key_mask"], token_mask=x["key_mask"],
                                 return_hidden=True)
    logp, _ = _plain(params, hidden, x["targets"], cfg)
    loss, _ = grpo.grpo_loss(logp, jax.lax.stop_gradient(logp), batch["ref_logp"],
                             batch["advantages"], batch["loss_mask"],
                             epsilon=section.epsilon, beta=section.beta,
                             aggregation=section.aggregation)
    return loss + aux.balance_loss

  rng = jax.random.key(0)
  (loss, (metrics, _)), grads = jax.value_and_grad(
      rl.grpo_loss_fn(cfg, section), has_aux=True)(params, batch, rng)
  ref_loss, ref_grads = jax.value_and_grad(reference_loss)(params, batch, rng)
  np.testing.assert_allclose(loss, ref_loss, rtol=1e-6)
  for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8)
  mask = np.asarray(batch["loss_mask"])
  np.testing.assert_allclose(metrics["rl/entropy"],
                             (np.asarray(full_ent) * mask).sum() / mask.sum(), rtol=1e-6)
