"""Language consistency (r1jax.rewards.language) and R1's output format (parse_r1)."""

from __future__ import annotations

import pytest

from r1jax.data import arithmetic, bilingual
from r1jax.rewards import language as L
from r1jax.rewards.format import SEPARATOR, parse_r1, r1_format_reward

S = SEPARATOR


def r1(reasoning: str, summary: str) -> str:
  return f" {S}{reasoning}{S} {summary}"


# -- the script identifier on real text --------------------------------------------


def test_separator_value():
  assert S == "|special_token|"


@pytest.mark.parametrize("text, language, share", [
    # Pure texts.
    ("First we add the two numbers together", "en", 1.0),
    ("我们先把两个数相加", "zh", 1.0),  # 9 Han characters, each a word
    ("Сначала сложим два числа", "ru", 1.0),
    ("نجمع العددين معا", "ar", 1.0),
    ("Προσθέτουμε τους δύο αριθμούς", "el", 1.0),
    ("먼저 두 수를 더합니다", "ko", 1.0),
    ("まず二つの数を足します", "ja", 1.0),  # kana and kanji are both Japanese
    ("कमल नमक घर", "hi", 1.0),
    # Chinese CoT with English mixed in: 4 Han + 3 English words.
    ("我们先算 then we add", "zh", 4 / 7),
    ("我们先算 then we add", "en", 3 / 7),
    # 8 Han, 3 English; the digit is not a word.
    ("先算三加五等于八, then we add 2", "zh", 8 / 11),
    # Korean with English: 4 Hangul words + 3 English.
    ("먼저 두 수를 더합니다 then we add", "ko", 4 / 7),
    ("먼저 두 수를 더합니다 then we add", "en", 3 / 7),
    # Japanese: ま ず 数 を 足 す (6 words) + one Hangul word.
    ("まず数を足す 그리고", "ja", 6 / 7),
    ("まず数を足す 그리고", "ko", 1 / 7),
    # ま ず 二 つ の 数 を 足 し ま す: 3 kanji, 8 kana; Chinese is only the kanji.
    ("まず二つの数を足します", "zh", 3 / 11),
    # Russian vs English: 3 Cyrillic + 3 Latin.
    ("Сначала сложим числа, then we add", "ru", 0.5),
    ("Сначала сложим числа, then we add", "en", 0.5),
    ("Сначала сложим числа, then we add", "uk", 0.5),  # one script, can't tell apart
    # Arabic, Greek, Hindi with English.
    ("نجمع العددين then we add", "ar", 2 / 5),
    ("نجمع العددين then we add", "fa", 2 / 5),
    ("Προσθέτουμε τους αριθμούς then", "el", 3 / 4),
    ("कमल नमक then", "hi", 2 / 3),
    # A Latin-script language is not told apart from English.
    ("Nous additionnons then we add", "fr", 1.0),
    # Accented Latin letters stay in one word (also when decomposed: NFC).
    ("naïve café", "en", 1.0),
    ("nai\u0308ve 数", "en", 1 / 2),
])
def test_script_consistency(text, language, share):
  assert L.consistency(text, language, "script") == pytest.approx(share)


def test_script_is_the_default_identifier():
  assert L.consistency("我们先算 then we add", "zh") == pytest.approx(4 / 7)


def test_script_words_split_and_labelled():
  assert L.words("我们先算 then we add") == [
      ("我", "cjk"), ("们", "cjk"), ("先", "cjk"), ("算", "cjk"),
      ("then", "latin"), ("we", "latin"), ("add", "latin")]
  # A run of letters that changes script mid-way is two words.
  assert L.words("abcПривет") == [("abc", "latin"), ("Привет", "cyrillic")]
  assert L.words("日本語のテキスト")[2:4] == [("語", "cjk"), ("の", "kana")]
  assert L.identify("먼저 더합니다 then", "script") == ["hangul", "hangul", "latin"]
  assert L.script_of("a") == "latin" and L.script_of("я") == "cyrillic"
  assert L.script_of("7") is None and L.script_of("+") is None
  assert L.script_of("，") is None


def test_digits_and_punctuation_are_ignored():
  assert L.identify("2+3=5, (7*8)/4 = 14.0; x_1", "script") == ["latin"]  # only 'x'
  assert L.consistency("2+3=5，所以答案是5。", "zh") == 1.0  # 5 Han characters
  assert len(L.words("2+3=5，所以答案是5。")) == 5
  assert L.consistency("2+3=5，所以答案是5 then", "zh") == pytest.approx(5 / 6)
  assert L.consistency("2+3=5 = 5!", "en") is None
  assert L.consistency("", "zh") is None
  assert L.consistency("   \n\t", "en", "words") is None


def test_latex_is_ignored_by_script():
  assert L.consistency("\\frac{1}{2}", "zh") is None
  assert L.consistency("所以答案是 \\frac{1}{2}，即 \\boxed{0.5}", "zh") == 1.0


def test_devanagari_words_with_vowel_signs():
  assert L.words("हिन्दी") == [("हिन्दी", "devanagari")]
  # 4 Hindi words + 3 English words.
  assert L.consistency("हम पहले जोड़ते हैं then we add", "hi") == pytest.approx(4 / 7)


def test_unknown_language_or_identifier_raises():
  with pytest.raises(ValueError, match="no script"):
    L.consistency("hello", "xx")
  with pytest.raises(ValueError, match="no script"):
    L.consistency("", "klingon", "script")
  with pytest.raises(ValueError, match="miniature"):
    L.consistency("two is two", "zh", "words")
  with pytest.raises(ValueError, match="identifier"):
    L.consistency("hello", "en", "chars")
  with pytest.raises(ValueError, match="identifier"):
    L.identify("hello", "chars")


# -- the words identifier on the miniature world --------------------------------------


P = arithmetic.LastDigitProblem((7, 2, 4))
EN_COT = "two is two, four is six, seven is three"
VE_COT = "dus ta dus, kar ta sek, sap ta tir"


def test_words_identifier_pure():
  assert L.consistency(EN_COT, "en", "words") == 1.0
  assert L.consistency(EN_COT, "ve", "words") == 0.0
  assert L.consistency(VE_COT, "ve", "words") == 1.0
  assert L.consistency(VE_COT, "en", "words") == 0.0
  assert L.identify(VE_COT, "words") == ["ve"] * 9


def test_words_identifier_switch_mid_way():
  # ve for the first step (3 words), en for the next two (6 words).
  cot = "dus ta dus, four is six, seven is three"
  assert L.identify(cot, "words") == ["ve"] * 3 + ["en"] * 6
  assert L.consistency(cot, "ve", "words") == pytest.approx(3 / 9)
  assert L.consistency(cot, "en", "words") == pytest.approx(6 / 9)
  # ve for two steps (6 words), en for the last (3 words).
  cot2 = bilingual.steps(P, ["ve", "ve", "en"])
  assert cot2 == "dus ta dus, kar ta sek, seven is three"
  assert L.consistency(cot2, "ve", "words") == pytest.approx(6 / 9)


def test_words_identifier_ignores_unknown_words_and_case():
  # 'hmm', 'okay', 'so', 'boxed', digits and LaTeX are in neither lexicon.
  assert L.identify("hmm okay so \\boxed{3} 2:2 \\frac{1}{2}", "words") == []
  assert L.consistency("hmm okay so 2:2", "en", "words") is None
  assert L.consistency("hmm, dus ta dus, okay so", "ve", "words") == 1.0
  assert L.consistency("DUS Ta dUs", "ve", "words") == 1.0
  assert L.consistency("Two IS two, SEVEN is three", "en", "words") == 1.0
  assert L.consistency("Respo ta \\boxed{3}.", "ve", "words") == 1.0
  # Real-world words are not the miniature world's: Chinese is ignored here.
  assert L.consistency("我们 dus ta dus", "ve", "words") == 1.0


# -- reasoning() --------------------------------------------------------------------


@pytest.mark.parametrize("completion, want", [
    (f" {S}two is two{S} The answer is \\boxed{{2}}.", "two is two"),
    (f"{S}\nline one\nline two\n{S}summary", "\nline one\nline two\n"),
    (f"{S}{S} summary", ""),
    ("<think>two is two</think> <answer>2</answer>", "two is two"),
    (" <think>a\nb</think><answer>2</answer>", "a\nb"),
    ("<think></think><answer>2</answer>", ""),
    ("<think>two is two, four is", "two is two, four is"),  # unterminated
    ("<think>a\nb\nc", "a\nb\nc"),
    ("plain text answer 3", "plain text answer 3"),
    ("", ""),
    # Not R1 format (one separator): the whole text.
    (f"{S}two is two", f"{S}two is two"),
])
def test_reasoning(completion, want):
  assert L.reasoning(completion) == want


# -- language_reward ---------------------------------------------------------------


WORDS_VE = {"language": "ve", "language_identifier": "words"}
WORDS_EN = {"language": "en", "language_identifier": "words"}


def test_language_reward_judges_only_the_reasoning():
  mixed = bilingual.steps(P, ["ve", "en", "en"])  # 3 ve words, 6 en words
  assert L.language_reward(r1(VE_COT, "Respo ta \\boxed{3}."), WORDS_VE) == 1.0
  # An en summary does not lower a ve CoT's reward.
  assert L.language_reward(r1(VE_COT, "The answer is \\boxed{3}."), WORDS_VE) == 1.0
  assert L.language_reward(r1(mixed, "Respo ta \\boxed{3}."), WORDS_VE) == pytest.approx(1 / 3)
  assert L.language_reward(r1(EN_COT, "Respo ta \\boxed{3}."), WORDS_VE) == 0.0
  assert L.language_reward(r1(EN_COT, "Respo ta \\boxed{3}."), WORDS_EN) == 1.0
  # R1-Zero: the answer tag is not judged either.
  zero = f"<think>{VE_COT}</think> <answer>three is the answer</answer>"
  assert L.language_reward(zero, WORDS_VE) == 1.0


def test_language_reward_default_identifier_is_script():
  zh = {"language": "zh"}
  assert L.language_reward("<think>我们先算 then we add</think><answer>4</answer>", zh) \
      == pytest.approx(4 / 7)
  assert L.language_reward(r1("我们先算三加五", "The answer is 8."), zh) == 1.0
  assert L.language_reward(r1("then we add", "答案是八"), zh) == 0.0
  assert L.language_reward("我们先算 then we add", {"language": "en"}) == pytest.approx(3 / 7)
  # The words identifier would ignore all of this text; script does not.
  assert L.language_reward("我们先算", WORDS_VE) == 0.0


def test_language_reward_without_identified_words_is_zero():
  assert L.language_reward("<think></think><answer>3</answer>", WORDS_EN) == 0.0
  assert L.language_reward("<think>2:2,4:6,7:3</think><answer>3</answer>", WORDS_EN) == 0.0
  assert L.language_reward(r1("   ", "The answer is \\boxed{3}."), WORDS_EN) == 0.0
  assert L.language_reward(r1("2+3=5", "答案"), {"language": "zh"}) == 0.0


def test_language_reward_unknown_language_raises():
  with pytest.raises(ValueError):
    L.language_reward(r1(EN_COT, "x"), {"language": "zh", "language_identifier": "words"})
  with pytest.raises(ValueError):
    L.language_reward(r1(EN_COT, "x"), {"language": "xx"})


# -- mixes_languages and readable ---------------------------------------------------


def test_mixes_languages():
  assert not L.mixes_languages("First we add the numbers", "en")
  assert L.mixes_languages("我们先算 then we add", "zh")
  assert L.mixes_languages("我们先算 then we add", "en")
  assert not L.mixes_languages("我们先把两个数相加", "zh")
  assert not L.mixes_languages("まず二つの数を足します", "ja")
  assert L.mixes_languages("まず数を足す 그리고", "ja")
  assert not L.mixes_languages("2+3=5", "en")  # nothing identified: no mixing
  assert not L.mixes_languages(VE_COT, "ve", "words")
  assert L.mixes_languages(bilingual.steps(P, ["ve", "ve", "en"]), "ve", "words")
  # The whole completion is judged, summary included.
  assert L.mixes_languages(r1(VE_COT, "The answer is \\boxed{3}."), "ve", "words")
  assert not L.mixes_languages(r1(VE_COT, "Respo ta \\boxed{3}."), "ve", "words")


READABLE_EN = r1(EN_COT, "The answer is \\boxed{3}.")
READABLE_VE = r1(VE_COT, "Respo ta \\boxed{3}.")


@pytest.mark.parametrize("completion, language", [
    (READABLE_EN, "en"),
    (READABLE_VE, "ve"),
    (f"{S}{VE_COT}{S}Respo ta \\boxed{{3}}.", "ve"),
    (f"\n  {S}{EN_COT}{S}\nThe answer is \\boxed{{3}}.\n", "en"),
    (bilingual.r1_completion(bilingual.worked(P, "ve"), "3", "ve"), "ve"),
])
def test_readable(completion, language):
  assert L.readable(completion, language, "words")
  assert r1_format_reward(completion) == 1.0


@pytest.mark.parametrize("completion, language, why", [
    (READABLE_EN, "ve", "wrong language"),
    (READABLE_VE, "en", "wrong language"),
    (r1(bilingual.steps(P, ["ve", "en", "en"]), "Respo ta \\boxed{3}."), "ve", "mixed CoT"),
    (r1(bilingual.steps(P, ["en", "en", "ve"]), "The answer is \\boxed{3}."), "en",
     "mixed CoT"),
    (r1(VE_COT, "The answer is \\boxed{3}."), "ve", "summary in another language"),
    (r1(VE_COT, "Respo ta \\boxed{3}. The answer"), "ve", "summary mixes"),
    (f" {S}{VE_COT}{S}", "ve", "missing summary"),
    (f" {S}{VE_COT}{S}  \n ", "ve", "blank summary"),
    (r1("", "Respo ta \\boxed{3}."), "ve", "empty reasoning"),
    (r1("  \n ", "Respo ta \\boxed{3}."), "ve", "blank reasoning"),
    (f" {S}{VE_COT}{S}Respo ta{S} \\boxed{{3}}.", "ve", "three separators"),
    (f"Sure! {S}{VE_COT}{S} Respo ta \\boxed{{3}}.", "ve", "text before the separator"),
    (f" <think>{VE_COT}</think> <answer>3</answer>", "ve", "R1-Zero format"),
    (f"{VE_COT} Respo ta \\boxed{{3}}.", "ve", "plain text"),
    (f"{S}{VE_COT} Respo ta \\boxed{{3}}.", "ve", "one separator"),
])
def test_not_readable(completion, language, why):
  assert not L.readable(completion, language, "words"), why


def test_not_readable_real_text_with_script():
  assert not L.readable(r1("我们先算 then we add", "答案是八"), "zh", "script")
  assert not L.readable(r1("我们先把两个数相加", "The answer is eight"), "zh", "script")
  assert not L.readable(r1("First we add", "答案是八"), "en", "script")
  assert L.readable(r1("First we add", "The answer is eight"), "en", "script")


def test_readable_real_text_with_script():
  assert not L.mixes_languages(r1("我们先把两个数相加", "答案是八"), "zh")
  assert L.readable(r1("我们先把两个数相加", "答案是八"), "zh", "script")
  assert L.readable(r1("먼저 두 수를 더합니다", "답은 팔입니다"), "ko", "script")


# -- parse_r1 and r1_format_reward ---------------------------------------------------


@pytest.mark.parametrize("completion, parts", [
    (f"{S}a{S}b", ("a", "b")),
    (f" \n\t{S}two is two{S} The answer is 2.", ("two is two", " The answer is 2.")),
    (f"{S}a\nb{S}c\nd\n", ("a\nb", "c\nd\n")),
    (f"{S}{S}", ("", "")),  # blank parts parse, but earn no reward
    (f"{S} {S}summary", (" ", "summary")),
    (f"{S}reasoning{S}", ("reasoning", "")),
])
def test_parse_r1(completion, parts):
  assert parse_r1(completion) == parts


@pytest.mark.parametrize("completion", [
    "",
    "plain text",
    f"{S}only one separator",
    f"{S}a{S}b{S}c",
    f"{S}a{S}b{S}",
    f"x{S}a{S}b",  # text before the first separator
    f"<think>a</think>{S}a{S}b",
    "<think>a</think><answer>b</answer>",
    "|SPECIAL_TOKEN|a|SPECIAL_TOKEN|b",  # case-sensitive
    "|special token|a|special token|b",
    None,
    123,
])
def test_parse_r1_rejects(completion):
  assert parse_r1(completion) is None
  assert r1_format_reward(completion) == 0.0


@pytest.mark.parametrize("completion, want", [
    (f"{S}a{S}b", 1.0),
    (READABLE_VE, 1.0),
    (r1(bilingual.steps(P, ["ve", "en", "en"]), "The answer is 3."), 1.0),  # format only
    (f"{S}{S}b", 0.0),
    (f"{S}  \n{S}b", 0.0),
    (f"{S}a{S}", 0.0),
    (f"{S}a{S} \n ", 0.0),
])
def test_r1_format_reward(completion, want):
  assert r1_format_reward(completion) == want


# -- registration in the scorer -----------------------------------------------------


def test_language_registered_in_scorer():
  from r1jax.rewards import scoring
  assert "language" in scoring.REWARD_FNS
  assert scoring.REWARD_FNS["language"]("我们先算 then we add", {"language": "zh"}) \
      == pytest.approx(4 / 7)


def test_scorer_language_and_total():
  from r1jax.rewards.scoring import RewardScorer
  completions = [
      READABLE_EN,  # right answer, all en
      r1(bilingual.steps(P, ["ve", "en", "en"]), "Respo ta \\boxed{3}."),  # right, 1/3 ve
      "<think>我们先算 then we add</think> <answer>4</answer>",  # wrong, 4/7 zh
  ]
  examples = [
      {"answer": "3", **WORDS_EN},
      {"answer": "3", **WORDS_VE},
      {"answer": "5", "language": "zh"},
  ]
  scorer = RewardScorer({"accuracy": 1.0, "language": 0.5}, num_workers=0)
  with scorer:
    res = scorer(completions, examples)
  assert res.failures == {"accuracy": 0, "language": 0}
  assert res.per_fn["accuracy"].tolist() == [1.0, 1.0, 0.0]
  assert res.per_fn["language"] == pytest.approx([1.0, 1 / 3, 4 / 7], abs=1e-6)
  assert res.total == pytest.approx([1.5, 1 + 1 / 6, 2 / 7], abs=1e-6)


def test_scorer_counts_unknown_language_as_failure():
  from r1jax.rewards.scoring import RewardScorer
  with RewardScorer({"language": 1.0}, num_workers=0) as scorer:
    res = scorer([READABLE_EN, READABLE_EN], [WORDS_EN, {"language": "xx"}])
  assert res.per_fn["language"].tolist() == [1.0, 0.0]
  assert res.failures == {"language": 1}
