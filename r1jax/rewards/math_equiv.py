"""Rule-based answer extraction and equivalence checking for math rewards.

This module is the "accuracy" half of the R1-Zero rule-based reward. It has
two public functions:

* ``extract_answer(completion, *, lenient=False)`` -- the answer a completion
  commits to.
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
  ``\\boxed{`` is skipped. A run of boxes separated only by commas, ``and``/``or``,
  spaces, math delimiters or ``x =`` (``$\\boxed{1}$ and $\\boxed{2}$``) is one
  list answer, ``1, 2``; boxes with other text between them are not (``\\boxed{3}
  then \\boxed{4}`` is ``4``). Without answer tags and without a box, the result
  is ``None`` (no "last number" guessing, unless ``lenient``: below).
* Surrounding whitespace is stripped; an empty answer is ``None``.
* ``extract_answer(completion, lenient=True)`` is for *evaluating* models that do
  not use answer tags or a box; it is off by default and never used for rewards
  (RL must not be paid for an answer the model did not mark). When the strict
  rules above find nothing it reads the last 5000 characters, up to an unclosed
  ``<answer>`` or an unbalanced box (what follows is unfinished): the value after the
  last "the answer is" / "answer:" / "answer =" / ``####`` (a ``$..$`` or ``\\(..\\)``
  span right after it, else the rest of the sentence), else the last math span
  (``$..$``, ``$$..$$``, ``\\(..\\)``, ``\\[..\\]``) or bare number, whichever comes
  later. ``python -m r1jax.evaluate --lenient_extraction`` selects it.

Equivalence conventions
-----------------------
Both sides go through the same normalisation, then are compared structurally:

* Wrappers and typography: ``$``, ``\\(..\\)``, ``\\[..\\]``, ``\\boxed{}``
  (anywhere), ``\\left``/``\\right`` (and ``\\big`` family), ``\\displaystyle``,
  LaTeX spacing (``\\,`` ``\\!`` ``\\;`` ``~`` ``\\quad``), ``\\dfrac``/``\\tfrac``/
  ``\\cfrac`` (read as ``\\frac``; ``\\frac12`` is 1/2 as in LaTeX), unicode
  ``\u2212 \u00d7 \u00f7 \u03c0 \u221e \u2264 \u2265 \u221a \u2248``.
* Removed: ``^\\circ``/``\\circ``/``\u00b0``/``\\degree``, ``\\%``/``%``,
  ``\\$``/``$``, a trailing period.
* ``\\text{}``, ``\\mbox{}``, ``\\textbf{}``, ``\\mathrm{}`` ...: when the answer
  also contains math, a group holding only words (units such as
  ``\\text{ cm}^2``, trailing words) is dropped; ``\\text{ and }`` /
  ``\\text{ or }`` become list commas (no second comma after one); words in a
  subscript are kept (``h_{\\text{max}}``); otherwise the group is unwrapped (so
  ``\\text{(B)}`` is ``(B)`` and ``\\text{Monday}`` is ``Monday``). Plain trailing
  words after a number (``5 apples``, ``12 square units``) are dropped too.
* Lists: commas, semicolons (``1; 2; 3``; a top-level semicolon splits before
  commas, so ``1,2;3,4`` is two pairs), ``and``/``or`` between items, with a serial
  comma too (``2, 5, and 9``).
* Thousands separators. ``1{,}000`` and ``1\\,000`` are always 1000. A bare
  ``1,000`` is one number when it matches ``[1-9]\\d{0,2}(,\\d{3})+`` with no
  spaces, is not glued to other digits, commas or a decimal point, and is not
  the whole content of a bracket pair: so ``1,000`` and ``12,345,678.5`` are
  numbers, while ``1,2``, ``1, 000``, ``0,100`` and ``(1,000)`` are lists /
  pairs. Spaced groups (``1 000 000``) are joined as well, and so is MATH's
  ``10,\\!000`` with a space after the ``\\!`` (``10,\\! 000``) before a 3-digit
  group.
* Equations: an answer ``lhs = rhs`` whose ``lhs`` is a name (``x``, ``a_1``,
  ``\\theta``, ``f(x)``, a tuple of names) equals a non-equation answer equal to
  ``rhs`` (``x = 5`` equals ``5``; ``x = \\pm 2`` equals ``2, -2``). So does one
  whose ``lhs`` is a label -- segments, angles and areas of points (``AB``,
  ``\\overline{AB}``, ``m\\angle ABC``, ``[ABC]``: 2-5 capitals) or a name with a
  braced subscript (``h_{\\max}``) -- when ``rhs`` has no letters (``AB = 4`` equals
  ``4``; ``xy = 4`` and ``AB = x`` stay equations); ``= 12`` is ``12``. A chain
  ``x = 5 + 6 = 11`` is judged by its last right-hand side (``x = 11``), and so is
  an equation of numbers (``5 + 6 = 11`` is ``11``; ``5 = x`` is ``x = 5``); a
  chain whose left side has unknowns but is not a name (``2x = 4 = 2``) is
  rejected. Two
  equations with the same name on the left compare their right-hand sides.
  Otherwise two equations are equal when ``(l1 - r1) / (l2 - r2)`` is a nonzero
  constant (``y = 2x+1`` equals ``2x+1 = y`` and ``2y = 4x + 2``); inequalities
  likewise with a positive constant after flipping ``<``/``\\le`` to ``>``/``\\ge``
  (``x > 3`` equals ``3 < x``). A double inequality of a name is an interval:
  ``a < x < b`` equals ``(a, b)`` (``\\le`` gives a closed end: ``a \\le x < b`` is
  ``[a, b)``; ``b > x > a`` likewise), and ``x > a`` equals ``(a, \\infty)``. Other
  chains of relations are rejected.
* Approximations: ``A \\approx B`` (``x = A \\approx B``) is judged by ``A``; it
  also equals ``B`` when ``A`` rounds to the decimal ``B`` at its precision
  (``\\pi \\approx 3.14`` equals ``\\pi`` and ``3.14``; ``\\frac{1}{3} \\approx 5``
  equals neither ``5`` nor anything but ``1/3``). ``\\approx B`` alone is ``B``.
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
  bracket types (``[1,2)`` != ``(1,2)``). ``\\{...\\}`` sets, ``{1, 2}`` (bare
  braces holding two or more items; ``{5}`` is a group) and bare comma lists
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
subprocess (one per process; threads take turns) that is killed and
restarted when a comparison exceeds ``timeout_s``; this works from any thread
and inside worker processes (no signals are used). The helper also caps its
own memory and CPU time in case its parent dies. Plain numbers and identical
strings are decided in-process without sympy. The first call in a process
waits for the helper to start (about a second, not counted in ``timeout_s``;
call ``warmup()`` to pay it early).

Modules: ``_math_extract`` (extraction), ``_math_normalize`` (string
normalisation, plain numbers), ``_math_struct`` (answer structure),
``_math_latex`` (LaTeX reader), ``_math_compare`` (comparison) and
``_math_timeout`` (the helper process).
"""

from __future__ import annotations

import math
import sys

from r1jax.rewards import _math_extract
from r1jax.rewards import _math_normalize
from r1jax.rewards import _math_timeout

__all__ = ["extract_answer", "is_equiv", "warmup"]

extract_answer = _math_extract.extract_answer
warmup = _math_timeout.warmup


def is_equiv(pred: str, gold: str, *, timeout_s: float = 2.0) -> bool:
  """Return whether answer `pred` is mathematically equivalent to `gold` (never raises)."""
  try:
    if not isinstance(pred, str) or not isinstance(gold, str):
      return False
    limit_chars, limit_depth = _math_normalize.MAX_CHARS, _math_normalize.MAX_DEPTH
    if len(pred) > limit_chars or len(gold) > limit_chars:
      return False
    depth = _math_normalize.max_depth
    if depth(pred) > 2 * limit_depth or depth(gold) > 2 * limit_depth:
      return False
    p, g = _math_normalize.normalize(pred), _math_normalize.normalize(gold)
    if depth(p) > limit_depth or depth(g) > limit_depth:
      return False
    fast = _math_normalize.fast_path(p, g)
    if fast is not None:
      return fast
    if not timeout_s or timeout_s <= 0 or math.isnan(timeout_s):
      return False
    return _math_timeout.ask(pred, gold, float(timeout_s))
  except Exception:  # noqa: BLE001 - never raises
    return False


if __name__ == "__main__":  # manual use: python -m r1jax.rewards.math_equiv PRED GOLD
  print(is_equiv(sys.argv[1], sys.argv[2]))
