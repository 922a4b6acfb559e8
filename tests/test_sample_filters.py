"""The sample stage's rejection-sampling filters (DeepSeek-R1 section 2.3.3): mixed
languages, long paragraphs and code blocks in the CoT, R1's format, and their counts;
preference pairs ranked by a reward among a prompt's samples."""

import numpy as np
import pytest

from r1jax import configs, stages
from r1jax.rewards.format import SEPARATOR
from r1jax.stages import common, sample

VE = "dus ta dus, kar ta sek"  # r1jax.data.bilingual's ve
EN = "two is two"  # and en
ZH = "二加二等于四，四加三等于七"


def _weights(*names):
  return configs.ConfigDict({n: float(n == "accuracy") for n in names})


def _section(**overrides):
  """A sample section with every filter off unless overridden."""
  off = dict(require_correct=False, drop_truncated=False, drop_duplicates=False,
             reward_weights=_weights("accuracy", "format", "r1_format"))
  return stages.config("sample", **{**off, **overrides})


def r1(cot, summary="The answer is \\boxed{4}."):
  return f"{SEPARATOR}{cot}{SEPARATOR}{summary}"


def r1_zero(cot, answer="4"):
  return f"<think>{cot}</think> <answer>{answer}</answer>"


def row(completion, prompt="q", language=None, identifier=None, acc=1.0, fmt=1.0,
        r1_fmt=1.0, truncated=False):
  r = {"prompt": prompt, "completion": completion, "answer": "4", "truncated": truncated,
       "rewards": {"accuracy": acc, "format": fmt, "r1_format": r1_fmt}}
  if language is not None:
    r["language"] = language
  if identifier is not None:
    r["language_identifier"] = identifier
  return r


def _kept(rows, s):
  kept, _ = sample.filter_samples(rows, s)
  return [rows.index(r) for r in kept]


@pytest.mark.parametrize("wrap", [r1, r1_zero])
def test_mixed_language_words(wrap):
  s = _section(drop_mixed_language=True)
  rows = [row(wrap(VE), language="ve", identifier="words"),  # pure ve: kept
          row(wrap(VE + ", two"), language="ve", identifier="words"),  # one en word
          row(wrap(EN), language="en", identifier="words"),  # pure en: kept
          row(wrap(EN + " dus"), language="en", identifier="words"),  # one ve word
          row(wrap(VE + ", two")),  # no language: never dropped by this filter
          row(wrap(VE + ", two"), language=""),  # an empty language names none
          row(wrap("7+2=9, 9+4=13"), language="ve", identifier="words")]  # no word: kept
  kept, dropped = sample.filter_samples(rows, s)
  assert [rows.index(r) for r in kept] == [0, 2, 4, 5, 6]
  assert dropped == {"mixed_language": 2}


def test_mixed_language_only_in_the_cot():
  """An English summary of a ve CoT is the answer's business, not the CoT's."""
  s = _section(drop_mixed_language=True)
  rows = [row(r1(VE, summary="The answer is \\boxed{6}."), language="ve", identifier="words"),
          row(r1_zero(VE, answer="six"), language="ve", identifier="words")]
  assert _kept(rows, s) == [0, 1]


@pytest.mark.parametrize("wrap", [r1, r1_zero])
def test_mixed_language_script(wrap):
  s = _section(drop_mixed_language=True)
  rows = [row(wrap(ZH + "，所以是 7。"), language="zh", identifier="script"),
          row(wrap(ZH + "，so the answer is 7。"), language="zh", identifier="script"),
          row(wrap(ZH + "，so the answer is 7。"), language="zh"),  # script is the default
          row(wrap("2 plus 2 is 4, so the answer is 4."), language="en"),
          row(wrap("2 plus 2 is 4, 所以 4."), language="en")]
  assert _kept(rows, s) == [0, 3]


@pytest.mark.parametrize("wrap", [r1, r1_zero])
def test_long_paragraph(wrap):
  s = _section(max_paragraph_chars=20)
  para = "x" * 15
  rows = [row(wrap("y" * 21)),  # one paragraph over the limit
          row(wrap(f"{para}\n\n{para}")),  # two short ones, 30 chars in all: kept
          row(wrap(f"{para}\n  \n{para}\n\t\n{para}")),  # blank lines with spaces split
          row(wrap(f"{para}\n{para}")),  # a single newline does not split: 31 chars
          row(wrap("  " + "y" * 20 + "\n\n"))]  # exactly the limit (whitespace aside)
  assert _kept(rows, s) == [1, 2, 4]
  assert sample.filter_samples(rows, s)[1] == {"long_paragraph": 2}
  s.max_paragraph_chars = 0  # off
  assert _kept(rows, s) == list(range(len(rows)))


def test_long_paragraph_in_the_answer_is_kept():
  s = _section(max_paragraph_chars=20)
  assert _kept([row(r1("short", summary="z" * 50))], s) == [0]
  assert _kept([row(r1_zero("short", answer="z" * 50))], s) == [0]


@pytest.mark.parametrize("wrap", [r1, r1_zero])
def test_code_block(wrap):
  s = _section(drop_code_blocks=True)
  code = "```python\nprint(4)\n```"
  rows = [row(wrap(f"Let me write it.\n{code}\nSo 4.")),  # fenced code in the CoT
          row(wrap("Let me think.\n~~~\nx = 4\n~~~")),  # tilde fence
          row(wrap("  ```\nx = 4")),  # indented, unclosed (cut off): still code
          row(wrap("Plain reasoning with `x = 4` inline.")),  # inline code is no block
          row(wrap("Plain reasoning, 2 + 2 = 4."))]
  assert _kept(rows, s) == [3, 4]
  assert sample.filter_samples(rows, s)[1] == {"code_block": 3}


def test_code_block_in_the_answer_is_kept():
  s = _section(drop_code_blocks=True)
  code = "```python\ndef f():\n  return 4\n```"
  rows = [row(r1("I will return 4.", summary=f"Here it is:\n{code}")),
          row(r1_zero("I will return 4.", answer=f"\n{code}\n")),
          row(r1(f"Draft:\n{code}", summary=f"Here it is:\n{code}"))]
  assert _kept(rows, s) == [0, 1]


def test_require_r1_format_counts_as_unformatted():
  s = _section(require_r1_format=True)
  rows = [row(r1(EN)), row(r1_zero(EN), r1_fmt=0.0)]
  kept, dropped = sample.filter_samples(rows, s)
  assert [r["completion"] for r in kept] == [r1(EN)]
  assert dropped == {"unformatted": 1}


def test_counts_and_first_failing_filter():
  s = _section(require_correct=True, require_r1_format=True, drop_truncated=True,
               drop_mixed_language=True, max_paragraph_chars=40, drop_code_blocks=True,
               drop_duplicates=True)
  ve = dict(language="ve", identifier="words")
  mixed, long_cot, code = VE + ", two", "y" * 41, VE + "\n```\nx\n```"
  rows = [
      row(r1(VE), **ve),  # kept
      row(r1(mixed), acc=0.0, **ve),  # incorrect first, though also mixed
      row(r1(mixed), r1_fmt=0.0, truncated=True, **ve),  # unformatted first
      row(r1(mixed + "\n\n" + long_cot), truncated=True, **ve),  # truncated first
      row(r1(mixed + "\n\n" + long_cot + "\n```"), **ve),  # mixed_language first
      row(r1(long_cot + "\n```\nx\n```"), **ve),  # long_paragraph first
      row(r1(code), **ve),  # code_block (one paragraph of 32 chars)
      row(r1(VE), **ve),  # duplicate of the first
      row(r1(VE), prompt="other", **ve),  # same text, other prompt: kept
      row(r1(mixed), **ve),  # mixed
  ]
  kept, dropped = sample.filter_samples(rows, s)
  assert [rows.index(r) for r in kept] == [0, 8]
  assert dropped == {"incorrect": 1, "unformatted": 1, "truncated": 1, "mixed_language": 2,
                     "long_paragraph": 1, "code_block": 1, "duplicate": 1}
  assert list(dropped) == list(sample.FILTERS)
  assert len(kept) + sum(dropped.values()) == len(rows)


def test_a_dropped_row_still_counts_as_seen():
  """A duplicate of a dropped completion is counted under the duplicate filter when it
  fails nothing else (the first row is only dropped for being wrong)."""
  s = _section(require_correct=True, drop_duplicates=True)
  rows = [row("a", acc=0.0), row("a")]
  assert sample.filter_samples(rows, s) == ([], {"incorrect": 1, "duplicate": 1})


def test_counts_name_only_the_enabled_filters():
  assert sample.filter_samples([], _section()) == ([], {})
  assert sample.active_filters(stages.config("sample")) == ("incorrect", "truncated",
                                                             "duplicate")
  s = _section(require_format=True, max_paragraph_chars=5)
  assert sample.active_filters(s) == ("unformatted", "long_paragraph")


def test_language_fields_and_check():
  assert sample._language_fields({"question": "q", "answer": "4"}) == {}
  assert sample._language_fields({"language": "", "answer": "4"}) == {}
  assert sample._language_fields({"language": "ve", "language_identifier": "words"}) == {
      "language": "ve", "language_identifier": "words"}
  assert sample._language_fields({"language": "zh"}) == {"language": "zh",
                                                         "language_identifier": "script"}
  sample._check_languages("rs", [{"language": "ve", "language_identifier": "words"},
                                 {"language": "zh"}, {"question": "q"}])
  with pytest.raises(common.StageError, match="rs.drop_mixed_language: .*'xx'"):
    sample._check_languages("rs", [{"language": "xx"}])
  with pytest.raises(common.StageError, match="identifier='morse'"):
    sample._check_languages("rs", [{"language": "en", "language_identifier": "morse"}])


def test_default_config_keys():
  c = stages.config("sample")
  assert (c.drop_mixed_language, c.max_paragraph_chars, c.drop_code_blocks,
          c.require_r1_format) == (False, 0, False, False)


@pytest.mark.parametrize("overrides, message", [
    (dict(max_paragraph_chars=-1), r"max_paragraph_chars=-1; allowed: 0 \(no limit\)"),
    (dict(max_paragraph_chars=True), r"max_paragraph_chars=True; allowed"),
    (dict(require_r1_format=True), "require_r1_format needs 'r1_format' in reward_weights"),
    (dict(require_format=True, require_r1_format=True,
          reward_weights=_weights("accuracy", "format", "r1_format")), "exclude each other"),
    (dict(pairs_by="helpful_rule"), r"pairs_by='helpful_rule' must be one of reward_weig"),
    (dict(pairs_by="accuracy", pairs_per_prompt=0), "pairs_per_prompt must be >= 1"),
    (dict(pairs_by="accuracy", pairs_label_noise=0.6), r"pairs_label_noise in \[0, 0.5\]"),
])
def test_validation(overrides, message):
  s = stages.config("sample", prompts=("digits:train",))
  configs.apply_overrides(s, overrides)
  with pytest.raises(configs.ConfigError, match=message):
    sample.validate(s, "rs", {})


def test_validation_accepts_the_new_filters():
  s = stages.config("sample", prompts=("digits:train",), require_r1_format=True,
                    drop_mixed_language=True, max_paragraph_chars=400, drop_code_blocks=True,
                    reward_weights=_weights("accuracy", "r1_format"))
  sample.validate(s, "rs", {})


def _scored(prompt, *scores):
  return [{"prompt": prompt, "completion": f"{prompt}-{i}", "rewards": {"helpful_rule": x}}
          for i, x in enumerate(scores)]


def test_pairs_rank_within_a_prompt_best_against_worst():
  rows = _scored("a", 0.0, 1.0, 0.0, 1.0) + _scored("b", 1.0, 1.0) + _scored("c", 0.0, 0.5, 1.0)
  pairs = sample.preference_pairs(rows, "helpful_rule", preference="helpful", per_prompt=4,
                                  label_noise=0.0, rng=np.random.default_rng(0))
  got = [(p["prompt"], p["chosen"], p["rejected"]) for p in pairs]
  # a: the two helpful ones against the two unhelpful ones, each completion used once;
  # b: all tie, no pair; c: best against worst, then the middle one is left alone.
  assert got == [("a", "a-1", "a-2"), ("a", "a-3", "a-0"), ("c", "c-2", "c-0")]
  assert {p["preference"] for p in pairs} == {"helpful"}


def test_pairs_per_prompt_caps_and_noise_swaps_a_share():
  rows = [r for i in range(400) for r in _scored(f"p{i}", 1.0, 1.0, 0.0, 0.0)]
  capped = sample.preference_pairs(rows, "helpful_rule", preference="h", per_prompt=1,
                                   label_noise=0.0, rng=np.random.default_rng(0))
  assert len(capped) == 400
  noisy = sample.preference_pairs(rows, "helpful_rule", preference="h", per_prompt=2,
                                  label_noise=0.25, rng=np.random.default_rng(0))
  swapped = [p for p in noisy if p["chosen"].endswith(("-2", "-3"))]
  assert len(noisy) == 800 and 0.2 < len(swapped) / 800 < 0.3
  again = sample.preference_pairs(rows, "helpful_rule", preference="h", per_prompt=2,
                                  label_noise=0.25, rng=np.random.default_rng(0))
  assert again == noisy  # the same seed, the same pairs (a resumed shard)
