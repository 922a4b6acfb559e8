"""Answer forms graders accept (issue 18), each with what must still be rejected."""

from __future__ import annotations

import pytest

from r1jax.rewards import math_equiv
from r1jax.rewards.math_equiv import extract_answer, is_equiv


@pytest.fixture(scope="module", autouse=True)
def _warm_helper():
  math_equiv.warmup()


ACCEPTED = [
    # lists with semicolons, sets in bare braces
    ("1; 2; 3", "1, 2, 3"),
    ("1;2;3", "\\{1,2,3\\}"),
    ("(1, 2); (3, 4)", "(3, 4), (1, 2)"),
    ("{1, 2}", "\\{2, 1\\}"),
    ("{1, 2}", "2, 1"),
    ("\\{1, 2\\}", "{2, 1}"),
    ("{5}", "5"),  # a group, not a set
    # MATH's thousands separator with a space after \!
    ("1,\\! 000", "1000"),
    ("10,\\! 000", "10,\\!000"),
    ("1,\\! 000,\\! 000", "1000000"),
    ("\\$12,\\! 500", "12500"),
    # serial comma before "and"/"or"
    ("2, 5, and 9", "2, 5, 9"),
    ("2, 5, and 9", "\\{9, 5, 2\\}"),
    ("x = 1, x = 2, or x = 3", "1, 2, 3"),
    ("2, 5, \\text{ and } 9", "2, 5, 9"),
    ("2, 5, \\text{and } 9", "9, 2, 5"),
    # several boxes as one list answer
    ("\\boxed{1}, \\boxed{2}", "1, 2"),
    ("\\boxed{1} and \\boxed{2}", "\\{2, 1\\}"),
    # chained equations: the last right-hand side
    ("x = 5 + 6 = 11", "11"),
    ("x = 5 + 6 = 11", "x = 11"),
    ("f(2) = 2^2 + 1 = 5", "5"),
    ("5 + 6 = 11", "11"),
    ("x = \\frac{6}{4} = \\frac{3}{2}", "1.5"),
    ("5 = x", "x = 5"),  # a plain equation, either way round
    ("5 = x", "5"),
    ("3 = 2x - 1", "2x - 1 = 3"),
    ("3 = 2x - 1", "x = 2"),
    # approximations
    ("\\approx 3.14", "3.14"),
    ("x \\approx 3.14", "3.14"),
    ("x \\approx 3.14", "x = 3.14"),
    ("\\pi \\approx 3.14", "\\pi"),
    ("\\pi \\approx 3.14", "3.14"),
    ("x = \\frac{1}{3} \\approx 0.333", "\\frac{1}{3}"),
    ("x = \\frac{1}{3} \\approx 0.333", "0.333"),
    ("\\sqrt{2} \u2248 1.41", "\\sqrt{2}"),
    ("\\frac{1}{3} \\approx 0.33", "\\approx 0.33"),
    ("\\frac{1}{3} \\approx 0.3", "0.3"),  # 1/3 rounds to 0.3 at one decimal
    ("10\\sqrt{2} \\approx 14.14", "10\\sqrt2"),
    # double inequalities and intervals
    ("1 < x < 3", "(1, 3)"),
    ("1 \\le x \\le 3", "[1, 3]"),
    ("1 < x \\le 3", "(1, 3]"),
    ("-2 \\leq x < 5", "[-2, 5)"),
    ("3 > x > 1", "(1, 3)"),
    ("3 \\ge x > 1", "(1, 3]"),
    ("1 < x < 3", "x \\in (1, 3)"),
    ("1 < x < 3", "1 < x < 3"),
    ("x > 3", "(3, \\infty)"),
    ("x \\ge 3", "[3, \\infty)"),
    ("x < -1", "(-\\infty, -1)"),
    ("3 \\le x", "[3, \\infty)"),
    # labelled answers whose left side is not a plain name
    ("AB = 4", "4"),
    ("AB = 2\\sqrt{3}", "\\sqrt{12}"),
    ("\\overline{AB} = 4", "4"),
    ("m\\angle ABC = 30^\\circ", "30"),
    ("\\angle A = 45", "45"),
    ("[ABC] = 12", "12"),
    ("h_{max} = 7", "7"),
    ("h_{\\max} = 7", "7"),
    ("h_{\\text{max}} = 7", "7"),
    ("v_{\\text{max}} = 7", "v_{max} = 7"),
    ("\\text{Area} = 12", "12"),
]

REJECTED = [
    ("1; 2", "1, 2, 3"),
    ("1,2;3,4", "1,2,3,4"),  # two pairs, not four numbers
    ("1;2", "(1, 2)"),  # a list is not a tuple
    ("{1, 2}", "(1, 2)"),
    ("{1, 2}", "\\{1, 2, 2\\}"),
    ("{1, 1}", "{1}"),
    ("1,\\! 00", "100"),  # not a 3-digit group: a list
    ("0,\\! 100", "100"),
    ("1,\\! 0000", "10000"),
    ("2, 5, and 9", "2, 5, 10"),
    ("2, 5, and 9", "2, 5"),
    ("2, 5, and 9", "(2, 5, 9)"),
    ("\\boxed{1}, \\boxed{2}", "2"),
    ("\\boxed{1}, \\boxed{2}", "(1, 2)"),
    ("x = 5 + 6 = 12", "11"),
    ("2x = 4 = 2", "2"),  # unknowns on the left, not a name
    ("x = 5 < 6", "5"),  # mixed chain
    ("1 < x < 3 < 4", "(1, 3)"),
    ("\\approx 3.14", "\\pi"),
    ("3.14", "\\pi"),
    ("\\frac{1}{3} \\approx 5", "5"),  # the approximation does not round the exact value
    ("\\frac{1}{3} \\approx 0.333", "\\frac{2}{3} \\approx 0.333"),  # exact values differ
    ("\\pi \\approx 3.14", "3.1416"),
    ("x \\approx 3.14", "\\pi"),
    ("\\frac{22}{7} \\approx 3.14", "\\pi"),
    ("1 < x < 3", "[1, 3]"),
    ("1 < x < 3", "(1, 3]"),
    ("1 < x < 3", "(1, 4)"),
    ("1 < x < 3", "1, 3"),
    ("1 < x < 3", "x > 1"),
    ("1 < x < 3", "1 < y < 3"),
    ("x < 1 < 3", "(1, 3)"),  # not a name in the middle
    ("x > 3", "[3, \\infty)"),
    ("x > 3", "(-\\infty, 3)"),
    ("x > y", "(y, \\infty)"),
    ("AB = 4", "CD = 4"),
    ("AB = 4", "5"),
    ("xy = 4", "4"),  # an equation in lower-case unknowns
    ("AB = x", "x"),  # a right side with letters: an equation
    ("x + y = 5", "5"),
    ("3 = 2x - 1", "3"),
    ("3 = 2x - 1", "2x - 1 = 4"),
    ("h_{\\text{min}} = 7", "h_{\\text{max}} = 7"),
    ("\\pi = 3.14", "\\pi"),  # judged by its right-hand side, 3.14
]


@pytest.mark.parametrize("pred, gold", ACCEPTED)
def test_accepted_forms(pred, gold):
  assert is_equiv(pred, gold) is True
  assert is_equiv(gold, pred) is True


@pytest.mark.parametrize("pred, gold", REJECTED)
def test_rejected_forms(pred, gold):
  assert is_equiv(pred, gold) is False
  assert is_equiv(gold, pred) is False


def test_chain_uses_last_right_hand_side():
  assert is_equiv("x = 11 = 5 + 6", "11") is True  # 5 + 6, the last right-hand side
  assert is_equiv("x = 12 = 5 + 6", "12") is False


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("So $\\boxed{1}$ and $\\boxed{-2}$.", "1, -2"),
        ("\\boxed{1}, \\boxed{2}, and \\boxed{3}", "1, 2, 3"),
        ("$x = \\boxed{2}$ or $x = \\boxed{3}$", "2, 3"),
        ("<answer>\\boxed{1}; \\boxed{2}</answer>", "1, 2"),
        ("\\boxed{1}\\quad\\boxed{2}", "1, 2"),
        ("first \\boxed{3} then \\boxed{4}", "4"),
        ("x = \\boxed{2}. Then y = \\boxed{3}", "3"),
        ("\\boxed{5}, \\boxed{6", "5"),  # the truncated box is skipped
        ("\\boxed{1} \\boxed 2", "2"),
        ("\\boxed{\\boxed{1}}", "1"),
    ],
)
def test_runs_of_boxes(completion, expected):
  assert extract_answer(completion) == expected


def test_run_of_boxes_is_one_list_not_a_guess():
  # Boxing several guesses never matches a single gold answer.
  answer = extract_answer("\\boxed{3}, \\boxed{4}, \\boxed{5}")
  assert answer == "3, 4, 5"
  assert not any(is_equiv(answer, g) for g in ("3", "4", "5"))
