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


def extract_answer(completion: str) -> str | None:
  """Return the answer a completion commits to (see module docstring), or None."""
  if not isinstance(completion, str):
    return None
  try:
    content = None
    close = completion.rfind("</answer>")
    if close != -1:
      open_ = completion.rfind("<answer>", 0, close)
      if open_ != -1:
        content = completion[open_ + len("<answer>") : close]
    if content is not None:
      boxed = _last_boxed(content)
      ans = boxed if boxed is not None else content
    else:
      ans = _last_boxed(completion)
      if ans is None:
        return None
    ans = ans.strip()
    return ans or None
  except Exception:  # pragma: no cover - defensive
    return None

