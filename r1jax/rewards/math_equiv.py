"""Rule-based answer extraction and equivalence checking for math rewards.

This module is the "accuracy" half of the R1-Zero rule-based reward. It has
two public functions:

* ``extract_answer(completion)`` -- the answer a completion commits to.
* ``is_equiv(pred, gold, *, timeout_s=2.0)`` -- whether two answers are the
  same mathematical object.

Extraction
----------
* If the completion has a complete ``<answer>...</answer>`` pair, the content
  of the *last* pair is used; an unclosed ``<answer>`` does not count (a
  truncated completion is treated as having no answer tags).
* Inside that content -- or in the whole completion when there are no answer
  tags -- the content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) is
  taken, with nested and escaped braces handled. An unbalanced (truncated)
  ``\\boxed{`` is skipped. Without answer tags and without a box, the result is
  ``None`` (no "last number" guessing).
* Surrounding whitespace is stripped; an empty answer is ``None``.

Equivalence conventions
-----------------------
Both sides go through the same normalisation, then are compared structurally:

* Wrappers and typography: ``$``, ``\\(..\\)``, ``\\[..\\]``, a whole-answer
  ``\\boxed{}``, ``\\left``/``\\right`` (and ``\\big`` family), ``\\displaystyle``,
  LaTeX spacing (``\\,`` ``\\!`` ``\\;`` ``~`` ``\\quad``), ``\\dfrac``/``\\tfrac``/
  ``\\cfrac`` (read as ``\\frac``; ``\\frac12`` is 1/2 as in LaTeX), unicode
  ``\u2212 \u00d7 \u00f7 \u03c0 \u221e \u2264 \u2265 \u221a``.
* Removed: ``^\\circ``/``\\circ``/``\u00b0``/``\\degree``, ``\\%``/``%``,
  ``\\$``/``$``, a trailing period.
* ``\\text{}``, ``\\mbox{}``, ``\\textbf{}``, ``\\mathrm{}`` ...: when the answer
  also contains math, a group holding only words (units such as
  ``\\text{ cm}^2``, trailing words) is dropped; ``\\text{ and }`` /
  ``\\text{ or }`` become list commas; otherwise the group is unwrapped (so
  ``\\text{(B)}`` is ``(B)`` and ``\\text{Monday}`` is ``Monday``). Plain trailing
  words after a number (``5 apples``, ``12 square units``) are dropped too.
* Thousands separators. ``1{,}000`` and ``1\\,000`` are always 1000. A bare
  ``1,000`` is one number when it matches ``[1-9]\\d{0,2}(,\\d{3})+`` with no
  spaces, is not glued to other digits, commas or a decimal point, and is not
  the whole content of a bracket pair: so ``1,000`` and ``12,345,678.5`` are
  numbers, while ``1,2``, ``1, 000``, ``0,100`` and ``(1,000)`` are lists /
  pairs. Spaced groups (``1 000 000``) are joined as well.
* Equations: an answer ``lhs = rhs`` whose ``lhs`` is a name (``x``, ``a_1``,
  ``\\theta``, ``f(x)``, a tuple of names) equals a non-equation answer equal to
  ``rhs`` (``x = 5`` equals ``5``; ``x = \\pm 2`` equals ``2, -2``). Two
  equations with the same name on the left compare their right-hand sides.
  Otherwise two equations are equal when ``(l1 - r1) / (l2 - r2)`` is a nonzero
  constant (``y = 2x+1`` equals ``2x+1 = y`` and ``2y = 4x + 2``); inequalities
  likewise with a positive constant after flipping ``<``/``\\le`` to ``>``/``\\ge``
  (``x > 3`` equals ``3 < x``).
* Expressions are parsed by a small built-in LaTeX reader into sympy
  (implicit multiplication, ``\\frac``, ``\\sqrt[n]{}``, ``^`` -- where a plain
  digit run ``2^10`` is one exponent --, ``!``, ``|x|``, trig/log functions,
  ``\\log_b``, ``\\binom``, floor/ceil, ``e`` = Euler's number, ``i`` = imaginary
  unit, ``\\log`` = natural log, decimals as exact rationals, repeating decimals
  ``0.\\overline{3}``, mixed numbers: an integer followed by a proper
  ``\\frac{p}{q}`` of digits, ``2\\frac{1}{3}`` = 7/3).
* Numbers -- answers or parts of answers without variables: tuple, set and
  matrix entries, right-hand sides of ``x = ...`` -- compare with a relative
  tolerance of 1e-9 (absolute floor 1e-20): ``0.333`` is not ``1/3``,
  ``0.3333333333`` is; infinities must match exactly; ``10\\%`` equals ``10``
  (not ``0.1``).
* Expressions with variables must be identical as functions, with no
  tolerance on coefficients (``x/3`` is not ``0.3333333333x``; ``x^{30}`` is not
  ``x^{30}+1``). Rational functions with rational coefficients are decided
  exactly (exact evaluation at random rational points, Schwartz-Zippel);
  anything else (radicals, trig, logs, ``|x|``, constants like pi) by
  ``expand(a - b) == 0``, else a numeric identity test at real sample points of
  both signs evaluated to 40 digits (relative tolerance 1e-20, for evaluation
  error only), else ``simplify(a - b) == 0``. So ``\\sqrt{x^2}`` is ``|x|``, not
  ``x``.
* Ordered tuples ``(a, b)`` and intervals ``[a, b)`` keep element order and both
  bracket types (``[1,2)`` != ``(1,2)``). ``\\{...\\}`` sets and bare comma lists
  compare as multisets (``\\{1,2\\}`` == ``\\{2,1\\}`` == ``2, 1``; ``\\{1,1\\}`` !=
  ``\\{1\\}``); a bare list never equals a parenthesised tuple. Unions
  ``A \\cup B`` compare as multisets of their parts. Matrices
  (``pmatrix``/``bmatrix``/``matrix``/``array`` ...) compare elementwise with the
  same shape, whatever the environment.
* Multiple choice: an answer that is one capital letter ``A``-``J`` (optionally
  ``(A)``) equals an answer that is, or starts with, that letter as ``(A)``,
  ``A)``, ``A.`` or ``A:`` (``\\text{(B)}``, ``\\textbf{(B) }12``).
* Plain text (letters, digits, spaces and light punctuation, with a word of
  three or more letters) compares case- and whitespace-insensitively when the
  mathematical comparison fails (``Monday`` == ``monday``).

Safety
------
``is_equiv`` never raises and never hangs. Answers longer than 3000 characters
or nested more than 60 brackets deep are rejected (False). The reader refuses
to build exact numbers over about 10^5 bits (towers, ``10^{10^{10}}``, huge
factorials and binomials), and all sympy work runs in a persistent helper
subprocess (a small per-process pool) that is killed and restarted when a
comparison exceeds ``timeout_s``; this works from any thread and inside
worker processes (no signals are used). The helper also caps its own memory
and CPU time in case its parent dies. Plain numbers and identical strings are
decided in-process without sympy. The first call in a process waits for the
helper to start (about a second, not counted in ``timeout_s``; call
``warmup()`` to pay it early).
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import random
import re
import select
import subprocess
import sys
import threading
import time
from fractions import Fraction
from typing import Any

__all__ = ["extract_answer", "is_equiv", "warmup"]

_log = logging.getLogger(__name__)

MAX_CHARS = 3000  # longer answers are rejected outright
MAX_DEPTH = 60  # deeper bracket nesting is rejected outright
MAX_BITS = 100_000  # largest exact integer/rational magnitude the reader builds
MAX_FACTORIAL = 3000
MAX_LIST = 40  # longest list/set/tuple compared
REL_TOL = 1e-9  # numbers
EXPR_TOL = 1e-20  # numeric identity tests of expressions with variables (40-digit evaluation)
ABS_TOL = 1e-20

# ---------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------

_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![a-zA-Z])")


def _match_brace(s: str, i: int) -> int:
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
    starts = [m.end() for m in _BOX_RE.finditer(s)]
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


# ---------------------------------------------------------------------------
# String normalisation (pure python, no sympy; also used in the parent)
# ---------------------------------------------------------------------------

_UNICODE = {
    "\u2212": "-", "\u2013": "-", "\u00d7": r"\times ", "\u22c5": r"\cdot ",
    "\u00b7": r"\cdot ", "\u00f7": r"\div ", "\u03c0": r"\pi ", "\u221e": r"\infty ",
    "\u2264": r"\le ", "\u2265": r"\ge ", "\u2260": r"\ne ", "\u221a": r"\sqrt",
    "\u222a": r"\cup ", "\u2229": r"\cap ", "\u2205": r"\emptyset ", "\u00b1": r"\pm ",
    "\u00a0": " ", "\u2009": " ", "\u202f": " ",
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
_CONNECTIVE_RE = re.compile(r"\s*(?:and|or|,)\s*", re.I)
_THOUSANDS_RE = re.compile(r"(?<![\d.,])[1-9]\d{0,2}(?:,\d{3})+(?![\d]|,\d)")
_SPACED_THOUSANDS_RE = re.compile(r"(?<![\d.])[1-9]\d{0,2}(?: \d{3})+(?![\d.])")
_PLAIN_CONNECTIVE_RE = re.compile(r"(?<=[\w}).])\s+(?:and|or)\s+(?=[-\w\\(\[])")
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
        end = _match_brace(s, brace)
        if end == -1:
            break
        out.append(s[pos : m.start()])
        cmd = m.group(1)
        inner = s[brace + 1 : end - 1]
        inner = _process_text_groups(inner) if "\\" in inner else inner
        if cmd in _WORDY_TEXT and _CONNECTIVE_RE.fullmatch(inner) and inner.strip():
            out.append(", ")
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


def _unbox_whole(s: str) -> str:
    for _ in range(5):
        m = _BOX_RE.match(s)
        if not m:
            break
        j = m.end()
        while j < len(s) and s[j] == " ":
            j += 1
        if j < len(s) and s[j] == "{" and _match_brace(s, j) == len(s):
            s = s[j + 1 : -1].strip()
        else:
            break
    return s


def _normalize(s: str) -> str:
    """String-level normalisation shared by both sides (see module docstring)."""
    s = s.strip()
    s = _UNICODE_RE.sub(lambda m: _UNICODE[m.group(0)], s)
    s = s.replace("\\$", "").replace("$", "")
    s = re.sub(r"\\[()\[\]]", " ", s)
    s = s.strip()
    s = _unbox_whole(s)
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
        s = _PLAIN_CONNECTIVE_RE.sub(", ", s)
    s = s.rstrip()
    while s.endswith(".") and not s.endswith("\\."):
        s = s[:-1].rstrip()
    s = _strip_trailing_words(s)
    s = re.sub(r"\s+", " ", s).strip()
    s = _unbox_whole(s)
    return s


def _max_depth(s: str) -> int:
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


def _fast_path(p: str, g: str) -> bool | None:
    """Decide cheap cases in-process: identical strings and plain numbers."""
    if not p or not g:
        return False
    if p == g or p.replace(" ", "") == g.replace(" ", ""):
        return True
    a, b = _plain_number(p), _plain_number(g)
    if a is not None and b is not None:
        return _close_fractions(a, b)
    return None


# ---------------------------------------------------------------------------
# Structure: lists, sets, tuples/intervals, unions, matrices, relations
# ---------------------------------------------------------------------------

_OPENERS = "([{"
_CLOSERS = ")]}"
_REL_RE = re.compile(r"\\le |\\ge |\\ne |\\lt(?![a-zA-Z])|\\gt(?![a-zA-Z])|<=|>=|!=|=|<|>")
_REL_CANON = {"\\le ": "<=", "\\ge ": ">=", "\\ne ": "!=", "\\lt": "<", "\\gt": ">",
              "<=": "<=", ">=": ">=", "!=": "!=", "=": "=", "<": "<", ">": ">"}
_NAME_RE = re.compile(
    r"(?:[a-zA-Z]|\\[a-zA-Z]+)(?:_\{?\w+\}?)?'*(?:\([^()]*\))?"
)
_MATRIX_RE = re.compile(
    r"\\begin\{(pmatrix|bmatrix|Bmatrix|vmatrix|Vmatrix|matrix|smallmatrix|array)\}"
    r"(\{[^{}]*\})?(.*)\\end\{\1\}", re.S
)


def _split_top(s: str, sep: str) -> list[str]:
    """Split at sep occurring at bracket depth 0 (any bracket kind counts)."""
    parts: list[str] = []
    depth = 0
    start = 0
    i = 0
    n = len(s)
    L = len(sep)
    while i < n:
        c = s[i]
        if c == "\\":
            if s.startswith("\\begin{", i):
                depth += 1
            elif s.startswith("\\end{", i):
                depth -= 1
            elif depth == 0 and s.startswith(sep, i):
                parts.append(s[start:i])
                i += L
                start = i
                continue
            if i + 1 < n and s[i + 1] in "{}":
                depth += 1 if s[i + 1] == "{" else -1
            i += 2
            continue
        if c in _OPENERS:
            depth += 1
        elif c in _CLOSERS:
            depth -= 1
        elif depth == 0 and s.startswith(sep, i):
            parts.append(s[start:i])
            i += L
            start = i
            continue
        i += 1
    parts.append(s[start:])
    return parts


def _outer_pair_spans_all(s: str) -> bool:
    """True when s[0] is an opening bracket whose match is s[-1]."""
    depth = 0
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            if i + 1 < n and s[i + 1] in "{}":
                depth += 1 if s[i + 1] == "{" else -1
                if depth == 0 and i + 2 < n:
                    return False
            i += 2
            continue
        if c in _OPENERS:
            depth += 1
        elif c in _CLOSERS:
            depth -= 1
            if depth == 0 and i != n - 1:
                return False
        i += 1
    return depth == 0


def _expand_pm(s: str) -> list[str] | None:
    for tok, signs in (("\\pm", ("+", "-")), ("\\mp", ("-", "+"))):
        m = re.search(re.escape(tok) + r"(?![a-zA-Z])", s)
        if m and not re.search(r"\\(?:pm|mp)(?![a-zA-Z])", s[m.end():]):
            return [s[: m.start()] + signs[0] + s[m.end():], s[: m.start()] + signs[1] + s[m.end():]]
    return None


def _parse_struct(s: str, depth: int = 0) -> tuple:
    """Parse a normalised answer into a structure tree of string leaves."""
    s = s.strip()
    if depth > 8:
        raise ValueError("structure too deep")
    if not s:
        return ("empty",)
    m = _MATRIX_RE.fullmatch(s)
    if m is None and s[0] in "([" and s[-1] in ")]" and s[1:].lstrip().startswith("\\begin"):
        m = _MATRIX_RE.fullmatch(s[1:-1].strip())  # [\begin{array}...\end{array}]
    if m:
        rows = [r for r in _split_top(m.group(3), "\\\\")]
        while rows and not rows[-1].strip():
            rows.pop()
        cells = [[_parse_struct(c, depth + 1) for c in _split_top(r, "&")] for r in rows]
        return ("matrix", cells)
    items = _split_top(s, ",")
    if len(items) > 1:
        if len(items) > MAX_LIST:
            raise ValueError("list too long")
        return ("list", [_parse_struct(x, depth + 1) for x in items])
    parts = _split_top(s, "\\cup")
    if len(parts) > 1:
        return ("union", [_parse_struct(x, depth + 1) for x in parts])
    if s == "\\emptyset" or s == "\\{\\}" or s == "{}":
        return ("set", [])
    if s.startswith("\\{") and s.endswith("\\}") and _outer_pair_spans_all(s):
        inner = s[2:-2].strip()
        elems = _split_top(inner, ",") if inner else []
        if len(elems) > MAX_LIST:
            raise ValueError("set too long")
        return ("set", [_parse_struct(x, depth + 1) for x in elems])
    if s[0] in "([" and s[-1] in ")]" and _outer_pair_spans_all(s):
        elems = _split_top(s[1:-1], ",")
        if len(elems) >= 2:
            if len(elems) > MAX_LIST:
                raise ValueError("tuple too long")
            return ("tuple", s[0] + s[-1], [_parse_struct(x, depth + 1) for x in elems])
    # "x \in S" -> S
    ins = _split_top(s, "\\in ")
    if len(ins) == 2 and _NAME_RE.fullmatch(ins[0].strip()):
        return _parse_struct(ins[1], depth + 1)
    # relations
    rel = _split_relations(s)
    if rel is not None:
        lhs, op, rhs = rel
        lhs_s = lhs.strip()
        if op == "=" and _is_name(lhs_s):
            return ("assign", lhs_s.replace(" ", ""), _parse_struct(rhs, depth + 1))
        return ("rel", op, lhs_s, rhs.strip())
    pm = _expand_pm(s)
    if pm is not None:
        return ("list", [("expr", x) for x in pm])
    return ("expr", s)


def _is_name(s: str) -> bool:
    if _NAME_RE.fullmatch(s):
        return True
    if s.startswith("(") and s.endswith(")"):
        names = [x.strip() for x in s[1:-1].split(",")]
        return len(names) > 1 and all(_NAME_RE.fullmatch(x) for x in names)
    return False


def _split_relations(s: str) -> tuple[str, str, str] | None:
    found = []
    depth = 0
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c in _OPENERS:
            depth += 1
        elif c in _CLOSERS:
            depth -= 1
        elif depth == 0:
            m = _REL_RE.match(s, i)
            if m:
                found.append((m.start(), m.end(), _REL_CANON[m.group(0)]))
                i = m.end()
                continue
        if c == "\\":
            if i + 1 < n and s[i + 1] in "{}":
                depth += 1 if s[i + 1] == "{" else -1
            i += 2
            continue
        i += 1
    if len(found) != 1:
        if len(found) > 1:
            raise ValueError("chained relation")
        return None
    a, b, op = found[0]
    if not s[:a].strip() or not s[b:].strip():
        raise ValueError("dangling relation")
    return s[:a], op, s[b:]


_MC_BARE_RE = re.compile(r"\(?([A-J])\)?")
_MC_PREFIX_RE = re.compile(r"(?:\(([A-J])\)|([A-J])[).:])(?:\s.*)?", re.S)


def _mc_letter(s: str, bare: bool) -> str | None:
    m = (_MC_BARE_RE if bare else _MC_PREFIX_RE).fullmatch(s)
    if not m:
        return None
    return next(g for g in m.groups() if g)


def _mc_compare(p: str, g: str) -> bool | None:
    for a, b in ((p, g), (g, p)):
        la = _mc_letter(a, bare=True)
        if la is not None:
            lb = _mc_letter(b, bare=True) or _mc_letter(b, bare=False)
            if lb is not None:
                return la == lb
    return None


_TEXTLIKE_RE = re.compile(r"[A-Za-z0-9 ,.'\-()!?:;]+")


def _textlike(s: str) -> bool:
    return bool(_TEXTLIKE_RE.fullmatch(s)) and re.search(r"[A-Za-z]{3}", s) is not None


def _text_key(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip().casefold()


# ---------------------------------------------------------------------------
# LaTeX -> sympy reader (runs in the helper process)
# ---------------------------------------------------------------------------

class _TooBig(Exception):
    pass


class _ParseError(Exception):
    pass


_TOKEN_RE = re.compile(
    r"(?P<ws>\s+)"
    r"|(?P<num>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"
    r"|(?P<cmd>\\[a-zA-Z]+|\\.)"
    r"|(?P<letter>[a-zA-Z])"
    r"|(?P<op>.)",
    re.S,
)
_GREEK = frozenset("""alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa
lambda mu nu xi omicron rho varrho sigma varsigma tau upsilon phi varphi chi psi omega
Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Phi Psi Omega ell hbar""".split())
_BIN_CMDS = frozenset("cdot times div ast pm mp le ge ne lt gt cup cap setminus to "
                      "rightarrow in notin subset subseteq approx sim equiv".split())
_CLOSE_CMDS = frozenset("rfloor rceil } | ".split())
_FUNCS_1 = {
    "sin": "sin", "cos": "cos", "tan": "tan", "cot": "cot", "sec": "sec", "csc": "csc",
    "arcsin": "asin", "arccos": "acos", "arctan": "atan", "arccot": "acot",
    "arcsec": "asec", "arccsc": "acsc", "sinh": "sinh", "cosh": "cosh", "tanh": "tanh",
    "coth": "coth", "sech": "sech", "csch": "csch", "ln": "log", "log": "log",
    "exp": "exp", "lg": "log10",
}
_FUNCS_N = {"max": "Max", "min": "Min", "gcd": "gcd", "lcm": "lcm"}
_ACCENTS = frozenset("overline bar hat vec tilde widehat widetilde dot ddot overrightarrow".split())


class _Reader:
    """Recursive-descent LaTeX expression reader producing sympy objects."""

    def __init__(self, s: str, sp: Any):
        self.sp = sp
        s = self._repeating_decimals(s)
        toks = []
        for m in _TOKEN_RE.finditer(s):
            kind = m.lastgroup
            if kind == "ws":
                continue
            toks.append((kind, m.group(0)))
        self.toks = toks
        self.i = 0
        self.abs_depth = 0
        self.depth = 0
        self.exp_depth = 0

    @staticmethod
    def _repeating_decimals(s: str) -> str:
        def sub(m: re.Match) -> str:
            ip, fp, rep = m.group(1) or "0", m.group(2) or "", m.group(3)
            if len(fp) + len(rep) > 40:
                return m.group(0)
            base = Fraction(int(ip + fp), 10 ** len(fp))
            extra = Fraction(int(rep), (10 ** len(rep) - 1) * 10 ** len(fp))
            v = base + extra
            return r"\frac{%d}{%d}" % (v.numerator, v.denominator)

        return re.sub(r"(\d*)\.(\d*)\\(?:overline|bar)\s*\{?(\d+)\}?", sub, s)

    # -- token helpers --
    def peek(self, k: int = 0) -> tuple[str, str] | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def next(self) -> tuple[str, str]:
        t = self.peek()
        if t is None:
            raise _ParseError("unexpected end")
        self.i += 1
        return t

    def accept(self, value: str) -> bool:
        t = self.peek()
        if t is not None and t[1] == value:
            self.i += 1
            return True
        return False

    def expect(self, value: str) -> None:
        if not self.accept(value):
            raise _ParseError(f"expected {value!r}")

    # -- guarded constructors --
    def _bits(self, x: Any) -> float:
        sp = self.sp
        if isinstance(x, sp.Integer):
            return abs(int(x)).bit_length()
        if isinstance(x, sp.Rational):
            return max(abs(x.p).bit_length(), abs(x.q).bit_length())
        return 0.0

    def pow(self, b: Any, e: Any) -> Any:
        sp = self.sp
        if isinstance(e, sp.Number) and isinstance(b, sp.Number):
            if isinstance(b, sp.Rational) and isinstance(e, sp.Rational):
                if b not in (sp.S.Zero, sp.S.One, sp.S.NegativeOne):
                    eb = self._bits(e)
                    if eb > 64 or abs(float(e)) * max(self._bits(b), 1) > MAX_BITS:
                        raise _TooBig()
            elif isinstance(e, sp.Float) and abs(e) > 1e6:
                raise _TooBig()
        elif isinstance(e, sp.Rational) and self._bits(e) > 40:
            raise _TooBig()
        elif isinstance(e, sp.Number) and not isinstance(e, sp.Rational):
            if abs(e) > 1e9:
                raise _TooBig()
        return sp.Pow(b, e)

    def fact(self, n: Any) -> Any:
        sp = self.sp
        if isinstance(n, sp.Number) and (abs(n) > MAX_FACTORIAL):
            raise _TooBig()
        return sp.factorial(n)

    def mul(self, a: Any, b: Any) -> Any:
        if self._bits(a) + self._bits(b) > 4 * MAX_BITS:
            raise _TooBig()
        return a * b

    # -- grammar --
    def parse(self) -> Any:
        if not self.toks:
            raise _ParseError("empty")
        e = self.expr()
        if self.peek() is not None:
            raise _ParseError(f"trailing {self.peek()}")
        return e

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > 200:
            raise _TooBig()

    def expr(self) -> Any:
        self._enter()
        try:
            self.accept("+")
            left = self.term()
            while True:
                t = self.peek()
                if t is None:
                    break
                if t[1] == "+":
                    self.i += 1
                    left = left + self.term()
                elif t[1] == "-":
                    self.i += 1
                    left = left - self.term()
                else:
                    break
            return left
        finally:
            self.depth -= 1

    def _starts_factor(self, t: tuple[str, str] | None) -> bool:
        if t is None:
            return False
        kind, v = t
        if kind in ("num", "letter"):
            return True
        if kind == "cmd":
            name = v[1:]
            return name not in _BIN_CMDS and name not in _CLOSE_CMDS and v not in ("\\}", "\\|")
        if v in "([{":
            return True
        if v == "|":
            return self.abs_depth == 0
        return False

    def term(self) -> Any:
        left = self.signed()
        while True:
            t = self.peek()
            if t is None:
                break
            v = t[1]
            if v in ("*", "\\cdot", "\\times", "\\ast"):
                self.i += 1
                left = self.mul(left, self.signed())
            elif v in ("/", "\\div"):
                self.i += 1
                right = self.signed()
                left = left / right
            elif self._starts_factor(t):
                left = self.mul(left, self.power())
            else:
                break
        return left

    def signed(self) -> Any:
        if self.accept("-"):
            return -self.signed()
        if self.accept("+"):
            return self.signed()
        return self.power()

    def power(self) -> Any:
        self._enter()
        try:
            base = self.postfix(self.primary())
            if self.accept("^"):
                e = self.exponent()
                base = self.postfix(self.pow(base, e))
            return base
        finally:
            self.depth -= 1

    def exponent(self) -> Any:
        self.exp_depth += 1
        try:
            if self.exp_depth > 8:
                raise _TooBig()  # power towers deeper than 8 levels
            return self._exponent()
        finally:
            self.exp_depth -= 1

    def _exponent(self) -> Any:
        t = self.peek()
        if t is None:
            raise _ParseError("missing exponent")
        if t[1] in ("-", "+"):
            self.i += 1
            e = self.exponent()
            return -e if t[1] == "-" else e
        if t[1] == "{":
            self.i += 1
            e = self.expr()
            self.expect("}")
        elif t[0] == "num":
            self.i += 1
            e = self.number(t[1])
        elif t[0] == "letter":
            self.i += 1
            e = self.symbol(t[1])
        else:
            e = self.primary()
        if self.accept("^"):
            e = self.pow(e, self.exponent())
        return e

    def postfix(self, x: Any) -> Any:
        while True:
            if self.accept("!"):
                x = self.fact(x)
            else:
                return x

    def number(self, v: str) -> Any:
        sp = self.sp
        m = re.fullmatch(r"(\d*)\.?(\d*)(?:[eE]([-+]?\d+))?", v)
        if not m:
            raise _ParseError(v)
        ip, fp, ex = m.group(1), m.group(2), m.group(3)
        if len(ip) + len(fp) > 2000:
            raise _TooBig()
        val = Fraction(int(ip or "0") * 10 ** len(fp) + int(fp or "0"), 10 ** len(fp))
        if ex is not None:
            k = int(ex) if len(ex) < 8 else 10**9
            if abs(k) > 2000:
                raise _TooBig()
            val *= Fraction(10) ** k
        return sp.Rational(val.numerator, val.denominator)

    def symbol(self, name: str) -> Any:
        sp = self.sp
        if name == "e":
            return sp.E
        if name == "i":
            return sp.I
        return sp.Symbol(name)

    def subscript(self) -> str:
        if not self.accept("_"):
            return ""
        t = self.next()
        if t[1] == "{":
            start = self.i
            depth = 1
            while depth:
                tt = self.next()
                if tt[1] == "{":
                    depth += 1
                elif tt[1] == "}":
                    depth -= 1
            return "_" + "".join(v for _, v in self.toks[start : self.i - 1])
        return "_" + t[1]

    def arg(self) -> Any:
        """A LaTeX macro argument: {group} or a single token."""
        t = self.peek()
        if t is None:
            raise _ParseError("missing argument")
        if t[1] == "{":
            self.i += 1
            e = self.expr()
            self.expect("}")
            return e
        if t[0] == "num" and len(t[1]) > 1:
            self.toks[self.i] = ("num", t[1][1:])
            return self.number(t[1][0])
        if t[0] == "num":
            self.i += 1
            return self.number(t[1])
        if t[0] == "letter":
            self.i += 1
            return self.symbol(t[1])
        if t[0] == "cmd":
            return self.primary()
        raise _ParseError(f"bad argument {t}")

    def group_until(self, close: str) -> Any:
        e = self.expr()
        self.expect(close)
        return e

    def primary(self) -> Any:
        self._enter()
        try:
            return self._primary()
        finally:
            self.depth -= 1

    def _primary(self) -> Any:
        sp = self.sp
        t = self.next()
        kind, v = t
        if kind == "num":
            val = self.number(v)
            mixed = self._mixed_fraction(v)
            return val if mixed is None else val + mixed
        if kind == "letter":
            sub = self.subscript()
            primes = ""
            while self.accept("'"):
                primes += "'"
            if sub or primes:
                return sp.Symbol(v + sub + primes)
            return self.symbol(v)
        if v == "(":
            return self.group_until(")")
        if v == "[":
            return self.group_until("]")
        if v == "{":
            return self.group_until("}")
        if v == "|":
            self.abs_depth += 1
            try:
                e = self.expr()
            finally:
                self.abs_depth -= 1
            self.expect("|")
            return sp.Abs(e)
        if kind == "cmd":
            return self.command(v[1:])
        raise _ParseError(f"unexpected {v!r}")

    def _mixed_fraction(self, v: str) -> Any:
        """After an integer literal, a proper \\frac{p}{q} of digits is a mixed number."""
        if not v.isdigit():
            return None
        t = self.toks[self.i : self.i + 7]
        if (len(t) == 7 and t[0] == ("cmd", "\\frac") and t[1][1] == "{" and t[2][0] == "num"
                and t[3][1] == "}" and t[4][1] == "{" and t[5][0] == "num" and t[6][1] == "}"
                and t[2][1].isdigit() and t[5][1].isdigit() and len(t[5][1]) < 20
                and 0 < int(t[2][1]) < int(t[5][1])):
            self.i += 7
            return self.sp.Rational(int(t[2][1]), int(t[5][1]))
        return None

    def command(self, name: str) -> Any:
        sp = self.sp
        if name == "frac":
            a = self.arg()
            b = self.arg()
            return a / b
        if name == "sqrt":
            n = None
            if self.accept("["):
                n = self.group_until("]")
            x = self.arg()
            return sp.sqrt(x) if n is None else self.root(x, n)
        if name == "binom":
            n, k = self.arg(), self.arg()
            if isinstance(n, sp.Number) and isinstance(k, sp.Number):
                if min(abs(k), abs(n - k)) > MAX_FACTORIAL or abs(n) > 10**7:
                    raise _TooBig()
            return sp.binomial(n, k)
        if name == "pi":
            return sp.pi
        if name == "infty":
            return sp.oo
        if name in ("imath", "jmath"):
            return sp.I
        if name in ("lfloor", "lceil"):
            e = self.expr()
            self.expect("\\rfloor" if name == "lfloor" else "\\rceil")
            return sp.floor(e) if name == "lfloor" else sp.ceiling(e)
        if name in _FUNCS_1:
            return self.function(name)
        if name in _FUNCS_N:
            self.expect("(")
            args = [self.expr()]
            while self.accept(","):
                args.append(self.expr())
            self.expect(")")
            fn = getattr(sp, _FUNCS_N[name])
            return fn(*args) if len(args) > 1 or name in ("max", "min") else args[0]
        if name in _ACCENTS:
            x = self.arg()
            return sp.Function(name)(x)
        if name in ("mathbf", "mathrm", "boldsymbol", "mathit", "operatorname"):
            return self.arg()
        if name in _GREEK:
            sub = self.subscript()
            return sp.Symbol(name + sub)
        if name in _BIN_CMDS or name in _CLOSE_CMDS:
            raise _ParseError(f"unexpected \\{name}")
        if len(name) == 1 and not name.isalpha():
            raise _ParseError(f"unexpected \\{name}")
        # Unknown command: an opaque symbol.
        return sp.Symbol("\\" + name + self.subscript())

    def root(self, x: Any, n: Any) -> Any:
        sp = self.sp
        if isinstance(n, sp.Number) and abs(n) > 10**6:
            raise _TooBig()
        return sp.root(x, n)

    def function(self, name: str) -> Any:
        sp = self.sp
        base = None
        power = None
        if name == "log" and self.accept("_"):
            base = self.arg()
        if self.accept("^"):
            power = self.exponent()
        if name == "log" and base is None and self.accept("_"):
            base = self.arg()
        t = self.peek()
        if t is not None and t[1] == "(":
            self.i += 1
            arg = self.group_until(")")
            arg = self.postfix(arg)
        else:
            arg = self._function_arg()
        fname = _FUNCS_1[name]
        if power is not None and power == -1 and fname in ("sin", "cos", "tan", "cot", "sec", "csc"):
            return getattr(sp, "a" + fname)(arg)
        if fname == "log10":
            val = sp.log(arg, 10)
        elif fname == "log" and base is not None:
            val = sp.log(arg, base)
        else:
            val = getattr(sp, fname)(arg)
        if power is not None:
            val = self.pow(val, power)
        return val

    def _function_arg(self) -> Any:
        """Argument of \\sin x, \\ln 2x: implicit products of powers, no +/-."""
        left = self.signed() if self.peek() is not None and self.peek()[1] == "-" else self.power()
        while True:
            t = self.peek()
            if t is None or not self._starts_factor(t):
                break
            if t[0] == "cmd" and t[1][1:] in _FUNCS_1:
                break
            left = self.mul(left, self.power())
        return left


def _to_sympy(s: str) -> Any:
    import sympy as sp

    return _Reader(s, sp).parse()


# ---------------------------------------------------------------------------
# Comparison (runs in the helper process)
# ---------------------------------------------------------------------------

class _Ctx:
    def __init__(self) -> None:
        self.cache: dict[str, Any] = {}
        self.rng = random.Random(1234)
        self._points: dict[tuple, list[dict]] = {}

    def sym(self, s: str) -> Any:
        if s not in self.cache:
            try:
                self.cache[s] = _to_sympy(s)
            except (_ParseError, ValueError, TypeError, AttributeError, KeyError, IndexError):
                self.cache[s] = None
        return self.cache[s]

    def exact_points(self, symbols: tuple, n: int = 6) -> list[dict]:
        """Random rational points from a large set (exact identity testing)."""
        import sympy as sp

        return [
            {s: sp.Rational(self.rng.choice((-1, 1)) * self.rng.randint(1, 10**6), 997) for s in symbols}
            for _ in range(n)
        ]

    def points(self, symbols: tuple, n: int = 6) -> list[dict]:
        key = symbols
        if key not in self._points:
            import sympy as sp

            pts = []
            for _ in range(n):
                pt = {}
                for s in symbols:
                    mag = self.rng.randint(300, 2500)
                    sign = self.rng.choice((-1, 1))
                    pt[s] = sp.Rational(sign * mag, 1000)
                pts.append(pt)
            self._points[key] = pts
        return self._points[key]


def _num_close(a: Any, b: Any, rel: float = REL_TOL) -> bool | None:
    """Compare two numeric sympy values; None when they can't be evaluated."""
    import sympy as sp

    na, nb = sp.N(a, 40), sp.N(b, 40)
    if not (na.is_number and nb.is_number):
        return None
    bad = (sp.oo, -sp.oo, sp.zoo, sp.nan)
    if na in bad or nb in bad or na.has(*bad) or nb.has(*bad):
        return None
    ra, ia = na.as_real_imag()
    rb, ib = nb.as_real_imag()
    if not all(isinstance(x, (sp.Float, sp.Integer, sp.Rational)) or x == 0 for x in (ra, ia, rb, ib)):
        return None
    d = sp.sqrt((ra - rb) ** 2 + (ia - ib) ** 2)
    scale = sp.Max(sp.sqrt(ra**2 + ia**2), sp.sqrt(rb**2 + ib**2))
    return bool(d <= rel * scale or d <= ABS_TOL)


def _size_ok(e: Any, limit: int = 400) -> bool:
    """Cheap enough for expand/simplify: few nodes and a small expanded size."""
    import sympy as sp

    n = 0
    for node in sp.preorder_traversal(e):
        n += 1
        if n > limit:
            return False
    return _expanded_terms(e) <= 2000


def _expanded_terms(e: Any) -> float:
    """Rough upper bound on the number of terms of expand(e)."""
    import sympy as sp

    if e.is_Atom:
        return 1.0
    if isinstance(e, sp.Add):
        return sum(_expanded_terms(a) for a in e.args)
    if isinstance(e, sp.Mul):
        out = 1.0
        for a in e.args:
            out *= _expanded_terms(a)
            if out > 1e12:
                return out
        return out
    if isinstance(e, sp.Pow) and isinstance(e.exp, sp.Integer):
        k, n = _expanded_terms(e.base), abs(int(e.exp))
        if k <= 1:
            return 1.0
        if n > 10_000 or k > 10_000:
            return 1e12
        return float(math.comb(n + int(k) - 1, int(k) - 1)) if n > 0 else 1.0
    return max([_expanded_terms(a) for a in e.args] + [1.0])


def _numbers_equiv(a: Any, b: Any) -> bool:
    import sympy as sp

    if a == b:
        return True
    inf = (sp.oo, -sp.oo, sp.zoo)
    if a in inf or b in inf or a is sp.nan or b is sp.nan:
        return False
    r = _num_close(a, b)
    return bool(r)


def _sample_values(e: Any, pts: list[dict]) -> list[Any]:
    import sympy as sp

    vals = []
    for pt in pts:
        try:
            v = e.evalf(40, subs=pt)
            if v.is_number and not v.has(sp.oo, -sp.oo, sp.zoo, sp.nan):
                vals.append(v)
            else:
                vals.append(None)
        except Exception:
            vals.append(None)
    return vals


def _exact_rational_fn(e: Any, syms: tuple) -> bool:
    """A rational function of syms with rational coefficients and modest exponents."""
    import sympy as sp

    for node in sp.preorder_traversal(e):
        if node.is_Atom:
            if not (node.is_Rational or node in syms):
                return False
        elif isinstance(node, sp.Pow):
            if not isinstance(node.exp, sp.Integer) or abs(int(node.exp)) > 2000:
                return False
        elif not isinstance(node, (sp.Add, sp.Mul)):
            return False
    return True


def _expr_equiv(a: Any, b: Any, ctx: _Ctx) -> bool:
    """Expressions: numbers with tolerance; with variables, exact identity."""
    import sympy as sp

    if a is None or b is None:
        return False
    if a == b:
        return True
    fa, fb = a.free_symbols, b.free_symbols
    if not fa and not fb:
        return _numbers_equiv(a, b)
    diff = a - b
    if diff == 0:
        return True
    syms = tuple(sorted(fa | fb, key=str))
    if _exact_rational_fn(diff, syms):
        # Exact evaluation at random rational points (Schwartz-Zippel): decisive.
        agree = 0
        for pt in ctx.exact_points(syms):
            va, vb = a.xreplace(pt), b.xreplace(pt)
            if not (va.is_Rational and vb.is_Rational):
                continue  # a pole
            if va != vb:
                return False
            agree += 1
        if agree >= 3:
            return True
    if _size_ok(diff) and sp.expand(diff) == 0:
        return True
    # Numeric identity test at 40 digits; the tolerance only absorbs evaluation error.
    va = _sample_values(a, ctx.points(syms))
    vb = _sample_values(b, ctx.points(syms))
    valid = 0
    for x, y in zip(va, vb):
        if x is None or y is None:
            continue
        r = _num_close(x, y, rel=EXPR_TOL)
        if r is None:
            continue
        if not r:
            return False
        valid += 1
    if valid >= 3:
        return True
    if _size_ok(diff, 150):
        return sp.simplify(diff) == 0
    return False


def _ratio_const(d1: Any, d2: Any, ctx: _Ctx, positive: bool) -> bool:
    import sympy as sp

    syms = tuple(sorted(d1.free_symbols | d2.free_symbols, key=str))
    if not syms:
        return False
    v1 = _sample_values(d1, ctx.points(syms))
    v2 = _sample_values(d2, ctx.points(syms))
    ratios = []
    for x, y in zip(v1, v2):
        if x is None or y is None:
            continue
        if abs(y) < 1e-30:
            if abs(x) < 1e-30:
                continue
            return False
        ratios.append(sp.N(x / y, 30))
    if len(ratios) < 3:
        return False
    r0 = ratios[0]
    if abs(r0) < 1e-30:
        return False
    if positive and not (r0.is_real and r0 > 0):
        return False
    return all(_num_close(r, r0, rel=EXPR_TOL) for r in ratios[1:])


_FLIP = {"<": ">", "<=": ">="}


def _rel_equiv(x: tuple, y: tuple, ctx: _Ctx) -> bool:
    _, op1, l1, r1 = x
    _, op2, l2, r2 = y
    if op1 in _FLIP:
        op1, l1, r1 = _FLIP[op1], r1, l1
    if op2 in _FLIP:
        op2, l2, r2 = _FLIP[op2], r2, l2
    if op1 != op2:
        return False
    a1, b1, a2, b2 = ctx.sym(l1), ctx.sym(r1), ctx.sym(l2), ctx.sym(r2)
    if None in (a1, b1, a2, b2):
        return (l1 + op1 + r1).replace(" ", "") == (l2 + op2 + r2).replace(" ", "")
    return _ratio_const(a1 - b1, a2 - b2, ctx, positive=op1 in (">", ">="))


def _multiset_equiv(xs: list, ys: list, ctx: _Ctx) -> bool:
    if len(xs) != len(ys):
        return False
    n = len(xs)
    adj = [[j for j in range(n) if _node_equiv(xs[i], ys[j], ctx)] for i in range(n)]
    match_of: list[int] = [-1] * n

    def augment(i: int, seen: list[bool]) -> bool:
        for j in adj[i]:
            if not seen[j]:
                seen[j] = True
                if match_of[j] == -1 or augment(match_of[j], seen):
                    match_of[j] = i
                    return True
        return False

    return all(augment(i, [False] * n) for i in range(n))


def _node_equiv(x: tuple, y: tuple, ctx: _Ctx) -> bool:
    kx, ky = x[0], y[0]
    # "x = 5" vs "5": compare the right-hand side.
    if kx == "assign" and ky == "assign":
        if x[1] == y[1]:
            return _node_equiv(x[2], y[2], ctx)
        if x[2][0] == "expr" and y[2][0] == "expr":
            return _rel_equiv(("rel", "=", x[1], x[2][1]), ("rel", "=", y[1], y[2][1]), ctx)
        return False
    if kx == "assign" and ky == "rel":
        return x[2][0] == "expr" and _rel_equiv(("rel", "=", x[1], x[2][1]), y, ctx)
    if ky == "assign" and kx == "rel":
        return y[2][0] == "expr" and _rel_equiv(x, ("rel", "=", y[1], y[2][1]), ctx)
    if kx == "assign":
        return _node_equiv(x[2], y, ctx)
    if ky == "assign":
        return _node_equiv(x, y[2], ctx)
    if kx == "expr" and ky == "expr":
        if x[1].replace(" ", "") == y[1].replace(" ", ""):
            return True
        return _expr_equiv(ctx.sym(x[1]), ctx.sym(y[1]), ctx)
    if kx == "rel" and ky == "rel":
        return _rel_equiv(x, y, ctx)
    if kx in ("list", "set") and ky in ("list", "set"):
        return _multiset_equiv(x[1], y[1], ctx)
    if kx == "union" and ky == "union":
        return _multiset_equiv(x[1], y[1], ctx)
    if kx == "tuple" and ky == "tuple":
        return (x[1] == y[1] and len(x[2]) == len(y[2])
                and all(_node_equiv(a, b, ctx) for a, b in zip(x[2], y[2])))
    if kx == "matrix" and ky == "matrix":
        if len(x[1]) != len(y[1]) or any(len(r) != len(q) for r, q in zip(x[1], y[1])):
            return False
        return all(_node_equiv(a, b, ctx) for r, q in zip(x[1], y[1]) for a, b in zip(r, q))
    return False


def _compare(pred: str, gold: str) -> bool:
    """Full comparison (no timeout): normalise, structure, sympy."""
    if not isinstance(pred, str) or not isinstance(gold, str):
        return False
    if len(pred) > MAX_CHARS or len(gold) > MAX_CHARS:
        return False
    p, g = _normalize(pred), _normalize(gold)
    if _max_depth(p) > MAX_DEPTH or _max_depth(g) > MAX_DEPTH:
        return False
    fast = _fast_path(p, g)
    if fast is not None:
        return fast
    mc = _mc_compare(p, g)
    if mc is not None:
        return mc
    ctx = _Ctx()
    try:
        if _node_equiv(_parse_struct(p), _parse_struct(g), ctx):
            return True
    except (_TooBig, ValueError, RecursionError, ZeroDivisionError, OverflowError):
        pass
    if _textlike(p) and _textlike(g):
        return _text_key(p) == _text_key(g)
    return False


def _compare_safe(pred: str, gold: str) -> bool:
    try:
        return bool(_compare(pred, gold))
    except BaseException as e:  # noqa: BLE001 - never raise, whatever sympy does
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        return False


# ---------------------------------------------------------------------------
# Helper subprocess (timeouts that work from any thread / worker process)
# ---------------------------------------------------------------------------

_BOOT = (
    "import importlib.util as u,sys;"
    "s=u.spec_from_file_location('_r1jax_math_equiv_helper',sys.argv[1]);"
    "m=u.module_from_spec(s);sys.modules[s.name]=m;s.loader.exec_module(m);m._serve()"
)
_STARTUP_TIMEOUT_S = 60.0
_MAX_HELPERS = 4


def _serve() -> None:
    """Helper main loop: read JSON requests on stdin, answer '1'/'0' lines."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = 4 << 30
        if hard == resource.RLIM_INFINITY or hard > cap:
            resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except Exception:
        resource = None  # type: ignore[assignment]
    sys.setrecursionlimit(10000)
    import sympy  # noqa: F401 - warm the import before reporting ready

    _compare_safe("x^2+2x+1", "(x+1)^2")
    _compare_safe("\\frac{1}{2}", "0.5")
    out = sys.stdout.buffer
    out.write(b"R\n")
    out.flush()
    stdin = sys.stdin.buffer
    while True:
        line = stdin.readline()
        if not line:
            return
        try:
            req = json.loads(line)
        except ValueError:
            out.write(b"0\n")
            out.flush()
            continue
        if resource is not None:
            try:  # backstop if the parent dies mid-request: die on SIGXCPU
                ru = resource.getrusage(resource.RUSAGE_SELF)
                used = int(ru.ru_utime + ru.ru_stime)
                hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
                lim = used + 60
                if hard == resource.RLIM_INFINITY or lim <= hard:
                    resource.setrlimit(resource.RLIMIT_CPU, (lim, hard))
            except Exception:
                pass
        if req.get("sleep"):  # used by the tests to exercise the timeout path
            time.sleep(min(float(req["sleep"]), 600.0))
        ok = _compare_safe(req.get("p"), req.get("g"))
        out.write(b"1\n" if ok else b"0\n")
        out.flush()


class _HelperDied(Exception):
    pass


class _Helper:
    def __init__(self) -> None:
        cmd = [sys.executable]
        if sys.version_info >= (3, 11):
            cmd.append("-P")
        cmd += ["-c", _BOOT, os.path.abspath(__file__)]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, close_fds=True, bufsize=0,
        )
        self.ready = False
        self.buf = b""

    def _read_line(self, deadline: float) -> bytes | None:
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        while b"\n" not in self.buf:
            remaining = max(0.0, deadline - time.monotonic())
            r, _, _ = select.select([fd], [], [], remaining)
            if not r:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise _HelperDied()
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def poll_ready(self) -> bool:
        """Non-blocking: has the helper reported ready?"""
        if not self.ready:
            try:
                line = self._read_line(time.monotonic())
            except _HelperDied:
                return False
            if line is not None:
                if line != b"R":
                    return False
                self.ready = True
        return self.ready

    def wait_ready(self) -> None:
        if self.ready:
            return
        line = self._read_line(time.monotonic() + _STARTUP_TIMEOUT_S)
        if line != b"R":
            raise _HelperDied()
        self.ready = True

    def ask(self, pred: str, gold: str, timeout_s: float, sleep: float = 0.0) -> bool | None:
        """True/False, or None on timeout (the caller kills this helper)."""
        self.wait_ready()
        req: dict[str, Any] = {"p": pred, "g": gold}
        if sleep:
            req["sleep"] = sleep
        data = (json.dumps(req) + "\n").encode()
        try:
            self.proc.stdin.write(data)  # type: ignore[union-attr]
        except (BrokenPipeError, OSError) as e:
            raise _HelperDied() from e
        line = self._read_line(time.monotonic() + timeout_s)
        if line is None:
            return None
        return line == b"1"

    def kill(self) -> None:
        try:
            self.proc.kill()
        except Exception:
            pass
        try:
            self.proc.wait(timeout=5)
        except Exception:
            pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()  # type: ignore[union-attr]
            except Exception:
                pass


class _Pool:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.idle: list[_Helper] = []
        self.all: set[_Helper] = set()
        self.pid = os.getpid()
        self.broken = False

    def _check_pid(self) -> None:
        if self.pid != os.getpid():  # forked: the helpers belong to the parent
            self.idle, self.all, self.pid = [], set(), os.getpid()
            self.cond = threading.Condition()

    def _spawn(self) -> _Helper:
        h = _Helper()
        self.all.add(h)
        return h

    def acquire(self) -> _Helper:
        self._check_pid()
        with self.cond:
            while True:
                if self.idle:
                    for k in range(len(self.idle) - 1, -1, -1):
                        if self.idle[k].poll_ready():  # prefer a helper that has started
                            return self.idle.pop(k)
                    return self.idle.pop()
                if len(self.all) < _MAX_HELPERS:
                    return self._spawn()
                self.cond.wait()

    def release(self, h: _Helper) -> None:
        with self.cond:
            if h in self.all:
                self.idle.append(h)
            self.cond.notify()

    def discard(self, h: _Helper, respawn: bool = True) -> None:
        h.kill()
        with self.cond:
            self.all.discard(h)
            if respawn and len(self.all) < _MAX_HELPERS:
                try:  # start the replacement now so its start-up overlaps
                    self.idle.append(self._spawn())
                except Exception:
                    pass
            self.cond.notify()

    def prestart(self) -> None:
        self._check_pid()
        with self.cond:
            if not self.all:
                self.idle.append(self._spawn())

    def shutdown(self) -> None:
        if self.pid != os.getpid():
            return
        with self.cond:
            helpers = list(self.all)
            self.all.clear()
            self.idle.clear()
        for h in helpers:
            h.kill()


_POOL = _Pool()
atexit.register(_POOL.shutdown)
_warned = False


def warmup() -> None:
    """Start the helper process now, so the first is_equiv call does not wait for it."""
    try:
        _POOL.prestart()
    except Exception:
        pass


def _ask_helper(pred: str, gold: str, timeout_s: float, _sleep: float = 0.0) -> bool:
    global _warned
    for attempt in range(2):
        try:
            h = _POOL.acquire()
        except Exception as e:  # cannot start a helper at all
            if not _warned:
                _warned = True
                _log.error("math_equiv: cannot start helper process (%s); answering False", e)
            return False
        try:
            res = h.ask(pred, gold, timeout_s, _sleep)
        except _HelperDied:
            _POOL.discard(h)
            continue
        except BaseException:
            _POOL.discard(h)
            raise
        if res is None:  # timed out
            _POOL.discard(h)
            return False
        _POOL.release(h)
        return res
    return False


def is_equiv(pred: str, gold: str, *, timeout_s: float = 2.0) -> bool:
    """Return whether answer `pred` is mathematically equivalent to `gold` (never raises)."""
    try:
        if not isinstance(pred, str) or not isinstance(gold, str):
            return False
        if len(pred) > MAX_CHARS or len(gold) > MAX_CHARS:
            return False
        if _max_depth(pred) > 2 * MAX_DEPTH or _max_depth(gold) > 2 * MAX_DEPTH:
            return False
        p, g = _normalize(pred), _normalize(gold)
        if _max_depth(p) > MAX_DEPTH or _max_depth(g) > MAX_DEPTH:
            return False
        fast = _fast_path(p, g)
        if fast is not None:
            return fast
        if not timeout_s or timeout_s <= 0 or math.isnan(timeout_s):
            return False
        return _ask_helper(pred, gold, float(timeout_s))
    except Exception:
        return False


if __name__ == "__main__":  # pragma: no cover - manual use: python math_equiv.py PRED GOLD
    print(is_equiv(sys.argv[1], sys.argv[2]))
