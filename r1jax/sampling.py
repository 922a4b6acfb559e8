"""In-graph sampler: one jitted prefill + `lax.while_loop` decode over a KV cache.

Log-probability convention (GRPO's pi_old uses the same): each sampled token's
log-probability is log_softmax(logits / temperature) at that token, over the *full*
vocabulary (before top-k/top-p truncation); temperature 0 (greedy) reports temperature
1. So with temperature 1 the logprobs equal the log-softmax of a plain `forward` pass
over prompt + completion.

Static shapes: prompts are left-padded to a length bucket (`length_bucket`: powers of
two and their 1.5x midpoints), the batch to a power-of-two row bucket and the
generation length to a length bucket, so a run compiles a small, bounded number of
times; `max_new_tokens` itself is a traced scalar and the loop stops as soon as every
row is done.

Speed (benchmarks/sampler.py): the layer stacks are split once per call
(`model.unstack_layers`; or once for many calls by `prepare`), so a decode step slices
no weights and no cache; rope cos/sin come from tables made once per call, and every
uniform the call needs is drawn before the loop (no random-bits kernel per step); the
prefill reads back only its own cache slots, and its final layer runs the query, output
projection, MLP and head for the last position only (`apply(last_only=True)`: ~1/L of
the prefill's work); a step's vocabulary max, exp and sum serve the greedy token, the
draw (inverting the CDF: one uniform per row) and the log-normaliser, and the vocabulary
is sorted only when top-k/top-p is on. Decode attention is two fused multiply-add loops
over a transposed key cache (`layers.gqa_attention`). On CPU, from FUSE_MIN_ROWS rows,
the projections that share an input run as one matmul (`model.fuse_projections`). A
batch-1 step then streams every weight once (memory-bound); a batch-64 step is bound by
XLA:CPU's small matmuls.

Shape letters: B batch rows, P padded prompt length, N generation bucket, S = P + N
cache slots, V vocabulary.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from r1jax import distributed, model, sharding

Array = jax.Array
MIN_BUCKET = 8
FUSE_MIN_ROWS = 16  # see sample_padded
TRACE_COUNT = {"sample_padded": 0}  # incremented at trace time (tests count compilations)


class Samples(NamedTuple):
  tokens: list[list[int]]  # completion ids per prompt, through the first EOS/stop token
  logprobs: list[list[float]]  # per completion token (convention in the module docstring)
  truncated: list[bool]  # True where the completion hit max_new_tokens


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class DecodeState:
  i: Array  # int32 scalar: tokens generated so far
  last: Array  # int32 [B]: the token fed at the next step
  out: Array  # int32 [B, N]: generated tokens (pad after done)
  logp: Array  # float32 [B, N]
  done: Array  # bool [B]
  length: Array  # int32 [B]: completion length so far
  cache: Any  # model decode cache with S slots


def bucket(n: int, minimum: int = MIN_BUCKET) -> int:
  """Smallest power of two >= max(n, minimum)."""
  b = minimum
  while b < n:
    b *= 2
  return b


def length_bucket(n: int) -> int:
  """Bucket of a prompt or generation length: the smallest of 8, 12, 16, 24, 32, 48, 64,
  96, ... (powers of two and their 1.5x midpoints) >= n. At most two compilations per
  doubling of the length, and at most a third of each row is padding (a plain power of
  two wastes up to half: 38 prompt tokens + 40 new ones would run 128 wide, not 96)."""
  b = bucket(n)
  return b * 3 // 4 if b > MIN_BUCKET and b * 3 // 4 >= n else b


def _truncate(logits_BxV: Array, top_k: Array, top_p: Array) -> Array:
  """Masks logits outside the top-k (k > 0) and the top-p nucleus (p < 1) with -inf.

  One descending sort serves both cuts; `_choose` skips this when neither is on (a
  full-vocabulary sort costs more than the whole decode step on CPU).
  """
  b, v = logits_BxV.shape
  sorted_desc = jnp.sort(logits_BxV, axis=-1)[:, ::-1]
  k = jnp.where(top_k > 0, jnp.minimum(top_k, v), v)
  kth = jnp.take_along_axis(sorted_desc, jnp.broadcast_to(k - 1, (b, 1)), axis=-1)
  # The top-k truncated logits, still sorted (ties with the k-th are kept).
  kept_sorted = jnp.where(sorted_desc < kth, -jnp.inf, sorted_desc)
  # Nucleus over the top-k truncated distribution: keep the smallest prefix of tokens
  # sorted by probability whose mass reaches top_p (the top token always stays).
  probs_sorted = jax.nn.softmax(kept_sorted, axis=-1)
  before = jnp.cumsum(probs_sorted, axis=-1) - probs_sorted
  n_keep = jnp.maximum((before < top_p).sum(-1, keepdims=True), 1)
  cutoff = jnp.take_along_axis(kept_sorted, n_keep - 1, axis=-1)
  return jnp.where((logits_BxV < kth) | (logits_BxV < cutoff), -jnp.inf, logits_BxV)


def _categorical(u_B: Array, p_BxV: Array, fallback_B: Array) -> Array:
  """One token per row drawn from unnormalised probabilities p_BxV >= 0 by inverting
  their CDF at u_B ~ U[0, 1).

  One uniform per row instead of `jax.random.categorical`'s Gumbel noise over the whole
  vocabulary (two logs per entry: that cost more than the model's decode step on CPU).
  The CDF is searched in two levels, blocks of C entries then one block, so only short
  cumulative sums are formed. Where the search lands on a zero-probability entry
  (rounding: chance ~1e-7; or a row without finite probabilities) `fallback_B` is
  returned, so a masked token is never drawn.
  """
  b, v = p_BxV.shape
  c = bucket(int(np.sqrt(v)), 1)  # block width C (a power of two near sqrt(V))
  nb = -(-v // c)  # blocks
  p_BxNxC = jnp.pad(p_BxV, ((0, 0), (0, nb * c - v))).reshape(b, nb, c)
  cum_BxN = jnp.cumsum(p_BxNxC.sum(-1), axis=-1)
  u_B1 = u_B[:, None] * cum_BxN[:, -1:]
  blk_B = jnp.minimum((cum_BxN <= u_B1).sum(-1), nb - 1)
  before_B = jnp.where(blk_B > 0, jnp.take_along_axis(
      cum_BxN, jnp.maximum(blk_B - 1, 0)[:, None], axis=-1)[:, 0], 0.0)
  inner_BxC = jnp.take_along_axis(p_BxNxC, blk_B[:, None, None], axis=1)[:, 0]
  within_B = (jnp.cumsum(inner_BxC, axis=-1) <= (u_B1[:, 0] - before_B)[:, None]).sum(-1)
  tok_B = blk_B * c + jnp.minimum(within_B, c - 1)
  ok = (tok_B < v) & (jnp.take_along_axis(p_BxV, jnp.minimum(tok_B, v - 1)[:, None],
                                          axis=-1)[:, 0] > 0)
  return jnp.where(ok, tok_B, fallback_B)


def _first_max_index(x_BxV: Array, max_B1: Array) -> Array:
  """First index where each row equals its maximum `max_B1`; V - 1 where none does
  (a row without a finite maximum)."""
  v = x_BxV.shape[-1]
  return jnp.minimum(jnp.min(jnp.where(x_BxV == max_B1, jnp.arange(v), v), axis=-1), v - 1)


def _choose(logits_BxV: Array, u_B: Array, temperature: Array, top_p: Array, top_k: Array
            ) -> tuple[Array, Array]:
  """(token [B], its untruncated logprob [B]) under the module's convention; u_B are
  uniforms in [0, 1), one per row, that decide the draw (unused when greedy).

  The row maximum, exp((logits - max) / temperature) and its sum are formed once and
  serve the greedy token, the draw (when neither top-k nor top-p cuts) and the
  log-normaliser; the logits are never divided by the temperature as a separate pass
  (on CPU each pass over [64, 4096] costs ~1% of a batch-64 decode step).
  """
  greedy = temperature <= 0
  inv_t = 1.0 / jnp.where(greedy, 1.0, temperature)
  max_B1 = jnp.max(logits_BxV, axis=-1, keepdims=True)
  # The greedy token, and the draw's fallback (V - 1 for a row without finite logits).
  # From two plain reductions: XLA:CPU runs jnp.argmax's (value, index) reduction ~2.7x
  # slower ([64, 4096] f32: 870 vs 317 us).
  first_max_B = _first_max_index(logits_BxV, max_B1)
  shift_B1 = jnp.where(jnp.isfinite(max_B1), max_B1, 0.0)
  e_BxV = jnp.exp((logits_BxV - shift_B1) * inv_t)

  def draw(_):
    # Truncation is invariant to the shift: the kept tokens' exp values are e_BxV's.
    p = jax.lax.cond((top_k > 0) | (top_p < 1),
                     lambda: jnp.exp(_truncate((logits_BxV - shift_B1) * inv_t, top_k, top_p)),
                     lambda: e_BxV)
    return _categorical(u_B, p, first_max_B)

  tok = jax.lax.cond(greedy, lambda _: first_max_B, draw, None).astype(jnp.int32)
  picked = jnp.take_along_axis(logits_BxV, tok[:, None], axis=-1)[:, 0]
  return tok, (picked - shift_B1[:, 0]) * inv_t - jnp.log(jnp.sum(e_BxV, axis=-1))


@functools.partial(jax.jit, static_argnames=("config", "gen_bucket"))
def sample_padded(params: Any, prompt_BxP: Array, prompt_len_B: Array, rng: Array,
                  max_new_tokens: Array, temperature: Array, top_p: Array, top_k: Array,
                  stop_ids: Array, *, config: Any, gen_bucket: int
                  ) -> tuple[Array, Array, Array, Array]:
  """The jitted core on left-padded arrays.

  prompt_BxP: int32, left-padded (row b's prompt is its last prompt_len_B[b] entries).
  stop_ids: int32 [M] (pad with -1). Returns tokens [B,N], logprobs [B,N], lengths [B]
  and truncated [B] (N = gen_bucket; entries past a row's length are 0).
  """
  TRACE_COUNT["sample_padded"] += 1
  b, p = prompt_BxP.shape
  n = gen_bucket
  s = p + n
  pad_B = p - prompt_len_B
  slots = jnp.arange(s)
  key_mask = slots[None, :] >= pad_B[:, None]  # [B, S]; future slots hidden by causality
  positions = jnp.maximum(jnp.arange(p)[None, :] - pad_B[:, None], 0)
  # Per-layer weights and caches, split once here: the loop below then slices nothing.
  # On CPU, from FUSE_MIN_ROWS rows, the projections that share an input are joined too
  # (a weight copy per call; batch 16-64 decode 3-8% faster, batch 1 7% slower: there
  # the copy costs more than the joined matmuls save, unless `prepare` made it once);
  # with routed experts at every batch size (the dense expert form reads them joined,
  # and XLA would transpose unjoined ones at every step); elsewhere that copy's memory
  # is not worth it.
  params = model.unstack_layers(params)  # both no-ops on `prepare`d weights
  if jax.default_backend() == "cpu" and (b >= FUSE_MIN_ROWS or "moe_layers" in params):
    params = model.fuse_projections(params)
  cache = model.unstack_layers(model.init_cache(config, b, s))
  cache = jax.tree.map(lambda c: sharding.constrain(c, ("batch",) + (None,) * (c.ndim - 1)),
                       cache)
  rope = model.rope_tables(config, s)
  logits, cache, _ = model.apply(params, prompt_BxP, config, positions=positions, cache=cache,
                                 cache_index=0, key_mask=key_mask, rope_tables=rope,
                                 last_only=True)
  # Every uniform the call needs, drawn at once: one random-bits kernel per call and
  # none in the loop (on CPU a threefry split per step cost ~15% of a batch-1 step).
  u_NxB = sharding.constrain(jax.random.uniform(rng, (n, b), jnp.float32), (None, "batch"))
  tok, lp = _choose(logits[:, -1], u_NxB[0], temperature, top_p, top_k)
  is_stop = lambda t: jnp.any(t[:, None] == stop_ids[None, :], axis=-1)
  state = DecodeState(
      i=jnp.ones((), jnp.int32), last=tok,
      out=jnp.zeros((b, n), jnp.int32).at[:, 0].set(tok),
      logp=jnp.zeros((b, n), jnp.float32).at[:, 0].set(lp),
      done=is_stop(tok) | (max_new_tokens <= 1), length=jnp.ones((b,), jnp.int32),
      cache=cache)

  def cond(st: DecodeState) -> Array:
    return (st.i < jnp.minimum(max_new_tokens, n)) & ~jnp.all(st.done)

  def body(st: DecodeState) -> DecodeState:
    pos = (prompt_len_B + st.i - 1)[:, None]
    logits, cache, _ = model.apply(params, st.last[:, None], config, positions=pos,
                                   cache=st.cache, cache_index=p + st.i - 1, key_mask=key_mask,
                                   rope_tables=rope)
    u_B = jax.lax.dynamic_index_in_dim(u_NxB, st.i, keepdims=False)
    tok, lp = _choose(logits[:, 0], u_B, temperature, top_p, top_k)
    active = ~st.done
    tok = jnp.where(active, tok, 0)
    lp = jnp.where(active, lp, 0.0)
    return DecodeState(
        i=st.i + 1, last=tok,
        out=jax.lax.dynamic_update_slice(st.out, tok[:, None], (0, st.i)),
        logp=jax.lax.dynamic_update_slice(st.logp, lp[:, None], (0, st.i)),
        done=st.done | (active & is_stop(tok)) | (st.i + 1 >= max_new_tokens),
        length=st.length + active.astype(jnp.int32), cache=cache)

  st = jax.lax.while_loop(cond, body, state)
  last_tok = jnp.take_along_axis(st.out, jnp.maximum(st.length - 1, 0)[:, None], axis=1)[:, 0]
  truncated = ~is_stop(last_tok) & (st.length >= jnp.minimum(max_new_tokens, n))
  return st.out, st.logp, st.length, truncated


@jax.jit
def prepare(params: Any) -> Any:
  """The weights in the layout the sampler runs, made once: layer stacks split
  (`model.unstack_layers`) and, on CPU, the projections that share an input joined
  (`model.fuse_projections`). `generate` and `sample_padded` take the result in place
  of `params` (same samples) and skip their per-call copy of the weights: 0.6-0.8 ms
  on CPU, 4-5% of a batch-1 call of benchmarks/sampler.py. For repeated calls with the
  same weights (evaluation); it holds a second copy of them, as a call does while it
  runs. The RL loop, whose weights change every step, passes its params as they are.
  """
  params = model.unstack_layers(params)
  if jax.default_backend() == "cpu":
    params = model.fuse_projections(params)
  return params


def generate(params: Any, config: Any, prompts: Sequence[Sequence[int]], *, rng: Array,
             max_new_tokens: int, temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0,
             eos_id: int | None = None, stop_ids: Sequence[int] = (), pad_id: int = 0,
             mesh: jax.sharding.Mesh | None = None, rules: Any = None) -> Samples:
  """Samples a completion for each prompt (token-id lists of any lengths). `params` as
  trained, or `prepare(params)` for repeated calls.

  With `mesh`/`rules`, rows are split over the batch mesh axes; the samples equal the
  single-device ones for the same rng.
  """
  if not prompts or any(len(p) == 0 for p in prompts):
    raise ValueError("generate needs at least one prompt, each with at least one token.")
  if max_new_tokens < 1:
    raise ValueError(f"max_new_tokens={max_new_tokens} must be >= 1.")
  if not 0 < top_p <= 1:
    raise ValueError(f"top_p={top_p} must be in (0, 1].")
  if temperature < 0 or top_k < 0:
    raise ValueError(f"temperature={temperature} and top_k={top_k} must be >= 0.")
  if not isinstance(config, ml_collections.FrozenConfigDict):
    config = ml_collections.FrozenConfigDict(config)  # hashable: a static jit argument
  longest = max(len(p) for p in prompts)
  p_len = length_bucket(longest)
  n = length_bucket(max_new_tokens)
  if p_len + n > config.max_seq_len:
    # Fall back to exact sizes when the buckets would exceed the model's length.
    p_len, n = longest, max_new_tokens
    if p_len + n > config.max_seq_len:
      raise ValueError(f"prompt ({longest}) + max_new_tokens ({max_new_tokens}) exceeds "
                       f"model.max_seq_len={config.max_seq_len}.")
  rows = bucket(len(prompts), 1)
  if mesh is not None:
    split = int(np.prod([mesh.shape[a] for a in ("data", "fsdp", "expert")]))
    rows = max(rows, split)
  arr = np.full((rows, p_len), pad_id, np.int32)
  lens = np.ones((rows,), np.int32)
  for i, pr in enumerate(prompts):
    arr[i, p_len - len(pr):] = pr
    lens[i] = len(pr)
  for i in range(len(prompts), rows):  # filler rows: a copy of row 0, dropped below
    arr[i], lens[i] = arr[0], lens[0]
  stops = sorted({*stop_ids, *([eos_id] if eos_id is not None else [])}) or [-1]
  # Host (numpy) values: the jitted call transfers them with its own dispatch.
  args = (arr, lens)
  scalars = (np.int32(max_new_tokens), np.float32(temperature), np.float32(top_p),
             np.int32(top_k), np.asarray(stops, np.int32))
  if mesh is not None:
    args = tuple(distributed.put(a, sharding.batch_sharding(mesh, rules, a.ndim, a.shape))
                 for a in args)
    with sharding.use_mesh(mesh, rules):
      out = sample_padded(params, *args, rng, *scalars, config=config, gen_bucket=n)
  else:
    out = sample_padded(params, *args, rng, *scalars, config=config, gen_bucket=n)
  toks, logps, lengths, trunc = distributed.fetch(out)
  return Samples(
      tokens=[toks[i, :lengths[i]].tolist() for i in range(len(prompts))],
      logprobs=[logps[i, :lengths[i]].tolist() for i in range(len(prompts))],
      truncated=[bool(trunc[i]) for i in range(len(prompts))])
