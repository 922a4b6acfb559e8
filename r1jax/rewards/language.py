"""Language consistency (DeepSeek-R1 section 2.3.2): the share of a CoT's words in the
target language, and the readability and mixing checks built on it.

Two identifiers decide a word's language:

  words   a word-level identifier for the miniature world's languages
          (r1jax.data.bilingual.LEXICONS): a word counts when it is in one language's
          lexicon; anything else (numbers, LaTeX, symbols) is ignored.
  script  a character-class identifier for real text: each word (a run of letters) is
          assigned its Unicode script (Latin, Cyrillic, Greek, Arabic, Hebrew,
          Devanagari, Thai, Hangul, Kana, CJK ideographs); in scripts written without
          spaces (CJK, Kana, Thai) each character counts as a word. A language is
          consistent with the scripts it is written in (LANGUAGE_SCRIPTS: Japanese with
          Kana and CJK, Chinese with CJK, Korean with Hangul, ...). It cannot tell apart
          languages of one script (English from French), which is what mixing in R1's
          CoTs mostly is not: the paper's case is English inside Chinese and vice versa.

`consistency(text, language, identifier)` is the share of identified words that are in
`language` (None when no word is identified). The reward (`language_reward`, registered
as "language" in r1jax.rewards.scoring) is the consistency of the reasoning part of a
completion (R1 format: between the separators; R1-Zero: inside <think>; otherwise the
whole text), 0.0 when it has no identified word. Examples name their language under
"language" and, optionally, the identifier under "language_identifier" (default
"script"; the synthetic tasks set "words").
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Mapping

from r1jax.rewards.format import SEPARATOR, parse_r1

__all__ = ["IDENTIFIERS", "LANGUAGE_SCRIPTS", "consistency", "identify", "language_reward",
           "mixes_languages", "readable", "reasoning", "script_of", "target", "words"]

IDENTIFIERS = ("words", "script")

# (first, last) code points of each script's letters.
_SCRIPT_RANGES = {
    "latin": ((0x41, 0x5A), (0x61, 0x7A), (0xC0, 0x24F), (0x1E00, 0x1EFF)),
    "greek": ((0x370, 0x3FF), (0x1F00, 0x1FFF)),
    "cyrillic": ((0x400, 0x52F),),
    "hebrew": ((0x590, 0x5FF),),
    "arabic": ((0x600, 0x6FF), (0x750, 0x77F), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF)),
    "devanagari": ((0x900, 0x97F),),
    "thai": ((0xE00, 0xE7F),),
    "hangul": ((0x1100, 0x11FF), (0x3130, 0x318F), (0xAC00, 0xD7AF)),
    "kana": ((0x3040, 0x30FF), (0x31F0, 0x31FF), (0xFF66, 0xFF9F)),
    "cjk": ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x2FA1F)),
}
_UNSPACED = ("cjk", "kana", "thai")  # each character is a word

LANGUAGE_SCRIPTS = {
    **{c: ("latin",) for c in ("en", "fr", "de", "es", "it", "pt", "nl", "pl", "tr", "vi",
                                "id", "sv", "cs", "ro")},
    **{c: ("cyrillic",) for c in ("ru", "uk", "bg", "sr")},
    "el": ("greek",), "he": ("hebrew",), "ar": ("arabic",), "fa": ("arabic",),
    "hi": ("devanagari",), "th": ("thai",), "ko": ("hangul",), "ja": ("kana", "cjk"),
    "zh": ("cjk",),
}

# Markup that is no language: LaTeX commands, R1's separator and R1-Zero's tags.
_MARKUP = re.compile(r"\\[A-Za-z]+|" + re.escape(SEPARATOR) + r"|</?(?:think|answer)>")


def script_of(ch: str) -> str | None:
  """The script of one character, or None (digits, punctuation, unlisted scripts)."""
  cp = ord(ch)
  for name, ranges in _SCRIPT_RANGES.items():
    if any(lo <= cp <= hi for lo, hi in ranges):
      return name
  return None


def words(text: str) -> list[tuple[str, str | None]]:
  """(word, script) pairs: runs of letters (with their combining marks, e.g. Devanagari
  vowel signs) split where the script changes; in scripts without spaces every
  character is its own word. Markup (LaTeX commands, separators, tags) is skipped."""
  out: list[tuple[str, str | None]] = []
  cur, cur_script = "", None
  for ch in unicodedata.normalize("NFC", _MARKUP.sub(" ", text)):
    cat = unicodedata.category(ch)
    if cat[0] == "M" and cur:  # a mark belongs to the letter before it
      cur += ch
      continue
    if cat[0] != "L":
      if cur:
        out.append((cur, cur_script))
      cur = ""
      continue
    s = script_of(ch)
    if cur and (s != cur_script or s in _UNSPACED):
      out.append((cur, cur_script))
      cur = ""
    cur, cur_script = cur + ch, s
  if cur:
    out.append((cur, cur_script))
  return out


def _lexicons() -> Mapping[str, frozenset[str]]:
  from r1jax.data import bilingual  # the miniature world's vocabularies
  return bilingual.LEXICONS


def identify(text: str, identifier: str) -> list[str]:
  """The identified words' labels: a language code ('words') or a script ('script')."""
  if identifier == "words":
    lex = _lexicons()
    out = []
    for w, _ in words(text):
      code = next((c for c, ws in lex.items() if w.lower() in ws), None)
      if code is not None:
        out.append(code)
    return out
  if identifier == "script":
    return [s for _, s in words(text) if s is not None]
  raise ValueError(f"identifier={identifier!r}; allowed: {IDENTIFIERS}.")


def _targets(language: str, identifier: str) -> tuple[str, ...]:
  if identifier == "words":
    if language not in _lexicons():
      raise ValueError(f"language {language!r} is not one of the miniature world's "
                       f"({sorted(_lexicons())}); use identifier='script' for real text.")
    return (language,)
  if language not in LANGUAGE_SCRIPTS:
    raise ValueError(f"language {language!r} has no script listed; known: "
                     f"{sorted(LANGUAGE_SCRIPTS)}.")
  return LANGUAGE_SCRIPTS[language]


def consistency(text: str, language: str, identifier: str = "script") -> float | None:
  """Share of identified words in `language` (None when no word is identified)."""
  targets = _targets(language, identifier)
  labels = identify(text, identifier)
  if not labels:
    return None
  return sum(label in targets for label in labels) / len(labels)


def reasoning(completion: str) -> str:
  """The CoT: R1 format's reasoning, R1-Zero's <think> content, else the whole text."""
  parts = parse_r1(completion)
  if parts is not None:
    return parts[0]
  m = re.search(r"<think>(.*?)(?:</think>|$)", completion, re.DOTALL)
  return m.group(1) if m else completion


def mixes_languages(completion: str, language: str, identifier: str = "script") -> bool:
  """Whether any identified word of the response is not in `language`."""
  c = consistency(completion, language, identifier)
  return c is not None and c < 1.0


def readable(completion: str, language: str, identifier: str = "script") -> bool:
  """R1's format with a non-blank reasoning and summary, every identified word in
  `language` (a response with no identified word counts as one language)."""
  parts = parse_r1(completion)
  if parts is None or not parts[0].strip() or not parts[1].strip():
    return False
  return not mixes_languages(completion, language, identifier)


def target(example: Mapping[str, Any]) -> tuple[str, str] | None:
  """(language, identifier) an example names, or None when it names no language."""
  if not example.get("language"):
    return None
  return str(example["language"]), example.get("language_identifier", "script")


def language_reward(completion: str, example: Mapping[str, Any]) -> float:
  """Share of the CoT's words in example['language'] (0.0 when it has none)."""
  lang = target(example)
  if lang is None:
    raise ValueError("the example names no 'language' for the language reward.")
  c = consistency(reasoning(completion), *lang)
  return 0.0 if c is None else c
