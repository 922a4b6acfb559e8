r"""Evaluates any checkpoint with the paper's protocol: `python -m r1jax.evaluate`.

  python -m r1jax.evaluate --checkpoint=DIR|hf:DIR --tasks=gsm8k:test,math500:test \
      --data_dir=DIR --workdir=OUT [--k=4 --max_new_tokens=1024 --num_problems=0]

`--checkpoint` is an r1jax stage directory (DIR/<stage>, holding output.json) or
`hf:DIR`, a Hugging Face checkpoint (Qwen2, Llama, DeepSeek-V3; config.json,
*.safetensors, tokenizer.json). Tasks are 'kind:split' of r1jax.data.tasks with raw
files under `--data_dir` (`gsm8k/test.jsonl`, `math500/test.jsonl`, `math/train.jsonl`,
`code/test.jsonl`: {"prompt", "tests"} rows). Code samples are judged by the sandboxed
code reward (r1jax.rewards.code: the last fenced Python block must pass every test);
their `extracted` answer is that program, and cons@k votes over identical programs.
Protocol (DeepSeek-R1 section 3): k samples per problem at temperature 0.6 and top-p
0.95 with a capped length; pass@1 is the mean over the k samples, cons@k the majority
vote over extracted answers (equivalence classes by r1jax.rewards.math_equiv), pass@k'
the unbiased estimator (Chen et al. 2021) for k' = 1, 2, 4, ... <= k.

Writes OUT/report.json (one entry per task: pass@1, cons@k, k, num_problems, pass@k',
response-length statistics, truncation rate, the protocol), OUT/report.md (a row per
task) and OUT/<task>/problems.jsonl (per problem: prompt, gold, samples, extracted
answers, verdicts, token counts). A killed evaluation resumes: problems already in
problems.jsonl are not redone, and every chunk of problems samples from a key that
depends on its position only, so the result equals an uninterrupted run. A rerun with
other settings (OUT/<task>/protocol.json) is refused rather than mixed in.
`--lenient_extraction` also reads answers given without answer tags or a box (for models
that do not use them; see r1jax.rewards.math_equiv); it is part of the protocol.
"""

from __future__ import annotations

import json
import operator
import os
import sys
import time
from typing import Any

from absl import app, flags, logging

import r1jax

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "r1jax stage directory or hf:DIR.")
_TASKS = flags.DEFINE_list("tasks", None, "Held-out sets, 'kind:split' (gsm8k, math500, "
                           "math, code).")
_DATA_DIR = flags.DEFINE_string("data_dir", "~/r1jax_data", "Raw dataset files.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (report.json, report.md).")
_K = flags.DEFINE_integer("k", 4, "Samples per problem.")
_MAX_NEW = flags.DEFINE_integer("max_new_tokens", 1024, "Generation cap (tokens).")
_TEMPERATURE = flags.DEFINE_float("temperature", 0.6, "Sampling temperature (paper: 0.6).")
_TOP_P = flags.DEFINE_float("top_p", 0.95, "Nucleus sampling (paper: 0.95).")
_NUM_PROBLEMS = flags.DEFINE_integer("num_problems", 0, "First N problems per task; 0 = all.")
_TEMPLATE = flags.DEFINE_enum(
    "template", "auto", ["auto", "chat", "r1_zero", "r1_zero_boxed", "r1", "none"],
    "Prompt template (r1jax.data.templates); auto = the tokenizer's chat template when it "
    "has one, else r1_zero_boxed.")
_BATCH_ROWS = flags.DEFINE_integer("batch_rows", 64, "Sequences per sampler call.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
_MAX_SEQ_LEN = flags.DEFINE_integer("max_seq_len", 4096, "Context of HF checkpoints.")
_LENIENT = flags.DEFINE_bool(
    "lenient_extraction", False, "Also read answers given without answer tags or a box "
    "(\"the answer is X\", \"final answer: X\", the last math expression): "
    "r1jax.rewards.math_equiv.extract_answer(lenient=True). Off by default, as in rewards.")
_CACHE = flags.DEFINE_string("compilation_cache", r1jax.COMPILATION_CACHE,
                             "JAX's persistent compilation cache; '' = off.")

HARNESS_KINDS = ("gsm8k", "math500", "math", "code")


def _log(msg: str) -> None:
  print(msg, flush=True)


def build_run(workdir: str, task_refs: list[str], data_dir: str, seed: int,
              max_seq_len: int) -> Any:
  """A Run whose config holds the harness's tasks (named by their kind)."""
  from r1jax import configs, sharding
  from r1jax.data import tasks
  from r1jax.stages import common

  c = configs.run_config(seed=seed, data_dir=data_dir)
  c.model.max_seq_len = max_seq_len
  for ref in task_refs:
    kind, _ = tasks.parse_ref(ref)
    if kind not in HARNESS_KINDS:
      raise configs.ConfigError(f"--tasks: {ref!r}; the harness knows {HARNESS_KINDS} "
                                f"('kind:split', e.g. 'gsm8k:test').")
    c.tasks[kind] = tasks.config(kind)
  return common.Run(c, workdir, sharding.make_mesh(c.mesh))


def checkpoint_source(run: Any, checkpoint: str) -> Any:
  """The Source of `hf:DIR` or of an r1jax stage directory (DIR/output.json)."""
  from r1jax.stages import common

  if checkpoint.startswith("hf:"):
    return run.source(checkpoint)
  path = os.path.expanduser(checkpoint)
  out_path = os.path.join(path, "output.json")
  if not os.path.exists(out_path):
    raise common.StageError(f"--checkpoint={checkpoint}: no {out_path}; give an r1jax stage "
                            f"directory (DIR/<stage>, written by a finished stage) or hf:DIR.")
  with open(out_path) as f:
    out = common.Output(**json.load(f))
  if out.params is None:
    raise common.StageError(f"--checkpoint={checkpoint}: stage {out.name!r} ({out.kind}) "
                            f"has no weights.")
  mc = out.model_config
  return common.Source(checkpoint, mc, out.tokenizer,
                       lambda: common.load_params(out.params, mc, run.mesh, run.rules))


def _read_records(path: str) -> dict[int, dict[str, Any]]:
  """Finished problems by index (a torn last line from a kill is dropped)."""
  done: dict[int, dict[str, Any]] = {}
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        try:
          r = json.loads(line)
        except json.JSONDecodeError:
          break
        done[r["index"]] = r
  return done


def _check_protocol(d: str, protocol: dict[str, Any]) -> None:
  """Records under `d` are resumed only by a run with the same checkpoint and protocol."""
  from r1jax import configs
  from r1jax.stages import common

  path = os.path.join(d, "protocol.json")
  if os.path.exists(path):
    with open(path) as f:
      old = json.load(f)
    diff = {k: (old.get(k), v) for k, v in protocol.items() if old.get(k) != v}
    if diff:
      raise configs.ConfigError(f"{d} holds an evaluation with other settings "
                                f"(was, now: {diff}); resume with the same flags or use "
                                f"another --workdir.")
  else:
    common.write_json(path, protocol)


def evaluate_task(run: Any, ref: str, params: Any, source: Any, tok: Any, *, k: int,
                  temperature: float, top_p: float, max_new_tokens: int,
                  num_problems: int, batch_rows: int, crash_after_chunks: int | None = None,
                  lenient_extraction: bool = False) -> dict[str, Any]:
  """Samples (resuming), records and scores one task; returns its report entry."""
  from r1jax.eval import evaluate as eval_lib

  task, split = run.tasks.resolve(ref)
  probs = list(task.problems(split))
  probs = probs[:num_problems] if num_problems else probs
  d = os.path.join(run.workdir, ref.replace(":", "_"))
  os.makedirs(d, exist_ok=True)
  _check_protocol(d, {"checkpoint": source.ref, "k": k, "temperature": temperature,
                      "top_p": top_p, "max_new_tokens": max_new_tokens,
                      "template": task.cfg.template, "seed": run.config.seed,
                      "batch_rows": batch_rows, "num_problems": len(probs),
                      "lenient_extraction": lenient_extraction})
  path = os.path.join(d, "problems.jsonl")
  done = _read_records(path)
  with open(path, "w") as f:  # rewrite the intact records (drops a torn line)
    for i in sorted(done):
      f.write(json.dumps(done[i]) + "\n")
  per_chunk = max(1, batch_rows // k)
  chunks = [c for c in range(-(-len(probs) // per_chunk))
            if any(i not in done for i in range(c * per_chunk,
                                                 min(len(probs), (c + 1) * per_chunk)))]
  if done:
    _log(f"{ref}: resuming, {len(done)} of {len(probs)} problems done")
  t0, sampled = time.time(), 0
  for n, c in enumerate(chunks):
    idx = list(range(c * per_chunk, min(len(probs), (c + 1) * per_chunk)))
    prompts = [task.prompt(probs[i]["question"], tok) for i in idx]
    texts, lengths, truncated = eval_lib.generate(
        params, source.model_config, tok, prompts, k=k, temperature=temperature,
        top_p=top_p, max_new_tokens=max_new_tokens, seed=run.config.seed,
        batch_rows=len(idx) * k, mesh=run.mesh, rules=run.rules, prepared=True,
        first_chunk=c)
    verdicts = judge(task.KIND, texts, [probs[i] for i in idx for _ in range(k)],
                     lenient=lenient_extraction)
    with open(path, "a") as f:
      for j, i in enumerate(idx):
        s = slice(j * k, (j + 1) * k)
        f.write(json.dumps({
            "index": i, "prompt": prompts[j], "gold": probs[i]["answer"],
            "samples": texts[s], "extracted": [e for e, _ in verdicts[s]],
            "correct": [ok for _, ok in verdicts[s]],
            "tokens": lengths[s], "truncated": truncated[s]}) + "\n")
      f.flush()
      os.fsync(f.fileno())
    sampled += len(texts)
    finished = len(set(done) | set(range(len(probs))) - {
        i for c2 in chunks[n + 1:] for i in range(c2 * per_chunk, (c2 + 1) * per_chunk)})
    rate = sampled / max(time.time() - t0, 1e-9)
    left = (len(probs) - finished) * k / max(rate, 1e-9)
    _log(f"{ref}: {finished}/{len(probs)} problems, {rate:.1f} samples/s, "
         f"{left / 60:.1f} min left")
    if crash_after_chunks is not None and n + 1 >= crash_after_chunks:
      raise KeyboardInterrupt(f"simulated kill after {n + 1} chunks")
  records = _read_records(path)
  entry = report_entry([records[i] for i in range(len(probs))], k, task.KIND)
  entry.update({"temperature": temperature, "top_p": top_p,
                "max_new_tokens": max_new_tokens, "template": task.cfg.template,
                "lenient_extraction": lenient_extraction})
  return entry


def judge(kind: str, texts: list[str], problems: list[dict[str, Any]], lenient: bool = False
          ) -> list[tuple[str | None, bool]]:
  """(extracted answer or program, verdict) per sample: math answers by equivalence with
  the gold answer, code by running the problem's tests in the sandbox (all must pass)."""
  if kind == "code":
    from r1jax.rewards import code
    rewards = code.code_rewards(texts, [p["tests"] for p in problems])
    return [(code.extract_code(t), r == 1.0) for t, r in zip(texts, rewards)]
  from r1jax.rewards.math_equiv import extract_answer, is_equiv
  out = []
  for t, p in zip(texts, problems):
    a = extract_answer(t, lenient=lenient)
    out.append((a, a is not None and is_equiv(a, p["answer"])))
  return out


def report_entry(records: list[dict[str, Any]], k: int, kind: str = "math") -> dict[str, Any]:
  """A task's metrics from its per-problem records (k samples each, with verdicts)."""
  from r1jax.eval import evaluate as eval_lib
  from r1jax.eval import metrics
  from r1jax.rewards.math_equiv import is_equiv

  scored = eval_lib.score(
      [t for r in records for t in r["samples"]], [r["gold"] for r in records], k=k,
      lengths=[n for r in records for n in r["tokens"]],
      truncated=[t for r in records for t in r["truncated"]],
      verdicts=[v for r in records for v in zip(r["extracted"], r["correct"])],
      equiv=operator.eq if kind == "code" else is_equiv)  # programs vote by identity
  entry = {key: scored[key] for key in ("pass@1", "cons@k", "k")}
  entry["num_problems"] = len(records)
  for kk in sorted({2 ** e for e in range(k.bit_length()) if 2 ** e <= k} | {k}):
    entry[f"pass@{kk}"] = sum(metrics.pass_at_k(k, sum(r["correct"]), kk)
                              for r in records) / len(records)
  tokens = sorted(n for r in records for n in r["tokens"])
  entry.update({"mean_response_tokens": scored["mean_response_tokens"],
                "median_response_tokens": float(tokens[len(tokens) // 2]),
                "max_response_tokens": tokens[-1]})
  entry.update({key: scored[key] for key in ("truncated_fraction", "format_rate",
                                             "r1_format_rate")})
  return entry


def write_report(workdir: str, checkpoint: str, report: dict[str, Any]) -> None:
  """OUT/report.json and OUT/report.md (a row per task)."""
  from r1jax.stages import common

  common.write_json(os.path.join(workdir, "report.json"), report)
  lines = [f"# Evaluation of `{checkpoint}`", "",
           "| task | pass@1 | cons@k | k | problems | mean tokens | truncated |",
           "|---|---|---|---|---|---|---|"]
  for ref, r in report.items():
    lines.append(f"| {ref} | {r['pass@1']:.3f} | {r['cons@k']:.3f} | {r['k']} | "
                 f"{r['num_problems']} | {r['mean_response_tokens']:.1f} | "
                 f"{r['truncated_fraction']:.3f} |")
  first = next(iter(report.values()))
  lines += ["", f"k samples per problem at temperature {first['temperature']}, top-p "
            f"{first['top_p']}, at most {first['max_new_tokens']} new tokens; template "
            f"`{first['template']}`."]
  with open(os.path.join(workdir, "report.md"), "w") as f:
    f.write("\n".join(lines) + "\n")


def run_harness(checkpoint: str, task_refs: list[str], *, data_dir: str, workdir: str,
                k: int, temperature: float, top_p: float, max_new_tokens: int,
                num_problems: int, template: str, batch_rows: int, seed: int,
                max_seq_len: int, crash_after_chunks: int | None = None,
                lenient_extraction: bool = False) -> dict[str, Any]:
  """Evaluates `checkpoint` on every task; writes and returns the report."""
  from r1jax.stages import evaluate as evaluate_stage

  evaluate_stage.check_protocol(evaluate_stage.protocol_config(
      tasks=tuple(task_refs), num_problems=num_problems, k=k, temperature=temperature,
      top_p=top_p, max_new_tokens=max_new_tokens, batch_rows=batch_rows), "r1jax.evaluate")
  os.makedirs(workdir, exist_ok=True)
  run = build_run(workdir, task_refs, data_dir, seed, max_seq_len)
  source = checkpoint_source(run, checkpoint)
  tok = run.tokenizer(source.tokenizer)
  if template == "auto":
    template = "chat" if getattr(tok, "chat_template", None) else "r1_zero_boxed"
  for name in run.config.tasks:
    run.config.tasks[name].template = template
  from r1jax import sampling
  params = sampling.prepare(run.params_for_sampling(source))
  report = {}
  for ref in task_refs:
    report[ref] = evaluate_task(run, ref, params, source, tok, k=k, temperature=temperature,
                                top_p=top_p, max_new_tokens=max_new_tokens,
                                num_problems=num_problems, batch_rows=batch_rows,
                                crash_after_chunks=crash_after_chunks,
                                lenient_extraction=lenient_extraction)
    _log(f"{ref}: pass@1 {report[ref]['pass@1']:.3f}  cons@{k} {report[ref]['cons@k']:.3f}"
         f"  ({report[ref]['num_problems']} problems)")
  write_report(workdir, checkpoint, report)
  _log(f"report: {os.path.join(workdir, 'report.json')}, {os.path.join(workdir, 'report.md')}")
  return report


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  for flag in ("checkpoint", "tasks", "workdir"):
    if not flags.FLAGS[flag].value:
      print(f"FATAL --{flag} is required.", file=sys.stderr)
      sys.exit(1)
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  r1jax.use_compilation_cache(_CACHE.value)
  from r1jax import configs
  from r1jax.stages import common
  crash = os.environ.get("R1JAX_CRASH_AFTER_CHUNKS")  # tests: a simulated kill
  try:
    run_harness(_CHECKPOINT.value, _TASKS.value, data_dir=os.path.expanduser(_DATA_DIR.value),
                workdir=_WORKDIR.value, k=_K.value, temperature=_TEMPERATURE.value,
                top_p=_TOP_P.value, max_new_tokens=_MAX_NEW.value,
                num_problems=_NUM_PROBLEMS.value, template=_TEMPLATE.value,
                batch_rows=_BATCH_ROWS.value, seed=_SEED.value,
                max_seq_len=_MAX_SEQ_LEN.value,
                crash_after_chunks=int(crash) if crash else None,
                lenient_extraction=_LENIENT.value)
  except (configs.ConfigError, common.StageError, FileNotFoundError) as e:
    print(f"FATAL {type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  app.run(main)
