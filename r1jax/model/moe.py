"""DeepSeekMoE: shared experts + fine-grained routed experts, dropless dispatch.

Routing follows DeepSeek-V3 (arXiv 2412.19437, eqs. 12-16) in this order:
  1. s = sigmoid(x W_router)                      affinity scores [N, E]
  2. s_sel = s + bias                             bias steers *selection* only
  3. group score = sum of the top-2 s_sel in each of n_group groups; keep the
     topk_group best groups, mask the rest with -inf
  4. top-k experts by masked s_sel
  5. weights = s at the chosen experts (unbiased), / their sum if norm_topk_prob,
     times routed_scaling_factor.
Dispatch is dropless: no token is ever dropped and no capacity factor exists. The N*k
(token, expert) pairs are sorted by expert and the expert MLPs run as
`jax.lax.ragged_dot` over contiguous groups; on CPU an equivalent dense form runs
instead, or, for a few (token, expert) pairs (decode at small batch), the dense form
over the chosen experts' weights alone (`dispatch`, `use_gather`).

The bias is a parameter that receives no gradient (stop_gradient); the trainer moves
it after each step by `update_router_bias` (auxiliary-loss-free balancing, eq. 16 and
the text after it). Shape letters: N tokens, E routed experts, k experts per token,
D model width, F expert MLP width, G groups.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


class Routing(NamedTuple):
  experts_Nxk: Array  # int32 expert ids
  weights_Nxk: Array  # float32 combine weights
  scores_NxE: Array  # float32 sigmoid affinities (unbiased)


def route(x_NxD: Array, router_DxE: Array, bias_E: Array, cfg: Any) -> Routing:
  """DeepSeek-V3 sigmoid, group-limited top-k routing (order in the module docstring)."""
  e = cfg.moe
  logits = jnp.einsum("nd,de->ne", x_NxD.astype(jnp.float32), router_DxE.astype(jnp.float32))
  scores = jax.nn.sigmoid(logits)
  sel = scores + jax.lax.stop_gradient(bias_E.astype(jnp.float32))
  n, n_exp = sel.shape
  if e.n_group > 1:
    grouped = sel.reshape(n, e.n_group, n_exp // e.n_group)
    group_score = jax.lax.top_k(grouped, 2)[0].sum(-1)  # [N, G]
    _, top_groups = jax.lax.top_k(group_score, e.topk_group)
    keep = jnp.zeros((n, e.n_group), bool).at[jnp.arange(n)[:, None], top_groups].set(True)
    sel = jnp.where(jnp.repeat(keep, n_exp // e.n_group, axis=1), sel, -jnp.inf)
  _, experts = jax.lax.top_k(sel, e.num_experts_per_tok)
  weights = jnp.take_along_axis(scores, experts, axis=-1)
  if e.norm_topk_prob:
    weights = weights / (weights.sum(-1, keepdims=True) + 1e-20)
  weights = weights * e.routed_scaling_factor
  return Routing(experts.astype(jnp.int32), weights, scores)


def dispatch(x_NxD: Array, routing: Routing, w_gate_ExDxF: Array, w_up_ExDxF: Array,
             w_down_ExFxD: Array, *, grouped: bool | None = None) -> tuple[Array, Array]:
  """Dropless expert MLPs: the combined output [N, D] and the per-expert token counts [E].

  Two implementations of the same function. Grouped (`grouped=True`): the (token,
  expert) pairs are sorted by expert, the MLPs run as `ragged_dot` over contiguous
  groups (the chosen experts' work only, where ragged_dot has a grouped kernel: TPU,
  GPU), then unsorted. Dense (`grouped=False`): every expert on every token, each
  expert's activations scaled by its combine weight (zero where not chosen) before one
  down projection that sums over experts. XLA:CPU expands ragged_dot to every expert on
  every token anyway, and runs the dense form 1.6-2.2x faster (16 experts of width 176,
  1-2048 tokens; the MoE sampler +48% at batch 1, +76% at 64), so `None` picks dense on
  CPU and grouped elsewhere. The dense form gathers the chosen experts first where
  `use_gather` says so (few tokens: `dispatch_gathered`).
  """
  if grouped is None:
    grouped = jax.default_backend() != "cpu"
  if not grouped:  # (dispatch_joined gathers where use_gather says so)
    return dispatch_joined(x_NxD, routing, join_gate_up(w_gate_ExDxF, w_up_ExDxF),
                           w_down_ExFxD)
  n, d = x_NxD.shape
  k = routing.experts_Nxk.shape[1]
  dt = x_NxD.dtype
  flat_expert = routing.experts_Nxk.reshape(-1)  # [N*k]
  group_sizes = _expert_counts(routing, w_gate_ExDxF.shape[0])
  order = jnp.argsort(flat_expert, stable=True)
  token_of = order // k
  xs = x_NxD[token_of]  # [N*k, D], grouped by expert
  g = jax.lax.ragged_dot(xs, w_gate_ExDxF.astype(dt), group_sizes)
  u = jax.lax.ragged_dot(xs, w_up_ExDxF.astype(dt), group_sizes)
  ys = jax.lax.ragged_dot(jax.nn.silu(g) * u, w_down_ExFxD.astype(dt), group_sizes)
  w_sorted = routing.weights_Nxk.reshape(-1)[order].astype(dt)
  out = jnp.zeros((n, d), dt).at[token_of].add(ys * w_sorted[:, None])
  return out, group_sizes


def join_gate_up(w_gate_ExDxF: Array, w_up_ExDxF: Array) -> Array:
  """The routed experts' gate and up weights as one [D, 2, E, F] matrix (what
  `dispatch_joined` multiplies by; `model.fuse_projections` makes it once)."""
  return jnp.stack([w_gate_ExDxF, w_up_ExDxF]).transpose(2, 0, 1, 3)


# `use_gather`'s bounds (measured: see its docstring).
GATHER_MAX_PAIRS = 8
GATHER_MAX_PAIRS_PER_EXPERT = 0.25


def use_gather(n_tokens: int, k: int, n_exp: int) -> bool:
  """Whether the dense form should gather the chosen experts first (static shapes).

  Gathering copies the N*k chosen experts' weights (duplicates included) and runs the
  dense form over those alone; the plain dense form reads all E experts and does E/k
  times the needed work. On XLA:CPU (2-core EPYC, D=256, F=176, one dispatch in a jitted
  loop, best of 5-7) the gathered form took 1/3 of the time at N*k=2 of E=16 (f32 and
  bf16), 0.6x at N*k=4, but the same at N*k=8 (f32) and 2x longer in bf16; at E=64,
  0.04-0.15x up to N*k=8, 0.55-0.6x at 16, slower at 32; at E=8, 0.5-0.7x at N*k=2,
  slower at 4. Its copy grows faster than N*k (the concatenation of N*k slices), and XLA
  gathers (`jnp.take`) ran 2.5-7x slower than that. Hence: N*k <= GATHER_MAX_PAIRS and
  N*k <= E * GATHER_MAX_PAIRS_PER_EXPERT (batch-1 decode for every E >= 4k). In the MoE
  sampler (E=16, k=2; benchmarks/decode_moe_bf16.py --threshold) a whole call with its
  decode gathered took 0.43x the dense form's time at batch 1, 0.66x at 2, 1.10x at 4,
  2.15x at 8.
  """
  pairs = n_tokens * k
  return pairs <= GATHER_MAX_PAIRS and pairs <= n_exp * GATHER_MAX_PAIRS_PER_EXPERT


def dispatch_joined(x_NxD: Array, routing: Routing, w_gate_up_Dx2xExF: Array,
                    w_down_ExFxD: Array) -> tuple[Array, Array]:
  """`dispatch`'s dense form on joined gate|up weights (`join_gate_up`): one [N, D] x
  [D, 2*E*F] matmul for every expert's gate and up, each expert's activations scaled by
  its combine weight (zero where not chosen), one down projection summing over experts.
  The join is the layout the matmul reads: a decode loop that got [E, D, F] weights would
  transpose them at every step. Where `use_gather` says so, `dispatch_gathered` instead."""
  n_exp = w_down_ExFxD.shape[0]
  if use_gather(*routing.experts_Nxk.shape, n_exp):
    return dispatch_gathered(x_NxD, routing, w_gate_up_Dx2xExF, w_down_ExFxD)
  return (_dense(x_NxD, routing, w_gate_up_Dx2xExF, w_down_ExFxD),
          _expert_counts(routing, n_exp))


def dispatch_gathered(x_NxD: Array, routing: Routing, w_gate_up_Dx2xExF: Array,
                      w_down_ExFxD: Array) -> tuple[Array, Array]:
  """`dispatch_joined`'s function with the work of the chosen experts only: their
  weights copied out (M = N*k pairs, one dynamic slice each: [D, 2, M, F], [M, F, D]),
  then the dense form over those M, pair m = token m // k's (m % k)-th choice."""
  ids_M = routing.experts_Nxk.reshape(-1)
  out = _dense(x_NxD, _pair_routing(routing), _take_experts(w_gate_up_Dx2xExF, ids_M, 2),
               _take_experts(w_down_ExFxD, ids_M, 0))
  return out, _expert_counts(routing, w_down_ExFxD.shape[0])


def _dense(x_NxD: Array, routing: Routing, w_gate_up_Dx2xExF: Array,
           w_down_ExFxD: Array) -> Array:
  """The dense form's output [N, D] (`dispatch_joined`). The activations between the two
  matmuls are computed in float32 and rounded once to x's dtype: in bfloat16, XLA:CPU
  otherwise rounds after each elementwise op, in scalar code, over all N*E*F of them
  (the MoE sampler's batch-64 decode step 24 -> 12 ms, benchmarks/decode_moe_bf16.py)."""
  n = x_NxD.shape[0]
  dt = x_NxD.dtype
  comb_NxE = jnp.zeros((n, w_down_ExFxD.shape[0]), jnp.float32).at[
      jnp.arange(n)[:, None], routing.experts_Nxk].add(routing.weights_Nxk.astype(jnp.float32))
  gu = jnp.einsum("nd,dcef->ncef", x_NxD, w_gate_up_Dx2xExF.astype(dt),
                  preferred_element_type=jnp.float32)
  h = (jax.nn.silu(gu[:, 0]) * gu[:, 1] * comb_NxE[..., None]).astype(dt)
  return jnp.einsum("nef,efd->nd", h, w_down_ExFxD.astype(dt))


def _take_experts(w: Array, ids_M: Array, axis: int) -> Array:
  """w's experts ids_M (along `axis`), in order: M dynamic slices, concatenated (XLA:CPU
  copies these 2.5-7x faster than it runs the equivalent gather)."""
  return jnp.concatenate([jax.lax.dynamic_slice_in_dim(w, ids_M[m], 1, axis)
                          for m in range(ids_M.shape[0])], axis)


def _pair_routing(routing: Routing) -> Routing:
  """The routing over gathered experts (`_take_experts`): token n's j-th choice is
  expert n*k + j."""
  n, k = routing.experts_Nxk.shape
  return routing._replace(experts_Nxk=jnp.arange(n * k, dtype=jnp.int32).reshape(n, k))


def _expert_counts(routing: Routing, n_exp: int) -> Array:
  """Tokens routed to each expert, int32 [E]."""
  return jnp.bincount(routing.experts_Nxk.reshape(-1), length=n_exp).astype(jnp.int32)


def sequence_balance_loss(routing: Routing, batch: int, cfg: Any,
                          token_mask_N: Array | None = None) -> Array:
  """Sequence-wise balance loss (DeepSeek-V3 eqs. 17-20), averaged over sequences."""
  e = cfg.moe
  n, n_exp = routing.scores_NxE.shape
  t = n // batch
  k = e.num_experts_per_tok
  mask = (jnp.ones((n,), jnp.float32) if token_mask_N is None
          else token_mask_N.astype(jnp.float32)).reshape(batch, t)
  chosen = jax.nn.one_hot(routing.experts_Nxk, n_exp, dtype=jnp.float32).sum(1)  # [N, E]
  chosen = chosen.reshape(batch, t, n_exp) * mask[..., None]
  count = jnp.maximum(mask.sum(1), 1.0)[:, None]  # [B, 1]
  f = chosen.sum(1) * n_exp / (k * count)  # [B, E]
  s = routing.scores_NxE / (routing.scores_NxE.sum(-1, keepdims=True) + 1e-20)
  p = (s.reshape(batch, t, n_exp) * mask[..., None]).sum(1) / count
  return e.aux_loss_alpha * jnp.mean(jnp.sum(f * p, axis=-1))


def update_router_bias(bias_LxE: Array, load_LxE: Array, rate: float) -> Array:
  """Aux-loss-free balancing: bias += rate * sign(mean load - load), per layer."""
  load = load_LxE.astype(jnp.float32)
  delta = jnp.sign(load.mean(-1, keepdims=True) - load)
  return (bias_LxE.astype(jnp.float32) + rate * delta).astype(bias_LxE.dtype)
