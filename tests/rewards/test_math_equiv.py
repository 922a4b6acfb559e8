"""Tests for r1jax.rewards.math_equiv: extraction, the labelled set, adversarial inputs, safety."""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import pathlib
import random
import threading
import time

import pytest

from r1jax.rewards import _math_timeout, math_equiv
from r1jax.rewards.math_equiv import extract_answer, is_equiv

DATA = pathlib.Path(__file__).parent / "data"
ADVERSARIAL_LIMIT_S = 4.0  # spec: False within 2 s; slack for shared machines


def _materialize(x: str | dict) -> str:
  """Adversarial inputs are stored compactly: {"prefix", "repeat", "times", "suffix"}."""
  if isinstance(x, str):
    return x
  return x["prefix"] + x["repeat"] * x["times"] + x["suffix"]


def _load(name: str) -> list[dict]:
  with open(DATA / name, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]


CASES = _load("math_equiv_cases.jsonl")
ADVERSARIAL = _load("math_equiv_adversarial.jsonl")


@pytest.fixture(scope="module", autouse=True)
def _warm_helper():
  math_equiv.warmup()
  # One helper-bound call so later timings do not include the helper's start-up.
  assert is_equiv("x+1", "1+x")


# --------------------------------------------------------------------------- extraction

@pytest.mark.parametrize(
    "completion, expected",
    [
        ("<think>hmm</think><answer>42</answer>", "42"),
        ("<think>a</think><answer> \\boxed{7} </answer>", "7"),
        ("<answer>1</answer> then <answer>2</answer>", "2"),
        ("<answer>so \\boxed{1} no \\boxed{\\frac{1}{2}}</answer>", "\\frac{1}{2}"),
        ("The answer is \\boxed{\\{1, 2\\}}.", "\\{1, 2\\}"),
        ("nested \\boxed{\\frac{a^{2}}{b_{1}}} end", "\\frac{a^{2}}{b_{1}}"),
        ("first \\boxed{3} then \\boxed{4}", "4"),
        ("complete \\boxed{5} truncated \\boxed{6", "5"),
        ("\\boxed 9", "9"),
        ("\\fbox{8}", "8"),
        ("<answer>   </answer>", None),
        ("no answer here, maybe 5", None),
        ("<answer>unclosed 5", None),
        ("<answer>unclosed \\boxed{5}", "5"),
        ("", None),
    ],
)
def test_extract_answer(completion, expected):
  assert extract_answer(completion) == expected


def test_extract_answer_non_str_and_huge():
  assert extract_answer(None) is None  # type: ignore[arg-type]
  assert extract_answer(123) is None  # type: ignore[arg-type]
  big = "x" * 200_000 + "<answer>\\boxed{3}</answer>"
  t0 = time.monotonic()
  assert extract_answer(big) == "3"
  assert extract_answer("\\boxed{" * 50_000) is None
  assert time.monotonic() - t0 < 2.0


# --------------------------------------------------------------------------- labelled set

def test_labelled_set_is_hard_and_balanced():
  assert len(CASES) >= 150
  n_true = sum(c["equiv"] for c in CASES)
  assert n_true >= 40 and len(CASES) - n_true >= 40
  for c in CASES:
    assert set(c) >= {"pred", "gold", "equiv", "note"}


def test_labelled_cases_all_correct():
  wrong = []
  for c in CASES:
    got = is_equiv(c["pred"], c["gold"])
    if got is not c["equiv"]:
      wrong.append((c["pred"], c["gold"], c["equiv"], c["note"]))
  assert not wrong, f"{len(wrong)} labelled cases wrong: {wrong}"


def test_symmetry_on_labelled_cases():
  asym = [c for c in CASES if is_equiv(c["gold"], c["pred"]) is not c["equiv"]]
  assert not asym, [(c["pred"], c["gold"]) for c in asym]


@pytest.mark.parametrize(
    "pred, gold, expected",
    [
        ("1,000", "1000", True),  # documented thousands rule
        ("12,345,678.5", "12345678.5", True),
        ("1,2", "\\{1, 2\\}", True),  # a bare list
        ("1, 000", "1000", False),
        ("0,100", "100", False),
        ("1,000,0", "10000", False),  # not three-digit groups: a list
        ("(1,000)", "1000", False),  # the whole bracket content: a pair
        ("1{,}000", "1000", True),
        ("(1,2)", "1,2", False),  # a tuple is not a bare list
        ("(2,3)", "x=2, y=3", False),
        ("25\\%", "0.25", False),  # the percent sign is dropped, not applied
        ("x", "X", False),  # math symbols are case-sensitive
        ("\\text{Yes}", "YES", True),  # text is not
        ("0", "0.000000000000000001", False),  # 1e-18: above the 1e-20 absolute floor
        (" 5 ", "5", True),
        ("", "", False),
        ("5", "", False),
    ],
)
def test_documented_conventions(pred, gold, expected):
  assert is_equiv(pred, gold) is expected


# --------------------------------------------------------------------------- adversarial

def test_adversarial_list_size():
  assert len(ADVERSARIAL) >= 20


@pytest.mark.parametrize("case", ADVERSARIAL, ids=[c["note"] for c in ADVERSARIAL])
def test_adversarial_false_and_fast(case):
  pred = _materialize(case["pred"])
  t0 = time.monotonic()
  got = is_equiv(pred, case["gold"])
  dt = time.monotonic() - t0
  assert got is False
  assert dt < ADVERSARIAL_LIMIT_S, f"{case['note']}: {dt:.2f}s"
  # Both argument orders.
  t0 = time.monotonic()
  assert is_equiv(case["gold"], pred) is False
  assert time.monotonic() - t0 < ADVERSARIAL_LIMIT_S


def test_timeout_kills_and_recovers():
  # The helper is told to stall (a private test hook), so the call must time out.
  assert is_equiv("x+1", "1+x")
  t0 = time.monotonic()
  assert _math_timeout.ask("x+1", "1+x", 0.5, _sleep=30.0) is False
  assert time.monotonic() - t0 < ADVERSARIAL_LIMIT_S
  # The stalled helper was killed and replaced; normal service resumes.
  assert is_equiv("(x+1)^2", "x^2+2x+1") is True
  assert _math_timeout.ask("x+1", "1+x", 5.0) is True


# --------------------------------------------------------------------------- robustness

_ALPHABET = list("0123456789+-*/^_{}()[]|!=<>,.xyzabe ") + [
    "\\frac", "\\sqrt", "\\pi", "\\infty", "\\text{", "\\left(", "\\right)", "\\{", "\\}",
    "\\cdot", "\\pm", "\\boxed{", "\\begin{pmatrix}", "\\end{pmatrix}", "&", "\\\\", "\\sin",
    "\\log_", "\\binom", "\\%", "\\$", "^\\circ", "\\cup", "\\le", "(A)", "1,000", "\\overline",
]


def test_fuzz_never_raises():
  rng = random.Random(0)
  t0 = time.monotonic()
  for _ in range(300):
    a = "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 25)))
    b = "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 6)))
    assert isinstance(is_equiv(a, b, timeout_s=1.0), bool)
    assert isinstance(is_equiv(a, a, timeout_s=1.0), bool)
  assert time.monotonic() - t0 < 40


@pytest.mark.parametrize("bad", [None, 5, 3.0, b"5", ["5"], {"a": 1}])
def test_non_strings_are_false(bad):
  assert is_equiv(bad, "5") is False  # type: ignore[arg-type]
  assert is_equiv("5", bad) is False  # type: ignore[arg-type]


def test_bad_timeouts_do_not_raise():
  assert is_equiv("x+1", "1+x", timeout_s=0) is False
  assert is_equiv("x+1", "1+x", timeout_s=float("nan")) is False
  assert is_equiv("5", "5", timeout_s=0) is True  # decided without the helper


def test_from_non_main_threads():
  pairs = [("x^2-1", "(x-1)(x+1)", True), ("(1,2)", "(2,1)", False), ("1,000", "1000", True),
           (r"10^{10^{10}}", "1", False), ("(x+1)^2", "x^2+1", False)] * 2
  results: dict[int, bool] = {}

  def run(k: int, p: str, g: str) -> None:
    results[k] = is_equiv(p, g)

  threads = [threading.Thread(target=run, args=(k, p, g)) for k, (p, g, _) in enumerate(pairs)]
  for t in threads:
    t.start()
  for t in threads:
    t.join(timeout=60)
  assert results == {k: want for k, (_, _, want) in enumerate(pairs)}
  # The timeout path from a thread (SIGALRM could not do this).
  out = []
  t = threading.Thread(target=lambda: out.append(_math_timeout.ask("x", "x", 0.3, _sleep=30.0)))
  t.start()
  t.join(timeout=30)
  assert out == [False]
  assert is_equiv("x+1", "1+x")  # let the replacement helper start before the next test


def _worker(args: tuple[str, str]) -> bool:
  return is_equiv(*args)


def test_from_worker_processes():
  pairs = [("\\frac{x}{2}", "0.5x"), ("\\{1,2\\}", "\\{2,1\\}"), ("x=5", "6"), ("2^{2^{2^{2^{2^{2}}}}}", "2")]
  want = [True, True, False, False]
  ctx = multiprocessing.get_context("spawn")
  with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as ex:
    assert list(ex.map(_worker, pairs)) == want
  # Daemonic pool workers cannot start multiprocessing children; the helper is a plain subprocess.
  with ctx.Pool(1) as pool:
    assert pool.map(_worker, pairs) == want
