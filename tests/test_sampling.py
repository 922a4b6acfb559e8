"""Sampler: greedy vs repeated forward, logprobs vs forward, top-k/top-p statistics,
stop tokens, ragged prompts, bounded compilations, sharded equals unsharded."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax import configs, model, sampling, sharding


@pytest.fixture(scope="module", params=["dense", "mla_moe"])
def setup(request):
  if request.param == "dense":
    cfg = configs.model_config(vocab_size=64, max_seq_len=64)
  else:
    cfg = configs.tiny_moe_config(vocab_size=64, max_seq_len=64)
  params = model.init_params(cfg, jax.random.key(0))
  # Sharper logits than init so that greedy/argmax comparisons are not near ties.
  params["embed"] = params["embed"] * 20
  return cfg, params


PROMPTS = [[5, 9, 11], [7], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [33, 12]]


def test_greedy_equals_repeated_forward_argmax(setup):
  cfg, params = setup
  out = sampling.generate(params, cfg, PROMPTS, rng=jax.random.key(1), max_new_tokens=6,
                          temperature=0.0)
  # A full forward pass per new token. Sequences are right-padded to one fixed length
  # (one compilation); causality makes the padding invisible at position len(seq)-1.
  fwd = jax.jit(lambda t: model.forward(params, t, cfg))
  for prompt, comp in zip(PROMPTS, out.tokens):
    seq = list(prompt)
    for _ in range(6):
      padded = np.zeros((1, 16), np.int32)
      padded[0, :len(seq)] = seq
      seq.append(int(jnp.argmax(fwd(jnp.asarray(padded))[0, len(seq) - 1])))
    assert comp == seq[len(prompt):]
  assert out.truncated == [True] * len(PROMPTS)


def test_logprobs_equal_forward_log_softmax(setup):
  cfg, params = setup
  out = sampling.generate(params, cfg, PROMPTS, rng=jax.random.key(2), max_new_tokens=7,
                          temperature=1.0)
  for prompt, comp, lps in zip(PROMPTS, out.tokens, out.logprobs):
    seq = jnp.asarray([prompt + comp])
    logp = jax.nn.log_softmax(model.forward(params, seq, cfg)[0], axis=-1)
    ref = [float(logp[len(prompt) - 1 + j, t]) for j, t in enumerate(comp)]
    np.testing.assert_allclose(lps, ref, atol=1e-4)


def test_wide_batch_logprobs_equal_forward(setup):
  # From sampling.FUSE_MIN_ROWS rows the CPU sampler runs joined projections: same
  # function, checked here against the plain forward pass.
  cfg, params = setup
  prompts = [PROMPTS[i % len(PROMPTS)] + [i % 7 + 1] for i in range(sampling.FUSE_MIN_ROWS)]
  out = sampling.generate(params, cfg, prompts, rng=jax.random.key(8), max_new_tokens=5,
                          temperature=1.0)
  seqs = [p + c for p, c in zip(prompts, out.tokens)]
  width = max(map(len, seqs))
  logits = model.forward(params, jnp.asarray([s + [0] * (width - len(s)) for s in seqs]), cfg)
  logp = np.asarray(jax.nn.log_softmax(logits, axis=-1))
  for r, (prompt, comp, lps) in enumerate(zip(prompts, out.tokens, out.logprobs)):
    ref = [logp[r, len(prompt) - 1 + j, t] for j, t in enumerate(comp)]
    np.testing.assert_allclose(lps, ref, atol=1e-4)


@pytest.mark.parametrize("rows", [2, sampling.FUSE_MIN_ROWS])
def test_bfloat16_model_samples_track_forward(rows):
  # bf16 activations through prefill, the decode loop and (from FUSE_MIN_ROWS rows on
  # CPU) the joined projections: logprobs within bf16 resolution of the forward pass.
  cfg = configs.model_config(vocab_size=64, max_seq_len=64, dtype="bfloat16", qkv_bias=True)
  params = model.init_params(cfg, jax.random.key(0))
  prompts = [PROMPTS[i % len(PROMPTS)] for i in range(rows)]
  out = sampling.generate(params, cfg, prompts, rng=jax.random.key(3), max_new_tokens=4)
  fwd = jax.jit(lambda t: jax.nn.log_softmax(model.forward(params, t, cfg), axis=-1))
  for prompt, comp, lps in zip(prompts, out.tokens, out.logprobs):
    assert len(comp) == 4 and all(0 <= t < 64 for t in comp)
    logp = fwd(jnp.asarray([prompt + comp]))[0]
    ref = [float(logp[len(prompt) - 1 + j, t]) for j, t in enumerate(comp)]
    np.testing.assert_allclose(lps, ref, atol=0.05)


def test_stop_tokens_and_eos(setup):
  cfg, params = setup
  free = sampling.generate(params, cfg, PROMPTS, rng=jax.random.key(3), max_new_tokens=8,
                           temperature=0.0)
  # Make the 3rd greedy token of prompt 0 a stop token: its completion must end there.
  stop = free.tokens[0][2]
  out = sampling.generate(params, cfg, PROMPTS, rng=jax.random.key(3), max_new_tokens=8,
                          temperature=0.0, stop_ids=[stop])
  first = free.tokens[0].index(stop)
  assert out.tokens[0] == free.tokens[0][:first + 1]
  assert out.truncated[0] is False
  for full, cut, tr in zip(free.tokens, out.tokens, out.truncated):
    if stop in full:
      assert cut == full[:full.index(stop) + 1] and not tr
    else:
      assert cut == full and tr
  eos = sampling.generate(params, cfg, PROMPTS, rng=jax.random.key(3), max_new_tokens=8,
                          temperature=0.0, eos_id=stop)
  assert eos.tokens == out.tokens


def test_ragged_prompts_equal_alone(setup):
  cfg, params = setup
  batch = sampling.generate(params, cfg, PROMPTS, rng=jax.random.key(4), max_new_tokens=5,
                            temperature=0.0)
  for prompt, comp in zip(PROMPTS, batch.tokens):
    alone = sampling.generate(params, cfg, [prompt], rng=jax.random.key(4), max_new_tokens=5,
                              temperature=0.0)
    assert alone.tokens[0] == comp


def _truncated_dist(logits, top_k, top_p):
  p = np.exp(logits - logits.max())
  p /= p.sum()
  order = np.argsort(-p)
  keep = np.zeros_like(p, bool)
  keep[order[:top_k] if top_k else order] = True
  q = np.where(keep, p, 0)
  q /= q.sum()
  order = np.argsort(-q)
  mass, nucleus = 0.0, np.zeros_like(keep)
  for i in order:
    if mass >= top_p or q[i] == 0:
      break
    nucleus[i] = True
    mass += q[i]
  q = np.where(nucleus, q, 0)
  return q / q.sum()


@pytest.mark.parametrize("top_k,top_p", [(0, 0.7), (4, 1.0), (5, 0.8)])
def test_top_k_top_p_frequencies(top_k, top_p):
  # Sample many times from fixed logits with the sampler's own truncation + categorical.
  logits = np.array([2.0, 1.5, 1.2, 1.0, 0.5, 0.0, -0.5, -1.0], np.float32)
  n = 20000
  toks, _ = jax.jit(lambda u: sampling._choose(jnp.tile(logits, (n, 1)), u, jnp.float32(1.0),
                                               jnp.float32(top_p), jnp.int32(top_k)))(
      jax.random.uniform(jax.random.key(0), (n,)))
  counts = np.bincount(np.asarray(toks), minlength=8)
  q = _truncated_dist(logits, top_k, top_p)
  assert np.all(counts[q == 0] == 0)  # nothing outside the truncated support
  # Pearson chi-square over the support; the 99.9% quantile for <=7 dof is 24.3, so
  # this fails by chance with probability < 1e-3 (fixed seed: deterministic anyway).
  sup = q > 0
  chi2 = float((((counts[sup] - n * q[sup]) ** 2) / (n * q[sup])).sum())
  assert chi2 < 24.3, (chi2, counts, q)


def test_bounded_compilations(setup):
  cfg, params = setup
  before = sampling.TRACE_COUNT["sample_padded"]
  for prompt_len in (2, 5, 8):  # one prompt bucket (8)
    for max_new in (3, 6, 8):  # one generation bucket (8)
      sampling.generate(params, cfg, [[1] * prompt_len, [2, 3]], rng=jax.random.key(0),
                        max_new_tokens=max_new, temperature=1.0)
  assert sampling.TRACE_COUNT["sample_padded"] - before <= 1
  out = sampling.generate(params, cfg, [[1, 2]], rng=jax.random.key(0), max_new_tokens=3)
  assert all(len(t) <= 3 for t in out.tokens)


def test_sharded_equals_unsharded(setup):
  cfg, params = setup
  mcfg = configs.mesh_config(data=2, fsdp=2, expert=2, tensor=1)
  mesh = sharding.make_mesh(mcfg)
  axes = model.param_axes(cfg)
  shardings = sharding.tree_shardings(mesh, mcfg.rules, axes, params)
  sharded = jax.device_put(params, shardings)
  prompts = PROMPTS * 2
  kw = dict(rng=jax.random.key(5), max_new_tokens=6, temperature=1.0, top_p=0.9)
  a = sampling.generate(params, cfg, prompts, **kw)
  b = sampling.generate(sharded, cfg, prompts, mesh=mesh, rules=mcfg.rules, **kw)
  assert a.tokens == b.tokens
  np.testing.assert_allclose(np.concatenate([np.asarray(x) for x in a.logprobs]),
                             np.concatenate([np.asarray(x) for x in b.logprobs]), atol=1e-5)


@pytest.mark.parametrize("rows", [1, sampling.FUSE_MIN_ROWS])
def test_prepared_weights_give_the_same_samples(setup, rows):
  # `prepare` splits (and on CPU joins) the weights once; the samples must not change,
  # on one device and sharded. Checked against the forward pass too, so that a prepared
  # layout both paths got wrong in the same way would still show.
  cfg, params = setup
  prepared = sampling.prepare(params)
  stack = "dense_layers" if "dense_layers" in prepared else "moe_layers"
  assert isinstance(prepared[stack], tuple)
  assert sampling.prepare(prepared) is not None  # preparing twice is harmless
  prompts = [PROMPTS[i % len(PROMPTS)] + [i % 5 + 1] for i in range(rows)]
  kw = dict(rng=jax.random.key(4), max_new_tokens=6, temperature=1.0, top_p=0.95)
  a = sampling.generate(params, cfg, prompts, **kw)
  b = sampling.generate(prepared, cfg, prompts, **kw)
  c = sampling.generate(sampling.prepare(prepared), cfg, prompts, **kw)
  assert a.tokens == b.tokens == c.tokens
  flat = lambda s: np.concatenate([np.asarray(x) for x in s.logprobs])
  np.testing.assert_allclose(flat(b), flat(a), atol=1e-5)
  logp = jax.nn.log_softmax(model.forward(params, jnp.asarray([prompts[0] + b.tokens[0]]),
                                          cfg)[0], axis=-1)
  ref = [float(logp[len(prompts[0]) - 1 + j, t]) for j, t in enumerate(b.tokens[0])]
  np.testing.assert_allclose(b.logprobs[0], ref, atol=1e-4)
  mcfg = configs.mesh_config(data=2, fsdp=2, expert=2, tensor=1)
  mesh = sharding.make_mesh(mcfg)
  sharded = jax.device_put(params, sharding.tree_shardings(mesh, mcfg.rules,
                                                           model.param_axes(cfg), params))
  d = sampling.generate(sampling.prepare(sharded), cfg, prompts * 8 if rows == 1 else prompts,
                        mesh=mesh, rules=mcfg.rules, **kw)
  want = a if rows > 1 else sampling.generate(params, cfg, prompts * 8, **kw)
  assert d.tokens == want.tokens


def test_bad_arguments(setup):
  cfg, params = setup
  with pytest.raises(ValueError, match="max_seq_len"):
    sampling.generate(params, cfg, [[1] * 60], rng=jax.random.key(0), max_new_tokens=10)
  with pytest.raises(ValueError, match="top_p"):
    sampling.generate(params, cfg, [[1]], rng=jax.random.key(0), max_new_tokens=2, top_p=0)


def test_non_finite_logits_still_give_valid_ids():
  logits = jnp.full((3, 10), jnp.nan).at[1].set(jnp.inf).at[2].set(0.0)
  tok, _ = sampling._choose(logits, jax.random.uniform(jax.random.key(0), (3,)),
                            jnp.float32(1.0), jnp.float32(1.0), jnp.int32(0))
  assert np.all((np.asarray(tok) >= 0) & (np.asarray(tok) < 10))


def test_greedy_choice_matches_numpy_with_ties_and_masks():
  rng = np.random.default_rng(0)
  x = rng.integers(0, 4, size=(32, 50)).astype(np.float32)  # many ties
  x[3, :] = -np.inf
  x[4, 10:] = -np.inf
  greedy = lambda a: sampling._choose(jnp.asarray(a), jnp.zeros(len(a)), jnp.float32(0.0),
                                      jnp.float32(1.0), jnp.int32(0))
  got, logp = map(np.asarray, greedy(x))
  want = np.argmax(np.where(np.isneginf(x).all(-1, keepdims=True), 0.0, x), axis=-1)
  want[3] = 0  # all -inf: every entry is the maximum, the first one wins
  assert (got == want).all()
  # Its logprob is log-softmax at that token (rows with a finite maximum).
  m = x.max(-1, keepdims=True)
  with np.errstate(invalid="ignore"):
    ref = x - (m + np.log(np.exp(x - m).sum(-1, keepdims=True)))
  rows = [r for r in range(32) if r != 3]
  np.testing.assert_allclose(logp[rows], ref[rows, want[rows]], atol=1e-5)
  nan_row = np.full((1, 50), np.nan, np.float32)
  assert int(greedy(nan_row)[0][0]) == 49


def test_draws_are_fresh_per_step_and_row():
  # With zero logits every draw is uniform over the vocabulary. Reusing one uniform
  # across steps (or rows) would repeat tokens along a row (or down a column).
  cfg = configs.model_config(vocab_size=64, max_seq_len=64)
  params = model.init_params(cfg, jax.random.key(0))
  head = "embed" if cfg.tie_embeddings else "lm_head"
  params[head] = jnp.zeros_like(params[head])
  out = sampling.generate(params, cfg, [[1, 2]] * 8, rng=jax.random.key(7), max_new_tokens=40)
  toks = np.asarray(out.tokens)  # [8, 40]
  assert toks.shape == (8, 40)
  # Equal neighbours along rows and down columns: 1/64 of pairs expected (~5 and ~4).
  assert (toks[:, 1:] == toks[:, :-1]).sum() < 20
  assert (toks[1:] == toks[:-1]).sum() < 20
  # Uniformity: chi-square over 64 bins (63 dof, 99.9% quantile 103.4).
  counts = np.bincount(toks.ravel(), minlength=64)
  expected = toks.size / 64
  assert ((counts - expected) ** 2 / expected).sum() < 103.4
  np.testing.assert_allclose(np.concatenate(out.logprobs), np.log(1 / 64), atol=1e-5)
