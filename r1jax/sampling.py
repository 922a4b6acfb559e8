"""In-graph sampler: one jitted prefill + `lax.while_loop` decode over a KV cache.

Log-probability convention (GRPO's pi_old uses the same): each sampled token's
log-probability is log_softmax(logits / temperature) at that token, over the *full*
vocabulary (before top-k/top-p truncation); temperature 0 (greedy) reports temperature
1. So with temperature 1 the logprobs equal the log-softmax of a plain `forward` pass
over prompt + completion.

Static shapes: prompts are left-padded to a power-of-two length bucket, the batch to a
power-of-two row bucket and the generation length to a power-of-two bucket, so a run
compiles a small, bounded number of times; `max_new_tokens` itself is a traced scalar
and the loop stops as soon as every row is done.

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

from r1jax import model, sharding

Array = jax.Array
MIN_BUCKET = 8
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
  rng: Array  # key


def bucket(n: int, minimum: int = MIN_BUCKET) -> int:
  """Smallest power of two >= max(n, minimum)."""
  b = minimum
  while b < n:
    b *= 2
  return b


def _truncate(logits_BxV: Array, top_k: Array, top_p: Array) -> Array:
  """Masks logits outside the top-k (k > 0) and the top-p nucleus (p < 1) with -inf."""
  v = logits_BxV.shape[-1]
  sorted_desc = jnp.sort(logits_BxV, axis=-1)[:, ::-1]
  k = jnp.where(top_k > 0, jnp.minimum(top_k, v), v)
  kth = jnp.take_along_axis(sorted_desc, jnp.broadcast_to(k - 1, (logits_BxV.shape[0], 1)),
                            axis=-1)
  logits = jnp.where(logits_BxV < kth, -jnp.inf, logits_BxV)
  # Nucleus over the (already top-k truncated) distribution: keep the smallest prefix of
  # tokens sorted by probability whose mass reaches top_p (the top token always stays).
  probs_sorted = jax.nn.softmax(jnp.sort(logits, axis=-1)[:, ::-1], axis=-1)
  before = jnp.cumsum(probs_sorted, axis=-1) - probs_sorted
  keep_sorted = before < top_p
  n_keep = jnp.maximum(keep_sorted.sum(-1, keepdims=True), 1)
  cutoff = jnp.take_along_axis(jnp.sort(logits, axis=-1)[:, ::-1], n_keep - 1, axis=-1)
  return jnp.where(logits < cutoff, -jnp.inf, logits)


def _choose(logits_BxV: Array, rng: Array, temperature: Array, top_p: Array, top_k: Array
            ) -> tuple[Array, Array]:
  """(token [B], its untruncated logprob [B]) under the module's convention."""
  greedy = temperature <= 0
  t = jnp.where(greedy, 1.0, temperature)
  scaled = logits_BxV / t
  logp_all = jax.nn.log_softmax(scaled, axis=-1)
  trunc = _truncate(scaled, top_k, top_p)
  sampled = jax.random.categorical(rng, trunc, axis=-1)
  tok = jnp.where(greedy, jnp.argmax(logits_BxV, axis=-1), sampled).astype(jnp.int32)
  return tok, jnp.take_along_axis(logp_all, tok[:, None], axis=-1)[:, 0]


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
  cache = model.init_cache(config, b, s)
  cache = jax.tree.map(lambda c: sharding.constrain(
      c, ("layers", "batch") + (None,) * (c.ndim - 2)), cache)
  logits, cache, _ = model.apply(params, prompt_BxP, config, positions=positions, cache=cache,
                                 cache_index=0, key_mask=key_mask)
  rng, first_rng = jax.random.split(rng)
  tok, lp = _choose(logits[:, -1], first_rng, temperature, top_p, top_k)
  is_stop = lambda t: jnp.any(t[:, None] == stop_ids[None, :], axis=-1)
  state = DecodeState(
      i=jnp.ones((), jnp.int32), last=tok,
      out=jnp.zeros((b, n), jnp.int32).at[:, 0].set(tok),
      logp=jnp.zeros((b, n), jnp.float32).at[:, 0].set(lp),
      done=is_stop(tok) | (max_new_tokens <= 1), length=jnp.ones((b,), jnp.int32),
      cache=cache, rng=rng)

  def cond(st: DecodeState) -> Array:
    return (st.i < jnp.minimum(max_new_tokens, n)) & ~jnp.all(st.done)

  def body(st: DecodeState) -> DecodeState:
    pos = (prompt_len_B + st.i - 1)[:, None]
    logits, cache, _ = model.apply(params, st.last[:, None], config, positions=pos,
                                   cache=st.cache, cache_index=p + st.i - 1, key_mask=key_mask)
    rng, step_rng = jax.random.split(st.rng)
    tok, lp = _choose(logits[:, 0], step_rng, temperature, top_p, top_k)
    active = ~st.done
    tok = jnp.where(active, tok, 0)
    lp = jnp.where(active, lp, 0.0)
    return DecodeState(
        i=st.i + 1, last=tok,
        out=jax.lax.dynamic_update_slice(st.out, tok[:, None], (0, st.i)),
        logp=jax.lax.dynamic_update_slice(st.logp, lp[:, None], (0, st.i)),
        done=st.done | (active & is_stop(tok)) | (st.i + 1 >= max_new_tokens),
        length=st.length + active.astype(jnp.int32), cache=cache, rng=rng)

  st = jax.lax.while_loop(cond, body, state)
  last_tok = jnp.take_along_axis(st.out, jnp.maximum(st.length - 1, 0)[:, None], axis=1)[:, 0]
  truncated = ~is_stop(last_tok) & (st.length >= jnp.minimum(max_new_tokens, n))
  return st.out, st.logp, st.length, truncated


def generate(params: Any, config: Any, prompts: Sequence[Sequence[int]], *, rng: Array,
             max_new_tokens: int, temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0,
             eos_id: int | None = None, stop_ids: Sequence[int] = (), pad_id: int = 0,
             mesh: jax.sharding.Mesh | None = None, rules: Any = None) -> Samples:
  """Samples a completion for each prompt (token-id lists of any lengths).

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
  p_len = bucket(longest)
  n = bucket(max_new_tokens)
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
  args = (jnp.asarray(arr), jnp.asarray(lens))
  scalars = (jnp.int32(max_new_tokens), jnp.float32(temperature), jnp.float32(top_p),
             jnp.int32(top_k), jnp.asarray(stops, jnp.int32))
  if mesh is not None:
    args = tuple(jax.device_put(a, sharding.batch_sharding(mesh, rules, a.ndim, a.shape))
                 for a in args)
    with sharding.use_mesh(mesh, rules):
      out = sample_padded(params, *args, rng, *scalars, config=config, gen_bucket=n)
  else:
    out = sample_padded(params, *args, rng, *scalars, config=config, gen_bucket=n)
  toks, logps, lengths, trunc = jax.device_get(out)
  return Samples(
      tokens=[toks[i, :lengths[i]].tolist() for i in range(len(prompts))],
      logprobs=[logps[i, :lengths[i]].tolist() for i in range(len(prompts))],
      truncated=[bool(trunc[i]) for i in range(len(prompts))])
