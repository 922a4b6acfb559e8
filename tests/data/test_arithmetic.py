"""The synthetic tasks: answers, worked solutions and the train/eval split."""

import re

import pytest

from r1jax.data import arithmetic


def _replay_last_digit(question: str, worked: str) -> tuple[list[int], list[int]]:
  """Terms of the question; (terms used, running digits) read back from the steps."""
  terms = [int(x) for x in re.findall(r"\d", question.split("of ", 1)[1])]
  steps = [s.split(":") for s in worked.split(",")]
  return terms, [int(a) for a, _ in steps], [int(b) for _, b in steps]


def test_last_digit_answers_and_steps():
  probs = arithmetic.sample_last_digit_problems(3, 300, 4, 7, split="train")
  assert {len(p.terms) for p in probs} == {4, 5, 6, 7}
  for p in probs:
    assert len(set(p.terms)) == len(p.terms)  # distinct digits
    # Independent check of the answer: the last character of the decimal sum.
    assert p.answer == str(sum(p.terms))[-1]
    terms, used, running = _replay_last_digit(p.question, arithmetic.worked_steps(p))
    assert terms == list(p.terms)
    assert used == sorted(terms)  # every term once, in increasing order
    total = 0
    for d, r in zip(used, running):
      total += d
      assert r == total % 10
    assert running[-1] == int(p.answer)
  text = arithmetic.completion(probs[0], "worked")
  assert re.fullmatch(r" <think>(\d:\d,)*\d:\d</think> <answer>\d</answer>", text)


def test_last_digit_example():
  p = arithmetic.LastDigitProblem((7, 2, 4))
  assert p.question == "What is the last digit of 7+2+4?"
  assert arithmetic.worked_steps(p) == "2:2,4:6,7:3"
  assert p.answer == "3"


def test_last_digit_split_holds_out_digit_sets():
  """No held-out set of digits appears in training, in any order."""
  train = arithmetic.sample_last_digit_problems(0, 3000, 4, 7, split="train")
  held = arithmetic.sample_last_digit_problems(1, 300, 4, 7, split="eval")
  train_sets = {frozenset(p.terms) for p in train}
  held_sets = {frozenset(p.terms) for p in held}
  assert held_sets and not train_sets & held_sets
  # Roughly the requested fraction of all sets of 4..7 distinct digits is held out.
  assert 30 <= len(held_sets) <= 140


def test_sample_task_dispatch_and_errors():
  assert isinstance(arithmetic.sample_task("addition", 0, 2, split="train")[0],
                    arithmetic.Problem)
  p = arithmetic.sample_task("digit_sum", 0, 1, split="eval", min_terms=3, max_terms=3)[0]
  assert type(p) is arithmetic.SumProblem and len(p.terms) == 3
  with pytest.raises(ValueError, match="allowed"):
    arithmetic.sample_task("multiplication", 0, 1, split="train")
  with pytest.raises(ValueError, match="<= 10"):
    arithmetic.sample_last_digit_problems(0, 1, 4, 11, split="train")
  with pytest.raises(ValueError, match="split"):
    arithmetic.sample_last_digit_problems(0, 1, 4, 5, split="test")
