"""Reward models: last-token scores against an unpadded per-sequence reference, the
Bradley-Terry loss against numpy, pair batching, views, and a tiny model that learns a
preference it can only see in part of the response."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax import configs, model
from r1jax.rewards import reward_model as rm_rewards
from r1jax.rewards.format import SEPARATOR
from r1jax.train import reward_model as rm_lib
from r1jax.train import state as state_lib


def _cfg():
  return configs.model_config(vocab_size=32, d_model=32, n_layers=2, n_heads=2, n_kv_heads=1,
                              head_dim=16, mlp_dim=64, max_seq_len=32)


@pytest.fixture(scope="module")
def rm():
  cfg = _cfg()
  params = rm_lib.with_head(model.init_params(cfg, jax.random.key(0)), cfg)
  head = {"w": jax.random.normal(jax.random.key(1), (cfg.d_model,)), "b": jnp.float32(0.3)}
  return cfg, {**params, rm_lib.HEAD: head}


def test_scores_are_the_last_real_token_of_each_unpadded_sequence(rm):
  cfg, params = rm
  rng = np.random.default_rng(0)
  seqs = [rng.integers(3, 32, n).tolist() for n in (5, 11, 1, 16)]
  tokens, lengths = rm_lib.pad_rows(seqs, 16, pad_id=0)
  got = np.asarray(rm_lib.scores(params, jnp.asarray(tokens), jnp.asarray(lengths), cfg)[0])
  body = {k: v for k, v in params.items() if k != rm_lib.HEAD}
  for i, s in enumerate(seqs):  # each alone, no padding, no mask
    h = model.apply(body, jnp.asarray([s]), cfg, return_hidden=True)[0][0, -1]
    want = float(h @ params[rm_lib.HEAD]["w"] + params[rm_lib.HEAD]["b"])
    np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=1e-5)
  # Padding content is invisible: other pad tokens give the same scores.
  tokens2 = np.where(np.arange(16)[None] < lengths[:, None], tokens, 7)
  got2 = np.asarray(rm_lib.scores(params, jnp.asarray(tokens2), jnp.asarray(lengths), cfg)[0])
  np.testing.assert_allclose(got, got2, rtol=1e-6, atol=1e-6)


def test_bradley_terry_loss_matches_numpy(rm):
  cfg, params = rm
  rng = np.random.default_rng(1)
  seqs = [rng.integers(3, 32, int(rng.integers(2, 12))).tolist() for _ in range(8)]
  tokens, lengths = rm_lib.pad_rows(seqs, 12, pad_id=0)
  batch = {"tokens": jnp.asarray(tokens), "lengths": jnp.asarray(lengths)}
  loss, (m, _) = rm_lib.bradley_terry_loss(cfg)(params, batch, jax.random.key(0))
  s = np.asarray(rm_lib.scores(params, batch["tokens"], batch["lengths"], cfg)[0], np.float64)
  margin = s[0::2] - s[1::2]
  want = np.mean(np.log1p(np.exp(-margin)))  # -log sigmoid(r_chosen - r_rejected)
  np.testing.assert_allclose(float(loss), want, rtol=1e-5)
  assert float(m["train/pairwise_accuracy"]) == np.mean(margin > 0)


def test_pair_data_interleaves_pairs_and_is_a_function_of_step():
  pairs = [([i, 1], [i, 2, 2]) for i in range(3, 13)] + [([5] * 9, [6])]  # the last too long
  d = rm_lib.PairData(pairs, seq_len=8, pad_id=0, batch_pairs=4, seed=0)
  assert d.dropped == 1 and d.num_pairs == 10
  b = d.batch(3)
  assert b["tokens"].shape == (8, 8)
  np.testing.assert_array_equal(b["lengths"], [2, 3] * 4)  # chosen, rejected, ...
  np.testing.assert_array_equal(b["tokens"][0::2, 0], b["tokens"][1::2, 0])  # same pair
  again = rm_lib.PairData(pairs, seq_len=8, pad_id=0, batch_pairs=4, seed=0)
  np.testing.assert_array_equal(again.batch(3)["tokens"], b["tokens"])
  seen = np.concatenate([d.batch(s)["tokens"][0::2, 0] for s in range(5)])  # 2 epochs
  assert sorted(seen[:10]) == sorted(seen[10:]) == list(range(3, 13))
  with pytest.raises(ValueError, match="no preference pair fits"):
    rm_lib.PairData(pairs[-1:], seq_len=8, pad_id=0, batch_pairs=1, seed=0)


def test_views():
  text = f" {SEPARATOR}I think zorp{SEPARATOR} Hello, Ana!"
  assert rm_rewards.view_text(text, "response") == text
  assert rm_rewards.view_text(text, "summary") == " Hello, Ana!"
  # Without R1's format, the summary view is what follows the last separator (all of it
  # when there is none): dropping the format hides nothing from the helpfulness RM.
  assert rm_rewards.view_text(f"x {SEPARATOR} y", "summary") == " y"
  assert rm_rewards.view_text("plain answer", "summary") == "plain answer"
  with pytest.raises(ValueError, match="allowed"):
    rm_rewards.view_text(text, "reasoning")


def test_training_learns_a_preference_seen_only_in_the_middle():
  """Chosen responses hold token 9 somewhere in the middle, rejected ones token 10 there;
  the rest is random. A trained RM must rank held-out pairs right (random: 50%)."""
  cfg = _cfg()
  rng = np.random.default_rng(2)

  def pair():
    body = rng.integers(11, 32, 10)
    pos = int(rng.integers(2, 8))
    c, r = body.copy(), body.copy()
    c[pos], r[pos] = 9, 10
    return [1, *c.tolist(), 2], [1, *r.tolist(), 2]

  train = rm_lib.PairData([pair() for _ in range(256)], seq_len=16, pad_id=0, batch_pairs=16,
                          seed=0)
  heldout = rm_lib.PairData([pair() for _ in range(64)], seq_len=16, pad_id=0, batch_pairs=16,
                            seed=0)
  opt = configs.optimizer_config(learning_rate=3e-3, warmup_steps=0)
  tx = state_lib.make_optimizer(opt)
  params = rm_lib.with_head(model.init_params(cfg, jax.random.key(3)), cfg)
  loss_fn = jax.jit(jax.value_and_grad(lambda p, b: rm_lib.bradley_terry_loss(cfg)(
      p, b, jax.random.key(0))[0]))
  opt_state = tx.init(params)
  before = rm_lib.pairwise_accuracy(params, cfg, heldout, batch_rows=32)
  assert before["margin"] == 0.0  # a zero head scores every sequence 0
  for step in range(60):
    _, g = loss_fn(params, {k: jnp.asarray(v) for k, v in train.batch(step).items()})
    updates, opt_state = tx.update(g, opt_state, params)
    params = jax.tree.map(lambda p, u: p + u, params, updates)
  after = rm_lib.pairwise_accuracy(params, cfg, heldout, batch_rows=32)
  assert after["pairwise_accuracy"] >= 0.9, after
  assert after["margin"] > 0


def test_reward_model_scorer_batches_views_and_pads(rm):
  cfg, params = rm

  class Tok:
    pad_id, eos_id, bos_id = 0, 2, 1

    def encode(self, text, bos=False, eos=False):
      return [1] * bos + [3 + (ord(ch) % 29) for ch in text] + [2] * eos

  tok = Tok()
  scorer = rm_rewards.RewardModel(params, cfg, tok, "summary", batch_rows=4)
  prompts = ["User: a Assistant:"] * 5
  comps = [f" {SEPARATOR}reason {i}{SEPARATOR} answer" for i in range(5)]
  s = scorer(prompts, comps)
  assert s.shape == (5,)
  np.testing.assert_allclose(s, s[0], rtol=1e-6)  # the reasoning is not in the summary view
  whole = rm_rewards.RewardModel(params, cfg, tok, "response", batch_rows=4)(prompts, comps)
  assert len(set(np.round(whole, 5))) == 5  # ... but is in the response view
