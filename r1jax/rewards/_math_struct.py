"""The structure of a normalised answer: lists, sets, tuples and intervals, unions,
matrices, equations and relations, multiple-choice letters and plain text.

`parse_struct` turns a normalised string into a tree whose leaves are expression
strings, read by r1jax.rewards._math_latex and compared by _math_compare.
"""

from __future__ import annotations

import re

MAX_LIST = 40  # longest list/set/tuple compared

_OPENERS = "([{"
_CLOSERS = ")]}"
_REL_RE = re.compile(r"\\le |\\ge |\\ne |\\lt(?![a-zA-Z])|\\gt(?![a-zA-Z])|\\approx(?![a-zA-Z])"
                     r"|<=|>=|!=|=|<|>")
_REL_CANON = {"\\le ": "<=", "\\ge ": ">=", "\\ne ": "!=", "\\lt": "<", "\\gt": ">",
              "\\approx": "~", "<=": "<=", ">=": ">=", "!=": "!=", "=": "=", "<": "<", ">": ">"}
# Left sides that label a value rather than state an equation: segments and angles
# (AB, \overline{AB}, m\angle ABC), areas ([ABC]), names with a long subscript (h_{\max}).
_LABEL_RE = re.compile(
    r"(?:m\s*)?\\angle\s*[A-Z]{1,3}|\\overline\{[A-Z]{2,3}\}|\[[A-Z]{3,5}\]|[A-Z]{2,5}"
    r"|(?:[a-zA-Z]|\\[a-zA-Z]+)_\{[^{}=]+\}"
)
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


def parse_struct(s: str, depth: int = 0) -> tuple:
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
    cells = [[parse_struct(c, depth + 1) for c in _split_top(r, "&")] for r in rows]
    return ("matrix", cells)
  items = _split_top(s, ";")  # "1; 2; 3"
  if len(items) == 1:
    items = _split_top(s, ",")
  if len(items) > 1:
    if len(items) > MAX_LIST:
      raise ValueError("list too long")
    return ("list", [parse_struct(x, depth + 1) for x in items])
  parts = _split_top(s, "\\cup")
  if len(parts) > 1:
    return ("union", [parse_struct(x, depth + 1) for x in parts])
  if s == "\\emptyset" or s == "\\{\\}" or s == "{}":
    return ("set", [])
  if s.startswith("\\{") and s.endswith("\\}") and _outer_pair_spans_all(s):
    inner = s[2:-2].strip()
    elems = _split_top(inner, ",") if inner else []
    if len(elems) > MAX_LIST:
      raise ValueError("set too long")
    return ("set", [parse_struct(x, depth + 1) for x in elems])
  if s[0] == "{" and s[-1] == "}" and _outer_pair_spans_all(s):
    elems = _split_top(s[1:-1], ",")
    if len(elems) >= 2:  # "{1, 2}": a set in bare braces ("{5}" is a group)
      if len(elems) > MAX_LIST:
        raise ValueError("set too long")
      return ("set", [parse_struct(x, depth + 1) for x in elems])
  if s[0] in "([" and s[-1] in ")]" and _outer_pair_spans_all(s):
    elems = _split_top(s[1:-1], ",")
    if len(elems) >= 2:
      if len(elems) > MAX_LIST:
        raise ValueError("tuple too long")
      return ("tuple", s[0] + s[-1], [parse_struct(x, depth + 1) for x in elems])
  # "x \in S" -> S
  ins = _split_top(s, "\\in ")
  if len(ins) == 2 and _NAME_RE.fullmatch(ins[0].strip()):
    return parse_struct(ins[1], depth + 1)
  # relations
  rel = _split_relations(s)
  if rel is not None:
    return _relation(*rel, depth=depth)
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


def _split_relations(s: str) -> tuple[list[str], list[str]] | None:
  """The segments and operators of the top-level relations of s, or None when none."""
  segs, ops = [], []
  depth = 0
  start = i = 0
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
        segs.append(s[start:i].strip())
        ops.append(_REL_CANON[m.group(0)])
        i = start = m.end()
        continue
    if c == "\\":
      if i + 1 < n and s[i + 1] in "{}":
        depth += 1 if s[i + 1] == "{" else -1
      i += 2
      continue
    i += 1
  if not ops:
    return None
  if len(ops) > 8:
    raise ValueError("long chain of relations")
  segs.append(s[start:].strip())
  if not all(segs[1:]):
    raise ValueError("dangling relation")
  return segs, ops


def _has_letters(s: str) -> bool:
  """Letters outside LaTeX command names: possible unknowns (e and i count too)."""
  return re.search(r"[a-zA-Z]", re.sub(r"\\[a-zA-Z]+", "", s)) is not None


def _label(s: str, value: str) -> bool:
  """s names `value` (x, f(x), AB, h_{\\max}): the answer is the value."""
  if s == "\\pi":
    return False  # a constant: "\\pi \\approx 3.14" is an approximation of pi
  return _is_name(s) or (bool(_LABEL_RE.fullmatch(s)) and not _has_letters(value))


def rel_interval(node: tuple) -> tuple | None:
  """The interval of a one-sided inequality of a name (x > 3 is (3, \\infty)), or None."""
  _, op, lhs, rhs = node
  if op in _FLIP:  # "x > 3" is "3 < x"
    lhs, op, rhs = rhs, _FLIP[op], lhs
  if op not in ("<", "<="):
    return None
  closed = op == "<="
  if _NAME_RE.fullmatch(rhs) and not _has_letters(lhs):  # "3 < x": (3, \\infty)
    return ("tuple", "[)" if closed else "()", [("expr", lhs), ("expr", "\\infty")])
  if _NAME_RE.fullmatch(lhs) and not _has_letters(rhs):  # "x < 3": (-\\infty, 3)
    return ("tuple", "(]" if closed else "()", [("expr", "-\\infty"), ("expr", rhs)])
  return None


_INTERVAL_OPS = {("<", "<"): "()", ("<", "<="): "(]", ("<=", "<"): "[)", ("<=", "<="): "[]"}
_FLIP = {">": "<", ">=": "<="}


def _relation(segs: list[str], ops: list[str], depth: int) -> tuple:
  """Structure of a relation or chain of them (see math_equiv's docstring, Equations)."""
  if len(ops) == 2 and all(op in _FLIP for op in ops):  # "b > x > a" is "a < x < b"
    segs, ops = segs[::-1], [_FLIP[op] for op in ops[::-1]]
  if tuple(ops) in _INTERVAL_OPS:  # "a < x \le b": the interval (a, b]
    if not segs[0] or not _NAME_RE.fullmatch(segs[1]):
      raise ValueError("chained inequality")
    bounds = [parse_struct(segs[0], depth + 1), parse_struct(segs[2], depth + 1)]
    return ("between", segs[1].replace(" ", ""), ("tuple", _INTERVAL_OPS[tuple(ops)], bounds))
  if len(ops) == 1 and ops[0] not in ("=", "~"):
    if not segs[0]:
      raise ValueError("dangling relation")
    return ("rel", ops[0], segs[0], segs[1])
  if any(op not in ("=", "~") for op in ops) or "~" in ops[:-1]:
    raise ValueError("chained relation")
  approx = segs.pop() if ops[-1] == "~" else None  # "x = \frac{1}{3} \approx 0.33"
  lhs, value = segs[0], segs[-1]
  if len(segs) == 1:  # "\approx 0.33", "x \approx 0.33", "\frac{1}{3} \approx 0.33"
    node = ("approx", None if not lhs or _label(lhs, approx) else ("expr", lhs), approx)
    return ("assign", lhs.replace(" ", ""), node) if lhs and _label(lhs, approx) else node
  node = ("approx", ("expr", value), approx) if approx else parse_struct(value, depth + 1)
  if not lhs:  # "= 12": a label in words was dropped
    return node
  if _label(lhs, value):
    return ("assign", lhs.replace(" ", ""), node)
  if len(segs) == 2 and not approx:
    if not _has_letters(lhs) and _label(value, lhs):  # "5 = x"
      return ("assign", value.replace(" ", ""), parse_struct(lhs, depth + 1))
    if _has_letters(lhs) or _has_letters(value):
      return ("rel", "=", lhs, value)  # an equation: "y = 2x + 1", "3 = 2x - 1"
  elif _has_letters(lhs):
    raise ValueError("chained equation of unknowns")
  return node  # "5 + 6 = 11", "x = 5 + 6 = 11": the last right-hand side


_MC_BARE_RE = re.compile(r"\(?([A-J])\)?")
_MC_PREFIX_RE = re.compile(r"(?:\(([A-J])\)|([A-J])[).:])(?:\s.*)?", re.S)


def _mc_letter(s: str, bare: bool) -> str | None:
  m = (_MC_BARE_RE if bare else _MC_PREFIX_RE).fullmatch(s)
  if not m:
    return None
  return next(g for g in m.groups() if g)


def mc_compare(p: str, g: str) -> bool | None:
  for a, b in ((p, g), (g, p)):
    la = _mc_letter(a, bare=True)
    if la is not None:
      lb = _mc_letter(b, bare=True) or _mc_letter(b, bare=False)
      if lb is not None:
        return la == lb
  return None


_TEXTLIKE_RE = re.compile(r"[A-Za-z0-9 ,.'\-()!?:;]+")


def textlike(s: str) -> bool:
  return bool(_TEXTLIKE_RE.fullmatch(s)) and re.search(r"[A-Za-z]{3}", s) is not None


def text_key(s: str) -> str:
  return re.sub(r"\s+", " ", s).strip().casefold()

