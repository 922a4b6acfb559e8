"""Reward models: a scalar-head variant of the policy model, trained with the
Bradley-Terry loss on preference pairs (R1 stage 4's helpfulness and harmlessness RMs).

A reward model's params are the model's params plus `value_head` ({"w": [D], "b": []}):
the score of a sequence is the final-normed hidden state of its last real token (the
EOS after the response) dotted with `w`, plus `b`. Sequences are right-padded rows;
causal attention makes the padding invisible to every real token.

Bradley-Terry: P(chosen > rejected) = sigmoid(r_chosen - r_rejected); the loss is its
negative log-likelihood, softplus(r_rejected - r_chosen), averaged over pairs. A batch
holds pairs interleaved (row 2i the chosen, 2i+1 the rejected response of pair i), so
the pairs of a shard stay on the device holding them.

Arrays: tokens int32 [N, T] (right-padded), lengths int32 [N] (real tokens per row).
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from r1jax import model
from r1jax.train import state as state_lib

Array = jax.Array
HEAD = "value_head"


def init_head(model_cfg: Any) -> dict[str, Array]:
  """A zero value head: every sequence scores 0 before training."""
  return {"w": jnp.zeros((model_cfg.d_model,), jnp.float32), "b": jnp.zeros((), jnp.float32)}


def with_head(params: Any, model_cfg: Any) -> dict[str, Any]:
  """Policy params plus a fresh value head (the RM starts from a trained policy)."""
  return {**params, HEAD: init_head(model_cfg)}


def scores(params: Any, tokens: Array, lengths: Array, model_cfg: Any) -> tuple[Array, Any]:
  """Scalar scores float32 [N] of right-padded rows, and the MoE aux outputs."""
  n, t = tokens.shape
  real = jnp.arange(t)[None, :] < lengths[:, None]
  body = {k: v for k, v in params.items() if k != HEAD}
  hidden, _, aux = model.apply(body, tokens, model_cfg, key_mask=real, token_mask=real,
                               return_hidden=True)
  last = jnp.take_along_axis(hidden, jnp.maximum(lengths - 1, 0)[:, None, None], axis=1)[:, 0]
  head = params[HEAD]
  return last.astype(jnp.float32) @ head["w"] + head["b"], aux


@functools.partial(jax.jit, static_argnames="model_cfg")
def _scores_jit(params: Any, tokens: Array, lengths: Array, model_cfg: Any) -> Array:
  return scores(params, tokens, lengths, model_cfg)[0]


def bradley_terry_loss(model_cfg: Any) -> state_lib.LossFn:
  """The BT loss for `state.make_train_step` over interleaved pairs (module docstring)."""
  def loss_fn(params: Any, batch: dict[str, Array], rng: Array):
    del rng
    r, aux = scores(params, batch["tokens"], batch["lengths"], model_cfg)
    margin = r[0::2] - r[1::2]
    loss = jnp.mean(jax.nn.softplus(-margin))
    metrics = {"train/bt_loss": loss, "train/pairwise_accuracy": jnp.mean(margin > 0),
               "train/margin": jnp.mean(margin), "train/score_mean": jnp.mean(r),
               "moe/balance_loss": aux.balance_loss}
    return loss + aux.balance_loss, (metrics, aux.expert_load)

  return loss_fn


def pad_rows(seqs: Sequence[Sequence[int]], width: int, pad_id: int
             ) -> tuple[np.ndarray, np.ndarray]:
  """Right-padded tokens [N, width] and lengths [N] (every seq must fit)."""
  tokens = np.full((len(seqs), width), pad_id, np.int32)
  lengths = np.zeros((len(seqs),), np.int32)
  for i, s in enumerate(seqs):
    if len(s) > width:
      raise ValueError(f"sequence {i} has {len(s)} tokens; rows hold {width}")
    tokens[i, :len(s)] = s
    lengths[i] = len(s)
  return tokens, lengths


class PairData:
  """Encoded preference pairs (chosen ids, rejected ids) as endless epochs of batches,
  batch `step` a pure function of (seed, step) like `sft.SFTData` (resumable). Pairs
  with a side longer than seq_len tokens are dropped and counted."""

  def __init__(self, pairs: Sequence[tuple[Sequence[int], Sequence[int]]], *, seq_len: int,
               pad_id: int, batch_pairs: int, seed: int):
    kept = [p for p in pairs if max(len(p[0]), len(p[1])) <= seq_len]
    self.dropped = len(pairs) - len(kept)
    if not kept:
      raise ValueError(f"no preference pair fits seq_len = {seq_len} tokens "
                       f"({self.dropped} dropped)")
    flat = [s for p in kept for s in p]  # chosen, rejected, chosen, ...
    self.tokens, self.lengths = pad_rows(flat, seq_len, pad_id)
    self.num_pairs, self.batch_pairs, self.seed = len(kept), batch_pairs, seed
    self._orders: dict[int, np.ndarray] = {}

  def steps_for(self, epochs: float) -> int:
    return max(1, -(-round(epochs * self.num_pairs) // self.batch_pairs))

  def epoch_at(self, step: int) -> float:
    return step * self.batch_pairs / self.num_pairs

  def _order(self, epoch: int) -> np.ndarray:
    if epoch not in self._orders:
      self._orders = {epoch: np.random.default_rng((self.seed, 2, epoch)).permutation(
          self.num_pairs)}
    return self._orders[epoch]

  def batch(self, step: int) -> dict[str, np.ndarray]:
    pos = step * self.batch_pairs + np.arange(self.batch_pairs)
    epochs, within = np.divmod(pos, self.num_pairs)
    pairs = np.asarray([self._order(int(e))[i] for e, i in zip(epochs, within)])
    rows = np.stack([2 * pairs, 2 * pairs + 1], axis=1).reshape(-1)
    return {"tokens": self.tokens[rows], "lengths": self.lengths[rows]}


def score_rows(params: Any, model_cfg: Any, tokens: np.ndarray, lengths: np.ndarray, *,
               batch_rows: int, mesh: Any = None, rules: Any = None) -> np.ndarray:
  """Scores float32 [N] of right-padded rows, `batch_rows` per jitted call (the last
  call filled with copies of row 0 so every call has one shape)."""
  from r1jax import distributed, sharding
  frozen = ml_collections.FrozenConfigDict(model_cfg)
  out = []
  for start in range(0, len(tokens), batch_rows):
    t, n = tokens[start:start + batch_rows], lengths[start:start + batch_rows]
    short = batch_rows - len(t)
    if short:
      t = np.concatenate([t, np.repeat(t[:1], short, 0)])
      n = np.concatenate([n, np.repeat(n[:1], short, 0)])
    if mesh is not None:
      t = distributed.put(t, sharding.batch_sharding(mesh, rules, 2, t.shape))
      n = distributed.put(n, sharding.batch_sharding(mesh, rules, 1, n.shape))
      with sharding.use_mesh(mesh, rules):
        s = _scores_jit(params, t, n, frozen)
    else:
      s = _scores_jit(params, t, n, frozen)
    out.append(distributed.fetch(s)[:batch_rows - short])
  return np.concatenate(out) if out else np.zeros((0,), np.float32)


def pairwise_accuracy(params: Any, model_cfg: Any, data: PairData, *, batch_rows: int,
                      mesh: Any = None, rules: Any = None) -> dict[str, float]:
  """Held-out share of pairs whose chosen response scores above the rejected one."""
  s = score_rows(params, model_cfg, data.tokens, data.lengths, batch_rows=batch_rows,
                 mesh=mesh, rules=rules)
  margin = s[0::2] - s[1::2]
  return {"pairwise_accuracy": float(np.mean(margin > 0)), "margin": float(np.mean(margin)),
          "pairs": int(data.num_pairs)}
