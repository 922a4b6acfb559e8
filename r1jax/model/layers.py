"""Building blocks: RMSNorm, RoPE (plain, YaRN, Llama 3), GQA and MLA attention, SwiGLU.

Shape letters: B batch, T query length, S key length (cache slots), D model width,
H query heads, K key/value heads, G query heads per K, E head width, R kv latent
width (MLA), Q query latent width (MLA), N rope width (MLA), F MLP width.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from r1jax import sharding

Array = jax.Array
Params = dict[str, Any]
NEG_INF = -1e30


def dtype_of(name: str) -> jnp.dtype:
  return {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[name]


def rms_norm(x: Array, scale: Array, eps: float) -> Array:
  """RMSNorm computed in float32, returned in x's dtype."""
  xf = x.astype(jnp.float32)
  y = xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + eps)
  return (y * scale.astype(jnp.float32)).astype(x.dtype)


# ---------------------------------------------------------------------------------------
# Rotary embeddings


def _yarn_mscale(scale: float, mscale: float = 1.0) -> float:
  return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def rope_frequencies(rope: Any, dim: int) -> tuple[Array, float]:
  """Inverse frequencies [dim/2] and the cos/sin attention factor for a rope config."""
  base = rope.theta
  inv = 1.0 / (base ** (jnp.arange(0, dim, 2, dtype=jnp.float32) / dim))
  if rope.scaling == "yarn":
    factor, orig = rope.factor, rope.original_max_position

    def correction_dim(rot: float) -> float:
      return (dim * math.log(orig / (rot * 2 * math.pi))) / (2 * math.log(base))

    low = max(math.floor(correction_dim(rope.beta_fast)), 0)
    high = min(math.ceil(correction_dim(rope.beta_slow)), dim - 1)
    if low == high:
      high += 0.001
    ramp = jnp.clip((jnp.arange(dim // 2, dtype=jnp.float32) - low) / (high - low), 0, 1)
    extrapolation = 1.0 - ramp
    inv = (inv / factor) * (1 - extrapolation) + inv * extrapolation
    if rope.mscale and rope.mscale_all_dim:
      attn_factor = _yarn_mscale(factor, rope.mscale) / _yarn_mscale(factor, rope.mscale_all_dim)
    else:
      attn_factor = _yarn_mscale(factor)
    return inv, attn_factor
  if rope.scaling == "llama3":
    factor, orig = rope.factor, rope.original_max_position
    low_wl = orig / rope.low_freq_factor
    high_wl = orig / rope.high_freq_factor
    wavelen = 2 * math.pi / inv
    scaled = jnp.where(wavelen > low_wl, inv / factor, inv)
    smooth = (orig / wavelen - rope.low_freq_factor) / (rope.high_freq_factor - rope.low_freq_factor)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= high_wl) & (wavelen <= low_wl)
    return jnp.where(medium, smoothed, scaled), 1.0
  return inv, 1.0


def rope_cos_sin(rope: Any, dim: int, positions: Array) -> tuple[Array, Array]:
  """cos, sin of shape [B, T, dim/2] for integer positions [B, T]."""
  inv, factor = rope_frequencies(rope, dim)
  angles = positions.astype(jnp.float32)[..., None] * inv
  return jnp.cos(angles) * factor, jnp.sin(angles) * factor


def apply_rope(x: Array, cos: Array, sin: Array) -> Array:
  """Rotates the two halves of the last axis (HF 'rotate_half' layout); x [B,T,...,E]."""
  half = x.shape[-1] // 2
  extra = x.ndim - cos.ndim
  cos = cos.reshape(cos.shape[:2] + (1,) * extra + cos.shape[2:])
  sin = sin.reshape(sin.shape[:2] + (1,) * extra + sin.shape[2:])
  xf = x.astype(jnp.float32)
  x1, x2 = xf[..., :half], xf[..., half:]
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return out.astype(x.dtype)


# ---------------------------------------------------------------------------------------
# Attention


def attention_mask(q_len: int, k_len: int, cache_index: Array, key_mask: Array | None
                   ) -> Array:
  """[B or 1, T, S] bool: key slot <= query slot, and the key is valid."""
  q_slot = cache_index + jnp.arange(q_len)
  k_slot = jnp.arange(k_len)
  mask = (k_slot[None, :] <= q_slot[:, None])[None]
  if key_mask is not None:
    mask = mask & key_mask[:, None, :].astype(bool)
  return mask


def _write_cache(cache: Array, new: Array, index: Array, axis: int = 1) -> Array:
  """`new` written into `cache` from position `index` of its slot axis."""
  start = tuple(index if a == axis else 0 for a in range(cache.ndim))
  return jax.lax.dynamic_update_slice(cache, new.astype(cache.dtype), start)


def gqa_attention(p: Params, x_BxTxD: Array, cos: Array, sin: Array, mask_BxTxS: Array,
                  cfg: Any, cache: Params | None, cache_index: Array, last_query: bool = False
                  ) -> tuple[Array, Params | None]:
  """Grouped-query attention with RoPE; writes k/v into `cache` when given. With
  `last_query`, only the last position queries (output [B, 1, D]); keys and values
  still come from all T positions.

  The cache holds keys transposed, [B, K, E, S], and values as [B, K, S, E] (heads
  lead, so a step writes one slot without moving the cache). A decode step (T = 1)
  computes its scores and output as broadcast multiply-adds, vectorised along S and E,
  that XLA fuses into two loops: as dots they were many tiny batched matmuls, and on
  CPU they made the whole step ~5% slower and at batch 1 made XLA copy the cache.
  """
  dt = x_BxTxD.dtype
  if "wqkv" in p:  # joined by `fuse_projections`: one matmul
    qkv = jnp.einsum("btd,dne->btne", x_BxTxD, p["wqkv"].astype(dt))
    if cfg.qkv_bias:
      qkv = qkv + p["bqkv"].astype(dt)
    h, kh = cfg.n_heads, cfg.n_kv_heads
    q, k, v = qkv[:, :, :h], qkv[:, :, h:h + kh], qkv[:, :, h + kh:]
    q = q[:, -1:] if last_query else q
  else:
    xq = x_BxTxD[:, -1:] if last_query else x_BxTxD
    q = jnp.einsum("btd,dhe->bthe", xq, p["wq"].astype(dt))
    k = jnp.einsum("btd,dke->btke", x_BxTxD, p["wk"].astype(dt))
    v = jnp.einsum("btd,dke->btke", x_BxTxD, p["wv"].astype(dt))
    if cfg.qkv_bias:
      q, k, v = q + p["bq"].astype(dt), k + p["bk"].astype(dt), v + p["bv"].astype(dt)
  k = apply_rope(k, cos, sin)
  if last_query:
    cos, sin, mask_BxTxS = cos[:, -1:], sin[:, -1:], mask_BxTxS[:, -1:]
  q = sharding.constrain(apply_rope(q, cos, sin), ("batch", "length", "heads", "head_dim"))
  v = v.transpose(0, 2, 1, 3)  # [B, K, T, E]
  if cache is None:
    keys = k.transpose(0, 2, 1, 3)  # [B, K, T, E]
  else:
    cache = {"k": _write_cache(cache["k"], k.transpose(0, 2, 3, 1), cache_index, axis=3),
             "v": _write_cache(cache["v"], v, cache_index, axis=2)}
    span = mask_BxTxS.shape[-1]  # the slots attended to (a prefill: its own T)
    keys = cache["k"][..., :span].astype(dt)  # [B, K, E, S]
    v = cache["v"][:, :, :span].astype(dt)  # [B, K, S, E]
  b, t, h, e = q.shape
  kh = v.shape[1]
  q = q.reshape(b, t, kh, h // kh, e)
  f32 = jnp.float32
  if cache is not None and t == 1:  # decode
    o = _decode_attention(q[:, 0], keys, v, mask_BxTxS[:, 0], e ** -0.5)
    return _out_proj(o.astype(dt).reshape(b, 1, h * e), p["wo"].astype(dt)), cache
  if cache is None:
    s = jnp.einsum("btkge,bkse->bkgts", q, keys, preferred_element_type=f32)
  else:  # T > 1 tokens against the cache (a prefill): float32 operands (XLA:CPU has no
    # bf16 x bf16 -> f32 dot that contracts the cache's E axis; on TPU an f32 dot runs
    # bf16 passes anyway)
    s = jnp.einsum("btkge,bkes->bkgts", q.astype(f32), keys.astype(f32))
  s = s * (e ** -0.5)
  s = jnp.where(mask_BxTxS[:, None, None], s, NEG_INF)
  w = jax.nn.softmax(s, axis=-1).astype(dt)
  # Batch axes (b, k) lead the output as XLA's dot emits it; moving t first after the
  # dot is far cheaper than a dot that writes the permuted layout.
  o = jnp.einsum("bkgts,bkse->bkgte", w, v).transpose(0, 3, 1, 2, 4).reshape(b, t, h * e)
  return _out_proj(o, p["wo"].astype(dt)), cache


def _decode_attention(q_BxKxGxE: Array, keys_BxKxExS: Array, v_BxKxSxE: Array,
                      mask_BxS: Array, scale: float) -> Array:
  """One query token's attention, [B, K, G, E] float32: the scores are a sum over E of
  [B, K, G, E, S] and the output a sum over S of [B, K, G, S, E], each a fused loop
  vectorised along its minor axis, accumulated in float32."""
  f32 = jnp.float32
  s = jnp.sum(q_BxKxGxE[..., None].astype(f32) * keys_BxKxExS[:, :, None].astype(f32), axis=3)
  w = jax.nn.softmax(jnp.where(mask_BxS[:, None, None], s * scale, NEG_INF), axis=-1)
  return jnp.sum(w[..., None] * v_BxKxSxE[:, :, None].astype(f32), axis=3)


def _out_proj(o_BxTxF: Array, wo_HxExD: Array) -> Array:
  """Output projection with heads merged (F = H*E): one plain matmul, no weight copy."""
  h, e, d = wo_HxExD.shape
  return jnp.einsum("btf,fd->btd", o_BxTxF, wo_HxExD.reshape(h * e, d))


def mla_softmax_scale(cfg: Any) -> float:
  """1/sqrt(qk head width), times YaRN's mscale^2 when mscale_all_dim is set (DeepSeek-V3)."""
  scale = (cfg.mla.qk_nope_head_dim + cfg.mla.qk_rope_head_dim) ** -0.5
  if cfg.rope.scaling == "yarn" and cfg.rope.mscale_all_dim:
    m = _yarn_mscale(cfg.rope.factor, cfg.rope.mscale_all_dim)
    scale *= m * m
  return scale


def mla_attention(p: Params, x_BxTxD: Array, cos: Array, sin: Array, mask_BxTxS: Array,
                  cfg: Any, cache: Params | None, cache_index: Array, last_query: bool = False
                  ) -> tuple[Array, Params | None]:
  """Multi-head latent attention (DeepSeek-V2/V3).

  The cache holds the normalised latent c_kv [B,S,R] and the roped shared key [B,S,N].
  With one query token (decode) the up-projections are absorbed into the query and the
  output, so per-head keys/values are never materialised; otherwise (training, prefill)
  they are expanded from the latent. Both compute the same function. `last_query` as
  for `gqa_attention` (the query then takes the absorbed path).
  """
  m = cfg.mla
  dt = x_BxTxD.dtype
  xq = x_BxTxD[:, -1:] if last_query else x_BxTxD
  if m.q_lora_rank:
    cq = jnp.einsum("btd,dq->btq", xq, p["wq_a"].astype(dt))
    cq = rms_norm(cq, p["q_norm"], cfg.norm_eps)
    q = jnp.einsum("btq,qhe->bthe", cq, p["wq_b"].astype(dt))
  else:
    q = jnp.einsum("btd,dhe->bthe", xq, p["wq"].astype(dt))
  q = sharding.constrain(q, ("batch", "length", "heads", "head_dim"))
  kv_a = jnp.einsum("btd,dr->btr", x_BxTxD, p["wkv_a"].astype(dt))
  ckv = rms_norm(kv_a[..., :m.kv_lora_rank], p["kv_norm"], cfg.norm_eps)
  kpe = apply_rope(kv_a[..., m.kv_lora_rank:], cos, sin)
  if last_query:
    cos, sin, mask_BxTxS = cos[:, -1:], sin[:, -1:], mask_BxTxS[:, -1:]
  q_nope, q_pe = q[..., :m.qk_nope_head_dim], q[..., m.qk_nope_head_dim:]
  q_pe = apply_rope(q_pe, cos, sin)
  if cache is not None:
    cache = {"ckv": _write_cache(cache["ckv"], ckv, cache_index),
             "kpe": _write_cache(cache["kpe"], kpe, cache_index)}
    span = mask_BxTxS.shape[-1]  # the slots attended to (a prefill: its own T)
    ckv, kpe = cache["ckv"][:, :span].astype(dt), cache["kpe"][:, :span].astype(dt)
  wkv_b = p["wkv_b"].astype(dt)  # [R, H, nope + v]
  wk_b, wv_b = wkv_b[..., :m.qk_nope_head_dim], wkv_b[..., m.qk_nope_head_dim:]
  scale = mla_softmax_scale(cfg)
  s_pe = jnp.einsum("bthn,bsn->bhts", q_pe, kpe, preferred_element_type=jnp.float32)
  absorbed = q.shape[1] == 1
  if absorbed:
    q_lat = jnp.einsum("bthe,rhe->bthr", q_nope, wk_b)
    s_nope = jnp.einsum("bthr,bsr->bhts", q_lat, ckv, preferred_element_type=jnp.float32)
  else:
    k_nope = jnp.einsum("bsr,rhe->bshe", ckv, wk_b)
    s_nope = jnp.einsum("bthe,bshe->bhts", q_nope, k_nope, preferred_element_type=jnp.float32)
  s = (s_nope + s_pe) * scale
  s = jnp.where(mask_BxTxS[:, None], s, NEG_INF)
  w = jax.nn.softmax(s, axis=-1).astype(dt)
  if absorbed:
    o_lat = jnp.einsum("bhts,bsr->bthr", w, ckv)
    o = jnp.einsum("bthr,rhe->bthe", o_lat, wv_b)
  else:
    v = jnp.einsum("bsr,rhe->bshe", ckv, wv_b)
    o = jnp.einsum("bhts,bshe->bthe", w, v)
  b, t, h, e = o.shape
  return _out_proj(o.reshape(b, t, h * e), p["wo"].astype(dt)), cache


def swiglu(p: Params, x: Array) -> Array:
  """SwiGLU MLP: down(silu(x W_gate) * (x W_up))."""
  dt = x.dtype
  if "w_gate_up" in p:  # joined by `fuse_projections`: one matmul
    gu = jnp.einsum("btd,dcf->btcf", x, p["w_gate_up"].astype(dt))
    g, u = gu[:, :, 0], gu[:, :, 1]
  else:
    g = jnp.einsum("btd,df->btf", x, p["w_gate"].astype(dt))
    u = jnp.einsum("btd,df->btf", x, p["w_up"].astype(dt))
  h = sharding.constrain(jax.nn.silu(g) * u, ("batch", "length", "mlp"))
  return jnp.einsum("btf,fd->btd", h, p["w_down"].astype(dt))
