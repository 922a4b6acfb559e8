"""`sample` stages: generate N completions per prompt, score them by rule, filter, and
write the kept ones as sharded JSONL — rejection sampling (paper section 2.3.3) and
teacher data for distillation (section 2.4).

Prompts come from the `prompts` sources ({question, answer} problems), `shard_prompts`
at a time; each shard's completions are scored with `reward_weights` (r1jax.rewards)
and filtered: `require_correct` (accuracy reward 1), `require_format` (format reward
1), `drop_truncated` (hit max_new_tokens), `drop_duplicates` (same completion text for
the same prompt). Kept rows go to DIR/<stage>/samples/part-NNNNN.jsonl as
{"prompt": question, "completion", "answer", "rewards": {...}}, ready for an `sft`
stage through a `jsonl` task (`train='{workdir}/<stage>/samples/*.jsonl'`). A shard is
written whole or not at all (temporary file, then rename) and its counts beside it, so
a killed run resumes at the first missing shard with nothing duplicated or lost.
"""

from __future__ import annotations

import glob
import json
import os
import time
from typing import Any

import jax

from r1jax import configs, sampling
from r1jax import tokenizer as tokenizer_lib
from r1jax.rewards import scoring
from r1jax.stages import common

FILTERS = ("incorrect", "unformatted", "truncated", "duplicate")


def default_config() -> configs.ConfigDict:
  c = configs.ConfigDict()
  c.kind = "sample"
  c.input = "init"  # The sampling policy: a stage name, 'init', 'random' or 'hf:DIR'.
  c.prompts = ()  # 'task:split' problem sources.
  c.num_prompts = 0  # Prompts taken from the sources, in order (0 = all).
  c.samples_per_prompt = 4  # N completions per prompt.
  c.temperature = 0.6  # Sampling temperature (paper's evaluation setting).
  c.top_p = 0.95  # Nucleus sampling.
  c.max_new_tokens = 1024  # Completion cap.
  c.batch_rows = 256  # Sequences per sampler call.
  c.shard_prompts = 64  # Prompts per output shard (the unit of resumption).
  c.reward_weights = configs.ConfigDict({"accuracy": 1.0, "format": 0.0})  # Scores kept.
  c.reward_workers = 2  # Reward scoring processes.
  c.reward_timeout_s = 10.0  # Per-sample reward time limit.
  c.require_correct = True  # Keep only completions whose answer is right.
  c.require_format = False  # Keep only completions in the R1-Zero tag format.
  c.drop_truncated = True  # Drop completions cut at max_new_tokens.
  c.drop_duplicates = True  # Drop repeated completions of the same prompt.
  return c


def validate(section: Any, where: str, mesh_sizes: dict[str, int]) -> None:
  del mesh_sizes  # the sampler pads its rows to the mesh
  s = section
  if not s.prompts:
    raise configs.ConfigError(f"{where}.prompts is empty; name problem sources, e.g. "
                              f"('gsm8k:train',).")
  if min(s.samples_per_prompt, s.max_new_tokens, s.batch_rows, s.shard_prompts) < 1:
    raise configs.ConfigError(f"{where}: samples_per_prompt, max_new_tokens, batch_rows and "
                              f"shard_prompts must be >= 1.")
  needs = {"require_correct": "accuracy", "require_format": "format"}
  for flag, reward in needs.items():
    if s[flag] and reward not in s.reward_weights:
      raise configs.ConfigError(f"{where}.{flag} needs '{reward}' in reward_weights.")


def filter_samples(rows: list[dict[str, Any]], s: Any) -> tuple[list[dict[str, Any]],
                                                                dict[str, int]]:
  """The rows the filters keep, and how many each filter dropped (first failing one)."""
  kept, dropped, seen = [], {f: 0 for f in FILTERS}, set()
  for r in rows:
    key = (r["prompt"], r["completion"])
    if s.require_correct and r["rewards"]["accuracy"] < 1:
      reason = "incorrect"
    elif s.require_format and r["rewards"]["format"] < 1:
      reason = "unformatted"
    elif s.drop_truncated and r["truncated"]:
      reason = "truncated"
    elif s.drop_duplicates and key in seen:
      reason = "duplicate"
    else:
      reason = None
    seen.add(key)
    if reason:
      dropped[reason] += 1
    else:
      kept.append(r)
  return kept, dropped


def _write_lines(path: str, rows: list[dict[str, Any]]) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    for r in rows:
      f.write(json.dumps(r) + "\n")
  os.replace(tmp, path)


def run(run: common.Run, name: str, section: Any, source: common.Source) -> common.Output:
  s = section
  tok = run.tokenizer(source.tokenizer)
  mc = source.model_config
  problems = []
  for ref in s.prompts:
    task, split = run.tasks.resolve(ref)
    problems += [(task, p) for p in task.problems(split)]
  problems = problems[:s.num_prompts] if s.num_prompts else problems
  out_dir = os.path.join(run.stage_dir(name), "samples")
  os.makedirs(out_dir, exist_ok=True)
  n_shards = -(-len(problems) // s.shard_prompts)
  todo = [i for i in range(n_shards)
          if not os.path.exists(os.path.join(out_dir, f"part-{i:05d}.stats.json"))]
  if len(todo) < n_shards:
    common.log(f"{name}: {n_shards - len(todo)} of {n_shards} shards already written; "
               f"resuming.")
  params = sampling.prepare(run.params_for_sampling(source)) if todo else None
  scorer = scoring.RewardScorer(dict(s.reward_weights), num_workers=s.reward_workers,
                                timeout_s=s.reward_timeout_s) if todo else None
  t0, done_samples = time.time(), 0
  try:
    for i in todo:
      shard = problems[i * s.shard_prompts:(i + 1) * s.shard_prompts]
      rows_idx = [j for j in range(len(shard)) for _ in range(s.samples_per_prompt)]
      prompts = [tokenizer_lib.encode_prompt(tok, t.prompt(p["question"], tok))
                 for t, p in shard]
      texts, truncated = [], []
      for c, start in enumerate(range(0, len(rows_idx), s.batch_rows)):
        chunk = rows_idx[start:start + s.batch_rows]
        rng = jax.random.fold_in(jax.random.fold_in(jax.random.key(run.config.seed + 5), i), c)
        out = sampling.generate(params, mc, [prompts[j] for j in chunk], rng=rng,
                                max_new_tokens=s.max_new_tokens, temperature=s.temperature,
                                top_p=s.top_p, stop_ids=tokenizer_lib.stop_ids(tok),
                                pad_id=tok.pad_id, mesh=run.mesh, rules=run.rules)
        texts += [tok.decode(t) for t in out.tokens]
        truncated += out.truncated
      examples = [{k: v for k, v in shard[j][1].items() if k != "question"} for j in rows_idx]
      scores = scorer(texts, examples)
      rows = [{"prompt": shard[j][1]["question"], "completion": texts[n],
               "answer": shard[j][1]["answer"], "truncated": bool(truncated[n]),
               "rewards": {k: float(v[n]) for k, v in scores.per_fn.items()}}
              for n, j in enumerate(rows_idx)]
      kept, dropped = filter_samples(rows, s)
      _write_lines(os.path.join(out_dir, f"part-{i:05d}.jsonl"), kept)
      common.write_json(os.path.join(out_dir, f"part-{i:05d}.stats.json"),
                        {"prompts": len(shard), "samples": len(rows), "kept": len(kept),
                         "dropped": dropped})
      done_samples += len(rows)
      rate = done_samples / max(time.time() - t0, 1e-9)
      common.log(f"{name}: shard {i + 1}/{n_shards}: kept {len(kept)}/{len(rows)} "
                 f"({rate:.1f} samples/s)")
  finally:
    if scorer is not None:
      scorer.close()
  totals: dict[str, Any] = {"prompts": 0, "samples": 0, "kept": 0,
                            "dropped": {f: 0 for f in FILTERS}}
  for path in sorted(glob.glob(os.path.join(out_dir, "part-*.stats.json"))):
    with open(path) as f:
      st = json.load(f)
    for k in ("prompts", "samples", "kept"):
      totals[k] += st[k]
    for f_name, v in st["dropped"].items():
      totals["dropped"][f_name] += v
  common.write_json(os.path.join(run.stage_dir(name), "stats.json"), totals)
  common.log(f"{name}: kept {totals['kept']} of {totals['samples']} samples; dropped "
             f"{totals['dropped']}")
  return run.finish(common.Output(name=name, kind="sample", model=mc.to_dict(),
                                  tokenizer=source.tokenizer, samples=out_dir,
                                  summary=totals))
