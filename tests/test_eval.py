"""Evaluation metrics: pass@k against enumeration, cons@k, the thinking split."""

import itertools

import pytest

from r1jax.eval import evaluate, metrics


@pytest.mark.parametrize("n,c,k", [(8, 0, 1), (8, 3, 1), (8, 3, 2), (8, 3, 8), (10, 7, 4),
                                   (5, 5, 3)])
def test_pass_at_k_equals_enumeration(n, c, k):
  """The unbiased estimator is the share of k-subsets of the n samples holding a hit."""
  samples = [True] * c + [False] * (n - c)
  subsets = list(itertools.combinations(range(n), k))
  want = sum(any(samples[i] for i in s) for s in subsets) / len(subsets)
  assert metrics.pass_at_k(n, c, k) == pytest.approx(want, abs=1e-12)


def test_majority_answer():
  assert metrics.majority_answer(["3", None, "4", "4", "3", None, None]) == "3"  # tie: first
  assert metrics.majority_answer(["5", "7", "7"]) == "7"
  assert metrics.majority_answer([None, None]) is None


def _c(think, answer):
  return f" <think>{think}</think> <answer>{answer}</answer>"


def test_score_hand_computed():
  # Problem 1 (gold 3): 2 of 4 right, majority "3" (2 votes vs 1 + 1).
  # Problem 2 (gold 0): 1 of 4 right, majority "5" (wrong).
  texts = [_c("2:2,3:5,7:2", "3"), _c("", "3"), _c("", "4"), "no tags at all",
           _c("1:1,9:0", "0"), _c("", "5"), _c("  ", "5"), _c("x", "\\boxed{6}")]
  r = evaluate.score(texts, ["3", "0"], k=4, lengths=[10, 4, 4, 3, 8, 4, 5, 6],
                     truncated=[False] * 7 + [True])
  assert r["pass@1"] == pytest.approx((2 / 4 + 1 / 4) / 2)
  assert r["cons@k"] == pytest.approx(0.5)
  assert r["pass@k"] == pytest.approx(1.0)  # k of k samples: any hit counts
  assert r["format_rate"] == pytest.approx(7 / 8)
  assert r["mean_response_tokens"] == pytest.approx(44 / 8)
  assert r["truncated_fraction"] == pytest.approx(1 / 8)
  # Thinking: texts 0, 4, 7 (blank <think> blocks do not count); 2 of them correct.
  assert r["think_rate"] == pytest.approx(3 / 8)
  assert r["accuracy_thinking"] == pytest.approx(2 / 3)
  assert r["accuracy_not_thinking"] == pytest.approx(1 / 5)


def test_score_without_any_thinking_and_bad_shapes():
  r = evaluate.score([_c("", "1")], ["1"], k=1, lengths=[5], truncated=[False])
  assert r["think_rate"] == 0.0 and r["accuracy_thinking"] is None
  assert r["accuracy_not_thinking"] == 1.0
  with pytest.raises(ValueError, match="k=2"):
    evaluate.score([_c("", "1")], ["1"], k=2, lengths=[5], truncated=[False])


def _r1(reasoning, summary):
  return f" |special_token|{reasoning}|special_token| {summary}"


def test_score_readability_and_language_mixing():
  """Per sample, hand-judged: R1 format with a summary and one language is readable; a
  CoT with a word of another language than the problem's is mixing (R1-Zero's tags are
  not readable, whatever their language; a summary in another language is not readable
  but is no CoT mixing)."""
  ve, en = "dus ta dus, kar ta sek", "two is two, four is six"
  texts = [_r1(ve, "Respo ta \\boxed{6}."),        # ve problem: readable
           _r1("dus ta dus, four is six", "Respo ta \\boxed{6}."),  # mixed
           _r1(ve, ""),                              # no summary: not readable, not mixed
           _c(ve, "6"),                              # R1-Zero tags: not readable
           _r1(en, "The answer is \\boxed{6}."),     # en problem: readable
           _r1(en, "Respo ta \\boxed{6}."),          # summary in ve: not readable
           _c("two is two, kar ta sek", "6"),        # tags, mixed CoT
           "|special_token|two|special_token|"]      # summary blank
  langs = [("ve", "words"), ("en", "words")]
  r = evaluate.score(texts, ["6", "6"], k=4, lengths=[5] * 8, truncated=[False] * 8,
                     languages=langs)
  assert r["readability"] == pytest.approx(2 / 8)
  assert r["language_mixing"] == pytest.approx(2 / 8)
  assert r["r1_format_rate"] == pytest.approx(4 / 8)
  # Without languages: readability is R1's format alone; mixing is not measured.
  r = evaluate.score(texts, ["6", "6"], k=4, lengths=[5] * 8, truncated=[False] * 8)
  assert r["readability"] == pytest.approx(4 / 8) and r["language_mixing"] is None
