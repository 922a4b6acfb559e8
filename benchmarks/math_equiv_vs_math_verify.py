"""Compare r1jax.rewards.math_equiv with Hugging Face math-verify.

Three parts:

* The suite (the headline figures): answers and whole responses in the styles of real
  data sets and model outputs -- MATH / MATH-500, GSM8K, NuminaMath and AIME golds;
  bare answers, boxed, tagged (``<answer>``) and free-text responses ("The answer is
  X", Minerva's "Final Answer: ...", GSM8K's "#### X") -- each labelled by hand (would a
  grader accept it?). Every answer pair is scored as a bare answer and once more inside
  a response in a style of its source (rotating), plus responses written by hand where
  extraction is the question. Printed: accuracy against the labels and false positives
  of each checker, agreement with math-verify on the pairs it accepts and on the pairs it
  rejects (separately), and every disagreement with the side the label supports.
* The labelled set (tests/rewards/data/math_equiv_cases.jsonl): accuracy, wrong cases.
* The adversarial set (tests/rewards/data/math_equiv_adversarial.jsonl): seconds per
  input (``--skip-adversarial`` leaves it out).

Ours: bare answers by ``is_equiv(pred, gold)``; responses by
``is_equiv(extract_answer(response, lenient=True), gold)`` (the evaluation mode, which
reads boxes and tags first, as the strict mode does). math-verify, in its own virtual
environment through a subprocess, one case at a time with a hard wall-clock kill
(--kill-after) so a hang is reported as ">N s" instead of stalling the benchmark:
``verify(parse("$" + gold + "$"), parse(x))`` with x = "$" + pred + "$" for a bare answer
(its LaTeX extractor needs math delimiters) and the response as is, with its default
settings (5 s parse and verify timeouts). Set it up once with:

    python3 -m venv /work/main/.venv-peers
    /work/main/.venv-peers/bin/pip install math-verify

Usage:
    .venv/bin/python benchmarks/math_equiv_vs_math_verify.py [--kill-after 30] \
        [--peers-python .venv-peers/bin/python] [--skip-adversarial] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import select
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from r1jax.rewards import math_equiv  # noqa: E402

DATA = ROOT / "tests" / "rewards" / "data"

# Answer pairs: (source, gold as the data set stores it, answer as a model writes it,
# truth). Truth is labelled by hand: would a grader accept the answer for that gold?
ANSWERS = [
    # ---- MATH / MATH-500 style golds
    ("MATH", r"\frac{1}{2}", "0.5", True),
    ("MATH", r"\frac{1}{2}", r"\dfrac{1}{2}", True),
    ("MATH", r"\frac{\sqrt{3}}{2}", r"\frac{1}{2}\sqrt{3}", True),
    ("MATH", r"2\sqrt{2}", r"\sqrt{8}", True),
    ("MATH", r"\left( 3, \frac{\pi}{2} \right)", r"(3, \frac{\pi}{2})", True),
    ("MATH", "p - q", "-q + p", True),
    ("MATH", r"\frac{14}{3}", r"4\frac{2}{3}", True),
    ("MATH", "9", "9.0", True),
    ("MATH", r"\text{Evelyn}", "Evelyn", True),
    ("MATH", r"42^\circ", "42", True),
    ("MATH", "(x+2)(x+5)", "x^2+7x+10", True),
    ("MATH", "[-2, 7]", "[-2,7]", True),
    ("MATH", r"(-\infty, -2) \cup (2, \infty)", r"(-\infty,-2)\cup(2,\infty)", True),
    ("MATH", r"10,\!080", "10080", True),
    ("MATH", r"10,\!080", "10,080", True),
    ("MATH", r"\$18.90", "18.90", True),
    ("MATH", "6 - 5i", "6-5i", True),
    ("MATH", r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\begin{bmatrix} 1 \\ 2 \end{bmatrix}", True),
    ("MATH", r"\frac{3}{4}", r"\frac{6}{8}", True),
    ("MATH", r"\frac{3}{4}", "0.75", True),
    ("MATH", r"\frac{1}{3}", r"0.\overline{3}", True),
    ("MATH", r"2\pi", r"2 \pi", True),
    ("MATH", r"\text{(C)}", "C", True),
    ("MATH", "1, 2, 3", "3, 2, 1", True),
    ("MATH", "-2, 1", "1, -2", True),
    ("MATH", "[2, 5)", r"x \in [2, 5)", True),
    ("MATH", "y = 2x + 3", "y=2x+3", True),
    ("MATH", "y = 2x + 3", "y = 3 + 2x", True),
    ("MATH", r"\frac{5}{2}", "2.5", True),
    ("MATH", r"5\sqrt{5}", r"\sqrt{125}", True),
    ("MATH", r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}", True),
    ("MATH", r"\frac{9}{7}", r"\dfrac{9}{7}", True),
    ("MATH", r"12\%", "12", True),
    ("MATH", "1024", "2^{10}", True),
    ("MATH", "120", r"\binom{10}{3}", True),
    ("MATH", r"1 + \sqrt{3}", r"\sqrt{3} + 1", True),
    ("MATH", r"\text{odd}", "odd", True),
    ("MATH", r"(-\infty, 3]", r"x \le 3", True),
    ("MATH", "(2, 5)", "2 < x < 5", True),
    ("MATH", "[0, 1]", r"0 \le x \le 1", True),
    ("MATH", "8", r"8 \text{ cm}", True),
    ("MATH", "12", "12 square units", True),
    ("MATH", "6", "x = 6", True),
    ("MATH", r"\frac{-1 + \sqrt{5}}{2}", r"\frac{\sqrt{5} - 1}{2}", True),
    ("MATH", "4", "4.000", True),
    ("MATH", r"-\frac{1}{2}", r"\frac{-1}{2}", True),
    ("MATH", r"\sqrt[3]{2}", "2^{1/3}", True),
    ("MATH", "(x-1)^3", "x^3 - 3x^2 + 3x - 1", True),
    ("MATH", "(x-1)(x+1)", "x^2 - 1", True),
    ("MATH", r"\frac{2}{x}", "2x^{-1}", True),
    ("MATH", "3", r"\sqrt{9}", True),
    ("MATH", r"\frac14", "1/4", True),
    ("MATH", "1,2,3", "1; 2; 3", True),
    ("MATH", r"\{1, 2\}", "{1, 2}", True),
    ("MATH", r"10,\!000", r"10,\! 000", True),
    ("MATH", "2, 5, 9", "2, 5, and 9", True),
    ("MATH", "11", "x = 5 + 6 = 11", True),
    ("MATH", "3.14", r"\pi \approx 3.14", True),
    ("MATH", "(1, 3)", "1 < x < 3", True),
    ("MATH", "4", "AB = 4", True),
    ("MATH", "7", r"h_{\max} = 7", True),
    ("MATH", r"\frac{1}{3}", r"\frac{1}{3} \approx 0.333", True),
    ("MATH", r"90^\circ", r"90^{\circ}", True),
    ("MATH", r"\frac{7}{2}", "3.5", True),
    ("MATH", "-3", "-3.0", True),
    ("MATH", r"\text{Monday}", r"\text{monday}", True),
    ("MATH", "(1, -2)", "(1,-2)", True),
    ("MATH", "2x^2 + 4x", "2x(x + 2)", True),
    ("MATH", r"\frac{\pi}{3}", r"\frac{1}{3}\pi", True),
    ("MATH", r"12\sqrt{3}", r"12 \sqrt 3", True),
    ("MATH", "a = 5", "5", True),
    ("MATH", r"\frac{1}{3}", "0.33", False),
    ("MATH", r"\pi", "3.14", False),
    ("MATH", r"\sqrt{2}", "1.414", False),
    ("MATH", r"\text{(A)}", "B", False),
    ("MATH", "(1,2)", "(2,1)", False),
    ("MATH", "[1, 3)", "(1, 3]", False),
    ("MATH", "y = 2x + 3", "y = 3x + 2", False),
    ("MATH", r"\frac{\sqrt{2}}{2}", r"\frac{\sqrt{3}}{2}", False),
    ("MATH", r"3\sqrt{3}", "5.196", False),
    ("MATH", r"\text{odd}", "even", False),
    ("MATH", "(0, 1]", "0 < x < 1", False),
    ("MATH", r"\frac{-1 + \sqrt{5}}{2}", r"\frac{\sqrt{5} + 1}{2}", False),
    ("MATH", "5", "5.1", False),
    ("MATH", r"-\frac{1}{2}", r"\frac{1}{2}", False),
    ("MATH", "x^2 + 1", "(x+1)^2", False),
    ("MATH", r"\frac{x+1}{x-1}", r"\frac{x-1}{x+1}", False),
    ("MATH", "a^2b", "ab^2", False),
    ("MATH", r"\frac{\pi}{4}", "0.785", False),
    ("MATH", "1, 2, 3", "1, 2", False),
    ("MATH", "2, 5, 9", "2, 5, and 10", False),
    ("MATH", "11", "x = 5 + 6 = 12", False),
    ("MATH", "(1, 3)", r"1 \le x \le 3", False),
    ("MATH", "4", "AB = 5", False),
    ("MATH", "3.14", r"\frac{22}{7} \approx 3.15", False),
    ("MATH", "12", "21", False),
    ("MATH", r"\{1, 2\}", r"\{1, 2, 3\}", False),
    ("MATH", "x^2", "x^3", False),
    ("MATH", "10080", "1008", False),
    ("MATH", r"100\pi", "100", False),
    ("MATH", r"2\sqrt{2}", "2.83", False),
    ("MATH", r"\frac{1}{4}", "4", False),
    ("MATH", "[-2, 7]", "(-2, 7)", False),
    ("MATH", "6 - 5i", "6 + 5i", False),
    ("MATH", r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\begin{pmatrix} 2 \\ 1 \end{pmatrix}", False),
    ("MATH", "-2, 1", "-1, 2", False),
    ("MATH", r"\text{Evelyn}", "Evan", False),
    ("MATH", r"42^\circ", r"48^\circ", False),
    ("MATH", r"\frac{14}{3}", r"4\frac{1}{3}", False),
    ("MATH", "7", r"h_{\max} = 8", False),
    ("MATH", "x+1", "x+1.0000001", False),
    ("MATH", r"\sqrt{2}", r"\sqrt{2.0001}", False),
    ("MATH", "(1, 2)", "[1, 2]", False),
    ("MATH", r"\{1, 2\}", "(1, 2)", False),
    ("MATH", "3", "x > 3", False),
    ("MATH", "x > 3", r"x \ge 3", False),
    ("MATH", "5", "5x", False),
    ("MATH", r"\frac{1}{2}", r"\frac{1}{2}x", False),
    ("MATH", "0.5", r"\frac{1}{2} + 1", False),
    # ---- GSM8K style golds (integers) and answers
    ("GSM8K", "72", "72", True),
    ("GSM8K", "72", r"\$72", True),
    ("GSM8K", "5", "5 apples", True),
    ("GSM8K", "18", r"\$18.00", True),
    ("GSM8K", "1000", "1,000", True),
    ("GSM8K", "624", "624 dollars", True),
    ("GSM8K", "3", "3.0", True),
    ("GSM8K", "10", r"10\%", True),
    ("GSM8K", "60", "60 minutes", True),
    ("GSM8K", "1200", "1,200", True),
    ("GSM8K", "18", "18.", True),
    ("GSM8K", "-5", "\u22125", True),
    ("GSM8K", "16", r"16 \text{ dollars}", True),
    ("GSM8K", "12", "12 pounds", True),
    ("GSM8K", "40", "40.00", True),
    ("GSM8K", "5", "x = 5", True),
    ("GSM8K", "25", r"\$25", True),
    ("GSM8K", "104", "104 km", True),
    ("GSM8K", "8", "8 hours", True),
    ("GSM8K", "2", r"2 \text{ cups}", True),
    ("GSM8K", "300", r"300 \text{ miles}", True),
    ("GSM8K", "36", "36.0", True),
    ("GSM8K", "15", "15 minutes", True),
    ("GSM8K", "4", "four", True),
    ("GSM8K", "7", "7.5", False),
    ("GSM8K", "35", "53", False),
    ("GSM8K", "250", "2500", False),
    ("GSM8K", "18", r"\$19", False),
    ("GSM8K", "60", "6", False),
    ("GSM8K", "1000", "100", False),
    ("GSM8K", "24", "42", False),
    ("GSM8K", "0", "1", False),
    ("GSM8K", "5", "-5", False),
    ("GSM8K", "100", r"10\%", False),
    ("GSM8K", "14", "14.5", False),
    ("GSM8K", "8", "8 and 9", False),
    # ---- NuminaMath style golds
    ("NuminaMath", "2", "x=2", True),
    ("NuminaMath", r"\text{B}", "B", True),
    ("NuminaMath", r"\dfrac{1}{2}", r"\frac{1}{2}", True),
    ("NuminaMath", r"-\frac{\sqrt{3}}{2}", r"-\frac{1}{2}\sqrt{3}", True),
    ("NuminaMath", "2023", "2023", True),
    ("NuminaMath", r"\frac{3\sqrt{2}}{4}", r"\frac{3}{4}\sqrt{2}", True),
    ("NuminaMath", r"(-\infty, -1) \cup (3, +\infty)", r"(-\infty,-1)\cup(3,\infty)", True),
    ("NuminaMath", r"\left[ -1, 3 \right]", "[-1,3]", True),
    ("NuminaMath", r"a \geq 1", r"a \ge 1", True),
    ("NuminaMath", r"[1, +\infty)", r"a \geq 1", True),
    ("NuminaMath", r"\{x | x > 2\}", r"(2, +\infty)", True),
    ("NuminaMath", r"\text{C}", r"\text{(C)}", True),
    ("NuminaMath", r"\frac{\pi}{6}", r"\dfrac{\pi}{6}", True),
    ("NuminaMath", "y^2 = 8x", "y^{2}=8x", True),
    ("NuminaMath", "x^2 + y^2 = 4", "x^{2}+y^{2}=4", True),
    ("NuminaMath", r"\frac{x^2}{4} + \frac{y^2}{3} = 1", r"\frac{x^2}{4}+\frac{y^2}{3}=1", True),
    ("NuminaMath", "3x - y - 2 = 0", "y = 3x - 2", True),
    ("NuminaMath", "-2", "m = -2", True),
    ("NuminaMath", r"\sqrt{5}", r"\sqrt5", True),
    ("NuminaMath", r"2 \sqrt{3}", r"2\sqrt3", True),
    ("NuminaMath", r"4\pi", r"4 \pi", True),
    ("NuminaMath", r"\frac{1}{8}", "0.125", True),
    ("NuminaMath", "(1, 2)", r"\left(1, 2\right)", True),
    ("NuminaMath", r"\{-1, 1\}", r"\{1, -1\}", True),
    ("NuminaMath", r"\text{B}", "C", False),
    ("NuminaMath", "x^2 + y^2 = 4", "x^2 + y^2 = 2", False),
    ("NuminaMath", "3x - y - 2 = 0", "y = 3x + 2", False),
    ("NuminaMath", r"[1, +\infty)", r"(1, +\infty)", False),
    ("NuminaMath", "-2", "m = 2", False),
    ("NuminaMath", r"\frac{\pi}{6}", r"\frac{\pi}{3}", False),
    ("NuminaMath", "y^2 = 8x", "y^2 = 4x", False),
    ("NuminaMath", r"\{-1, 1\}", r"\{1\}", False),
    ("NuminaMath", r"\frac{1}{8}", "0.12", False),
    ("NuminaMath", "2023", "2024", False),
    # ---- AIME style golds (integers 0-999)
    ("AIME", "073", "73", True),
    ("AIME", "25", "025", True),
    ("AIME", "540", "540", True),
    ("AIME", "33", "033", True),
    ("AIME", "0", "000", True),
    ("AIME", "601", "601", True),
    ("AIME", "80", "080", True),
    ("AIME", "113", "113", True),
    ("AIME", "204", "240", False),
    ("AIME", "73", "37", False),
    ("AIME", "601", "610", False),
    ("AIME", "25", "250", False),
    ("AIME", "110", "11", False),
    ("AIME", "33", "3.3", False),
    ("AIME", "809", "908", False),
    ("AIME", "13", "0", False),
]

# Whole responses written by hand where extraction is the question: (source, style,
# gold, response, truth).
RESPONSES = [
    ("MATH", "boxed", "4", "I first thought $\\boxed{3}$, but after rechecking the case $n=2$ the "
     "answer is $\\boxed{4}$.", True),
    ("GSM8K", "free", "6", "The answer is 5. Wait, I forgot the last bag: 5 + 1 = 6. The answer is 6.",
     True),
    ("MATH", "boxed", "2, 3", "The solutions are $\\boxed{2}$ and $\\boxed{3}$.", True),
    ("MATH", "boxed", "3", "The solutions are $\\boxed{2}$ and $\\boxed{3}$.", False),
    ("MATH", "boxed", "12", "Hence the area is \\boxed{12", False),  # truncated: no answer
    ("MATH", "tagged", "7", "<think>3+4=7</think> <answer>7</answer>", True),
    ("MATH", "tagged", "7", "<think>3+4=7</think> <answer>8</answer>", False),
    ("GSM8K", "free", "72", "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = "
     "<<48+24=72>>72 clips altogether in April and May.\n#### 72", True),
    ("GSM8K", "free", "18", "Janet sells 16 - 3 - 4 = 9 duck eggs a day.\nShe makes 9 * 2 = $18 "
     "every day at the farmer's market.", True),
    ("GSM8K", "free", "20", "So the total is 20 dollars, or 2000 cents.", True),
    ("MATH", "free", "\\frac12", "Final Answer: The final answer is $\\frac{1}{2}$. I hope it is "
     "correct.", True),
    ("MATH", "free", "\\frac12", "The probability is $\\frac{1}{2}$, since half the outcomes are "
     "heads.", True),
    ("AIME", "boxed", "073", "Adding, $m+n = 73$. \\boxed{073}", True),
    ("MATH", "boxed", "(1, 3)", "The solution set is $\\boxed{1 < x < 3}$.", True),
    ("MATH", "boxed", "\\frac{1}{3}", "So $P = \\boxed{\\frac{1}{3} \\approx 0.333}$.", True),
    ("MATH", "boxed", "10", "So $x = \\boxed{5}$. Then 2x = \\boxed{10}", True),
    ("NuminaMath", "boxed", "-1, 3", "The roots are $x_1 = -1$ and $x_2 = 3$, so the answer is "
     "$\\boxed{x_1 = -1, x_2 = 3}$.", True),
    ("GSM8K", "free", "5", "I am not sure how to solve this.", False),
    ("MATH", "boxed", "2", "$\\boxed{2}$ is wrong; the correct value is $\\boxed{3}$.", False),
    ("NuminaMath", "boxed", "\\text{A}", "Therefore, the correct choice is $\\boxed{A}$.", True),
    ("NuminaMath", "boxed", "\\text{A}", "Therefore, the correct choice is $\\boxed{\\text{(A) } 12}$.",
     True),
    ("NuminaMath", "boxed", "\\text{A}", "Therefore, the correct choice is $\\boxed{B}$.", False),
    ("MATH", "boxed", "1, 2", "Both roots work: $\\boxed{1}, \\boxed{2}$", True),
    ("MATH", "boxed", "2", "Both roots work: $\\boxed{1}, \\boxed{2}$", False),
]

# Response styles, by source (rotating over the answer pairs of that source).
_STYLES = {
    "MATH": ("boxed", "minerva", "tagged"),
    "GSM8K": ("hashes", "free", "tagged", "boxed"),
    "NuminaMath": ("numina", "boxed"),
    "AIME": ("boxed", "tagged"),
}


def _respond(style: str, answer: str) -> str:
  """A model response in `style` whose final answer is `answer`."""
  latex = "\\" in answer or "^" in answer
  if style == "boxed":
    return f"Let's simplify step by step.\n\nTherefore, the final answer is $\\boxed{{{answer}}}$."
  if style == "minerva":
    return f"Final Answer: The final answer is ${answer}$. I hope it is correct."
  if style == "tagged":
    inner = f"\\boxed{{{answer}}}" if latex else answer
    return f"<think>\nWork it out, then check it.\n</think>\n<answer> {inner} </answer>"
  if style == "hashes":
    return f"She has 3 + 4 = <<3+4=7>>7 of them in all, so...\n#### {answer}"
  if style == "free":
    return f"Putting it together, the answer is {answer}." if not latex else (
        f"Putting it together, the answer is ${answer}$.")
  if style == "numina":
    return ("**Step 1.** Write down the conditions.\n\n**Step 2.** Solve them: the result is\n"
            f"$$\n\\boxed{{{answer}}}\n$$")
  raise ValueError(style)


def suite() -> list[dict]:
  """The suite's cases: every answer pair bare and inside one response, then RESPONSES."""
  cases, seen = [], {}
  for src, gold, pred, truth in ANSWERS:
    cases.append({"source": src, "style": "answer", "gold": gold, "pred": pred, "truth": truth})
  for src, gold, pred, truth in ANSWERS:
    k = seen[src] = seen.get(src, -1) + 1
    style = _STYLES[src][k % len(_STYLES[src])]
    cases.append({"source": src, "style": style, "gold": gold, "pred": _respond(style, pred),
                  "truth": truth})
  for src, style, gold, response, truth in RESPONSES:
    cases.append({"source": src, "style": style, "gold": gold, "pred": response,
                  "truth": truth})
  return cases


# Runs inside the math-verify venv: one JSON request per line in, one JSON result per line out.
_DRIVER = r"""
import json, sys, time, logging
logging.disable(logging.CRITICAL)
from math_verify import parse, verify
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
  req = json.loads(line)
  t0 = time.perf_counter()
  pred = "$" + req["pred"] + "$" if req["wrap"] else req["pred"]
  try:
    ok = bool(verify(parse("$" + req["gold"] + "$"), parse(pred)))
    err = None
  except BaseException as e:
    ok, err = False, type(e).__name__ + ": " + str(e)[:200]
  print(json.dumps({"ok": ok, "err": err, "t": time.perf_counter() - t0}), flush=True)
"""


def _materialize(x: str | dict) -> str:
  if isinstance(x, str):
    return x
  return x["prefix"] + x["repeat"] * x["times"] + x["suffix"]


def _load(name: str) -> list[dict]:
  with open(DATA / name, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]


class MathVerify:
  """math-verify in a subprocess, restarted after a hard kill."""

  def __init__(self, python: str, kill_after: float):
    self.python, self.kill_after = python, kill_after
    self.proc: subprocess.Popen | None = None
    self.buf = b""

  def _start(self) -> None:
    self.proc = subprocess.Popen(
        [self.python, "-c", _DRIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, bufsize=0,
    )
    self.buf = b""
    line = self._line(time.monotonic() + 300)
    if line is None or not json.loads(line).get("ready"):
      raise RuntimeError("math-verify driver did not start")

  def _line(self, deadline: float) -> bytes | None:
    fd = self.proc.stdout.fileno()
    while b"\n" not in self.buf:
      left = deadline - time.monotonic()
      if left <= 0:
        return None
      r, _, _ = select.select([fd], [], [], left)
      if not r:
        return None
      chunk = os.read(fd, 1 << 20)
      if not chunk:
        return None
      self.buf += chunk
    line, _, self.buf = self.buf.partition(b"\n")
    return line

  def check(self, pred: str, gold: str, wrap: bool = True
            ) -> tuple[bool | None, float, str | None]:
    """(result or None if killed, wall seconds, error)."""
    if self.proc is None or self.proc.poll() is not None:
      self._start()
    t0 = time.monotonic()
    req = {"pred": pred, "gold": gold, "wrap": wrap}
    self.proc.stdin.write((json.dumps(req) + "\n").encode())
    line = self._line(t0 + self.kill_after)
    dt = time.monotonic() - t0
    if line is None:
      self.close()
      return None, dt, f"killed after {self.kill_after:g}s"
    res = json.loads(line)
    return res["ok"], dt, res["err"]

  def close(self) -> None:
    if self.proc is not None:
      self.proc.kill()
      self.proc.wait()
      self.proc = None


def _ours(pred: str, gold: str, response: bool = False) -> tuple[bool, float]:
  t0 = time.monotonic()
  if response:
    pred = math_equiv.extract_answer(pred, lenient=True)
  ok = pred is not None and math_equiv.is_equiv(pred, gold)
  return ok, time.monotonic() - t0


def _fmt_s(dt: float, killed: bool, kill_after: float) -> str:
  return f">{kill_after:g}" if killed else f"{dt:.3f}"


def _short(s: str, n: int = 38) -> str:
  s = s.replace("\n", " ")
  return s if len(s) <= n else s[: n - 3] + "..."


def _tail(s: str, n: int = 40) -> str:
  s = " ".join(s.split())
  return s if len(s) <= n else "..." + s[-(n - 3):]


def run_suite(mv: MathVerify | None) -> list[dict]:
  """Scores the suite with both checkers and prints its tables; returns the rows."""
  rows = []
  for c in suite():
    response = c["style"] != "answer"
    ok, dt = _ours(c["pred"], c["gold"], response)
    row = {**c, "r1jax": ok, "r1jax_s": dt}
    if mv is not None:
      mok, mdt, err = mv.check(c["pred"], c["gold"], wrap=not response)
      row.update({"math_verify": bool(mok), "math_verify_s": mdt, "math_verify_err": err})
    rows.append(row)
  n = len(rows)
  pos = sum(r["truth"] for r in rows)
  print(f"Suite: {n} cases ({pos} acceptable, {n - pos} not), "
        f"{sum(r['style'] == 'answer' for r in rows)} bare answers and "
        f"{sum(r['style'] != 'answer' for r in rows)} responses; sources "
        + ", ".join(f"{s} {sum(r['source'] == s for r in rows)}" for s in _STYLES) + ".")
  print(f"{'checker':<13}{'correct':>12}{'accuracy':>10}{'false pos':>11}{'false neg':>11}")
  names = ["r1jax"] + (["math_verify"] if mv is not None else [])
  for name in names:
    right = sum(r[name] is r["truth"] for r in rows)
    fp = sum(r[name] and not r["truth"] for r in rows)
    fn = sum(not r[name] and r["truth"] for r in rows)
    print(f"{name:<13}{right:>7}/{n:<4}{100 * right / n:>9.1f}%{fp:>11}{fn:>11}")
  if mv is None:
    return rows
  acc = [r for r in rows if r["math_verify"]]
  rej = [r for r in rows if not r["math_verify"]]
  agree_acc = sum(r["r1jax"] for r in acc)
  agree_rej = sum(not r["r1jax"] for r in rej)
  print(f"\nAgreement with math-verify: {agree_acc}/{len(acc)} "
        f"({100 * agree_acc / max(len(acc), 1):.1f}%) of the cases it accepts, "
        f"{agree_rej}/{len(rej)} ({100 * agree_rej / max(len(rej), 1):.1f}%) of those it "
        f"rejects; {agree_acc + agree_rej}/{n} ({100 * (agree_acc + agree_rej) / n:.1f}%) "
        "in all.")
  for src in _STYLES:
    sub = [r for r in rows if r["source"] == src]
    agree = sum(r["r1jax"] is r["math_verify"] for r in sub)
    print(f"  {src:<11} {agree}/{len(sub)} ({100 * agree / len(sub):.1f}%)")
  dis = [r for r in rows if r["r1jax"] is not r["math_verify"]]
  print(f"\nDisagreements ({len(dis)}), with the side the hand label supports:")
  print(f"  {'right':<12}{'label':<7}{'r1jax':<7}{'m-v':<7}{'style':<8}{'answer':<42}gold")
  for r in sorted(dis, key=lambda r: (r["r1jax"] is not r["truth"], r["source"])):
    right = "r1jax" if r["r1jax"] is r["truth"] else "math-verify"
    print(f"  {right:<12}{r['truth']!s:<7}{r['r1jax']!s:<7}{r['math_verify']!s:<7}"
          f"{r['style']:<8}{_tail(r['pred']) if r['style'] != 'answer' else _short(r['pred'], 40):<42}"
          f"{_short(r['gold'], 30)}")
  return rows


def run_labelled(mv: MathVerify | None) -> list[dict]:
  """Accuracy of both checkers on the labelled set; prints the wrong cases."""
  labelled = _load("math_equiv_cases.jsonl")
  rows = []
  wrong = {"r1jax": [], "math-verify": []}
  times = {"r1jax": [], "math-verify": []}
  for c in labelled:
    ok, dt = _ours(c["pred"], c["gold"])
    times["r1jax"].append(dt)
    row = {**c, "r1jax": ok, "r1jax_s": dt}
    if ok is not c["equiv"]:
      wrong["r1jax"].append((c, ok))
    if mv is not None:
      mok, mdt, err = mv.check(c["pred"], c["gold"])
      times["math-verify"].append(mdt)
      row.update({"math_verify": mok, "math_verify_s": mdt, "math_verify_err": err})
      if mok is not c["equiv"]:
        wrong["math-verify"].append((c, mok))
    rows.append(row)
  n = len(labelled)
  print(f"\nLabelled set: {n} pairs ({sum(c['equiv'] for c in labelled)} equivalent). "
        'math-verify inputs wrapped as "$" + s + "$"; verify(parse(gold), parse(pred)).')
  print(f"{'checker':<13}{'correct':>10}{'accuracy':>10}{'wrong':>7}{'mean s':>9}{'max s':>9}")
  for name in ("r1jax", "math-verify"):
    if not times[name]:
      continue
    k = len(wrong[name])
    print(f"{name:<13}{n - k:>6}/{n:<3}{100 * (n - k) / n:>9.1f}%{k:>7}"
          f"{sum(times[name]) / n:>9.3f}{max(times[name]):>9.3f}")
  for name in ("r1jax", "math-verify"):
    if wrong[name]:
      print(f"\nWrong for {name}:")
      for c, got in wrong[name]:
        print(f"  label={str(c['equiv']):<5} got={str(got):<5} {_short(c['pred'])!s:<40} vs "
              f"{_short(c['gold'])!s:<30} ({c['note']})")
  return rows


def run_adversarial(mv: MathVerify | None, kill_after: float) -> list[dict]:
  """Seconds per adversarial input for both checkers (all expected False)."""
  adversarial = _load("math_equiv_adversarial.jsonl")
  print(f"\nAdversarial set: {len(adversarial)} inputs (pred vs gold, expected False); "
        f"seconds per call; math-verify hard-killed after {kill_after:g} s.")
  print(f"{'input':<46}{'r1jax':>14}{'math-verify':>18}")
  worst = {"r1jax": 0.0, "math-verify": 0.0}
  over2 = {"r1jax": 0, "math-verify": 0}
  rows = []
  for c in adversarial:
    pred = _materialize(c["pred"])
    ok, dt = _ours(pred, c["gold"])
    worst["r1jax"] = max(worst["r1jax"], dt)
    over2["r1jax"] += dt > 2.0
    row = {"note": c["note"], "gold": c["gold"], "r1jax": ok, "r1jax_s": dt}
    cell_mv = "-"
    if mv is not None:
      mok, mdt, err = mv.check(pred, c["gold"])
      worst["math-verify"] = max(worst["math-verify"], mdt)
      over2["math-verify"] += mdt > 2.0
      cell_mv = f"{'killed' if mok is None else mok!s:>6} {_fmt_s(mdt, mok is None, kill_after):>8}"
      row.update({"math_verify": mok, "math_verify_s": mdt, "math_verify_err": err})
    rows.append(row)
    print(f"{_short(c['note'], 44):<46}{ok!s:>6} {dt:>7.3f}{cell_mv:>18}")
  print(f"\nWorst case per adversarial input: r1jax {worst['r1jax']:.3f} s "
        f"({over2['r1jax']} over 2 s)"
        + (f"; math-verify {worst['math-verify']:.3f} s ({over2['math-verify']} over 2 s)"
           if mv else ""))
  return rows


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--peers-python", default=str(ROOT / ".venv-peers" / "bin" / "python"))
  ap.add_argument("--kill-after", type=float, default=30.0,
                  help="hard wall-clock kill per math-verify case")
  ap.add_argument("--skip-adversarial", action="store_true", help="leave out the slow part")
  ap.add_argument("--json", help="also write all results to this JSON file")
  args = ap.parse_args()

  have_mv = pathlib.Path(args.peers_python).exists()
  mv = MathVerify(args.peers_python, args.kill_after) if have_mv else None
  if not have_mv:
    print(f"math-verify venv not found at {args.peers_python}; running ours only\n")
  math_equiv.warmup()
  math_equiv.is_equiv("x+1", "1+x")  # helper start-up is not part of any measurement
  out = {"suite": run_suite(mv), "labelled": run_labelled(mv)}
  if not args.skip_adversarial:
    out["adversarial"] = run_adversarial(mv, args.kill_after)
  if mv is not None:
    mv.close()
  if args.json:
    with open(args.json, "w") as f:
      json.dump(out, f, indent=1, default=str)


if __name__ == "__main__":
  main()
