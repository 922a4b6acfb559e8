"""String normalisation of answers, and the plain-number fast path (no sympy).

Runs in the caller's process as well as in the helper; the conventions are in
r1jax.rewards.math_equiv's docstring (Wrappers, Removed, \\text, Thousands).
"""

from __future__ import annotations

import re
from fractions import Fraction

from r1jax.rewards import _math_extract as extract

MAX_CHARS = 3000  # longer answers are rejected outright
MAX_DEPTH = 60  # deeper bracket nesting is rejected outright
REL_TOL = 1e-9  # numbers
ABS_TOL = 1e-20

_UNICODE = {
    "\u2212": "-", "\u2013": "-", "\u00d7": r"\times ", "\u22c5": r"\cdot ",
    "\u00b7": r"\cdot ", "\u00f7": r"\div ", "\u03c0": r"\pi ", "\u221e": r"\infty ",
    "\u2264": r"\le ", "\u2265": r"\ge ", "\u2260": r"\ne ", "\u221a": r"\sqrt",
    "\u222a": r"\cup ", "\u2229": r"\cap ", "\u2205": r"\emptyset ", "\u00b1": r"\pm ",
    "\u2248": r"\approx ", "\u00a0": " ", "\u2009": " ", "\u202f": " ",
}
_UNICODE_RE = re.compile("|".join(map(re.escape, _UNICODE)))
_SIZING_RE = re.compile(
    r"\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|Biggl|Biggr|big|Big|bigg|Bigg)"
    r"(?![a-zA-Z])\s*(\.)?"
)
_DROP_CMDS_RE = re.compile(
    r"\\(?:displaystyle|textstyle|scriptstyle|scriptscriptstyle|limits|nolimits)(?![a-zA-Z])"
)
_SPACE_CMDS_RE = re.compile(
    r"\\\\|\\(?:quad|qquad|enspace|thinspace|medspace|thickspace)(?![a-zA-Z])|\\[;:> !,]|~"
)
_DEGREE_RE = re.compile(
    r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ(?![a-zA-Z])|\u00b0|\^\s*\{\s*\\degree\s*\}"
    r"|\^\s*\\degree|\\degree(?![a-zA-Z])|\\textdegree(?![a-zA-Z])"
)
_TEXT_CMDS = (
    "text", "textbf", "textit", "textrm", "textsf", "texttt", "textnormal", "textup",
    "mbox", "hbox", "mathrm", "mathbf", "mathit", "mathsf", "mathtt", "mathnormal",
    "boldsymbol", "bm", "operatorname", "mathbb", "mathcal",
)
_TEXT_RE = re.compile(r"\\(" + "|".join(_TEXT_CMDS) + r")(?![a-zA-Z])\s*\{")
_WORDY_TEXT = frozenset(("text", "textbf", "textit", "textrm", "textsf", "texttt",
                         "textnormal", "textup", "mbox", "hbox", "mathrm"))
_UNIT_CONTENT_RE = re.compile(r"[A-Za-z][A-Za-z .\-'/]*")
_UNIT_POWER_RE = re.compile(r"\s*\^\s*(?:\{\s*\d\s*\}|\d)")
_CONNECTIVE_RE = re.compile(r"\s*(?:,\s*)?(?:and|or)\s*|\s*,\s*", re.I)
_THOUSANDS_RE = re.compile(r"(?<![\d.,])[1-9]\d{0,2}(?:,\d{3})+(?![\d]|,\d)")
_SPACED_THOUSANDS_RE = re.compile(r"(?<![\d.])[1-9]\d{0,2}(?: \d{3})+(?![\d.])")
_PLAIN_CONNECTIVE_RE = re.compile(r"(?<=[\w}).])\s+(?:and|or)\s+(?=[-\w\\(\[])")
_SERIAL_COMMA_RE = re.compile(r",\s*(?:and|or)\s+(?=[-\w\\(\[])")  # "2, 5, and 9"
# MATH writes 10,\!000; "1,\! 000" (a space after) is the same number when a 3-digit group follows.
_SPACED_THIN_THOUSANDS_RE = re.compile(r"(?<=\d),\\!\s+(?=\d{3}(?!\d))")
_MARK_OPEN, _MARK_CLOSE = "\x00", "\x01"


def _space_sub(m: re.Match) -> str:
  t = m.group(0)
  if t == "\\\\":
    return t  # a row separator, not a spacing command
  return "" if t in ("\\!", "\\,") else " "


def _process_text_groups(s: str) -> str:
  out: list[str] = []
  pos = 0
  for _ in range(200):
    m = _TEXT_RE.search(s, pos)
    if not m:
      break
    brace = m.end() - 1
    end = extract.match_brace(s, brace)
    if end == -1:
      break
    out.append(s[pos : m.start()])
    cmd = m.group(1)
    inner = s[brace + 1 : end - 1]
    inner = _process_text_groups(inner) if "\\" in inner else inner
    if cmd in _WORDY_TEXT and _CONNECTIVE_RE.fullmatch(inner) and inner.strip():
      # "2, 5, \text{ and } 9": the connective after a comma adds no second comma.
      out.append(" " if "".join(out).rstrip().endswith(",") else ", ")
    elif cmd in _WORDY_TEXT and re.search(r"_\s*\{?\s*$", "".join(out)):
      out.append(inner)  # a subscript in words (h_{\text{max}}) is part of a name
    elif (
        cmd in _WORDY_TEXT
        and _UNIT_CONTENT_RE.fullmatch(inner.strip() or "-")
        and not (cmd == "mathrm" and len(inner.strip()) == 1)
    ):
      # A words-only group: a unit / trailing words candidate.
      pm = _UNIT_POWER_RE.match(s, end)
      tail = pm.group(0) if pm else ""
      out.append(_MARK_OPEN + inner + tail + _MARK_CLOSE)
      end = pm.end() if pm else end
    else:
      out.append(inner if cmd in _WORDY_TEXT else "{" + inner + "}")
    pos = end
  out.append(s[pos:])
  return "".join(out)


def _resolve_marks(s: str) -> str:
  if _MARK_OPEN not in s:
    return s
  outside = re.sub("\x00[^\x00\x01]*\x01", "", s)
  if re.search(r"[\w\\]", outside):  # there is math besides the words: drop them
    return re.sub("\x00[^\x00\x01]*\x01", " ", s)
  # the words are the answer: keep them (minus any power tail marker)
  return s.replace(_MARK_OPEN, " ").replace(_MARK_CLOSE, " ")


def _thousands_sub(m: re.Match) -> str:
  s, a, b = m.string, m.start(), m.end()
  if a > 0 and b < len(s) and s[a - 1] in "([" and s[b] in ")]":
    return m.group(0)  # "(1,000)" is a pair, not a number
  return m.group(0).replace(",", "")


def _strip_trailing_words(s: str) -> str:
  toks = s.split(" ")
  k = len(toks)
  while k > 1 and re.fullmatch(r"[A-Za-z]{2,}(?:/[A-Za-z]+)*\.?|[A-Za-z]/[A-Za-z]+", toks[k - 1]):
    k -= 1
  if k == len(toks):
    return s
  head = " ".join(toks[:k]).strip()
  if head and re.search(r"\d", head) and re.search(r"[\d)}]$", head):
    return head
  return s


def _unbox_all(s: str) -> str:
  """Unwrap every balanced \\boxed{...} (or \\fbox): a box is display, not math."""
  pos = 0
  for _ in range(50):
    m = extract.BOX_RE.search(s, pos)
    if not m:
      break
    j = m.end()
    while j < len(s) and s[j] == " ":
      j += 1
    end = extract.match_brace(s, j) if j < len(s) and s[j] == "{" else -1
    if end == -1:
      pos = m.end()
      continue
    s = s[: m.start()] + s[j + 1 : end - 1] + s[end:]
    pos = m.start()
  return s.strip()


def normalize(s: str) -> str:
  """String-level normalisation shared by both sides (see module docstring)."""
  s = s.strip()
  s = _UNICODE_RE.sub(lambda m: _UNICODE[m.group(0)], s)
  s = s.replace("\\$", "").replace("$", "")
  s = re.sub(r"\\[()\[\]]", " ", s)
  s = s.strip()
  s = _unbox_all(s)
  s = _SIZING_RE.sub("", s)
  s = _DROP_CMDS_RE.sub("", s)
  s = re.sub(r"\\[dtc]frac(?![a-zA-Z])", r"\\frac", s)
  s = re.sub(r"\\[dt]binom(?![a-zA-Z])", r"\\binom", s)
  s = re.sub(r"\\(?:lvert|rvert|vert)(?![a-zA-Z])", "|", s)
  s = re.sub(r"\\(?:langle)(?![a-zA-Z])", "(", s)
  s = re.sub(r"\\(?:rangle)(?![a-zA-Z])", ")", s)
  s = re.sub(r"\\(?:leq|leqslant|le)(?![a-zA-Z])", r"\\le ", s)
  s = re.sub(r"\\(?:geq|geqslant|ge)(?![a-zA-Z])", r"\\ge ", s)
  s = re.sub(r"\\(?:neq|ne)(?![a-zA-Z])", r"\\ne ", s)
  s = re.sub(r"\\(?:varnothing|emptyset)(?![a-zA-Z])", r"\\emptyset ", s)
  s = re.sub(r"\\(?:infty|infin)(?![a-zA-Z])", r"\\infty ", s)
  s = _SPACED_THIN_THOUSANDS_RE.sub(",", s)
  s = _SPACE_CMDS_RE.sub(_space_sub, s)
  s = _DEGREE_RE.sub("", s)
  s = _process_text_groups(s)
  s = s.replace("\\%", "").replace("%", "")
  s = _resolve_marks(s)
  s = re.sub(r"(?<=\d)\{,\}(?=\d)", "", s)
  s = s.replace("{,}", ",")
  s = re.sub(r"\s+", " ", s).strip()
  s = _THOUSANDS_RE.sub(_thousands_sub, s)
  s = _SPACED_THOUSANDS_RE.sub(lambda m: m.group(0).replace(" ", ""), s)
  if re.search(r"[\d=]", s):  # "x = 2 or x = 3", "2 and 3": a list
    s = _SERIAL_COMMA_RE.sub(", ", s)
    s = _PLAIN_CONNECTIVE_RE.sub(", ", s)
  s = s.rstrip()
  while s.endswith(".") and not s.endswith("\\."):
    s = s[:-1].rstrip()
  s = _strip_trailing_words(s)
  s = re.sub(r"\s+", " ", s).strip()
  s = _unbox_all(s)
  return s


def max_depth(s: str) -> int:
  d = m = 0
  for c in s:
    if c in "([{":
      d += 1
      if d > m:
        m = d
    elif c in ")]}":
      d -= 1
  return m


_NUM_RE = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)")
_SIMPLE_FRAC_RE = re.compile(r"([-+]?)\\frac\{(-?\d+)\}\{(-?\d+)\}|([-+]?\d+)/(\d+)")


def _plain_number(s: str) -> Fraction | None:
  if len(s) > 200:
    return None
  if _NUM_RE.fullmatch(s):
    return Fraction(s)
  m = _SIMPLE_FRAC_RE.fullmatch(s)
  if m:
    if m.group(2) is not None:
      num, den = int(m.group(2)), int(m.group(3))
      if den == 0:
        return None
      f = Fraction(num, den)
      return -f if m.group(1) == "-" else f
    den = int(m.group(5))
    return Fraction(int(m.group(4)), den) if den else None
  return None


def _close_fractions(a: Fraction, b: Fraction) -> bool:
  d = abs(a - b)
  return d <= Fraction(REL_TOL) * max(abs(a), abs(b)) or d <= Fraction(ABS_TOL)


def fast_path(p: str, g: str) -> bool | None:
  """Decide cheap cases in-process: identical strings and plain numbers."""
  if not p or not g:
    return False
  if p == g or p.replace(" ", "") == g.replace(" ", ""):
    return True
  a, b = _plain_number(p), _plain_number(g)
  if a is not None and b is not None:
    return _close_fractions(a, b)
  return None

