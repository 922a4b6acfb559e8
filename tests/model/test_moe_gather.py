"""MoE dispatch for few tokens (`moe.dispatch_gathered`): the chosen experts' weights
gathered, then the dense form over those alone. Same function and expert counts as the
dense form, checked against a numpy reference of the whole MoE MLP (routing included)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax import configs, model, sampling
from r1jax.model import moe

D, F = 32, 16


def _cfg(n_exp, k, n_group, topk_group, norm, scale):
  return configs.tiny_moe_config(moe=dict(
      n_routed_experts=n_exp, num_experts_per_tok=k, n_group=n_group, topk_group=topk_group,
      norm_topk_prob=norm, routed_scaling_factor=scale, moe_intermediate_size=F), d_model=D)


def _reference(x, router, bias, wg, wu, wd, cfg):
  """numpy float64: DeepSeek-V3 routing, then each token's chosen SwiGLU experts."""
  e = cfg.moe
  x, router, bias, wg, wu, wd = (np.asarray(a, np.float64)
                                 for a in (x, router, bias, wg, wu, wd))
  n_exp = wg.shape[0]
  out = np.zeros_like(x)
  chosen_Nxk = []
  for i in range(x.shape[0]):
    s = 1 / (1 + np.exp(-(x[i] @ router)))
    sel = s + bias
    per = n_exp // e.n_group
    group_score = [np.sort(sel[g * per:(g + 1) * per])[-2:].sum() for g in range(e.n_group)]
    keep = np.argsort(group_score)[::-1][:e.topk_group]
    masked = np.full(n_exp, -np.inf)
    for g in keep:
      masked[g * per:(g + 1) * per] = sel[g * per:(g + 1) * per]
    chosen = np.argsort(masked)[::-1][:e.num_experts_per_tok]
    w = s[chosen]
    if e.norm_topk_prob:
      w = w / w.sum()
    w = w * e.routed_scaling_factor
    for ex, we in zip(chosen, w):
      h = x[i] @ wg[ex]
      out[i] += we * ((h / (1 + np.exp(-h))) * (x[i] @ wu[ex])) @ wd[ex]
    chosen_Nxk.append(chosen)
  return out, np.asarray(chosen_Nxk)


def _case(n, n_exp, k, seed, repeat=False, dtype=jnp.float32):
  ks = jax.random.split(jax.random.key(seed), 5)
  x = jax.random.normal(ks[0], (n, D))
  router = 0.5 * jax.random.normal(ks[1], (D, n_exp))
  # repeat: a large bias on experts 1 and 2 (one group) makes every token pick them.
  bias = jnp.zeros((n_exp,)).at[jnp.array([1, 2])].set(5.0 if repeat else 0.0)
  wg, wu = (0.2 * jax.random.normal(kk, (n_exp, D, F)) for kk in ks[2:4])
  wd = 0.2 * jax.random.normal(ks[4], (n_exp, F, D))
  # Inputs rounded to the dtype once, so that the reference sees the same values.
  cast = lambda a: a.astype(dtype)
  return tuple(map(cast, (x, router, bias, wg, wu, wd)))


def _dense_form(x, r, wgu, wd, monkeypatch):
  with monkeypatch.context() as m:
    m.setattr(moe, "GATHER_MAX_PAIRS", 0)
    assert not moe.use_gather(*r.experts_Nxk.shape, wd.shape[0])
    return moe.dispatch_joined(x, r, wgu, wd)


CASES = [  # n tokens, E, k, n_group, topk_group, norm_topk_prob, routed_scaling_factor
    (1, 16, 2, 4, 2, True, 2.5),
    (2, 16, 2, 4, 2, False, 1.0),
    (1, 8, 2, 1, 1, True, 1.0),
    (4, 32, 2, 4, 2, True, 2.5),
    (2, 32, 4, 2, 1, False, 2.5),  # all 4 choices in one group of 16
]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("repeat", [False, True], ids=["distinct", "repeated"])
@pytest.mark.parametrize("case", CASES, ids=[f"n{c[0]}_E{c[1]}_k{c[2]}" for c in CASES])
def test_gathered_dispatch_is_the_moe_mlp(case, repeat, dtype, monkeypatch):
  n, n_exp, k, n_group, topk_group, norm, scale = case
  cfg = _cfg(n_exp, k, n_group, topk_group, norm, scale)
  configs.validate_model(cfg)
  assert moe.use_gather(n, k, n_exp)  # these shapes take the gathered form
  x, router, bias, wg, wu, wd = _case(n, n_exp, k, seed=n * 100 + n_exp, repeat=repeat,
                                      dtype=dtype)
  r = moe.route(x, router, bias, cfg)
  ref, ref_chosen = _reference(x.astype(jnp.float32), router.astype(jnp.float32),
                             bias.astype(jnp.float32), wg.astype(jnp.float32),
                             wu.astype(jnp.float32), wd.astype(jnp.float32), cfg)
  np.testing.assert_array_equal(np.sort(r.experts_Nxk, -1), np.sort(ref_chosen, -1))
  ref_load = np.bincount(ref_chosen.ravel(), minlength=n_exp)
  if repeat:  # the bias forced experts 1 and 2 on every token: repeats across tokens
    assert ref_load[1] == n and ref_load[2] == n
  wgu = moe.join_gate_up(wg, wu)
  out_joined, load_joined = moe.dispatch_joined(x, r, wgu, wd)  # gathers
  out_gathered, load_gathered = moe.dispatch_gathered(x, r, wgu, wd)
  out_unjoined, load_unjoined = moe.dispatch(x, r, wg, wu, wd, grouped=False)  # gathers
  out_dense, load_dense = _dense_form(x, r, wgu, wd, monkeypatch)
  assert out_joined.dtype == out_unjoined.dtype == dtype
  tol = dict(atol=1e-5, rtol=1e-5) if dtype == jnp.float32 else dict(atol=0.05, rtol=0.03)
  scale_out = float(np.abs(ref).max())
  assert scale_out > 0.1  # not a vacuous comparison
  for out in (out_joined, out_gathered, out_unjoined, out_dense):
    np.testing.assert_allclose(np.asarray(out, np.float32), ref, **tol)
  # Gathered vs dense form: the same products, summed in a different order.
  close = dict(atol=1e-6, rtol=1e-6) if dtype == jnp.float32 else dict(atol=0.02, rtol=0.02)
  for out in (out_joined, out_unjoined):
    np.testing.assert_allclose(np.asarray(out, np.float32), np.asarray(out_dense, np.float32),
                               **close)
  for load in (load_joined, load_gathered, load_unjoined):
    assert load.dtype == load_dense.dtype == jnp.int32
    np.testing.assert_array_equal(load, load_dense)
  np.testing.assert_array_equal(load_dense, ref_load)


def test_gathered_matches_dense_under_jit_with_traced_routing(monkeypatch):
  # The sampler's case: expert ids are traced values inside a jitted loop body.
  cfg = _cfg(16, 2, 4, 2, True, 2.5)
  x, router, bias, wg, wu, wd = _case(1, 16, 2, seed=7)
  wgu = moe.join_gate_up(wg, wu)

  def mlp(x, wgu, wd):
    return moe.dispatch_joined(x, moe.route(x, router, bias, cfg), wgu, wd)

  gathered = jax.jit(mlp)(x, wgu, wd)
  with monkeypatch.context() as m:
    m.setattr(moe, "GATHER_MAX_PAIRS", 0)
    dense = jax.jit(mlp)(x, wgu, wd)
  np.testing.assert_allclose(gathered[0], dense[0], atol=1e-6, rtol=1e-6)
  np.testing.assert_array_equal(gathered[1], dense[1])


def test_gathered_form_reads_only_the_chosen_experts():
  # What makes it cheaper: its matmuls see k experts, not E (a silent fallback to the
  # dense form would still give the right numbers).
  x, router, bias, wg, wu, wd = _case(1, 16, 2, seed=3)
  r = moe.route(x, router, bias, _cfg(16, 2, 4, 2, True, 2.5))
  jaxpr = jax.make_jaxpr(moe.dispatch_joined)(x, r, moe.join_gate_up(wg, wu), wd)
  dots = [e for e in jaxpr.eqns if e.primitive.name == "dot_general"]
  assert len(dots) == 2
  assert dots[0].invars[1].aval.shape == (D, 2, 2, F)
  assert dots[1].invars[1].aval.shape == (2, F, D)


def test_use_gather_by_shape():
  assert moe.use_gather(1, 2, 16) and moe.use_gather(2, 2, 16)
  assert not moe.use_gather(4, 2, 16)  # 8 pairs of 16 experts: dense form
  assert moe.use_gather(1, 2, 8) and not moe.use_gather(2, 2, 8)
  assert moe.use_gather(1, 8, 256) and not moe.use_gather(2, 8, 256)  # DeepSeek-V3
  assert not moe.use_gather(64, 2, 16)


def test_gathered_form_has_the_dense_form_gradients(monkeypatch):
  # `forward` on a few tokens (and so training on them) runs the gathered form.
  cfg = _cfg(16, 2, 4, 2, True, 2.5)
  x, router, bias, wg, wu, wd = _case(2, 16, 2, seed=5, repeat=True)
  r = moe.route(x, router, bias, cfg)

  def loss(x, w, wg, wu, wd):
    out, _ = moe.dispatch(x, r._replace(weights_Nxk=w), wg, wu, wd, grouped=False)
    return jnp.sum(jnp.sin(out))

  args = (x, r.weights_Nxk, wg, wu, wd)
  grad = functools.partial(jax.grad(loss, argnums=range(5)), *args)
  g_gathered = grad()
  with monkeypatch.context() as m:
    m.setattr(moe, "GATHER_MAX_PAIRS", 0)
    g_dense = grad()
  for a, b in zip(g_gathered, g_dense):
    assert float(jnp.abs(a).max()) > 0
    # The forms sum the same products in other orders (and XLA fuses multiply-adds per
    # form, differently at -O0): ~1e-4 relative on gradients that partly cancel. A wrong
    # expert or weight is off by O(1).
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)
  # Unchosen experts get no gradient in either form.
  unchosen = np.setdiff1d(np.arange(16), np.asarray(r.experts_Nxk).ravel())
  assert float(jnp.abs(g_gathered[2][unchosen]).max()) == 0


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_batch_1_sampler_tracks_forward(dtype):
  # Batch-1 decode runs the gathered form (E=8, k=2), the forward pass over the whole
  # sequence the dense one: logprobs must agree.
  cfg = configs.tiny_moe_config(vocab_size=64, max_seq_len=64, dtype=dtype, param_dtype=dtype)
  params = model.init_params(cfg, jax.random.key(0))
  params["embed"] = params["embed"] * 20
  e = cfg.moe
  assert moe.use_gather(1, e.num_experts_per_tok, e.n_routed_experts)
  prompt = [5, 9, 11, 3]
  out = sampling.generate(sampling.prepare(params), cfg, [prompt], rng=jax.random.key(2),
                          max_new_tokens=8, temperature=1.0)
  comp = out.tokens[0]
  assert len(comp) == 8
  logits = model.forward(params, jnp.asarray([prompt + comp]), cfg)[0]
  logp = jax.nn.log_softmax(logits, axis=-1)
  ref = [float(logp[len(prompt) - 1 + j, t]) for j, t in enumerate(comp)]
  np.testing.assert_allclose(out.logprobs[0], ref, atol=1e-4 if dtype == "float32" else 0.05)
