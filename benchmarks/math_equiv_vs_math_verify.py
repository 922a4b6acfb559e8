"""Compare r1jax.rewards.math_equiv with Hugging Face math-verify.

Runs both checkers on the labelled set (tests/rewards/data/math_equiv_cases.jsonl)
and on the adversarial set (tests/rewards/data/math_equiv_adversarial.jsonl) and
prints accuracy, the wrong cases, and seconds per adversarial input.

math-verify runs in its own virtual environment through a subprocess, one case
at a time, with a hard wall-clock kill (--kill-after) so a hang is reported as
">N s" instead of stalling the benchmark. Set it up once with:

    python3 -m venv /work/main/.venv-peers
    /work/main/.venv-peers/bin/pip install math-verify

Inputs to math-verify are wrapped fairly as "$" + s + "$" (its LaTeX extractor
needs math delimiters) and scored with ``verify(parse(gold), parse(pred))``
using its default settings (5 s parse and verify timeouts). Our checker gets
the raw strings and its defaults (``is_equiv(pred, gold)``, 2 s timeout).

Usage:
    .venv/bin/python benchmarks/math_equiv_vs_math_verify.py [--kill-after 30]
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

# Runs inside the math-verify venv: one JSON request per line in, one JSON result per line out.
_DRIVER = r"""
import json, sys, time, logging
logging.disable(logging.CRITICAL)
from math_verify import parse, verify
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    t0 = time.perf_counter()
    try:
        ok = bool(verify(parse("$" + req["gold"] + "$"), parse("$" + req["pred"] + "$")))
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

    def check(self, pred: str, gold: str) -> tuple[bool | None, float, str | None]:
        """(result or None if killed, wall seconds, error)."""
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        t0 = time.monotonic()
        self.proc.stdin.write((json.dumps({"pred": pred, "gold": gold}) + "\n").encode())
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


def _ours(pred: str, gold: str) -> tuple[bool, float]:
    t0 = time.monotonic()
    ok = math_equiv.is_equiv(pred, gold)
    return ok, time.monotonic() - t0


def _fmt_s(dt: float, killed: bool, kill_after: float) -> str:
    return f">{kill_after:g}" if killed else f"{dt:.3f}"


def _short(s: str, n: int = 38) -> str:
    s = s.replace("\n", " ")
    return s if len(s) <= n else s[: n - 3] + "..."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers-python", default=str(ROOT / ".venv-peers" / "bin" / "python"))
    ap.add_argument("--kill-after", type=float, default=30.0, help="hard wall-clock kill per math-verify case")
    ap.add_argument("--json", help="also write all results to this JSON file")
    args = ap.parse_args()

    labelled = _load("math_equiv_cases.jsonl")
    adversarial = _load("math_equiv_adversarial.jsonl")
    have_mv = pathlib.Path(args.peers_python).exists()
    mv = MathVerify(args.peers_python, args.kill_after) if have_mv else None
    if not have_mv:
        print(f"math-verify venv not found at {args.peers_python}; running ours only\n")

    math_equiv.warmup()
    math_equiv.is_equiv("x+1", "1+x")  # helper start-up is not part of any measurement

    out: dict = {"labelled": [], "adversarial": []}
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
        out["labelled"].append(row)

    n = len(labelled)
    print(f"Labelled set: {n} pairs ({sum(c['equiv'] for c in labelled)} equivalent). "
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

    print(f"\nAdversarial set: {len(adversarial)} inputs (pred vs gold, expected False); "
          f"seconds per call; math-verify hard-killed after {args.kill_after:g} s.")
    print(f"{'input':<46}{'r1jax':>14}{'math-verify':>18}")
    worst = {"r1jax": 0.0, "math-verify": 0.0}
    over2 = {"r1jax": 0, "math-verify": 0}
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
            cell_mv = f"{'killed' if mok is None else mok!s:>6} {_fmt_s(mdt, mok is None, args.kill_after):>8}"
            row.update({"math_verify": mok, "math_verify_s": mdt, "math_verify_err": err})
        out["adversarial"].append(row)
        print(f"{_short(c['note'], 44):<46}{ok!s:>6} {dt:>7.3f}{cell_mv:>18}")
    print(f"\nWorst case per adversarial input: r1jax {worst['r1jax']:.3f} s "
          f"({over2['r1jax']} over 2 s)"
          + (f"; math-verify {worst['math-verify']:.3f} s ({over2['math-verify']} over 2 s)" if mv else ""))
    if mv is not None:
        mv.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=str)


if __name__ == "__main__":
    main()
