"""Synthetic reasoning tasks checked by rule: multi-digit addition and digit sums.

`Problem` (a + b): the worked solution adds column by column from the least significant
digit, each step `a+b+carry=sum`. `SumProblem` (d1 + d2 + ... + dn, single digits): the
worked solution keeps a running total, each step `+d=new`, so every step is one
small addition whose operands sit right before it; the answer is the last total.

Solutions come in two styles. `direct`: the answer alone. `worked`: the steps inside
<think>, which a small model executes far more reliably than a direct multi-term sum.
The base-model corpus mixes both, so that RL has something to discover: that thinking
first pays (and responses get longer).

Problems are generated offline from a seed; evaluation problems are drawn from a
disjoint set (a hash split on the operands), so they never appear in training.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Callable

import numpy as np


@dataclasses.dataclass(frozen=True)
class Problem:
  a: int
  b: int

  @property
  def question(self) -> str:
    return f"What is {self.a} + {self.b}?"

  @property
  def answer(self) -> str:
    return str(self.a + self.b)


def _in_eval_split(key: str, eval_fraction: float) -> bool:
  """Deterministic split by a hash of `key` (never train on eval problems)."""
  h = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
  return (h % 10_000) < eval_fraction * 10_000


def _sample_split(seed: int, n: int, split: str, eval_fraction: float,
                  draw: Callable[[np.random.Generator], Any], split_key: Callable[[Any], str]
                  ) -> list[Any]:
  """`n` problems `draw(rng)` from one split, the split decided by `split_key(problem)`."""
  if split not in ("train", "eval"):
    raise ValueError(f"split={split!r}; allowed: 'train', 'eval'.")
  rng = np.random.default_rng(seed)
  out = []
  while len(out) < n:
    p = draw(rng)
    if _in_eval_split(split_key(p), eval_fraction) == (split == "eval"):
      out.append(p)
  return out


def is_eval_problem(p: Problem, eval_fraction: float) -> bool:
  """Deterministic split by a hash of the operands (never train on eval problems)."""
  return _in_eval_split(f"{p.a}+{p.b}", eval_fraction)


def sample_problems(seed: int, n: int, digits: int, *, split: str, eval_fraction: float = 0.1
                    ) -> list[Problem]:
  """`n` problems with operands of 1..`digits` digits from the 'train' or 'eval' split."""
  def draw(rng: np.random.Generator) -> Problem:
    da, db = rng.integers(1, digits + 1, size=2)
    a = int(rng.integers(10 ** (da - 1) if da > 1 else 0, 10 ** da))
    b = int(rng.integers(10 ** (db - 1) if db > 1 else 0, 10 ** db))
    return Problem(a, b)
  return _sample_split(seed, n, split, eval_fraction, draw, lambda p: f"{p.a}+{p.b}")


@dataclasses.dataclass(frozen=True)
class SumProblem:
  terms: tuple[int, ...]

  @property
  def question(self) -> str:
    return "What is " + "+".join(map(str, self.terms)) + "?"

  @property
  def answer(self) -> str:
    return str(sum(self.terms))


@dataclasses.dataclass(frozen=True)
class LastDigitProblem(SumProblem):
  """The last digit of a sum of distinct digits: hard at a glance, easy step by step.

  The worked solution adds the terms in increasing order ('2:2,4:6,7:3' for the last
  digit of 7 + 2 + 4: each step names the next larger term, then the last digit of the
  total so far). Finding the next larger term is a lookup by content, which a small
  transformer learns quickly; a direct answer needs the whole sum mod 10 at once.
  """

  @property
  def question(self) -> str:
    return "What is the last digit of " + "+".join(map(str, self.terms)) + "?"

  @property
  def answer(self) -> str:
    return str(sum(self.terms) % 10)


def sample_last_digit_problems(seed: int, n: int, min_terms: int, max_terms: int, *,
                               split: str, eval_fraction: float = 0.1
                               ) -> list[LastDigitProblem]:
  """`n` problems of min_terms..max_terms distinct digits from one split. The split
  hashes the set of digits, so no held-out set appears in training in any order."""
  if not 2 <= min_terms <= max_terms <= 10:
    raise ValueError(f"need 2 <= min_terms <= max_terms <= 10, got {min_terms}, {max_terms}.")
  def draw(rng: np.random.Generator) -> LastDigitProblem:
    k = int(rng.integers(min_terms, max_terms + 1))
    return LastDigitProblem(tuple(int(x) for x in rng.choice(10, size=k, replace=False)))
  return _sample_split(seed, n, split, eval_fraction, draw,
                       lambda p: repr(sorted(p.terms)))


def sample_sum_problems(seed: int, n: int, min_terms: int, max_terms: int, *, split: str,
                        eval_fraction: float = 0.1) -> list[SumProblem]:
  """`n` digit-sum problems of min_terms..max_terms single digits from one split."""
  if not 2 <= min_terms <= max_terms:
    raise ValueError(f"need 2 <= min_terms <= max_terms, got {min_terms}, {max_terms}.")
  def draw(rng: np.random.Generator) -> SumProblem:
    k = int(rng.integers(min_terms, max_terms + 1))
    return SumProblem(tuple(int(x) for x in rng.integers(0, 10, size=k)))
  return _sample_split(seed, n, split, eval_fraction, draw, lambda p: p.question)


TASKS = ("addition", "digit_sum", "last_digit")


def sample_task(name: str, seed: int, n: int, *, split: str, digits: int = 3,
                min_terms: int = 4, max_terms: int = 7, eval_fraction: float = 0.1
                ) -> list[Problem | SumProblem]:
  """`n` problems of the task `name` (one of TASKS) from the 'train' or 'eval' split."""
  if name == "addition":
    return sample_problems(seed, n, digits, split=split, eval_fraction=eval_fraction)
  if name == "digit_sum":
    return sample_sum_problems(seed, n, min_terms, max_terms, split=split,
                               eval_fraction=eval_fraction)
  if name == "last_digit":
    return sample_last_digit_problems(seed, n, min_terms, max_terms, split=split,
                                      eval_fraction=eval_fraction)
  raise ValueError(f"task {name!r}; allowed: {TASKS}.")


def worked_steps(p: Problem | SumProblem) -> str:
  """Column addition from the right ('7+5=12,4+8+1=13' for 47 + 85), running totals
  ('3+5=8,+2=10,+7=17' for 3 + 5 + 2 + 7: each step adds the next term to the total), or
  the terms in increasing order with the running last digit ('2:2,4:6,7:3' for the last
  digit of 7 + 2 + 4)."""
  if isinstance(p, LastDigitProblem):
    terms = sorted(p.terms)
    return ",".join(f"{d}:{t % 10}" for d, t in zip(terms, np.cumsum(terms)))
  if isinstance(p, SumProblem):
    total = p.terms[0] + p.terms[1]
    steps = [f"{p.terms[0]}+{p.terms[1]}={total}"]
    for d in p.terms[2:]:
      steps.append(f"+{d}={total + d}")
      total += d
    return ",".join(steps)
  xs, ys = str(p.a)[::-1], str(p.b)[::-1]
  carry, steps = 0, []
  for i in range(max(len(xs), len(ys))):
    x = int(xs[i]) if i < len(xs) else 0
    y = int(ys[i]) if i < len(ys) else 0
    s = x + y + carry
    steps.append(f"{x}+{y}" + (f"+{carry}" if carry else "") + f"={s}")
    carry = s // 10
  return ",".join(steps)


def tagged(steps: str, answer: str) -> str:
  """A completion in the R1-Zero tag format: ' <think>steps</think> <answer>answer</answer>'."""
  return f" <think>{steps}</think> <answer>{answer}</answer>"


def completion(p: Problem | SumProblem, style: str) -> str:
  """The assistant's text after the prompt, in the R1-Zero tag format."""
  if style == "worked":
    return tagged(worked_steps(p), p.answer)
  if style == "direct":
    return tagged("", p.answer)
  raise ValueError(f"style={style!r}; allowed: 'worked', 'direct'.")
