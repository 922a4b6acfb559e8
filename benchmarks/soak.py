r"""Soak: the tiny R1-Zero GRPO stage, run for a long time, watching host memory and step
time for drift (a leak, a cache that grows, steps that slow down).

  python benchmarks/soak.py --minutes=60 [--report_every_s=60] [--json=/tmp/soak.json]

Runs experiments/r1_zero_tiny.py's `r1_zero` stage through the pipeline, in this
process, as the demo configures it (16 prompts x 16 completions of up to 40 tokens per
step, rule rewards in 2 worker processes, an async checkpoint and the held-out curve
every 10 steps, a metrics row every step) except that it starts from random weights
and its step count is out of reach; it stops after --minutes. The stage's per-step
progress lines give way to the soak's reports.

Every step records host RSS (this process, and with its children: the reward workers),
the step's wall time and CPU time (this process's threads and its children; from one
batch to the next: rollouts, rewards, update, metrics, and on every 10th step the
checkpoint and the curve). CPU time per step is the signal to read on a shared machine:
wall time follows the neighbours' load, CPU time much less. Every --report_every_s a
line gives the window's medians, RSS and the load average. At the end, over the steps
after --warmup_steps (compilation, the first checkpoint and curve): least-squares
slopes against time of RSS, wall and CPU time per step, and the mean completion length
(the work per step: if it drifts, so may step time), each with two standard errors and
as a share of its median per hour, and a verdict on each.
"""

import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import psutil
from absl import app, flags, logging

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

_MINUTES = flags.DEFINE_float("minutes", 60.0, "How long to run the loop.")
_REPORT = flags.DEFINE_float("report_every_s", 60.0, "Seconds between progress reports.")
_WARMUP = flags.DEFINE_integer("warmup_steps", 12, "Steps left out of the trend (compiling, "
                               "the first checkpoint and held-out curve at step 10).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (must not exist; default: a "
                               "temporary one, deleted at the end).")
_JSON = flags.DEFINE_string("json", None, "Write every step's record and the verdict here.")
_DRIFT = flags.DEFINE_float("drift_pct_per_hour", 2.0, "A trend is called drift when it is "
                            "clear of the noise (2 standard errors) and at least this share "
                            "of its median per hour.")


class _TimeUp(Exception):
  pass


def _usage() -> tuple[float, float, float]:
  """(RSS MiB of this process, RSS MiB with its children, CPU seconds of both so far)."""
  me = psutil.Process()
  own, cpu = me.memory_info().rss, sum(me.cpu_times()[:2])
  kids = 0
  for child in me.children(recursive=True):
    try:
      kids += child.memory_info().rss
      cpu += sum(child.cpu_times()[:2])
    except psutil.Error:
      pass  # a worker that just exited
  return own / 2**20, (own + kids) / 2**20, cpu


def trend(t_h: np.ndarray, y: np.ndarray) -> dict[str, float]:
  """Least-squares slope of y against t (hours), its standard error, and the median."""
  a = np.vstack([t_h, np.ones_like(t_h)]).T
  (slope, icpt), *_ = np.linalg.lstsq(a, y, rcond=None)
  resid = y - (slope * t_h + icpt)
  spread = max(((t_h - t_h.mean()) ** 2).sum(), 1e-12)
  se = float(np.sqrt(resid @ resid / max(len(y) - 2, 1) / spread))
  med = float(np.median(y))
  return {"slope_per_h": float(slope), "se_per_h": se, "median": med,
          "pct_per_h": float(100 * slope / med) if med else 0.0}


def verdict(name: str, tr: dict[str, float], unit: str, drift_pct: float) -> str:
  s, se, pct = tr["slope_per_h"], tr["se_per_h"], tr["pct_per_h"]
  line = (f"{name}: median {tr['median']:.4g} {unit}, slope {s:+.3g} +- {2 * se:.2g} "
          f"{unit}/h ({pct:+.1f}%/h)")
  if abs(s) - 2 * se > 0 and abs(pct) > drift_pct:
    return line + (" -> GROWS" if s > 0 else " -> falls")
  return line + " -> flat within the noise"


def main(argv):
  del argv
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # as the CLI: Orbax is chatty at INFO
  import importlib.util

  import r1jax
  r1jax.use_compilation_cache()
  from r1jax import pipeline
  from r1jax.stages import common
  from r1jax.train import loop
  from r1jax.train import metrics as metrics_lib

  spec = importlib.util.spec_from_file_location(
      "r1_zero_tiny", os.path.join(ROOT, "experiments", "r1_zero_tiny.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  config = mod.get_config()
  config.stages = ("r1_zero",)
  r = config.r1_zero
  r.input = "random"
  r.steps = 10**7

  workdir = _WORKDIR.value or tempfile.mkdtemp(prefix="r1jax_soak_")
  if _WORKDIR.value and os.path.exists(workdir):
    raise app.UsageError(f"--workdir={workdir} exists; the soak starts a fresh run.")
  records: list[dict] = []
  t0 = last = last_cpu = last_report = None
  budget = 60 * _MINUTES.value

  def probe(step: int) -> None:
    """At the start of the batch of loop step `step`: the record of the step before."""
    nonlocal t0, last, last_cpu, last_report
    now = time.time()
    own, total, cpu = _usage()
    if t0 is None:
      t0 = last_report = now
    else:
      records.append({"step": step, "t_s": now - t0, "step_s": now - last,
                      "cpu_s": cpu - last_cpu, "rss_mib": own, "rss_total_mib": total,
                      "load": os.getloadavg()[0],
                      "periodic": step % r.checkpoint_every == 0
                      or bool(r.eval_every and step % r.eval_every == 0)})
      if now - last_report >= _REPORT.value:
        window = [x for x in records if x["t_s"] > last_report - t0]
        print(f"soak {(now - t0) / 60:6.1f} min  step {step:5d}  per step: wall "
              f"{np.median([x['step_s'] for x in window]):.3f} s, CPU "
              f"{np.median([x['cpu_s'] for x in window]):.3f} s (medians)  RSS {own:.0f} MiB "
              f"(+children {total:.0f})  load {os.getloadavg()[0]:.1f}", flush=True)
        last_report = now
      if now - t0 >= budget:
        raise _TimeUp()
    last, last_cpu = now, cpu

  def train(state, shardings, step_fn, produce, **kw):
    def timed(step, st):
      probe(step)
      return produce(step, st)
    return orig_train(state, shardings, step_fn, timed, **kw)

  def log(msg: str) -> None:
    if not msg.startswith("r1_zero step "):
      orig_log(msg)

  orig_train, loop.train = loop.train, train
  orig_log, common.log = common.log, log
  load0 = os.getloadavg()
  lengths = {}
  try:
    pipeline.train_and_evaluate(config, workdir)
  except _TimeUp:
    pass
  finally:
    loop.train, common.log = orig_train, orig_log
    path = os.path.join(workdir, "r1_zero", "metrics.jsonl")
    if os.path.exists(path):
      lengths = {row["step"]: row["completion/length_mean"]
                 for row in metrics_lib.read_metrics(path) if "completion/length_mean" in row}
    if not _WORKDIR.value:
      shutil.rmtree(workdir, ignore_errors=True)

  kept = [x for x in records if x["step"] > _WARMUP.value]
  if len(kept) < 3:
    print(f"soak: only {len(kept)} steps after the warm-up; run longer.")
    return
  plain = [x for x in kept if not x["periodic"]]
  hours = lambda xs: np.asarray([x["t_s"] for x in xs]) / 3600
  col = lambda xs, k: np.asarray([x[k] for x in xs])
  with_len = [{**x, "length": lengths[x["step"]]} for x in kept if x["step"] in lengths]
  out = {
      "malloc_arenas": r1jax.malloc_arena_setting()[0],
      "minutes": _MINUTES.value, "steps": records[-1]["step"], "warmup_steps": _WARMUP.value,
      "load_start": load0, "load_end": os.getloadavg(),
      "load_mean": float(np.mean(col(kept, "load"))),
      "rss": trend(hours(kept), col(kept, "rss_mib")),
      "rss_total": trend(hours(kept), col(kept, "rss_total_mib")),
      "cpu_plain": trend(hours(plain), col(plain, "cpu_s")),
      "wall_plain": trend(hours(plain), col(plain, "step_s")),
      "wall_all": trend(hours(kept), col(kept, "step_s")),
      "length": trend(hours(with_len), col(with_len, "length")) if len(with_len) > 2 else None,
  }
  first, end = kept[0], kept[-1]
  print(f"\nsoak: {out['steps']} steps in {end['t_s'] / 60:.1f} min; trends over steps "
        f"{first['step']}-{end['step']} ({len(kept)} steps, {len(plain)} without a "
        f"checkpoint or curve); load average {load0[0]:.1f} at the start, "
        f"{out['load_end'][0]:.1f} at the end, {out['load_mean']:.1f} on average")
  print(f"  glibc malloc arenas: {out['malloc_arenas']}")
  print(f"  RSS {first['rss_mib']:.0f} -> {end['rss_mib']:.0f} MiB (this process), "
        f"{first['rss_total_mib']:.0f} -> {end['rss_total_mib']:.0f} MiB (with reward workers)")
  d = _DRIFT.value
  lines = [verdict("RSS, this process", out["rss"], "MiB", d),
           verdict("RSS with reward workers", out["rss_total"], "MiB", d),
           verdict("CPU time per step (no checkpoint/curve)", out["cpu_plain"], "s", d),
           verdict("wall time per step (no checkpoint/curve)", out["wall_plain"], "s", d),
           verdict("wall time per step (all)", out["wall_all"], "s", d)]
  if out["length"] is not None:
    lines.append(verdict("mean completion length", out["length"], "tokens", d))
  for line in lines:
    print("  " + line)
  out["verdict"] = lines
  if _JSON.value:
    with open(_JSON.value, "w") as f:
      json.dump({**out, "records": records}, f, indent=1)


if __name__ == "__main__":
  app.run(main)
