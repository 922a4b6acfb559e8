"""Answer extraction: the answer a completion commits to (r1jax.rewards.math_equiv).

The rules are in math_equiv's docstring (Extraction).
"""

from __future__ import annotations

import re

BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![a-zA-Z])")


def match_brace(s: str, i: int) -> int:
  """Given s[i] == '{', index just past its matching '}', or -1."""
  depth = 0
  n = len(s)
  j = i
  while j < n:
    c = s[j]
    if c == "\\":
      j += 2
      continue
    if c == "{":
      depth += 1
    elif c == "}":
      depth -= 1
      if depth == 0:
        return j + 1
    j += 1
  return -1


def _brace_matches(s: str) -> dict[int, int]:
  """Map each '{' index to the index just past its matching '}' (one linear pass)."""
  out: dict[int, int] = {}
  stack: list[int] = []
  j, n = 0, len(s)
  while j < n:
    c = s[j]
    if c == "\\":
      j += 2
      continue
    if c == "{":
      stack.append(j)
    elif c == "}" and stack:
      out[stack.pop()] = j + 1
    j += 1
  return out


# What may stand between boxes that together make one list answer: "\\boxed{1}, \\boxed{2}",
# "$x = \\boxed{2}$ or $x = \\boxed{3}$".
_BOX_SEP_RE = re.compile(
    r"(?:\s|\$|[,;]|\\[()\[\],;! ]|\\q?quad(?![a-zA-Z])|and|or"
    r"|\\text\{\s*,?\s*(?:and|or)?\s*\}|[a-zA-Z](?:_\{?\w+\}?)?\s*=)*"
)
MAX_BOXES = 40  # longest run of boxes read as one list


def _box_span(s: str, k: int, matches: dict[int, int]) -> tuple[int, int] | None:
  """(start, end) of the braced group of the \\boxed ending at k, or None if unbalanced."""
  j = k
  while j < len(s) and s[j] in " \t\n":
    j += 1
  if j < len(s) and s[j] == "{" and matches.get(j, -1) != -1:
    return j, matches[j]
  return None


def _last_boxed(s: str) -> str | None:
  """Content of the last balanced \\boxed{...} in s, or None; a run of boxes separated
  only by commas, "and", spaces or math delimiters is one answer, their contents joined."""
  boxes = list(BOX_RE.finditer(s))
  if not boxes:
    return None
  matches = _brace_matches(s)
  for n in range(len(boxes) - 1, -1, -1):
    k = boxes[n].end()
    span = _box_span(s, k, matches)
    if span is None:
      j = k
      while j < len(s) and s[j] in " \t\n":
        j += 1
      if j < len(s) and j > k and s[j] != "{":  # "\\boxed 5": one token
        m = re.match(r"[^\s$]+", s[j : j + 1000])
        if m:
          return m.group(0)
      continue
    parts = [s[span[0] + 1 : span[1] - 1]]
    start = boxes[n].start()
    for prev in range(n - 1, max(n - MAX_BOXES, -1), -1):
      prev_span = _box_span(s, boxes[prev].end(), matches)
      if prev_span is None or not _BOX_SEP_RE.fullmatch(s, prev_span[1], start):
        break
      parts.append(s[prev_span[0] + 1 : prev_span[1] - 1])
      start = boxes[prev].start()
    return ", ".join(p.strip() for p in reversed(parts))
  return None


LENIENT_TAIL = 5000  # lenient extraction reads the last characters only
# "The answer is 5", "Final answer: 5", "**Answer:** 5", GSM8K's "#### 5".
_PHRASE_RE = re.compile(r"\banswer\b(?:\s+is)?\s*\**\s*[:=]|\banswer\s+is\b|####", re.I)
_MATH_SPAN_RE = re.compile(
    r"\$\$(.{1,500}?)\$\$|(?<!\\)\$(.{1,500}?)(?<!\\)\$|\\\((.{1,500}?)\\\)|\\\[(.{1,500}?)\\\]", re.S)
_NUMBER_RE = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?(?![\d,]\d)")
_SENTENCE_END_RE = re.compile(r"\n|\.(?:\s|$)|\*\*")


def _phrase_answer(text: str) -> str | None:
  """The value after the last "answer is" / "answer:" / "####" phrase, or None."""
  phrases = list(_PHRASE_RE.finditer(text))
  if not phrases:
    return None
  rest = text[phrases[-1].end():].lstrip(" \t*:")
  m = _MATH_SPAN_RE.match(rest)
  if m:
    return next(g for g in m.groups() if g is not None)
  end = _SENTENCE_END_RE.search(rest)
  return rest[: end.start() if end else 200][:200]


def _last_math(text: str) -> str | None:
  """The last math span ($..$, \\(..\\), \\[..\\]) or bare number, whichever is later."""
  spans = list(_MATH_SPAN_RE.finditer(text))
  masked = text
  for m in spans:
    masked = masked[: m.start()] + " " * (m.end() - m.start()) + masked[m.end():]
  numbers = list(_NUMBER_RE.finditer(masked))
  if numbers and (not spans or numbers[-1].start() > spans[-1].end()):
    return numbers[-1].group(0)
  if spans:
    return next(g for g in spans[-1].groups() if g is not None)
  return None


def extract_answer(completion: str, *, lenient: bool = False) -> str | None:
  """Return the answer a completion commits to (see math_equiv's docstring), or None.

  `lenient` (evaluation only, off for rewards) also reads answers given without tags or a
  box: after "the answer is" / "answer:" / "####", else the last math expression.
  """
  if not isinstance(completion, str):
    return None
  try:
    ans = _strict(completion)
    if ans is None and lenient:
      tail = _before_unfinished(completion[-LENIENT_TAIL:])
      ans = _phrase_answer(tail)
      ans = ans if ans and ans.strip() else _last_math(tail)
    if ans is None:
      return None
    ans = ans.strip()
    return ans or None
  except Exception:  # pragma: no cover - defensive
    return None


def _before_unfinished(text: str) -> str:
  """Text before an unclosed <answer> or an unbalanced box: what follows is unfinished."""
  open_ = text.rfind("<answer>")
  if open_ != -1 and text.find("</answer>", open_) == -1:
    text = text[:open_]
  m = BOX_RE.search(text)  # with no balanced box anywhere, every box is unfinished
  return text[: m.start()] if m else text


def _strict(completion: str) -> str | None:
  """The last answer tags' content (its last box, if any), else the last box, or None."""
  close = completion.rfind("</answer>")
  if close != -1:
    open_ = completion.rfind("<answer>", 0, close)
    if open_ != -1:
      content = completion[open_ + len("<answer>") : close]
      boxed = _last_boxed(content)
      return boxed if boxed is not None else content
  return _last_boxed(completion)
