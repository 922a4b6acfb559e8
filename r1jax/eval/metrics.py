"""pass@1 over k samples, cons@k (majority vote), pass@k (unbiased estimator).

The paper's protocol (DeepSeek-R1, section 3): k samples per problem at temperature 0.6
and top-p 0.95; pass@1 = mean over problems of the fraction of correct samples; cons@k
= accuracy of the most frequent extracted answer.
"""

from __future__ import annotations

import collections
import math
from typing import Sequence


def pass_at_1(correct: Sequence[Sequence[bool]]) -> float:
  """Mean over problems of the fraction of correct samples."""
  return sum(sum(c) / len(c) for c in correct) / len(correct)


def pass_at_k(n: int, c: int, k: int) -> float:
  """Unbiased pass@k from n samples with c correct (Chen et al. 2021)."""
  if n - c < k:
    return 1.0
  return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


def majority_answer(answers: Sequence[str | None]) -> str | None:
  """Most frequent non-None answer; ties go to the one seen first."""
  counts = collections.Counter(a for a in answers if a is not None)
  if not counts:
    return None
  best = max(counts.values())
  return next(a for a in answers if a is not None and counts[a] == best)
