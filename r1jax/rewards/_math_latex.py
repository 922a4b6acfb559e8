"""A small LaTeX expression reader producing sympy objects (runs in the helper).

Implicit multiplication, \\frac, \\sqrt[n]{}, ^ (a plain digit run 2^10 is one
exponent), !, |x|, trig/log functions, \\log_b, \\binom, floor/ceil, e, i, decimals
as exact rationals, repeating decimals and mixed numbers; see math_equiv's docstring.
It refuses (TooBig) to build exact numbers over about MAX_BITS bits.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

MAX_BITS = 100_000  # largest exact integer/rational magnitude the reader builds
MAX_FACTORIAL = 3000


class TooBig(Exception):
  pass


class ParseError(Exception):
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
      raise ParseError("unexpected end")
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
      raise ParseError(f"expected {value!r}")

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
            raise TooBig()
      elif isinstance(e, sp.Float) and abs(e) > 1e6:
        raise TooBig()
    elif isinstance(e, sp.Rational) and self._bits(e) > 40:
      raise TooBig()
    elif isinstance(e, sp.Number) and not isinstance(e, sp.Rational):
      if abs(e) > 1e9:
        raise TooBig()
    return sp.Pow(b, e)

  def fact(self, n: Any) -> Any:
    sp = self.sp
    if isinstance(n, sp.Number) and (abs(n) > MAX_FACTORIAL):
      raise TooBig()
    return sp.factorial(n)

  def mul(self, a: Any, b: Any) -> Any:
    if self._bits(a) + self._bits(b) > 4 * MAX_BITS:
      raise TooBig()
    return a * b

  # -- grammar --
  def parse(self) -> Any:
    if not self.toks:
      raise ParseError("empty")
    e = self.expr()
    if self.peek() is not None:
      raise ParseError(f"trailing {self.peek()}")
    return e

  def _enter(self) -> None:
    self.depth += 1
    if self.depth > 200:
      raise TooBig()

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
        raise TooBig()  # power towers deeper than 8 levels
      return self._exponent()
    finally:
      self.exp_depth -= 1

  def _exponent(self) -> Any:
    t = self.peek()
    if t is None:
      raise ParseError("missing exponent")
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
      raise ParseError(v)
    ip, fp, ex = m.group(1), m.group(2), m.group(3)
    if len(ip) + len(fp) > 2000:
      raise TooBig()
    val = Fraction(int(ip or "0") * 10 ** len(fp) + int(fp or "0"), 10 ** len(fp))
    if ex is not None:
      k = int(ex) if len(ex) < 8 else 10**9
      if abs(k) > 2000:
        raise TooBig()
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
      raise ParseError("missing argument")
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
    raise ParseError(f"bad argument {t}")

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
    raise ParseError(f"unexpected {v!r}")

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
          raise TooBig()
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
      raise ParseError(f"unexpected \\{name}")
    if len(name) == 1 and not name.isalpha():
      raise ParseError(f"unexpected \\{name}")
    # Unknown command: an opaque symbol.
    return sp.Symbol("\\" + name + self.subscript())

  def root(self, x: Any, n: Any) -> Any:
    sp = self.sp
    if isinstance(n, sp.Number) and abs(n) > 10**6:
      raise TooBig()
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


def to_sympy(s: str) -> Any:
  import sympy as sp

  return _Reader(s, sp).parse()

