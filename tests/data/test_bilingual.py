"""The two-language miniature world (r1jax.data.bilingual) and its cold-start data."""

from __future__ import annotations

import re

import numpy as np
import pytest

from r1jax.data import arithmetic
from r1jax.data import bilingual as B
from r1jax.rewards import language as L
from r1jax.rewards.format import SEPARATOR, parse_r1, r1_format_reward

P = arithmetic.LastDigitProblem((7, 2, 4))
LANGS = ("en", "ve")
EN_LEXICON = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
              "is", "what", "the", "last", "digit", "of", "answer"}
VE_LEXICON = {"nol", "ek", "dus", "tir", "kar", "pan", "sek", "sap", "ot", "nav",
              "ta", "ke", "lasu", "cifo", "de", "respo"}


def _words(text: str) -> set[str]:
  return {w.lower() for w in re.findall(r"[A-Za-z]+", text.replace("\\boxed", ""))}


def _terms(question: str) -> tuple[int, ...]:
  return tuple(int(x) for x in re.search(r"(\d(?:\+\d)+)\?$", question)[1].split("+"))


# -- lexicons -----------------------------------------------------------------------


def test_lexicons():
  assert set(B.LEXICONS) == set(LANGS)
  assert B.LEXICONS["en"] == EN_LEXICON
  assert B.LEXICONS["ve"] == VE_LEXICON
  assert not B.LEXICONS["en"] & B.LEXICONS["ve"]
  assert "boxed" not in B.LEXICONS["en"] | B.LEXICONS["ve"]
  for code in LANGS:
    digits = B.LANGUAGES[code].digits
    assert len(digits) == 10 and len(set(digits)) == 10
    assert set(digits) <= B.LEXICONS[code]


def test_lexicons_cover_every_template_word():
  problems = arithmetic.sample_last_digit_problems(0, 200, 2, 10, split="train")
  for code in LANGS:
    other = B.LEXICONS["ve" if code == "en" else "en"]
    seen = set()
    for p in problems:
      for text in (B.question(p, code), B.worked(p, code), B.summary(p.answer, code)):
        ws = _words(text)
        assert ws <= B.LEXICONS[code], (code, text)
        assert not ws & other, (code, text)
        seen |= ws
    assert seen == B.LEXICONS[code]  # and every lexicon word is used


def test_check_languages():
  B.check_languages(("en", "ve"))
  B.check_languages(("ve",))
  with pytest.raises(ValueError, match="distinct"):
    B.check_languages(("en", "en"))
  with pytest.raises(ValueError, match="distinct"):
    B.check_languages(("en", "fr"))


# -- the texts of one problem ------------------------------------------------------


def test_question():
  assert B.question(P, "en") == "What is the last digit of 7+2+4?"
  assert B.question(P, "en") == P.question
  assert B.question(P, "ve") == "Ke ta lasu cifo de 7+2+4?"


def test_worked_and_steps():
  assert B.worked(P, "en") == "two is two, four is six, seven is three"
  assert B.worked(P, "ve") == "dus ta dus, kar ta sek, sap ta tir"
  assert B.steps(P, ["ve", "en", "en"]) == "dus ta dus, four is six, seven is three"
  assert B.steps(P, ["en", "ve", "en"]) == "two is two, kar ta sek, seven is three"
  assert B.steps(P, ["ve", "ve", "en"]) == "dus ta dus, kar ta sek, seven is three"
  # Same reasoning as the symbolic world's '2:2,4:6,7:3'.
  assert arithmetic.worked_steps(P) == "2:2,4:6,7:3"
  # A running total past 10 wraps: 9 -> nine, 9+8=17 -> seven.
  assert B.worked(arithmetic.LastDigitProblem((9, 8)), "en") == "eight is eight, nine is seven"
  assert B.worked(arithmetic.LastDigitProblem((0, 5)), "ve") == "nol ta nol, pan ta pan"


def test_worked_matches_symbolic_steps():
  en = B.LANGUAGES["en"].digits
  for p in arithmetic.sample_last_digit_problems(1, 100, 2, 10, split="train"):
    symbolic = [s.split(":") for s in arithmetic.worked_steps(p).split(",")]
    want = ", ".join(f"{en[int(a)]} is {en[int(b)]}" for a, b in symbolic)
    assert B.worked(p, "en") == want


def test_summary_and_r1_completion():
  assert B.summary("3", "en") == "The answer is \\boxed{3}."
  assert B.summary("3", "ve") == "Respo ta \\boxed{3}."
  text = B.r1_completion(B.worked(P, "en"), "3", "en")
  assert text == (" |special_token|two is two, four is six, seven is three|special_token| "
                  "The answer is \\boxed{3}.")
  assert SEPARATOR == "|special_token|"
  assert parse_r1(text) == (B.worked(P, "en"), " The answer is \\boxed{3}.")
  ve = B.r1_completion(B.worked(P, "ve"), "3", "ve")
  assert ve == (" |special_token|dus ta dus, kar ta sek, sap ta tir|special_token| "
                "Respo ta \\boxed{3}.")
  assert L.readable(ve, "ve", "words") and not L.readable(ve, "en", "words")


def test_refine():
  zero = arithmetic.tagged(B.worked(P, "ve"), "3")
  assert zero == " <think>dus ta dus, kar ta sek, sap ta tir</think> <answer>3</answer>"
  assert B.refine(zero, "3", "ve") == B.r1_completion(B.worked(P, "ve"), "3", "ve")
  direct = B.refine(arithmetic.tagged("", "3"), "3", "en")
  assert direct == f" {SEPARATOR}{SEPARATOR} The answer is \\boxed{{3}}."
  assert r1_format_reward(direct) == 0.0 and not L.readable(direct, "en", "words")


# -- language_of ---------------------------------------------------------------------


def test_language_of_is_deterministic_and_balanced():
  problems = arithmetic.sample_last_digit_problems(2, 600, 4, 7, split="train")
  codes = [B.language_of(p, LANGS, 0) for p in problems]
  assert codes == [B.language_of(p, LANGS, 0) for p in problems]
  assert set(codes) == set(LANGS)
  share_ve = codes.count("ve") / len(codes)
  assert 0.4 < share_ve < 0.6, share_ve
  # Another seed assigns languages differently (but as often).
  other = [B.language_of(p, LANGS, 1) for p in problems]
  assert other != codes
  assert 0.4 < other.count("ve") / len(other) < 0.6
  # One language: always it.
  assert {B.language_of(p, ("ve",), 0) for p in problems} == {"ve"}
  # The order of `languages` only renames the choice.
  swapped = [B.language_of(p, ("ve", "en"), 0) for p in problems]
  assert swapped == [{"en": "ve", "ve": "en"}[c] for c in codes]


def test_language_of_balanced_within_each_split():
  for split in ("train", "eval"):
    problems = arithmetic.sample_last_digit_problems(3, 400, 4, 7, split=split)
    share = sum(B.language_of(p, LANGS, 0) == "ve" for p in problems) / len(problems)
    assert 0.35 < share < 0.65, (split, share)


# -- corpus_reasoning -----------------------------------------------------------------


def _step_codes(cot: str) -> list[str]:
  """The language of each step of a CoT, read from its words."""
  out = []
  for step in cot.split(", "):
    codes = set(L.identify(step, "words"))
    assert len(codes) == 1, step
    out.append(codes.pop())
  return out


def test_corpus_reasoning_without_mixing():
  rng = np.random.default_rng(0)
  for p in arithmetic.sample_last_digit_problems(4, 300, 2, 8, split="train"):
    for code in LANGS:
      cot = B.corpus_reasoning(p, code, LANGS, 0.0, rng)
      assert cot == B.worked(p, code)
      assert not L.mixes_languages(cot, code, "words")


def test_corpus_reasoning_always_mixing():
  rng = np.random.default_rng(0)
  switches = set()
  for p in arithmetic.sample_last_digit_problems(5, 300, 2, 8, split="train"):
    assert B.corpus_reasoning(p, "en", LANGS, 1.0, rng) == B.worked(p, "en")
    cot = B.corpus_reasoning(p, "ve", LANGS, 1.0, rng)
    assert "en" in L.identify(cot, "words")
    codes = _step_codes(cot)
    assert len(codes) == len(p.terms)
    k = codes.index("en")  # ve steps, then en to the end
    assert codes == ["ve"] * k + ["en"] * (len(codes) - k)
    assert cot == B.steps(p, codes)
    switches.add(k)
  assert 0 in switches and len(switches) >= 4  # switches at random steps, step 0 included


def test_corpus_reasoning_partial_mixing_and_dominant_language():
  rng = np.random.default_rng(1)
  problems = arithmetic.sample_last_digit_problems(6, 400, 4, 7, split="train")
  mixed = [L.mixes_languages(B.corpus_reasoning(p, "ve", LANGS, 0.5, rng), "ve", "words")
           for p in problems]
  assert 0.35 < np.mean(mixed) < 0.65
  # With ve dominant, ve CoTs never mix and en CoTs switch to ve.
  for p in problems[:50]:
    assert B.corpus_reasoning(p, "ve", ("ve", "en"), 1.0, rng) == B.worked(p, "ve")
    assert "ve" in L.identify(B.corpus_reasoning(p, "en", ("ve", "en"), 1.0, rng), "words")


# -- cold start ----------------------------------------------------------------------


def _check_cold_start(examples, n, task_seed):
  assert len(examples) == n
  for ex in examples:
    assert set(ex) == {"question", "completion", "language"}
    code, text = ex["language"], ex["completion"]
    terms = _terms(ex["question"])
    p = arithmetic.LastDigitProblem(terms)
    assert ex["question"] == B.question(p, code)
    assert code == B.language_of(p, LANGS, task_seed)
    assert 4 <= len(terms) <= 7 and len(set(terms)) == len(terms)
    assert L.readable(text, code, "words")
    assert r1_format_reward(text) == 1.0
    assert L.language_reward(text, {"language": code, "language_identifier": "words"}) == 1.0
    boxed = re.findall(r"\\boxed\{(\d+)\}", text)
    assert boxed == [str(sum(terms) % 10)]
    assert parse_r1(text)[0] == B.worked(p, code)
    assert text == B.r1_completion(B.worked(p, code), p.answer, code)


def test_cold_start_examples():
  examples, rejected = B.cold_start(0, 150, LANGS, 0.5, 0.8, 4, 7)
  _check_cold_start(examples, 150, 0)
  assert {ex["language"] for ex in examples} == set(LANGS)
  assert rejected["not_readable"] > 0
  assert B.cold_start(0, 150, LANGS, 0.5, 0.8, 4, 7) == (examples, rejected)
  other, _ = B.cold_start(1, 150, LANGS, 0.5, 0.8, 4, 7)
  assert other != examples


@pytest.mark.parametrize("mix_fraction, worked_fraction, any_rejected", [
    (0.0, 1.0, False),
    (0.5, 1.0, True),
    (1.0, 1.0, True),
    (0.0, 0.5, True),
    (0.3, 0.7, True),
])
def test_cold_start_rejections(mix_fraction, worked_fraction, any_rejected):
  examples, rejected = B.cold_start(3, 100, LANGS, mix_fraction, worked_fraction, 4, 7)
  _check_cold_start(examples, 100, 3)
  assert set(rejected) == {"not_readable"}
  assert (rejected["not_readable"] > 0) == any_rejected


def test_cold_start_rejection_count_tracks_fractions():
  # Half the candidates are direct (rejected): about as many rejected as kept.
  _, rejected = B.cold_start(4, 300, LANGS, 0.0, 0.5, 4, 7)
  assert 200 < rejected["not_readable"] < 450
  # Every ve candidate mixes: about as many rejected as kept (half the problems are ve).
  examples, rejected = B.cold_start(4, 300, LANGS, 1.0, 1.0, 4, 7)
  assert {ex["language"] for ex in examples} == {"en"}
  assert 200 < rejected["not_readable"] < 450


def test_cold_start_small_n():
  examples, _ = B.cold_start(5, 1, LANGS, 0.5, 0.5, 4, 7)
  _check_cold_start(examples, 1, 5)
  examples, rejected = B.cold_start(5, 0, LANGS, 0.5, 0.5, 4, 7)
  assert examples == [] and rejected == {"not_readable": 0}


def test_cold_start_avoids_held_out_problems():
  examples, _ = B.cold_start(0, 400, LANGS, 0.5, 0.8, 4, 7)
  cold_sets = {tuple(sorted(_terms(ex["question"]))) for ex in examples}
  held_sets = set()
  for seed in range(3):
    for p in arithmetic.sample_last_digit_problems(seed, 300, 4, 7, split="eval"):
      held_sets.add(tuple(sorted(p.terms)))
  assert len(held_sets) > 30 and len(cold_sets) > 100
  assert not cold_sets & held_sets
  for terms in cold_sets:
    assert not arithmetic._in_eval_split(repr(sorted(terms)), 0.1)
  # The check itself can fail: held-out sets are in the eval split.
  assert all(arithmetic._in_eval_split(repr(list(t)), 0.1) for t in held_sets)


# -- the synthetic task with languages (r1jax.data.tasks.Synthetic) --------------------


def _registry(tmp_path, **task):
  from r1jax import configs
  from r1jax.data import tasks
  c = configs.run_config(seed=5)
  c.tasks.w = tasks.config("synthetic", num_test=40, num_sft=50, languages=LANGS, **task)
  return tasks.Registry(c, str(tmp_path))


def test_task_problems_carry_their_language(tmp_path):
  t = _registry(tmp_path, mix_fraction=0.5).get("w")
  drawn = t.draw("train", np.random.default_rng(0), 200)
  test = t.problems("test")
  for rows in (drawn, test):
    assert {r["language"] for r in rows} == set(LANGS)
    for r in rows:
      assert r["language_identifier"] == "words"
      lang = B.LANGUAGES[r["language"]]
      assert r["question"] == lang.question.format(expr="+".join(map(str, _terms(
          r["question"]))))
      assert int(r["answer"]) == sum(_terms(r["question"])) % 10
  # No held-out digit set is drawn for training.
  held = {frozenset(_terms(r["question"])) for r in test}
  assert not held & {frozenset(_terms(r["question"])) for r in drawn}
  # The base corpus (R1-Zero tags) mixes on ve prompts only, about mix_fraction of the
  # worked ones; en prompts never mix.
  corpus = t.corpus_examples(np.random.default_rng(1), 600)
  ve_worked = [c for p, c in corpus if "Ke ta" in p and "<think></think>" not in c]
  en_worked = [c for p, c in corpus if "What is" in p and "<think></think>" not in c]
  mixed = np.mean([L.mixes_languages(L.reasoning(c), "ve", "words") for c in ve_worked])
  assert 0.35 < mixed < 0.65, mixed
  assert not any(L.mixes_languages(c, "en", "words") for c in en_worked)
  assert all(c.startswith(" <think>") for _, c in corpus)


def test_task_r1_format_sft_rows(tmp_path):
  t = _registry(tmp_path, mix_fraction=0.5, template="r1", output_format="r1").get("w")
  rows = t.sft_examples("train")
  assert len(rows) == 50
  held = {frozenset(_terms(r["question"])) for r in t.problems("test")}
  for r in rows:
    assert L.readable(r["completion"], r["language"], "words")
    assert frozenset(_terms(r["question"])) not in held
  # Held-out SFT rows: the test problems' worked solutions, in R1's format.
  for r, p in zip(t.sft_examples("test"), t.problems("test"), strict=True):
    assert r["question"] == p["question"]
    assert L.readable(r["completion"], p["language"], "words")
    assert f"\\boxed{{{p['answer']}}}" in r["completion"]
  assert t.prompt("Q?") == "User: Q? Assistant:"


@pytest.mark.parametrize("task, message", [
    (dict(output_format="r2"), "output_format='r2'; allowed"),
    (dict(languages=("en", "fr")), "distinct codes"),
    (dict(languages=("en", "ve"), name="addition"), "for the 'last_digit' task only"),
    (dict(languages=(), output_format="r1"), "need languages"),
    (dict(mix_fraction=1.5), r"mix_fraction=1.5; must be in \[0, 1\]"),
    (dict(sft_language_shares=(1.0,)), "one non-negative share per language"),
    (dict(sft_language_shares=(0.0, 0.0)), "not all 0"),
])
def test_task_config_errors(tmp_path, task, message):
  from r1jax import configs
  from r1jax.data import tasks
  c = configs.run_config()
  c.tasks.w = tasks.config("synthetic", **{"languages": LANGS, **task})
  with pytest.raises(tasks.TaskError, match=message):
    tasks.Registry(c, str(tmp_path)).get("w")


def test_cold_start_language_shares():
  """`shares` fixes each language's rows exactly (rounding to the larger share); the
  rows of each language are still readable and in that language."""
  rows, _ = B.cold_start(3, 101, LANGS, 0.5, 0.5, 4, 7, shares=(0.9, 0.1))
  langs = [r["language"] for r in rows]
  assert (langs.count("en"), langs.count("ve")) == (91, 10)
  assert all(L.readable(r["completion"], r["language"], "words") for r in rows)
  rows, _ = B.cold_start(3, 20, LANGS, 0.5, 0.5, 4, 7, shares=(0.0, 1.0))
  assert {r["language"] for r in rows} == {"ve"}


def test_task_sft_language_shares_are_normalised(tmp_path):
  t = _registry(tmp_path, template="r1", output_format="r1",
                sft_language_shares=(3.0, 1.0)).get("w")
  langs = [r["language"] for r in t.sft_examples("train")]
  assert (langs.count("en"), langs.count("ve")) == (38, 12)  # 50 rows: 37.5 -> 38, 12.5 -> 12
