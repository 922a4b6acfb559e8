"""pass@1 over k samples, cons@k (majority vote), pass@k (unbiased estimator).

The paper's protocol (DeepSeek-R1, section 3): k samples per problem at temperature 0.6
and top-p 0.95; pass@1 = mean over problems of the fraction of correct samples; cons@k
= accuracy of the most frequent extracted answer (votes pooled over equivalent answers).
"""

from __future__ import annotations

import math
import operator
from typing import Callable, Sequence


def pass_at_1(correct: Sequence[Sequence[bool]]) -> float:
  """Mean over problems of the fraction of correct samples."""
  return sum(sum(c) / len(c) for c in correct) / len(correct)


def pass_at_k(n: int, c: int, k: int) -> float:
  """Unbiased pass@k from n samples with c correct (Chen et al. 2021)."""
  if n - c < k:
    return 1.0
  return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


def majority_answer(answers: Sequence[str | None],
                    equiv: Callable[[str, str], bool] = operator.eq) -> str | None:
  """Most frequent non-None answer, votes counted per class of `equiv` ('0.5' and
  '\\frac{1}{2}' vote together under math equivalence); ties go to the class seen first,
  represented by its first answer."""
  classes: list[list[str]] = []
  for a in answers:
    if a is None:
      continue
    home = next((c for c in classes if c[0] == a or equiv(a, c[0])), None)
    if home is None:
      classes.append([a])
    else:
      home.append(a)
  if not classes:
    return None
  best = max(len(c) for c in classes)
  return next(c[0] for c in classes if len(c) == best)
