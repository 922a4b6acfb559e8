"""Supervised fine-tuning data and loss: completion-only loss, packing, epochs.

Used by the cold-start SFT, the final SFT and distillation. An example is a pair
(prompt_ids, completion_ids) of token lists: the prompt carries BOS if the tokenizer
has one, the completion carries EOS. Only completion tokens are trained on.

A row holds seq_len + 1 tokens: the model reads tokens[:, :-1] and predicts
tokens[:, 1:]. Several examples share a row (`pack`); `segment_ids` keep them from
attending to each other (`model.apply`) and `positions` restart at 0 for each, so a
packed example computes exactly what it would alone. A row's arrays:
  tokens       int32 [R, seq_len+1]  pad_id after the last example
  loss_mask    float32 [R, seq_len]  1 where the target tokens[:, j+1] is a completion
               token of the example that token j belongs to: the first completion token
               is predicted from the last prompt token, no target crosses a boundary
  segment_ids  int32 [R, seq_len]    0 = padding, 1, 2, ... the examples of the row
  positions    int32 [R, seq_len]    position within the example (0 on padding)
A batch (`SFTData.batch`) adds `loss_denominator`, the batch's completion tokens, so
that gradient accumulation is exact (`state.make_train_step`).

Shape letters: R rows, B batch rows, T = seq_len.
"""

from __future__ import annotations

import bisect
import functools
from typing import Any, Iterable, NamedTuple, Sequence

from absl import logging
import jax
import ml_collections
import numpy as np

from r1jax.train import state as state_lib

Array = jax.Array
Example = tuple[Sequence[int], Sequence[int]]  # (prompt_ids, completion_ids)
ROW_KEYS = ("tokens", "loss_mask", "segment_ids", "positions")


class Packed(NamedTuple):
  rows: dict[str, np.ndarray]  # ROW_KEYS, shapes in the module docstring
  row_examples: list[list[int]]  # indices into `examples` of each row's segments
  dropped: int  # examples longer than seq_len + 1 tokens, left out


def _assign_rows(lengths: Sequence[int], capacity: int, packed: bool) -> list[list[int]]:
  """Best-fit in the given order: each example goes into the open row with the least
  room that still holds it, else a new row (O(N log R)). Unpacked: one per row."""
  if not packed:
    return [[i] for i in range(len(lengths))]
  rows: list[list[int]] = []
  room: list[tuple[int, int]] = []  # sorted (free tokens, row index)
  for i, n in enumerate(lengths):
    j = bisect.bisect_left(room, (n, -1))
    if j < len(room):
      free, r = room.pop(j)
    else:
      free, r = capacity, len(rows)
      rows.append([])
    rows[r].append(i)
    if free - n:
      bisect.insort(room, (free - n, r))
  return rows


def pack(examples: Sequence[Example], seq_len: int, pad_id: int, *, packed: bool = True
         ) -> Packed:
  """Examples as rows of seq_len + 1 tokens (module docstring), several to a row
  (best-fit in the given order) or, with `packed=False`, one to a row. An example
  longer than seq_len + 1 tokens is dropped and counted."""
  kept = [i for i, (p, c) in enumerate(examples) if len(p) + len(c) <= seq_len + 1]
  lengths = [len(examples[i][0]) + len(examples[i][1]) for i in kept]
  assignment = [[kept[i] for i in row] for row in _assign_rows(lengths, seq_len + 1, packed)]
  n = len(assignment)
  tokens = np.full((n, seq_len + 1), pad_id, np.int32)
  loss_mask = np.zeros((n, seq_len), np.float32)
  segment_ids = np.zeros((n, seq_len), np.int32)
  positions = np.zeros((n, seq_len), np.int32)
  for r, row in enumerate(assignment):
    start = 0
    for s, i in enumerate(row, 1):
      prompt, completion = examples[i]
      end = start + len(prompt) + len(completion)
      tokens[r, start:end] = list(prompt) + list(completion)
      stop = min(end, seq_len)  # the row's last token is a target only
      segment_ids[r, start:stop] = s
      positions[r, start:stop] = np.arange(stop - start)
      # Targets end-len(completion) .. end-1 are predicted from inputs one earlier;
      # never from the previous example's last token (an empty prompt).
      loss_mask[r, max(end - len(completion) - 1, start):end - 1] = 1.0
      start = end
  rows = {"tokens": tokens, "loss_mask": loss_mask, "segment_ids": segment_ids,
          "positions": positions}
  return Packed(rows, assignment, len(examples) - len(kept))


def with_denominator(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """`batch` plus `loss_denominator`: its completion tokens (at least 1), float32."""
  return {**batch, "loss_denominator": np.float32(max(batch["loss_mask"].sum(), 1.0))}


def fixed_batches(rows: dict[str, np.ndarray], batch_size: int) -> list[dict[str, np.ndarray]]:
  """Rows in order as batches of `batch_size`, the last filled up with all-zero rows
  (segment 0, no loss), so that every batch has one shape (held-out evaluation)."""
  out = []
  for start in range(0, len(rows["tokens"]), batch_size):
    b = {k: v[start:start + batch_size] for k, v in rows.items()}
    short = batch_size - len(b["tokens"])
    b = {k: np.concatenate([v, np.zeros((short,) + v.shape[1:], v.dtype)]) for k, v in b.items()}
    out.append(with_denominator(b))
  return out


class SFTData:
  """Epochs over a finite list of examples, packed, served as fixed-size batches.

  The examples are shuffled by `seed` and packed once (`pack`); the rows then form an
  endless stream, epoch after epoch, each epoch's rows in its own order (a pure
  function of (seed, epoch)). Batch `step` is stream rows [step*B, (step+1)*B): a pure
  function of (seed, step), so a resumed run (mid-epoch too) sees exactly the batches
  an uninterrupted one would. Batches are always full: where an epoch ends mid-batch,
  the batch rolls over into the next epoch (no padding rows; `epochs` need not be whole).
  """

  def __init__(self, examples: Sequence[Example], *, seq_len: int, pad_id: int,
               batch_size: int, seed: int, packed: bool = True):
    self.batch_size, self.seed = batch_size, seed
    order = np.random.default_rng((seed, 1)).permutation(len(examples))
    p = pack([examples[i] for i in order], seq_len, pad_id, packed=packed)
    self.rows = p.rows
    # Indices into `examples` of each row's segments.
    self.row_examples = [[int(order[i]) for i in row] for row in p.row_examples]
    self.dropped = p.dropped
    self.num_rows = len(self.row_examples)
    if not self.num_rows:
      raise ValueError(f"no example fits seq_len + 1 = {seq_len + 1} tokens "
                       f"({p.dropped} dropped)")
    self._orders: dict[int, np.ndarray] = {}
    fill = float((self.rows["segment_ids"] > 0).mean())
    logging.info("SFT data: %d examples in %d rows of %d tokens (%.1f%% filled), %d dropped "
                 "as too long, %.2f steps per epoch", len(examples) - p.dropped,
                 self.num_rows, seq_len + 1, 100 * fill, p.dropped, self.steps_per_epoch)

  @property
  def steps_per_epoch(self) -> float:
    """Batches per pass over the rows (fractional: batches roll over epochs)."""
    return self.num_rows / self.batch_size

  def steps_for(self, epochs: float) -> int:
    """Steps that serve `epochs` passes over the rows (rounded to whole rows; the last
    batch may run into the next epoch)."""
    return -(-round(epochs * self.num_rows) // self.batch_size)

  def epoch_at(self, step: int) -> float:
    """Epochs completed before batch `step`."""
    return step * self.batch_size / self.num_rows

  def epoch_order(self, epoch: int) -> np.ndarray:
    """The row order of `epoch`, int64 [R]: a pure function of (seed, epoch)."""
    if epoch not in self._orders:
      if len(self._orders) >= 4:
        self._orders.pop(next(iter(self._orders)))
      self._orders[epoch] = np.random.default_rng((self.seed, 0, epoch)).permutation(
          self.num_rows)
    return self._orders[epoch]

  def rows_at(self, step: int) -> np.ndarray:
    """Indices into `rows` of batch `step`, int64 [B]."""
    pos = step * self.batch_size + np.arange(self.batch_size)
    epochs, within = np.divmod(pos, self.num_rows)
    return np.asarray([self.epoch_order(int(e))[i] for e, i in zip(epochs, within)])

  def batch(self, step: int) -> dict[str, np.ndarray]:
    """Batch `step`: ROW_KEYS [B, ...] and the scalar loss_denominator."""
    idx = self.rows_at(step)
    return with_denominator({k: v[idx] for k, v in self.rows.items()})


def sft_loss(model_cfg: Any) -> state_lib.LossFn:
  """Completion-only next-token cross-entropy over packed rows: `state.lm_loss`, which
  reads segment_ids, positions and loss_denominator when the batch has them."""
  return state_lib.lm_loss(model_cfg)


@functools.partial(jax.jit, static_argnames="model_cfg")
def _heldout_sums(params: Any, batch: dict[str, Array], model_cfg: Any
                  ) -> tuple[Array, Array, Array]:
  nll, hit, _ = state_lib.token_nll(params, model_cfg, batch)
  mask = batch["loss_mask"]
  return (nll * mask).sum(), (hit * mask).sum(), mask.sum()


def heldout_loss(params: Any, model_cfg: Any, batches: Iterable[dict[str, np.ndarray]]
                 ) -> dict[str, float]:
  """Mean completion-token NLL and token accuracy over held-out batches (`fixed_batches`),
  as heldout/ce, heldout/token_accuracy and heldout/tokens."""
  frozen = ml_collections.FrozenConfigDict(model_cfg)
  nll = hits = count = 0.0
  for b in batches:
    sums = _heldout_sums(params, {k: b[k] for k in ROW_KEYS if k in b}, frozen)
    n, h, c = (float(x) for x in jax.device_get(sums))
    nll, hits, count = nll + n, hits + h, count + c
  count_or_1 = max(count, 1.0)
  return {"heldout/ce": nll / count_or_1, "heldout/token_accuracy": hits / count_or_1,
          "heldout/tokens": count}
