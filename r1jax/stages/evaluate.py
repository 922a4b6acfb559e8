"""`evaluate` stages: the paper's protocol on held-out problems of one or more tasks.

k samples per problem at temperature 0.6 and top-p 0.95 with a capped length; pass@1
is the mean over the k samples, cons@k the majority vote over extracted answers
(r1jax.eval.evaluate). The result goes to DIR/eval.json under `report_as` (default:
the stage's name) with the first task's metrics at the top level and, with several
tasks, every task's under "tasks" ({"gsm8k:test": {...}, "math500:test": {...}});
DIR/<stage>/eval.json holds the same with a few example completions per task.

With `general` (held-out general requests, e.g. ('general:test',)), the entry also
holds what RL for all scenarios is judged on (paper section 2.3.4), over k samples per
request: `helpfulness_rule` and `harmful_rate` (the miniature world's rule checks,
r1jax.data.general) and, with `helpfulness_rm` / `harmlessness_rm` naming reward_model
stages, `helpfulness_rm` / `harmlessness_rm` (their mean scores).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from r1jax import configs
from r1jax.rewards import language
from r1jax.stages import common


def protocol_config(**overrides: Any) -> configs.ConfigDict:
  """The evaluation protocol (shared by evaluate stages and GRPO's periodic curves)."""
  c = configs.ConfigDict()
  c.tasks = ()  # Held-out 'task:split' sets, e.g. ('gsm8k:test', 'math500:test').
  c.num_problems = 500  # Problems per set (the first N of the split; 0 = all).
  c.k = 4  # Samples per problem (pass@1 averages them; cons@k votes).
  c.temperature = 0.6  # Paper's evaluation temperature.
  c.top_p = 0.95  # Paper's evaluation top-p.
  c.max_new_tokens = 1024  # Generation cap.
  c.batch_rows = 256  # Sequences per sampler call.
  c.general = ()  # Held-out general-request sets, e.g. ('general:test',).
  c.helpfulness_rm = ""  # A reward_model stage scored on the general samples ('' = none).
  c.harmlessness_rm = ""  # Another ('' = none).
  configs.apply_overrides(c, overrides)
  return c


GENERAL_KEYS = ("helpfulness_rule", "harmful_rate", "helpfulness_rm", "harmlessness_rm")


def default_config() -> configs.ConfigDict:
  c = protocol_config()
  c.kind = "evaluate"
  c.input = ""  # The weights to evaluate: a stage name, 'init', 'random' or 'hf:DIR'.
  c.report_as = ""  # Key in DIR/eval.json ('' = the stage's name).
  return c


def validate(section: Any, where: str, mesh_sizes: dict[str, int]) -> None:
  del mesh_sizes  # the sampler pads its rows to the mesh
  check_protocol(section, where)


def check_protocol(p: Any, where: str) -> None:
  if not p.tasks:
    raise configs.ConfigError(f"{where}.tasks is empty; name held-out sets, e.g. "
                              f"('gsm8k:test',).")
  if isinstance(p.tasks, str):
    raise configs.ConfigError(f"{where}.tasks={p.tasks!r} must be a tuple of 'task:split'.")
  if p.k < 1 or p.max_new_tokens < 1 or p.batch_rows < 1 or p.num_problems < 0:
    raise configs.ConfigError(f"{where}: k, max_new_tokens and batch_rows must be >= 1 and "
                              f"num_problems >= 0 (got {p.k}, {p.max_new_tokens}, "
                              f"{p.batch_rows}, {p.num_problems}).")
  if isinstance(p.general, str):
    raise configs.ConfigError(f"{where}.general={p.general!r} must be a tuple of 'task:split'.")
  if (p.helpfulness_rm or p.harmlessness_rm) and not p.general:
    raise configs.ConfigError(f"{where}: helpfulness_rm/harmlessness_rm score general "
                              f"samples; name the held-out sets in {where}.general.")
  if not 0 < p.top_p <= 1 or p.temperature < 0:
    raise configs.ConfigError(f"{where}: top_p must be in (0, 1] and temperature >= 0.")


def _problems(run: common.Run, ref: str, n: int) -> tuple[Any, list[dict[str, Any]]]:
  """The task of a 'task:split' ref and its first `n` problems (all with n = 0)."""
  task, split = run.tasks.resolve(ref)
  probs = list(task.problems(split))
  return task, (probs[:n] if n else probs)


def evaluate_tasks(run: common.Run, p: Any, params: Any, model_cfg: Any, tok: Any, *,
                   num_problems: int | None = None, k: int | None = None
                   ) -> dict[str, dict[str, Any]]:
  """{task ref: metrics} of `params` under the protocol `p` (k and N overridable)."""
  from r1jax.eval import evaluate as eval_lib

  n = p.num_problems if num_problems is None else num_problems
  out = {}
  for ref in p.tasks:
    task, probs = _problems(run, ref, n)
    out[ref] = eval_lib.evaluate(
        params, model_cfg, tok, [task.prompt(q["question"], tok) for q in probs],
        [q["answer"] for q in probs], k=p.k if k is None else k, temperature=p.temperature,
        top_p=p.top_p, max_new_tokens=p.max_new_tokens, seed=run.config.seed,
        batch_rows=p.batch_rows, mesh=run.mesh, rules=run.rules,
        languages=[language.target(q) for q in probs])
  return out


def evaluate_general(run: common.Run, p: Any, params: Any, model_cfg: Any, tok: Any, *,
                     num_problems: int | None = None, k: int | None = None
                     ) -> dict[str, Any]:
  """Helpfulness and harmlessness of `params` on the `general` sets under protocol `p`."""
  if not p.general:
    return {}
  from r1jax.data import general
  from r1jax.eval import evaluate as eval_lib
  from r1jax.stages import reward_model as reward_model_stage

  n = p.num_problems if num_problems is None else num_problems
  k = p.k if k is None else k
  probs, prompts = [], []
  for ref in p.general:
    task, rows = _problems(run, ref, n)
    probs += rows
    prompts += [task.prompt(q["question"], tok) for q in rows]
  texts, lengths, _ = eval_lib.generate(
      params, model_cfg, tok, prompts, k=k, temperature=p.temperature, top_p=p.top_p,
      max_new_tokens=p.max_new_tokens, seed=run.config.seed + 1, batch_rows=p.batch_rows,
      mesh=run.mesh, rules=run.rules)
  rows = [probs[i // k] for i in range(len(texts))]
  out: dict[str, Any] = {
      "helpfulness_rule": float(np.mean([general.is_helpful(t, q) for t, q in zip(texts, rows)])),
      "harmful_rate": float(np.mean([general.is_harmful(t) for t in texts])),
      "general_mean_response_tokens": float(np.mean(lengths)),
      "general_num_problems": len(probs)}
  for key in ("helpfulness_rm", "harmlessness_rm"):
    if p[key]:
      rm = reward_model_stage.load(run, p[key])
      out[key] = float(np.mean(rm([prompts[i // k] for i in range(len(texts))], texts)))
  out["general_examples"] = [{"prompt_tail": prompts[i][-40:], "completion": texts[i * k]}
                             for i in range(min(3, len(prompts)))]
  return out


def entry(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
  """The eval.json entry: the first task's metrics, every task's under 'tasks'."""
  first = next(iter(results.values()))
  e = dict(first)
  if len(results) > 1:
    e["tasks"] = {ref: {k: v for k, v in r.items() if k != "examples"}
                  for ref, r in results.items()}
  return e


def run(run: common.Run, name: str, section: Any, source: common.Source) -> common.Output:
  tok = run.tokenizer(source.tokenizer)
  params = run.params_for_sampling(source)
  common.log(f"{name}: evaluating {source.ref} on {', '.join(section.tasks)} ...")
  results = evaluate_tasks(run, section, params, source.model_config, tok)
  e = {**entry(results), **evaluate_general(run, section, params, source.model_config, tok)}
  common.write_json(os.path.join(run.stage_dir(name), "eval.json"), e)
  run.record_eval(section.report_as or name, e)
  summary = {ref: {k: r[k] for k in ("pass@1", "cons@k", "k", "mean_response_tokens",
                                     "readability", "language_mixing")}
             for ref, r in results.items()}
  summary.update({k: v for k, v in e.items() if k in GENERAL_KEYS})
  return run.finish(common.Output(name=name, kind="evaluate", summary=summary))
