"""The decoder: one code path for dense (GQA) and DeepSeek-V3-style (MLA + MoE) models.

Parameters are a plain nested dict. Layers are stacked per kind and run with
`lax.scan`: `dense_layers` (every layer of a dense model, or the first
`first_k_dense_replace` of an MoE model) and `moe_layers` (the rest); each leaf has a
leading layer axis. `param_specs(config)` gives every leaf's shape and logical axes, so
shardings are known before anything is allocated. `unstack_layers` splits a stack into a
tuple of per-layer trees (params or cache), which `apply` runs as an unrolled loop: the
sampler's decode steps then slice no weights or cache per step.

Shape letters: B batch, T length, S cache slots, D width, V vocab, L layers.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from r1jax import sharding
from r1jax.model import layers, moe

Array = jax.Array
Params = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class ParamSpec:
  shape: tuple[int, ...]
  axes: tuple[str | None, ...]
  init: str  # 'normal', 'ones' or 'zeros'


class Aux(NamedTuple):
  expert_load: Array  # [L_moe, E] tokens routed to each expert (zeros shape if dense)
  balance_loss: Array  # scalar sequence-wise balance loss (0 when off)


def _attention_specs(c: Any, L: int) -> dict[str, ParamSpec]:
  D, H = c.d_model, c.n_heads
  s: dict[str, ParamSpec] = {}
  if c.attention == "gqa":
    E, K = c.head_dim, c.n_kv_heads
    s["wq"] = ParamSpec((L, D, H, E), ("layers", "embed", "heads", "head_dim"), "normal")
    s["wk"] = ParamSpec((L, D, K, E), ("layers", "embed", "kv_heads", "head_dim"), "normal")
    s["wv"] = ParamSpec((L, D, K, E), ("layers", "embed", "kv_heads", "head_dim"), "normal")
    s["wo"] = ParamSpec((L, H, E, D), ("layers", "heads", "head_dim", "embed"), "normal")
    if c.qkv_bias:
      s["bq"] = ParamSpec((L, H, E), ("layers", "heads", "head_dim"), "zeros")
      s["bk"] = ParamSpec((L, K, E), ("layers", "kv_heads", "head_dim"), "zeros")
      s["bv"] = ParamSpec((L, K, E), ("layers", "kv_heads", "head_dim"), "zeros")
  else:
    m = c.mla
    qk = m.qk_nope_head_dim + m.qk_rope_head_dim
    if m.q_lora_rank:
      s["wq_a"] = ParamSpec((L, D, m.q_lora_rank), ("layers", "embed", "q_lora"), "normal")
      s["q_norm"] = ParamSpec((L, m.q_lora_rank), ("layers", "q_lora"), "ones")
      s["wq_b"] = ParamSpec((L, m.q_lora_rank, H, qk), ("layers", "q_lora", "heads", "head_dim"),
                            "normal")
    else:
      s["wq"] = ParamSpec((L, D, H, qk), ("layers", "embed", "heads", "head_dim"), "normal")
    s["wkv_a"] = ParamSpec((L, D, m.kv_lora_rank + m.qk_rope_head_dim),
                           ("layers", "embed", "kv_lora"), "normal")
    s["kv_norm"] = ParamSpec((L, m.kv_lora_rank), ("layers", "kv_lora"), "ones")
    s["wkv_b"] = ParamSpec((L, m.kv_lora_rank, H, m.qk_nope_head_dim + m.v_head_dim),
                           ("layers", "kv_lora", "heads", "head_dim"), "normal")
    s["wo"] = ParamSpec((L, H, m.v_head_dim, D), ("layers", "heads", "head_dim", "embed"),
                        "normal")
  return s


def _mlp_specs(L: int, D: int, F: int, prefix: str = "") -> dict[str, ParamSpec]:
  return {
      f"{prefix}w_gate": ParamSpec((L, D, F), ("layers", "embed", "mlp"), "normal"),
      f"{prefix}w_up": ParamSpec((L, D, F), ("layers", "embed", "mlp"), "normal"),
      f"{prefix}w_down": ParamSpec((L, F, D), ("layers", "mlp", "embed"), "normal"),
  }


def layer_counts(c: Any) -> tuple[int, int]:
  """(dense layers, MoE layers)."""
  if not c.moe.n_routed_experts:
    return c.n_layers, 0
  k = c.moe.first_k_dense_replace
  return k, c.n_layers - k


def param_specs(c: Any) -> Params:
  """Shape, logical axes and initialiser of every parameter."""
  D, V = c.d_model, c.vocab_size
  specs: Params = {
      "embed": ParamSpec((V, D), ("vocab", "embed"), "normal"),
      "final_norm": ParamSpec((D,), ("embed",), "ones"),
  }
  if not c.tie_embeddings:
    specs["lm_head"] = ParamSpec((D, V), ("embed", "vocab"), "normal")
  n_dense, n_moe = layer_counts(c)
  norms = lambda L: {"attn_norm": ParamSpec((L, D), ("layers", "embed"), "ones"),
                     "mlp_norm": ParamSpec((L, D), ("layers", "embed"), "ones")}
  if n_dense:
    specs["dense_layers"] = {**norms(n_dense), "attn": _attention_specs(c, n_dense),
                             "mlp": _mlp_specs(n_dense, D, c.mlp_dim)}
  if n_moe:
    e = c.moe
    E, F = e.n_routed_experts, e.moe_intermediate_size
    L = n_moe
    experts = {
        "router": ParamSpec((L, D, E), ("layers", "embed", None), "normal"),
        "router_bias": ParamSpec((L, E), ("layers", None), "zeros"),
        "w_gate": ParamSpec((L, E, D, F), ("layers", "experts", "embed", "expert_mlp"), "normal"),
        "w_up": ParamSpec((L, E, D, F), ("layers", "experts", "embed", "expert_mlp"), "normal"),
        "w_down": ParamSpec((L, E, F, D), ("layers", "experts", "expert_mlp", "embed"), "normal"),
    }
    if e.n_shared_experts:
      experts["shared"] = _mlp_specs(L, D, e.n_shared_experts * F)
    specs["moe_layers"] = {**norms(L), "attn": _attention_specs(c, L), "moe": experts}
  return specs


def _is_spec(x: Any) -> bool:
  return isinstance(x, ParamSpec)


def param_axes(config: Any) -> Params:
  """Logical axis names of every parameter (same tree as the params)."""
  return jax.tree.map(lambda s: s.axes, param_specs(config), is_leaf=_is_spec)


def init_params(config: Any, rng: Array) -> Params:
  """Random parameters for `config` (the model section of an experiment config)."""
  specs = param_specs(config)
  leaves, treedef = jax.tree.flatten(specs, is_leaf=_is_spec)
  keys = jax.random.split(rng, len(leaves))
  dt = layers.dtype_of(config.param_dtype)

  def make(spec: ParamSpec, key: Array) -> Array:
    if spec.init == "ones":
      return jnp.ones(spec.shape, dt)
    if spec.init == "zeros":
      return jnp.zeros(spec.shape, dt)
    return (config.init_std * jax.random.normal(key, spec.shape, jnp.float32)).astype(dt)

  return jax.tree.unflatten(treedef, [make(s, k) for s, k in zip(leaves, keys)])


# ---------------------------------------------------------------------------------------
# Decode cache


def cache_specs(config: Any, batch: int, max_len: int) -> Params:
  """Shapes/axes of the decode cache. MLA caches only the latent and the rope key."""
  n_dense, n_moe = layer_counts(config)
  out: Params = {}
  for name, L in (("dense_layers", n_dense), ("moe_layers", n_moe)):
    if not L:
      continue
    if config.attention == "gqa":
      # Heads before slots, keys transposed (see `layers.gqa_attention`).
      K, E = config.n_kv_heads, config.head_dim
      out[name] = {
          "k": ParamSpec((L, batch, K, E, max_len),
                         ("layers", "batch", "kv_heads", "head_dim", "length"), "zeros"),
          "v": ParamSpec((L, batch, K, max_len, E),
                         ("layers", "batch", "kv_heads", "length", "head_dim"), "zeros"),
      }
    else:
      m = config.mla
      out[name] = {
          "ckv": ParamSpec((L, batch, max_len, m.kv_lora_rank),
                           ("layers", "batch", "length", "kv_lora"), "zeros"),
          "kpe": ParamSpec((L, batch, max_len, m.qk_rope_head_dim),
                           ("layers", "batch", "length", None), "zeros"),
      }
  return out


def init_cache(config: Any, batch: int, max_len: int) -> Params:
  """A zero decode cache for `batch` sequences of up to `max_len` tokens."""
  dt = layers.dtype_of(config.dtype)
  return jax.tree.map(lambda s: jnp.zeros(s.shape, dt), cache_specs(config, batch, max_len),
                      is_leaf=_is_spec)


def cache_axes(config: Any, batch: int, max_len: int) -> Params:
  return jax.tree.map(lambda s: s.axes, cache_specs(config, batch, max_len), is_leaf=_is_spec)


STACKS = ("dense_layers", "moe_layers")


def unstack_layers(tree: Params) -> Params:
  """Params or cache with each layer stack split into a tuple of per-layer trees."""
  out = dict(tree)
  for name in STACKS:
    if name in tree and not isinstance(tree[name], tuple):
      n = jax.tree.leaves(tree[name])[0].shape[0]
      out[name] = tuple(jax.tree.map(lambda a, i=i: a[i], tree[name]) for i in range(n))
  return out


def _fuse_swiglu(p: Params) -> Params:
  # [(L,) D, F] x 2 -> [(L,) D, 2, F]: F stays the last axis, so an F-sharded pair
  # stays local to each device.
  return {"w_gate_up": jnp.stack([p["w_gate"], p["w_up"]], axis=-2), "w_down": p["w_down"]}


def fuse_projections(params: Params) -> Params:
  """Params with the matmuls that read the same input joined: GQA's q, k and v
  weights (and biases) into `wqkv` [(L,) D, H+2K, E] (`bqkv`), and every SwiGLU's gate
  and up weights into `w_gate_up` [(L,) D, 2, F]; per layer (after `unstack_layers`), the
  routed experts' gate and up weights into `w_gate_up` [D, 2, E, F], which runs the
  dense expert form (`moe.dispatch_joined`). `apply` computes the same function from
  either form. XLA:CPU runs one wide small-batch matmul much faster than two
  narrow ones (the sampler's decode step: benchmarks/sampler.py); the join copies the
  weights once, so it is meant for a decode loop, not for a training step.
  MLA projections are left as they are; joined weights stay as they are (fusing twice
  is a no-op).
  """
  out = dict(params)
  for name in STACKS:
    if name in params:
      group = params[name]
      # Layer by layer where the stack is split (`unstack_layers`): XLA then fuses each
      # layer's slice and join into one copy.
      out[name] = (tuple(map(_fuse_layer, group)) if isinstance(group, tuple)
                   else _fuse_layer(group))
  return out


def _fuse_layer(layer: Params) -> Params:
  """`fuse_projections` of one layer's (or one stack's) params."""
  layer = dict(layer)
  attn = dict(layer["attn"])
  if "wk" in attn:  # GQA
    attn["wqkv"] = jnp.concatenate([attn.pop(w) for w in ("wq", "wk", "wv")], axis=-2)
    if "bq" in attn:
      attn["bqkv"] = jnp.concatenate([attn.pop(b) for b in ("bq", "bk", "bv")], axis=-2)
  layer["attn"] = attn
  if "w_gate" in layer.get("mlp", {}):
    layer["mlp"] = _fuse_swiglu(layer["mlp"])
  if "w_gate" in layer.get("moe", {}).get("shared", {}):
    layer["moe"] = {**layer["moe"], "shared": _fuse_swiglu(layer["moe"]["shared"])}
  if "w_gate" in layer.get("moe", {}) and layer["moe"]["w_gate"].ndim == 3:
    # Routed experts, for `moe.dispatch_joined` (a stacked [L, E, D, F] group stays).
    mp = dict(layer["moe"])
    mp["w_gate_up"] = moe.join_gate_up(mp.pop("w_gate"), mp.pop("w_up"))
    layer["moe"] = mp
  return layer


def _cache_len(cache: Params) -> int:
  """Slots S of a cache whose layer stacks may be split (`unstack_layers`)."""
  group = next(cache[n] for n in STACKS if n in cache)
  stacked = not isinstance(group, tuple)
  layer = group if stacked else group[0]
  if "v" in layer:  # GQA values [(L,) B, K, S, E]
    return layer["v"].shape[2 + stacked]
  return layer["ckv"].shape[1 + stacked]  # MLA [(L,) B, S, R]


# ---------------------------------------------------------------------------------------
# Forward


def _block(c: Any, x: Array, lp: Params, lcache: Params | None, cos: Array, sin: Array,
           mask: Array, cache_index: Array, token_mask: Array | None, is_moe: bool,
           last_only: bool = False) -> tuple[Array, Params | None, Array, Array]:
  """One decoder layer; with `last_only`, every position feeds the keys and values
  (and the cache) but only the last one goes on (output [B, 1, D])."""
  attend = layers.gqa_attention if c.attention == "gqa" else layers.mla_attention
  h, lcache = attend(lp["attn"], layers.rms_norm(x, lp["attn_norm"], c.norm_eps), cos, sin,
                     mask, c, lcache, cache_index, last_query=last_only)
  if last_only:
    x = x[:, -1:]
    token_mask = None if token_mask is None else token_mask[:, -1:]
  x = sharding.constrain(x + h, ("batch", "length", "embed"))
  y = layers.rms_norm(x, lp["mlp_norm"], c.norm_eps)
  n_exp = max(c.moe.n_routed_experts, 1)
  if not is_moe:
    out = layers.swiglu(lp["mlp"], y)
    load = jnp.zeros((n_exp,), jnp.int32)
    bal = jnp.zeros((), jnp.float32)
  else:
    mp = lp["moe"]
    b, t, d = y.shape
    flat = y.reshape(b * t, d)
    r = moe.route(flat, mp["router"], mp["router_bias"], c)
    if "w_gate_up" in mp:  # joined by `fuse_projections`
      out, load = moe.dispatch_joined(flat, r, mp["w_gate_up"], mp["w_down"])
    else:
      out, load = moe.dispatch(flat, r, mp["w_gate"], mp["w_up"], mp["w_down"])
    out = out.reshape(b, t, d)
    if c.moe.n_shared_experts:
      out = out + layers.swiglu(mp["shared"], y)
    if c.moe.aux_loss_alpha:
      tm = None if token_mask is None else token_mask.reshape(-1)
      bal = moe.sequence_balance_loss(r, b, c, tm)
    else:
      bal = jnp.zeros((), jnp.float32)
    if token_mask is not None:
      # Count only real tokens toward the load that steers the balancing bias.
      valid = jnp.repeat(token_mask.reshape(-1).astype(jnp.int32), c.moe.num_experts_per_tok)
      load = jnp.zeros((n_exp,), jnp.int32).at[r.experts_Nxk.reshape(-1)].add(valid)
  x = sharding.constrain(x + out, ("batch", "length", "embed"))
  return x, lcache, load, bal


def _run_stack(c: Any, x: Array, stack: Params, cache: Params | None, is_moe: bool, cos: Array,
               sin: Array, mask: Array, cache_index: Array, token_mask: Array | None,
               last_only: bool = False) -> tuple[Array, Params | None, Array, Array]:
  """The layers of one stack; `last_only` applies to its final layer (see `_block`)."""
  def layer(last, x, inputs):
    lp, lcache = inputs
    x, lcache, load, bal = _block(c, x, lp, lcache, cos, sin, mask, cache_index, token_mask,
                                  is_moe, last)
    return x, (lcache, load, bal)

  body, last_body = functools.partial(layer, False), functools.partial(layer, True)
  if c.remat:
    body, last_body = (jax.checkpoint(f, prevent_cse=False) for f in (body, last_body))
  if isinstance(stack, tuple):  # unstacked layers (`unstack_layers`): an unrolled loop
    caches, loads, bals = [], [], []
    for i, lp in enumerate(stack):
      f = last_body if last_only and i == len(stack) - 1 else body
      x, (lc, ld, bl) = f(x, (lp, None if cache is None else cache[i]))
      caches.append(lc)
      loads.append(ld)
      bals.append(bl)
    return x, None if cache is None else tuple(caches), jnp.stack(loads), sum(bals)
  if not last_only:
    x, (cache, load, bal) = jax.lax.scan(body, x, (stack, cache))
    return x, cache, load, bal.sum()
  # The final layer apart: scan the others, then join its cache and statistics back on.
  x, (cache_f, load_f, bal_f) = jax.lax.scan(body, x, jax.tree.map(lambda a: a[:-1],
                                                                     (stack, cache)))
  x, (lc, ld, bl) = last_body(x, jax.tree.map(lambda a: a[-1], (stack, cache)))
  join = lambda a, b: jnp.concatenate([a, b[None]])
  cache = None if cache is None else jax.tree.map(join, cache_f, lc)
  return x, cache, join(load_f, ld), bal_f.sum() + bl


def _rope_dim(config: Any) -> int:
  """Width of the rotated part of a query/key head."""
  return config.head_dim if config.attention == "gqa" else config.mla.qk_rope_head_dim


def rope_tables(config: Any, length: int) -> tuple[Array, Array]:
  """cos, sin [length, rope_dim/2] of positions 0..length-1, for `apply(rope_tables=)`."""
  cos, sin = layers.rope_cos_sin(config.rope, _rope_dim(config), jnp.arange(length)[None])
  return cos[0], sin[0]


def apply(params: Params, tokens: Array, config: Any, *, positions: Array | None = None,
          cache: Params | None = None, cache_index: Array | int = 0,
          key_mask: Array | None = None, token_mask: Array | None = None,
          segment_ids: Array | None = None, return_hidden: bool = False,
          rope_tables: tuple[Array, Array] | None = None, last_only: bool = False
          ) -> tuple[Array, Params | None, Aux]:
  """Full forward: logits float32 [B, T, V], the updated cache, and MoE aux outputs.

  tokens: int32 [B, T]. positions: int32 [B, T] (default 0..T-1). With `cache`, the T
  tokens are written at slots cache_index..cache_index+T-1 and attend to every earlier
  valid slot; `key_mask` [B, S] marks valid key slots (S = T without a cache, else the
  cache length), e.g. to hide left padding. A prefill (a static `cache_index` of 0)
  reads back only the T slots it wrote. `token_mask` [B, T] marks real tokens for
  the MoE load statistics and balance loss. `segment_ids` int32 [B, T] (no cache
  only) packs several sequences into a row: a query attends only to keys of its own
  segment, so each sequence computes exactly what it would alone, given `positions`
  that restart at 0 per segment (both from `train.sft.pack`). Routing is per token, so
  MoE outputs pack too; the sequence-wise balance loss, if on, still treats each row as
  one sequence. Params and cache may have their layer stacks
  split by `unstack_layers` (both or neither). `rope_tables` (from `rope_tables`, longer
  than every position) are looked up instead of recomputing cos/sin: a decode loop
  then evaluates no trigonometry per step. With `last_only`, the output (logits or
  hidden) is the last position's alone, [B, 1, ...]: the final layer then computes
  keys and values (and the cache) for every position but its query, output
  projection and MLP for the last one only (a sampler's prefill: ~1/L of its work).
  """
  c = config
  b, t = tokens.shape
  dt = layers.dtype_of(c.dtype)
  if segment_ids is not None and (cache is not None or positions is None):
    raise ValueError("segment_ids (packed sequences) needs per-segment `positions` and "
                     "works only without a cache (training and scoring, not decoding)")
  if positions is None:
    positions = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32) + cache_index, (b, t))
  x = jnp.take(params["embed"], tokens, axis=0).astype(dt)
  x = sharding.constrain(x, ("batch", "length", "embed"))
  if rope_tables is None:
    cos, sin = layers.rope_cos_sin(c.rope, _rope_dim(c), positions)
  else:
    cos, sin = rope_tables[0][positions], rope_tables[1][positions]
  # A prefill (the T tokens written from a static slot 0) attends to those T slots only,
  # not to the whole cache.
  prefill = cache is not None and isinstance(cache_index, int) and cache_index == 0
  cache_index = jnp.asarray(cache_index, jnp.int32)
  s_len = t if cache is None or prefill else _cache_len(cache)
  if key_mask is not None:
    key_mask = key_mask[:, :s_len]
  mask = layers.attention_mask(t, s_len, cache_index, key_mask)
  if segment_ids is not None:
    mask = mask & (segment_ids[:, :, None] == segment_ids[:, None, :])
  mask = jnp.broadcast_to(mask, (b, t, s_len))
  new_cache: Params | None = None if cache is None else {}
  n_exp = max(c.moe.n_routed_experts, 1)
  load = jnp.zeros((0, n_exp), jnp.int32)
  bal = jnp.zeros((), jnp.float32)
  final_stack = [n for n in STACKS if n in params][-1]
  for name, is_moe in (("dense_layers", False), ("moe_layers", True)):
    if name not in params:
      continue
    x, lc, ld, bl = _run_stack(c, x, params[name], None if cache is None else cache[name],
                               is_moe, cos, sin, mask, cache_index, token_mask,
                               last_only and name == final_stack)
    if cache is not None:
      new_cache[name] = lc
    if is_moe:
      load, bal = ld, bal + bl
  x = layers.rms_norm(x, params["final_norm"], c.norm_eps)
  if return_hidden:
    return x, new_cache, Aux(load, bal)
  return logits_from_hidden(params, x, c), new_cache, Aux(load, bal)


def logits_from_hidden(params: Params, x_BxTxD: Array, config: Any) -> Array:
  """Float32 logits [B, T, V] from the final-normed hidden states (`return_hidden`)."""
  head = params["embed"].T if config.tie_embeddings else params["lm_head"]
  logits = jnp.einsum("btd,dv->btv", x_BxTxD, head.astype(x_BxTxD.dtype),
                      preferred_element_type=jnp.float32)
  return sharding.constrain(logits, ("batch", "length", "vocab"))


def target_logprobs(params: Params, x_BxTxD: Array, targets_BxT: Array, config: Any
                    ) -> tuple[Array, Array]:
  """log p(target) and the entropy of p, float32 [B, T], p = softmax of the logits of
  the final-normed hidden states (`return_hidden`): the same function as
  `log_softmax(logits_from_hidden(...))` gathered at the targets, with a hand-written
  VJP (`_head_logprobs`)."""
  head = params["embed"].T if config.tie_embeddings else params["lm_head"]
  return _head_logprobs(x_BxTxD, head.astype(x_BxTxD.dtype), targets_BxT)


@jax.custom_vjp
def _head_logprobs(x_BxTxD: Array, head_DxV: Array, targets_BxT: Array) -> tuple[Array, Array]:
  """(log p(target), entropy) [B, T] of p = softmax(x @ head).

  The VJP forms the logits' gradient once, in the logits' own layout, from the saved
  log-probabilities: dz = g_lp * onehot(target) - p * (g_lp + g_ent * (log p + H)).
  Autodiff of log_softmax + take_along_axis instead scatters into a zero [B, T, V]
  array and, on CPU, recomputes that gradient in the transposed layout the head's
  weight gradient reads; the head's forward + backward took twice as long
  (benchmarks/grpo_step.py, README there).
  """
  return _head_logprobs_fwd(x_BxTxD, head_DxV, targets_BxT)[0]


def _head_logprobs_fwd(x_BxTxD: Array, head_DxV: Array, targets_BxT: Array):
  logits = jnp.einsum("btd,dv->btv", x_BxTxD, head_DxV, preferred_element_type=jnp.float32)
  logp_all = jax.nn.log_softmax(sharding.constrain(logits, ("batch", "length", "vocab")), -1)
  logp = jnp.take_along_axis(logp_all, targets_BxT[..., None], axis=-1)[..., 0]
  entropy = -(jnp.exp(logp_all) * logp_all).sum(-1)
  return (logp, entropy), (x_BxTxD, head_DxV, targets_BxT, logp_all, entropy)


def _head_logprobs_bwd(res: tuple, g: tuple[Array, Array]) -> tuple[Array, Array, None]:
  x, head, targets, logp_all, entropy = res
  g_lp, g_ent = g[0][..., None], g[1][..., None]
  onehot = jnp.arange(logp_all.shape[-1]) == targets[..., None]
  dz = (jnp.where(onehot, g_lp, 0.0)
        - jnp.exp(logp_all) * (g_lp + g_ent * (logp_all + entropy[..., None])))
  dz = sharding.constrain(dz, ("batch", "length", "vocab")).astype(x.dtype)
  dx = jnp.einsum("btv,dv->btd", dz, head, preferred_element_type=jnp.float32)
  dhead = jnp.einsum("btd,btv->dv", x, dz, preferred_element_type=jnp.float32)
  return dx.astype(x.dtype), dhead.astype(head.dtype), None


_head_logprobs.defvjp(_head_logprobs_fwd, _head_logprobs_bwd)


def forward(params: Params, tokens: Array, config: Any) -> Array:
  """Logits float32 [B, T, V] for int32 tokens [B, T] (no cache, no padding)."""
  return apply(params, tokens, config)[0]
