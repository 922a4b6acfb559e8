"""Training streams: a stage's items from its 'task:split' sources, step by step, as a
pure function of (seed, step), so a resumed run sees the same data.

  Stream(registry, refs, seed, salt=...)            one pool (or one generated split)
  Stream(registry, refs, seed, salt=..., weights=w) a mixture: each step's n items
                                                    split by w (largest remainders),
                                                    each source walked on its own

A mixture is how R1's stage 4 RL mixes reasoning prompts (a generated split) with
general prompts at a fixed ratio; every step holds the same count of each.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from r1jax import configs


def quotas(n: int, weights: Sequence[float]) -> list[int]:
  """`n` split in proportion to `weights` (non-negative, not all 0); the rounding goes
  to the largest remainders, ties to the earlier source."""
  total = float(sum(weights))
  exact = [n * w / total for w in weights]
  q = [int(x) for x in exact]
  for i in sorted(range(len(q)), key=lambda i: (q[i] - exact[i], i))[:n - sum(q)]:
    q[i] += 1
  return q


def check_weights(weights: Sequence[float], refs: Sequence[str], where: str) -> None:
  if weights and (len(weights) != len(refs) or min(weights) < 0 or max(weights) <= 0):
    raise configs.ConfigError(f"{where}={tuple(weights)}: one non-negative weight per source "
                              f"of {tuple(refs)}, not all 0 (or () for one pooled stream).")


class Stream:
  """Training items from one or more 'task:split' sources, `batch(step, n)` a pure
  function of (seed, step). A single infinite split (synthetic train) is drawn afresh
  per step; finite splits are pooled and walked in a fresh permutation per epoch. With
  `weights`, each source is a stream of its own and each step takes `quotas(n, w)`
  items from them (a generated split may then be mixed with finite ones)."""

  def __init__(self, registry: Any, refs: Sequence[str], seed: int, *, salt: int,
               what: str = "problems", weights: Sequence[float] = ()):
    if not refs:
      raise configs.ConfigError("a training stage needs at least one 'task:split' source.")
    self.seed, self.salt = seed, salt
    check_weights(weights, refs, "weights")
    self.weights = tuple(weights)
    self.parts = [Stream(registry, (r,), seed, salt=salt + 7919 * (i + 1), what=what)
                  for i, r in enumerate(refs)] if weights else []
    self.pool: list[tuple[Any, dict]] = []
    self.infinite = None
    self._orders: dict[int, np.ndarray] = {}
    if weights:
      return
    pairs = [registry.resolve(r) for r in refs]
    infinite = [(t, s) for t, s in pairs if s in t.INFINITE]
    self.infinite = infinite[0] if infinite else None
    if infinite and (len(pairs) > 1 or what != "problems"):
      raise configs.ConfigError(
          f"sources {list(refs)}: a generated split ({infinite[0][0].name}:{infinite[0][1]}) "
          f"cannot be pooled with others or used for SFT rows; use it alone, or mix sources "
          f"with weights.")
    if not infinite:
      for t, s in pairs:
        items = t.problems(s) if what == "problems" else t.sft_examples(s)
        self.pool += [(t, x) for x in items]
      if not self.pool:
        raise configs.ConfigError(f"sources {list(refs)} hold no {what}.")

  def __len__(self) -> int:
    return len(self.pool) if not self.parts else sum(len(p) for p in self.parts)

  def _order(self, epoch: int) -> np.ndarray:
    if epoch not in self._orders:
      self._orders = {epoch: np.random.default_rng([self.seed, self.salt, epoch]).permutation(
          len(self.pool))}
    return self._orders[epoch]

  def batch(self, step: int, n: int) -> list[tuple[Any, dict]]:
    """The `n` items of training step `step` (a mixture: source by source, in order)."""
    if self.parts:
      out = []
      for part, q in zip(self.parts, quotas(n, self.weights)):
        out += part.batch(step, q) if q else []
      return out
    if self.infinite is not None:
      task, split = self.infinite
      rng = np.random.default_rng([self.seed, self.salt + step])
      return [(task, x) for x in task.draw(split, rng, n)]
    out = []
    for i in range(step * n, (step + 1) * n):
      epoch, pos = divmod(i, len(self.pool))
      out.append(self.pool[int(self._order(epoch)[pos])])
    return out
