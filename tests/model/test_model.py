"""Model invariants: causality, decode cache, MoE routing/dispatch/balancing, config errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax import configs, model
from r1jax.model import moe

CONFIGS = {
    "dense": lambda: configs.model_config(qkv_bias=True),
    "dense_tied": lambda: configs.model_config(tie_embeddings=True, n_kv_heads=4),
    "mla_moe": lambda: configs.tiny_moe_config(),
    "mla_direct_q_yarn": lambda: configs.tiny_moe_config(
        mla=dict(q_lora_rank=0), rope=dict(scaling="yarn", factor=4.0, original_max_position=64,
                                           mscale=1.0, mscale_all_dim=1.0)),
    "llama3_rope": lambda: configs.model_config(
        rope=dict(scaling="llama3", factor=8.0, original_max_position=64)),
}


def _nonzero_bias(cfg, params):
  if "moe_layers" in params:
    b = params["moe_layers"]["moe"]["router_bias"]
    params["moe_layers"]["moe"]["router_bias"] = 0.1 * jax.random.normal(jax.random.key(9),
                                                                         b.shape)
  return params


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_causal_and_cache_decode_matches_forward(name):
  cfg = CONFIGS[name]()
  configs.validate_model(cfg)
  params = _nonzero_bias(cfg, model.init_params(cfg, jax.random.key(0)))
  toks = jax.random.randint(jax.random.key(1), (2, 10), 0, cfg.vocab_size)
  fwd = jax.jit(lambda p, t: model.forward(p, t, cfg))
  step = jax.jit(lambda p, t, c, i: model.apply(p, t, cfg, cache=c, cache_index=i)[:2])
  logits = fwd(params, toks)
  assert logits.dtype == jnp.float32 and logits.shape == (2, 10, cfg.vocab_size)
  # Causality: changing token 6 leaves logits 0..5 unchanged and changes 6.
  toks2 = toks.at[:, 6].set((toks[:, 6] + 1) % cfg.vocab_size)
  logits2 = fwd(params, toks2)
  np.testing.assert_allclose(logits[:, :6], logits2[:, :6], atol=1e-6)
  assert float(jnp.abs(logits[:, 6] - logits2[:, 6]).max()) > 1e-4
  # Prefill 6 tokens then decode one at a time from the cache == full forward.
  cache = model.init_cache(cfg, 2, 16)
  out, cache = step(params, toks[:, :6], cache, 0)
  steps = [out]
  for i in range(6, 10):
    out, cache = step(params, toks[:, i:i + 1], cache, i)
    steps.append(out)
  np.testing.assert_allclose(jnp.concatenate(steps, 1), logits, atol=2e-5, rtol=1e-5)


def test_bfloat16_cache_decode_tracks_forward():
  # bf16 activations: decode from the cache against the full forward, within bf16's
  # resolution (both round differently; a wrong slot or dtype path is far off).
  cfg = configs.model_config(dtype="bfloat16", qkv_bias=True)
  params = model.init_params(cfg, jax.random.key(0))
  toks = jax.random.randint(jax.random.key(1), (2, 12), 0, cfg.vocab_size)
  want = jax.jit(lambda p, t: model.forward(p, t, cfg))(params, toks)
  step = jax.jit(lambda p, t, c, i: model.apply(p, t, cfg, cache=c, cache_index=i)[:2])
  _, cache = step(params, toks[:, :8], model.init_cache(cfg, 2, 16), 0)
  got = []
  for i in range(8, 12):
    out, cache = step(params, toks[:, i:i + 1], cache, i)
    got.append(out[:, 0])
  got = np.asarray(jnp.stack(got, 1), np.float32)
  ref = np.asarray(want[:, 8:12], np.float32)
  scale = np.abs(ref).max()
  assert np.abs(got - ref).max() < 0.03 * scale, (np.abs(got - ref).max(), scale)
  # The greedy token agrees almost everywhere (ties within bf16 rounding may flip).
  assert (got.argmax(-1) == ref.argmax(-1)).mean() >= 0.75


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_fused_projections_compute_the_same_function(name):
  cfg = CONFIGS[name]()
  params = _nonzero_bias(cfg, model.init_params(cfg, jax.random.key(0)))
  # Non-zero biases, so that a mis-ordered q|k|v bias join would show.
  params = jax.tree_util.tree_map_with_path(
      lambda path, x: x + 0.3 if path[-1].key in ("bq", "bk", "bv") else x, params)
  fused = model.fuse_projections(params)
  for stack in ("dense_layers", "moe_layers"):
    if stack not in fused:
      continue
    if cfg.attention == "gqa":
      assert "wqkv" in fused[stack]["attn"] and "wq" not in fused[stack]["attn"]
      assert ("bqkv" in fused[stack]["attn"]) == cfg.qkv_bias
    mlp = fused[stack]["mlp"] if "mlp" in fused[stack] else fused[stack]["moe"]["shared"]
    assert set(mlp) == {"w_gate_up", "w_down"}
  toks = jax.random.randint(jax.random.key(1), (2, 10), 0, cfg.vocab_size)
  want = model.forward(params, toks, cfg)
  np.testing.assert_allclose(model.forward(fused, toks, cfg), want, atol=2e-5, rtol=1e-5)
  # Decode from a cache with the joined weights, layers split as the sampler runs them:
  # joined then split, and split then joined (`sampling.prepare`; routed experts then
  # join too and run the dense expert form).
  split_then_joined = model.fuse_projections(model.unstack_layers(params))
  if "moe_layers" in params:
    layer = split_then_joined["moe_layers"][0]["moe"]
    assert "w_gate_up" in layer and "w_gate" not in layer
    e, d, f = params["moe_layers"]["moe"]["w_gate"].shape[1:]
    assert layer["w_gate_up"].shape == (d, 2, e, f)
  for unstacked in (model.unstack_layers(fused), split_then_joined):
    np.testing.assert_allclose(model.forward(unstacked, toks, cfg), want, atol=2e-5, rtol=1e-5)
    cache = model.unstack_layers(model.init_cache(cfg, 2, 16))
    out, cache, _ = model.apply(unstacked, toks[:, :9], cfg, cache=cache, cache_index=0)
    last, _, _ = model.apply(unstacked, toks[:, 9:], cfg, cache=cache, cache_index=9)
    np.testing.assert_allclose(last[:, 0], want[:, 9], atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_last_only_is_the_last_position_of_the_full_pass(name):
  # The final layer runs its query, output projection and MLP for the last position
  # only: logits must equal the full pass's last row, the cache must equal a full
  # prefill's (every position's keys/values), and decoding on from it must agree.
  cfg = CONFIGS[name]()
  params = _nonzero_bias(cfg, model.init_params(cfg, jax.random.key(0)))
  toks = jax.random.randint(jax.random.key(1), (2, 10), 0, cfg.vocab_size)
  want = model.forward(params, toks, cfg)
  got, _, _ = model.apply(params, toks, cfg, last_only=True)
  assert got.shape == (2, 1, cfg.vocab_size)
  np.testing.assert_allclose(got, want[:, -1:], atol=2e-5, rtol=1e-5)
  variants = {"stacked": (params, lambda c: c),
              "unstacked": (model.unstack_layers(params), model.unstack_layers),
              "unstacked_fused": (model.unstack_layers(model.fuse_projections(params)),
                                  model.unstack_layers),
              "prepared": (model.fuse_projections(model.unstack_layers(params)),
                           model.unstack_layers)}
  _, full_cache, full_aux = model.apply(params, toks[:, :9], cfg,
                                        cache=model.init_cache(cfg, 2, 16), cache_index=0)
  for label, (p, split) in variants.items():
    out, cache, aux = model.apply(p, toks[:, :9], cfg, cache=split(model.init_cache(cfg, 2, 16)),
                                  cache_index=0, last_only=True)
    np.testing.assert_allclose(out[:, 0], want[:, 8], atol=2e-5, rtol=1e-5, err_msg=label)
    for a, b in zip(jax.tree.leaves(split(full_cache)), jax.tree.leaves(cache)):
      np.testing.assert_allclose(a, b, atol=2e-6, err_msg=label)
    nxt, _, _ = model.apply(p, toks[:, 9:], cfg, cache=cache, cache_index=9)
    np.testing.assert_allclose(nxt[:, 0], want[:, 9], atol=2e-5, rtol=1e-5, err_msg=label)
    if cfg.moe.n_routed_experts:  # the final layer routes the last position only
      k = cfg.moe.num_experts_per_tok
      np.testing.assert_array_equal(aux.expert_load[:-1], full_aux.expert_load[:-1])
      assert int(aux.expert_load[-1].sum()) == 2 * k, label
      assert int(full_aux.expert_load[-1].sum()) == 2 * 9 * k


def test_last_only_with_remat_and_one_layer():
  # The stacked path splits off the final layer: also with remat, and with a stack of
  # one layer (the scan over the others is then empty).
  cfg = configs.model_config(n_layers=1, remat=True)
  params = model.init_params(cfg, jax.random.key(0))
  toks = jax.random.randint(jax.random.key(1), (2, 7), 0, cfg.vocab_size)
  got = jax.jit(lambda p: model.apply(p, toks, cfg, last_only=True)[0])(params)
  np.testing.assert_allclose(got, model.forward(params, toks, cfg)[:, -1:], atol=2e-5,
                             rtol=1e-5)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_rope_tables_equal_computed_rope(name):
  cfg = CONFIGS[name]()
  params = model.init_params(cfg, jax.random.key(0))
  toks = jax.random.randint(jax.random.key(1), (2, 10), 0, cfg.vocab_size)
  pos = jnp.asarray([[3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [0] * 3 + list(range(7))])
  want = model.apply(params, toks, cfg, positions=pos)[0]
  got = model.apply(params, toks, cfg, positions=pos, rope_tables=model.rope_tables(cfg, 16))[0]
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


def test_mla_cache_holds_latent_not_heads():
  cfg = configs.tiny_moe_config()
  cache = model.init_cache(cfg, 2, 16)
  for group in cache.values():
    assert set(group) == {"ckv", "kpe"}
    assert group["ckv"].shape[-1] == cfg.mla.kv_lora_rank
    assert group["kpe"].shape[-1] == cfg.mla.qk_rope_head_dim


def test_left_padding_is_invisible():
  cfg = configs.tiny_moe_config()
  params = model.init_params(cfg, jax.random.key(0))
  toks = jax.random.randint(jax.random.key(1), (1, 5), 0, cfg.vocab_size)
  ref = model.forward(params, toks, cfg)
  padded = jnp.concatenate([jnp.zeros((1, 3), jnp.int32), toks], 1)
  key_mask = jnp.arange(8)[None] >= 3
  pos = jnp.maximum(jnp.arange(8)[None] - 3, 0)
  out, _, _ = model.apply(params, padded, cfg, positions=pos, key_mask=key_mask)
  np.testing.assert_allclose(out[:, 3:], ref, atol=1e-5)



@pytest.mark.parametrize("name", ["dense", "mla_moe"])
def test_packed_segments_compute_each_sequence_alone(name):
  # Two sequences and padding in one row: with segment ids and per-segment positions,
  # each sequence's logits equal those of the sequence alone. MoE routing is per token,
  # so the MoE model packs too (the nonzero selection bias included).
  cfg = CONFIGS[name]()
  params = _nonzero_bias(cfg, model.init_params(cfg, jax.random.key(0)))
  a = jax.random.randint(jax.random.key(1), (1, 5), 0, cfg.vocab_size)
  b = jax.random.randint(jax.random.key(2), (1, 7), 0, cfg.vocab_size)
  row = jnp.concatenate([a, b, jnp.zeros((1, 2), jnp.int32)], 1)
  seg = jnp.asarray([[1] * 5 + [2] * 7 + [0] * 2], jnp.int32)
  pos = jnp.asarray([list(range(5)) + list(range(7)) + [0, 0]], jnp.int32)
  fwd = jax.jit(lambda p, t: model.forward(p, t, cfg))
  packed = jax.jit(lambda p, t, s, q: model.apply(p, t, cfg, positions=q, segment_ids=s)[0])
  out = packed(params, row, seg, pos)
  np.testing.assert_allclose(out[:, :5], fwd(params, a), atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(out[:, 5:12], fwd(params, b), atol=1e-5, rtol=1e-5)
  # Without the segment mask the second sequence sees the first.
  leaky = packed(params, row, jnp.ones_like(seg), pos)
  assert float(jnp.abs(leaky[:, 5:12] - out[:, 5:12]).max()) > 1e-4
  with pytest.raises(ValueError, match="segment_ids"):
    model.apply(params, row, cfg, positions=pos, segment_ids=seg,
                cache=model.init_cache(cfg, 1, 16))
  with pytest.raises(ValueError, match="positions"):
    model.apply(params, row, cfg, segment_ids=seg)

def _routing_cfg(**kw):
  moe_cfg = dict(n_routed_experts=8, n_group=4, topk_group=2, num_experts_per_tok=2,
                 routed_scaling_factor=2.5, norm_topk_prob=True)
  moe_cfg.update(kw)
  return configs.tiny_moe_config(moe=moe_cfg)


def test_routing_hand_computed():
  cfg = _routing_cfg()
  # One token; the router is the identity on the first 8 dims so logits = x[:8].
  logits = np.array([0.5, 0.4, 3.0, -3.0, 1.0, 1.1, -1.0, -2.0], np.float32)
  x = np.zeros((1, 64), np.float32)
  x[0, :8] = logits
  router = np.zeros((64, 8), np.float32)
  router[np.arange(8), np.arange(8)] = 1.0
  s = 1 / (1 + np.exp(-logits))
  # Groups of 2: {0,1} {2,3} {4,5} {6,7}; group score = sum of its top-2 = its sum.
  # Sums: g0=s0+s1=1.2736, g1=s2+s3=0.9999, g2=s4+s5=1.4816, g3=0.3880 -> keep g2, g0.
  # (Expert 2 has the highest score but sits in a losing group: the group mask must drop it.)
  r = moe.route(jnp.asarray(x), jnp.asarray(router), jnp.zeros(8), cfg)
  chosen = sorted(np.asarray(r.experts_Nxk[0]).tolist())
  assert chosen == [4, 5]
  w = np.array([s[4], s[5]]) / (s[4] + s[5]) * 2.5
  got = dict(zip(np.asarray(r.experts_Nxk[0]).tolist(), np.asarray(r.weights_Nxk[0])))
  np.testing.assert_allclose([got[4], got[5]], w, rtol=1e-6)
  # A bias changes the selection but not the weights (which use unbiased scores).
  bias = np.zeros(8, np.float32)
  bias[0] = 2.0  # group 0 now wins, and expert 0 becomes its top choice
  r2 = moe.route(jnp.asarray(x), jnp.asarray(router), jnp.asarray(bias), cfg)
  chosen2 = sorted(np.asarray(r2.experts_Nxk[0]).tolist())
  assert chosen2 == [0, 5]
  got2 = dict(zip(np.asarray(r2.experts_Nxk[0]).tolist(), np.asarray(r2.weights_Nxk[0])))
  np.testing.assert_allclose([got2[0], got2[5]], np.array([s[0], s[5]]) / (s[0] + s[5]) * 2.5,
                             rtol=1e-6)
  # Without normalisation the weights are the raw scores times the scaling factor.
  cfg3 = _routing_cfg(norm_topk_prob=False)
  r3 = moe.route(jnp.asarray(x), jnp.asarray(router), jnp.zeros(8), cfg3)
  got3 = dict(zip(np.asarray(r3.experts_Nxk[0]).tolist(), np.asarray(r3.weights_Nxk[0])))
  np.testing.assert_allclose([got3[4], got3[5]], [2.5 * s[4], 2.5 * s[5]], rtol=1e-6)


def _all_experts_reference(x, routing, wg, wu, wd):
  """Every expert on every token (einsum), then keep the chosen ones: no sorting at all."""
  h = jnp.einsum("nd,edf->nef", x, wg)
  u = jnp.einsum("nd,edf->nef", x, wu)
  y = jnp.einsum("nef,efd->ned", jax.nn.silu(h) * u, wd)  # [N, E, D]
  gate = jnp.zeros((x.shape[0], wg.shape[0])).at[
      jnp.arange(x.shape[0])[:, None], routing.experts_Nxk].add(routing.weights_Nxk)
  return jnp.einsum("ned,ne->nd", y, gate)


def _per_token_reference(x, routing, wg, wu, wd):
  """numpy, token by token over its chosen experts only."""
  x, wg, wu, wd = (np.asarray(a, np.float64) for a in (x, wg, wu, wd))
  silu = lambda a: a / (1 + np.exp(-a))
  out = np.zeros_like(x)
  for i, (experts, weights) in enumerate(zip(np.asarray(routing.experts_Nxk),
                                              np.asarray(routing.weights_Nxk))):
    for e, w in zip(experts, weights):
      out[i] += w * ((silu(x[i] @ wg[e]) * (x[i] @ wu[e])) @ wd[e])
  return out


def _dispatch_case(n_tokens):
  cfg = _routing_cfg()
  ks = jax.random.split(jax.random.key(n_tokens), 6)
  x = jax.random.normal(ks[0], (n_tokens, 64))
  router = 0.3 * jax.random.normal(ks[1], (64, 8))
  # A strong bias piles every token on few experts: dropless must still keep them all.
  bias = jnp.array([3.0, 3.0, 0, 0, 0, 0, 0, 0])
  wg, wu = (0.1 * jax.random.normal(k, (8, 64, 32)) for k in ks[2:4])
  wd = 0.1 * jax.random.normal(ks[4], (8, 32, 64))
  return x, moe.route(x, router, bias, cfg), wg, wu, wd


@pytest.mark.parametrize("grouped", [True, False, None])
@pytest.mark.parametrize("n_tokens", [1, 7, 64])
def test_dropless_dispatch_equals_all_experts(n_tokens, grouped):
  # Both forms (sorted + ragged_dot; dense over all experts) and the backend default.
  x, r, wg, wu, wd = _dispatch_case(n_tokens)
  out, load = moe.dispatch(x, r, wg, wu, wd, grouped=grouped)
  np.testing.assert_allclose(out, _all_experts_reference(x, r, wg, wu, wd), atol=1e-5,
                             rtol=1e-5)
  np.testing.assert_allclose(out, _per_token_reference(x, r, wg, wu, wd), atol=1e-5,
                             rtol=1e-5)
  np.testing.assert_array_equal(load, np.bincount(np.asarray(r.experts_Nxk).ravel(),
                                                  minlength=8))
  assert int(load.sum()) == n_tokens * 2


def test_dispatch_forms_have_the_same_gradients():
  # Training runs whichever form the backend picks: their gradients (inputs, combine
  # weights, every expert weight) must agree.
  x, r, wg, wu, wd = _dispatch_case(16)

  def loss(grouped, x, w, wg, wu, wd):
    out, _ = moe.dispatch(x, r._replace(weights_Nxk=w), wg, wu, wd, grouped=grouped)
    return jnp.sum(jnp.sin(out))

  args = (x, r.weights_Nxk, wg, wu, wd)
  g_grouped = jax.grad(functools.partial(loss, True), argnums=range(5))(*args)
  g_dense = jax.grad(functools.partial(loss, False), argnums=range(5))(*args)
  for a, b in zip(g_grouped, g_dense):
    assert float(jnp.abs(a).max()) > 0
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)


def test_balancing_bias_moves_loads_toward_uniform():
  cfg = _routing_cfg(n_group=1, topk_group=1)
  ks = jax.random.split(jax.random.key(0), 2)
  # A skewed batch: a constant feature pushes most tokens to experts 0 and 1.
  x = jax.random.normal(ks[0], (512, 64)).at[:, 0].set(1.0)
  router = (0.1 * jax.random.normal(ks[1], (64, 8))).at[0, 0].add(2.0).at[0, 1].add(1.0)

  def load_of(bias):
    r = moe.route(x, router, bias[0], cfg)
    return jnp.bincount(r.experts_Nxk.reshape(-1), length=8)

  @jax.jit
  def run(bias):
    def body(bias, _):
      new = moe.update_router_bias(bias, load_of(bias)[None], 3e-3)
      load = load_of(new)
      return new, load.max() / load.mean()
    return jax.lax.scan(body, bias, None, length=200)

  start = float(load_of(jnp.zeros((1, 8))).max() / 128.0)
  bias, history = run(jnp.zeros((1, 8)))
  history = np.asarray(history)
  assert start > 3.0, "the batch should start skewed"
  assert history[-1] < 1.1, history[::20]
  assert history[20] < start and history[100] < history[5], history[::20]
  # The bias never touches the combine weights: only the selection moved.
  assert float(jnp.abs(bias).max()) > 0


def test_aux_balance_loss_prefers_uniform():
  cfg = _routing_cfg(n_group=1, topk_group=1, aux_loss_alpha=1.0)
  n = 64
  # Uniform: each token picks experts (2i, 2i+1) mod 8 with equal scores -> f_i = 1, P_i = 1/8.
  experts = jnp.stack([jnp.arange(n) * 2 % 8, (jnp.arange(n) * 2 + 1) % 8], 1)
  scores = jnp.full((n, 8), 0.5)
  uni = moe.sequence_balance_loss(moe.Routing(experts, jnp.ones((n, 2)), scores), 1, cfg)
  np.testing.assert_allclose(float(uni), 1.0, rtol=1e-6)  # sum_i f_i P_i = 8 * 1 * 1/8
  skew = moe.sequence_balance_loss(
      moe.Routing(jnp.tile(jnp.array([[0, 1]]), (n, 1)), jnp.ones((n, 2)),
                  scores.at[:, :2].set(5.0)), 1, cfg)
  assert float(skew) > 2.0


@pytest.mark.parametrize("override,needle", [
    (dict(n_heads=6, n_kv_heads=4), "multiple of n_kv_heads"),
    (dict(moe=dict(n_routed_experts=8, num_experts_per_tok=9)), "num_experts_per_tok"),
    (dict(moe=dict(n_routed_experts=8, n_group=3)), "n_group"),
    (dict(moe=dict(n_routed_experts=8, n_group=4, topk_group=5)), "topk_group"),
    (dict(attention="mha"), "allowed"),
    (dict(dtype="float16"), "allowed"),
])
def test_invalid_model_configs(override, needle):
  with pytest.raises(configs.ConfigError, match=needle):
    configs.validate_model(configs.model_config(**override))


def test_unknown_key_lists_valid_keys():
  with pytest.raises(configs.ConfigError, match=r"Unknown config key 'n_head'.*n_heads"):
    configs.model_config(n_head=4)


def test_mesh_errors():
  with pytest.raises(configs.ConfigError, match="multiplies to 6"):
    configs.mesh_shape(configs.mesh_config(data=3, fsdp=2), 8)
  assert configs.mesh_shape(configs.mesh_config(data=-1, tensor=2), 8) == (4, 1, 1, 2)
  with pytest.raises(configs.ConfigError, match="expert=3 must divide"):
    configs.validate_mesh_for_model((1, 1, 3, 1), configs.tiny_moe_config())
