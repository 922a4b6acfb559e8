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


def _last_boxed(s: str) -> str | None:
  """Content of the last balanced \\boxed{...} in s, or None."""
  starts = [m.end() for m in BOX_RE.finditer(s)]
  if not starts:
    return None
  matches = _brace_matches(s)
  for k in reversed(starts):
    j = k
    while j < len(s) and s[j] in " \t\n":
      j += 1
    if j < len(s) and s[j] == "{":
      end = matches.get(j, -1)
      if end != -1:
        return s[j + 1 : end - 1]
    elif j < len(s) and j > k:  # "\\boxed 5": one token
      m = re.match(r"[^\s$]+", s[j : j + 1000])
      if m:
        return m.group(0)
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

