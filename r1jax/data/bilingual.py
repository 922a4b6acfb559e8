r"""A miniature world with two languages, so that language mixing can be measured.

Each last-digit problem (r1jax.data.arithmetic) is posed in one of two surface
languages, and its chain of thought is written in words of a language:

  en  "What is the last digit of 7+2+4?"   CoT "two is two, four is six, seven is three"
  ve  "Ke ta lasu cifo de 7+2+4?"          CoT "dus ta dus, kar ta sek, sap ta tir"

(ve is invented: its own number words and connectives, no word shared with en.) A
step names the next larger term and the last digit of the running total, as in the
symbolic world ('2:2,4:6,7:3'), so the two languages carry the same reasoning.

What is engineered, and why: en is the dominant language of the base corpus. A share
`mix_fraction` of the worked solutions of ve problems switches to en at a random step
(at step 0 the whole CoT is in en), the way R1-Zero's CoTs drift into the language it
reasons best in. ve is therefore a lower-resource language for reasoning, and the base
model mixes languages on ve prompts; whether RL keeps, grows or removes that mixing is
what the language-consistency reward is about (paper section 2.3.2).

Outputs come in two formats: R1-Zero's tags (`<think>CoT</think> <answer>3</answer>`,
the base corpus) and R1's cold-start format (`|special_token|CoT|special_token|summary`,
the summary a sentence in the prompt's language ending in \boxed{answer}). Cold-start
data is made as the paper describes: R1-Zero-style outputs refined into the readable
format (summary added), then a readability filter keeps the correct ones in one
language with a non-empty reasoning and a summary (`cold_start`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Sequence

import numpy as np

from r1jax.data import arithmetic
from r1jax.rewards.format import SEPARATOR


@dataclasses.dataclass(frozen=True)
class Language:
  code: str
  digits: tuple[str, ...]  # number words for 0..9
  connective: str  # "two IS two": the term, then the running last digit
  question: str  # with {expr}
  summary: str  # with {answer}


LANGUAGES = {
    "en": Language("en", ("zero", "one", "two", "three", "four", "five", "six", "seven",
                          "eight", "nine"), "is", "What is the last digit of {expr}?",
                   "The answer is \\boxed{{{answer}}}."),
    "ve": Language("ve", ("nol", "ek", "dus", "tir", "kar", "pan", "sek", "sap", "ot", "nav"),
                   "ta", "Ke ta lasu cifo de {expr}?", "Respo ta \\boxed{{{answer}}}."),
}

_WORD = re.compile(r"[A-Za-z]+")


def lexicon(code: str) -> frozenset[str]:
  """Every word (lower case) the language `code` uses in questions, CoTs and summaries."""
  lang = LANGUAGES[code]
  text = " ".join((*lang.digits, lang.connective, lang.question.format(expr=""),
                   lang.summary.format(answer="").replace("\\boxed", "")))
  return frozenset(w.lower() for w in _WORD.findall(text))


LEXICONS = {code: lexicon(code) for code in LANGUAGES}
assert not LEXICONS["en"] & LEXICONS["ve"], "the two languages must share no word"


def check_languages(languages: Sequence[str]) -> None:
  unknown = [c for c in languages if c not in LANGUAGES]
  if unknown or len(set(languages)) != len(languages):
    raise ValueError(f"languages={tuple(languages)}: give distinct codes from "
                     f"{sorted(LANGUAGES)}.")


def language_of(p: arithmetic.LastDigitProblem, languages: Sequence[str], seed: int) -> str:
  """The language a problem is posed in: a hash of (seed, its terms), independent of
  the train/test split (which hashes the set of terms alone)."""
  h = int(hashlib.sha256(f"{seed}/lang/{p.terms}".encode()).hexdigest()[:8], 16)
  return languages[h % len(languages)]


def question(p: arithmetic.LastDigitProblem, code: str) -> str:
  return LANGUAGES[code].question.format(expr="+".join(map(str, p.terms)))


def steps(p: arithmetic.LastDigitProblem, codes: Sequence[str]) -> str:
  """The worked steps, step i in language codes[i] (one code per term)."""
  terms = sorted(p.terms)
  out = []
  for d, t, code in zip(terms, np.cumsum(terms), codes):
    lang = LANGUAGES[code]
    out.append(f"{lang.digits[d]} {lang.connective} {lang.digits[int(t) % 10]}")
  return ", ".join(out)


def worked(p: arithmetic.LastDigitProblem, code: str) -> str:
  """The worked steps all in language `code`."""
  return steps(p, [code] * len(p.terms))


def summary(answer: str, code: str) -> str:
  return LANGUAGES[code].summary.format(answer=answer)


def r1_completion(reasoning: str, answer: str, code: str) -> str:
  """A completion in R1's cold-start format: ' |special_token|CoT|special_token| summary'."""
  return f" {SEPARATOR}{reasoning}{SEPARATOR} {summary(answer, code)}"


def corpus_reasoning(p: arithmetic.LastDigitProblem, code: str, languages: Sequence[str],
                     mix_fraction: float, rng: np.random.Generator) -> str:
  """A worked CoT as the base corpus writes it: in the prompt's language, except that
  with probability `mix_fraction` a CoT of a non-dominant language switches to the
  dominant one (languages[0]) at a random step."""
  codes = [code] * len(p.terms)
  if code != languages[0] and rng.random() < mix_fraction:
    switch = int(rng.integers(0, len(p.terms)))
    codes[switch:] = [languages[0]] * (len(p.terms) - switch)
  return steps(p, codes)


# -- cold-start data ------------------------------------------------------------


def refine(zero_completion: str, answer: str, code: str) -> str:
  """An R1-Zero-style output rewritten into R1's format: its <think> becomes the
  reasoning and a summary in the prompt's language is added (the paper's 'R1-Zero
  outputs refined')."""
  m = re.search(r"<think>(.*?)</think>", zero_completion, re.DOTALL)
  return r1_completion(m.group(1) if m else "", answer, code)


def _quotas(n: int, shares: Sequence[float]) -> list[int]:
  """Rows per language: n split by `shares`, rounding handed to the largest shares."""
  q = [int(n * x) for x in shares]
  for i in sorted(range(len(q)), key=lambda i: -shares[i])[:n - sum(q)]:
    q[i] += 1
  return q


def cold_start(task_seed: int, n: int, languages: Sequence[str], mix_fraction: float,
               worked_fraction: float, min_terms: int, max_terms: int,
               shares: Sequence[float] = ()) -> tuple[list[dict[str, str]], dict[str, int]]:
  """`n` readable cold-start examples {question, completion, language} from train
  problems, and the count of candidates each filter rejected. `shares` (one per
  language, summing to 1; () = as drawn) fixes each language's share of the rows.

  Candidates are base-corpus-style outputs (worked or direct, some mixing languages)
  refined into R1's format; the readability filter (r1jax.rewards.language.readable)
  keeps those with a non-empty reasoning, a summary, and every word in the prompt's
  language. (The generator's answers are correct by construction, so no answer check.)
  """
  from r1jax.rewards import language as language_lib

  rng = np.random.default_rng([task_seed, 31])
  out: list[dict[str, str]] = []
  rejected = {"not_readable": 0}
  quota = _quotas(n, shares) if shares else None
  while len(out) < n:
    for p in arithmetic.sample_last_digit_problems(int(rng.integers(2**31)), 256, min_terms,
                                                   max_terms, split="train"):
      code = language_of(p, languages, task_seed)
      worked_style = rng.random() < worked_fraction
      cot = corpus_reasoning(p, code, languages, mix_fraction, rng) if worked_style else ""
      text = refine(arithmetic.tagged(cot, p.answer), p.answer, code)
      if not language_lib.readable(text, code, "words"):
        rejected["not_readable"] += 1
      elif quota is not None and quota[languages.index(code)] == 0:
        continue  # this language's rows are all in
      else:
        if quota is not None:
          quota[languages.index(code)] -= 1
        out.append({"question": question(p, code), "completion": text, "language": code})
        if len(out) == n:
          break
  return out, rejected
