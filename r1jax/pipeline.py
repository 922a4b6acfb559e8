"""Runs an experiment's stages in order: `train_and_evaluate(config, workdir)`.

`config.stages` names the stage sections in order; each section's `kind` picks its
module in r1jax.stages (a registry, no `if` chain) and its `input` names the weights it
starts from (r1jax.stages documents both). This module knows no task, template or
stage by name: it resolves inputs, skips finished stages (DIR/<stage>/output.json),
lets a partial one resume from its checkpoints (same trajectory as uninterrupted),
and at the end writes DIR/summary.json, prints the evaluation table and plots the GRPO
stages' curves (DIR/accuracy.png, DIR/response_length.png; paper Figs. 2 and 3).
In a multi-process run (r1jax.distributed) every process runs every stage; process 0
writes the files and the processes meet at a barrier after each stage.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from r1jax import configs, distributed, sharding, stages
from r1jax.stages import common
from r1jax.train import metrics as metrics_lib

log = common.log
StageError = common.StageError


def train_and_evaluate(config: Any, workdir: str, *, only: str | None = None,
                       crash_after_step: int | None = None) -> dict[str, Any]:
  """Runs the config's stages (or `only` one, whose inputs must exist); returns a summary."""
  configs.validate(config)
  if only is not None and only not in config.stages:
    raise configs.ConfigError(f"--only={only!r} is not a stage of this experiment; stages: "
                              f"{list(config.stages)}.")
  os.makedirs(workdir, exist_ok=True)
  mesh = sharding.make_mesh(config.mesh)
  run = common.Run(config, workdir, mesh)
  run.crash_after_step = crash_after_step
  t0 = time.time()
  summary: dict[str, Any] = {"stages": {}}
  for name in config.stages:
    if only is not None and name != only:
      continue
    section = config[name]
    out = run.finished(name)
    if out is not None:
      log(f"{name}: finished ({out.kind}), skipping; {run.output_path(name)}")
    else:
      source = run.source(section.input)
      t_stage = time.time()
      log(f"{name}: {section.kind} from {source.ref} ...")
      out = stages.get(section.kind).run(run, name, section, source)
      distributed.barrier(f"stage {name} done")  # its files are written before any reads
      log(f"{name}: done in {(time.time() - t_stage) / 60:.1f} min")
    summary["stages"][name] = out.summary
  results = _read_json(os.path.join(workdir, "eval.json"))
  if results:
    summary["eval"] = {k: {m: v for m, v in r.items() if m != "examples"}
                       for k, r in results.items()}
    log(_eval_table(results))
  summary["plots"] = (write_plots(config, workdir) + write_stage_plot(results, workdir)
                      if distributed.is_primary() else [])
  if summary["plots"]:
    log(f"  plots: {', '.join(summary['plots'])}")
  summary["elapsed_s"] = time.time() - t0
  common.write_json(os.path.join(workdir, "summary.json"), summary)
  return summary


def _read_json(path: str) -> dict[str, Any]:
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def eval_row(r: dict[str, Any]) -> str:
  """One line of the evaluation table."""
  fmt = lambda v: "  -  " if v is None else f"{v:.3f}"
  if "pass@1" not in r:  # a reward model's entry
    return (f"held-out pairwise accuracy {r['pairwise_accuracy']:.3f} on {r['pairs']} "
            f"pairs ({r.get('preference', '')}, reads the {r.get('view', '')})")
  row = (f"pass@1 {r['pass@1']:.3f}  cons@{r['k']} {r['cons@k']:.3f}  "
         f"format {r['format_rate']:.3f}  tokens {r['mean_response_tokens']:.1f}  "
         f"thinks {r['think_rate']:.2f} (acc {fmt(r['accuracy_thinking'])}"
         f" thinking, {fmt(r['accuracy_not_thinking'])} not)")
  if r.get("language_mixing") is not None:  # tasks whose problems carry a language
    row += f"  readable {r['readability']:.2f}  mixing {r['language_mixing']:.2f}"
  if "helpfulness_rule" in r:  # general requests
    row += f"  helpful {r['helpfulness_rule']:.2f}  harmful {r['harmful_rate']:.2f}"
    if "helpfulness_rm" in r:
      row += f" (RMs {r['helpfulness_rm']:+.2f} / {r.get('harmlessness_rm', 0.0):+.2f})"
  return row


def _eval_table(results: dict[str, Any]) -> str:
  r0 = next((r for r in results.values() if "temperature" in r), None)  # not an RM's
  lines = ["\n          held-out" + ("" if r0 is None else
                                     f" (k samples, T={r0['temperature']:.1f}, top-p "
                                     f"{r0['top_p']:.2f})")]
  width = max(len(k) for k in results)
  for key, r in results.items():
    for task, tr in (r["tasks"].items() if "tasks" in r else [("", r)]):
      label = f"{key} {task}".strip()
      lines.append(f"  {label:{max(width, 6)}s}  {eval_row(tr)}")
  return "\n".join(lines)


def write_plots(config: Any, workdir: str) -> list[str]:
  """Held-out pass@1, mean response length and (when measured) language mixing against
  RL step, a line per GRPO stage."""
  curves = {}
  for name in config.stages:
    path = os.path.join(workdir, name, "metrics.jsonl")
    if config[name].kind == "grpo" and os.path.exists(path):
      rows = [r for r in metrics_lib.read_metrics(path) if "eval/pass@1" in r]
      if rows:
        curves[name] = rows
  if not curves:
    return []
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  paths = []
  plots = [("eval/pass@1", "held-out pass@1", "accuracy.png"),
           ("eval/mean_response_tokens", "mean response length (tokens)",
            "response_length.png"),
           ("eval/language_mixing", "share of samples mixing languages",
            "language_mixing.png")]
  for key, label, file in plots:
    measured = {n: rows for n, rows in curves.items() if key in rows[0]}
    if not measured:
      continue
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, rows in measured.items():
      steps = [r["step"] for r in rows]
      ax.plot(steps, [r[key] for r in rows], marker="o", label=name)
      if key == "eval/pass@1":
        ax.plot(steps, [r["eval/cons@k"] for r in rows], marker="x", linestyle="--",
                label=f"{name} cons@k")
    ax.legend()
    ax.set_xlabel("RL step")
    ax.set_ylabel(label)
    ax.set_title(f"GRPO: {label}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = os.path.join(workdir, file)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    paths.append(path)
  return paths


STAGE_METRICS = (("pass@1", "reasoning pass@1"), ("readability", "readability"),
                 ("language_mixing", "language mixing"),
                 ("helpfulness_rule", "helpful (rule)"), ("harmful_rate", "harmful (rule)"))


def write_stage_plot(results: dict[str, Any], workdir: str) -> list[str]:
  """stages.png: each metric of STAGE_METRICS across the stages of the arm with the most
  "<arm>/<stage>" entries (left) and its reward-model scores (right); every other arm's
  last entry is drawn as a hollow marker at the last stage, for comparison."""
  arms: dict[str, list[tuple[str, dict]]] = {}
  for key, r in results.items():
    if "/" in key and "pass@1" in r:
      arm, stage = key.split("/", 1)
      arms.setdefault(arm, []).append((stage, r))
  if not arms or max(len(v) for v in arms.values()) < 2:
    return []
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  main = max(arms, key=lambda a: len(arms[a]))
  stages_ = arms[main]
  x = list(range(len(stages_)))
  fig, (ax, ax_rm) = plt.subplots(1, 2, figsize=(10, 3.8))
  for (key, label), color in zip(STAGE_METRICS, plt.rcParams["axes.prop_cycle"].by_key()["color"]):
    ys = [r.get(key) for _, r in stages_]
    if all(y is None for y in ys):
      continue
    ax.plot(x, [float("nan") if y is None else y for y in ys], marker="o", color=color,
            label=label)
    for arm, entries in arms.items():
      if arm != main and entries[-1][1].get(key) is not None:
        ax.plot([x[-1] + 0.15], [entries[-1][1][key]], marker="s", fillstyle="none",
                color=color, linestyle="none")
  others = [a for a in arms if a != main]
  ax.set_xticks(x, [s for s, _ in stages_], rotation=20)
  ax.set_ylim(-0.03, 1.03)
  ax.set_title(f"{main} by stage" + (f" (hollow: {', '.join(others)}, last entry)"
                                     if others else ""), fontsize=9)
  ax.legend(fontsize=7)
  ax.grid(alpha=0.3)
  for key, label in (("helpfulness_rm", "helpfulness RM"), ("harmlessness_rm", "harmlessness RM")):
    ys = [r.get(key) for _, r in stages_]
    if any(y is not None for y in ys):
      ax_rm.plot(x, [float("nan") if y is None else y for y in ys], marker="o", label=label)
  ax_rm.set_xticks(x, [s for s, _ in stages_], rotation=20)
  ax_rm.set_title("mean reward-model score on held-out requests", fontsize=9)
  if ax_rm.lines:
    ax_rm.legend(fontsize=7)
  ax_rm.grid(alpha=0.3)
  fig.tight_layout()
  path = os.path.join(workdir, "stages.png")
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return [path]
