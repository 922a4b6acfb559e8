"""Comparison of two answers: normalise, parse the structure, compare with sympy.

`compare` has no timeout of its own: it runs in the helper process of
r1jax.rewards._math_timeout, which kills it when it overruns.
"""

from __future__ import annotations

import math
import random
import re
from typing import Any

from r1jax.rewards import _math_latex as latex
from r1jax.rewards import _math_normalize as norm
from r1jax.rewards import _math_struct as struct

EXPR_TOL = 1e-20  # numeric identity tests of expressions with variables (40-digit evaluation)
REL_SLACK = 1e-12  # rounding checks of approximations: evaluation error only


class _Ctx:
  def __init__(self) -> None:
    self.cache: dict[str, Any] = {}
    self.rng = random.Random(1234)
    self._points: dict[tuple, list[dict]] = {}

  def sym(self, s: str) -> Any:
    if s not in self.cache:
      try:
        self.cache[s] = latex.to_sympy(s)
      except (latex.ParseError, ValueError, TypeError, AttributeError, KeyError, IndexError):
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


def _num_close(a: Any, b: Any, rel: float = norm.REL_TOL) -> bool | None:
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
  return bool(d <= rel * scale or d <= norm.ABS_TOL)


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


def _rounds_to(exact: tuple, approx: str, ctx: _Ctx) -> bool:
  """The exact value, a number, rounds to the decimal `approx` at its precision."""
  import sympy as sp

  m = re.fullmatch(r"-?\d+(?:\.(\d+))?", approx.replace(" ", ""))
  a = ctx.sym(exact[1]) if exact[0] == "expr" and m else None
  if a is None or a.free_symbols:
    return False
  va = sp.N(a, 40)
  if not va.is_real:
    return False
  half_ulp = sp.Rational(1, 2 * 10 ** len(m.group(1) or ""))
  return bool(abs(va - sp.Rational(approx.replace(" ", ""))) <= half_ulp * (1 + REL_SLACK))


def _approx_equiv(x: tuple, y: tuple, ctx: _Ctx) -> bool:
  """x = ("approx", exact node or None, approximation): the exact value decides when it
  equals y; else the approximation must equal y and the exact value round to it."""
  _, exact, approx = x
  if y[0] == "approx":
    if exact is not None and y[1] is not None:
      return _node_equiv(exact, y[1], ctx)
    if exact is None and y[1] is not None:
      return _approx_equiv(y, x, ctx)
    y = ("expr", y[2])
  if exact is not None and _node_equiv(exact, y, ctx):
    return True
  if not _node_equiv(("expr", approx), y, ctx):
    return False
  return exact is None or _rounds_to(exact, approx, ctx)


def _node_equiv(x: tuple, y: tuple, ctx: _Ctx) -> bool:
  kx, ky = x[0], y[0]
  if kx == "between" and ky == "between":  # "a < x < b": the interval, and its name
    return x[1] == y[1] and _node_equiv(x[2], y[2], ctx)
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
  if kx == "approx" or ky == "approx":
    return _approx_equiv(x, y, ctx) if kx == "approx" else _approx_equiv(y, x, ctx)
  if kx == "between" or ky == "between":
    return _node_equiv(x[2], y, ctx) if kx == "between" else _node_equiv(x, y[2], ctx)
  if {kx, ky} == {"rel", "tuple"}:  # "x > 3" and "(3, \infty)"
    rel, other = (x, y) if kx == "rel" else (y, x)
    interval = struct.rel_interval(rel)
    return interval is not None and _node_equiv(interval, other, ctx)
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


def compare(pred: str, gold: str) -> bool:
  """Full comparison (no timeout): normalise, structure, sympy."""
  if not isinstance(pred, str) or not isinstance(gold, str):
    return False
  if len(pred) > norm.MAX_CHARS or len(gold) > norm.MAX_CHARS:
    return False
  p, g = norm.normalize(pred), norm.normalize(gold)
  if norm.max_depth(p) > norm.MAX_DEPTH or norm.max_depth(g) > norm.MAX_DEPTH:
    return False
  fast = norm.fast_path(p, g)
  if fast is not None:
    return fast
  mc = struct.mc_compare(p, g)
  if mc is not None:
    return mc
  ctx = _Ctx()
  try:
    if _node_equiv(struct.parse_struct(p), struct.parse_struct(g), ctx):
      return True
  except (latex.TooBig, ValueError, RecursionError, ZeroDivisionError, OverflowError):
    pass
  if struct.textlike(p) and struct.textlike(g):
    return struct.text_key(p) == struct.text_key(g)
  return False


def compare_safe(pred: str, gold: str) -> bool:
  try:
    return bool(compare(pred, gold))
  except BaseException as e:  # noqa: BLE001 - never raise, whatever sympy does
    if isinstance(e, (KeyboardInterrupt, SystemExit)):
      raise
    return False

