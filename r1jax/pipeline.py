"""The stages of the recipe, each a function of (config, workdir, previous checkpoint).

Each stage writes DIR/<stage>/ (checkpoints, metrics). A stage whose final checkpoint
exists is skipped; one with a partial checkpoint resumes from it (train state, data
position and RNG are restored, so the run continues the same trajectory).

Implemented stages: `tokenizer`, `pretrain_base` (the synthetic task's base model) and
`r1_zero` (GRPO from that base, with the base and final policies evaluated on the
task's held-out TFDS split). Not yet wired: GSM8K/MATH R1-Zero from an HF checkpoint,
cold-start SFT, rejection sampling and distillation (their experiment configs exist).
"""

from __future__ import annotations

import functools
import json
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from r1jax import configs, sharding, tokenizer as tokenizer_lib
from r1jax.data import arithmetic, templates
from r1jax.train import checkpoint as ckpt_lib
from r1jax.train import metrics as metrics_lib
from r1jax.train import state as state_lib


def log(msg: str, *args: Any) -> None:
  """Progress line on stdout (absl INFO is left to libraries and --verbosity)."""
  print(msg % args if args else msg, flush=True)


class StageError(RuntimeError):
  """A stage cannot run (missing input, repeated non-finite losses, ...)."""


def _stage_dir(workdir: str, name: str) -> str:
  d = os.path.join(workdir, name)
  os.makedirs(d, exist_ok=True)
  return d


def sample_task(config: Any, seed: int, n: int, split: str) -> list[Any]:
  """Problems of the configured task (config.task.name) from one split."""
  t = config.task
  try:
    return arithmetic.sample_task(t.name, seed, n, split=split, digits=t.digits,
                                  min_terms=t.min_terms, max_terms=t.max_terms)
  except ValueError as e:  # unknown task name or bad term counts
    raise configs.ConfigError(f"config.task (name={t.name!r}): {e}") from None


def task_example(p: Any, style: str) -> tuple[str, str]:
  """(prompt, completion) text of one problem in the R1-Zero template."""
  return templates.r1_zero_prompt(p.question), arithmetic.completion(p, style)


def corpus_texts(config: Any, n: int, seed: int) -> list[str]:
  """Prompt + completion texts of the base-model corpus (worked/direct mix)."""
  t = config.task
  rng = np.random.default_rng(seed + 7)
  out = []
  for p in sample_task(config, seed, n, "train"):
    style = "worked" if rng.random() < t.worked_fraction else "direct"
    prompt, comp = task_example(p, style)
    out.append(prompt + comp)
  return out


def run_tokenizer(config: Any, workdir: str) -> tokenizer_lib.Tokenizer:
  """Trains the sentencepiece tokenizer on the task corpus (skipped if it exists)."""
  path = os.path.join(_stage_dir(workdir, "tokenizer"), "tokenizer.model")
  if os.path.exists(path):
    log("tokenizer: found %s, skipping.", path)
    return tokenizer_lib.Tokenizer.load(path)
  texts = corpus_texts(config, config.tokenizer.train_examples, config.seed)
  prefix = templates.R1_ZERO_TEMPLATE.split(" User:")[0]
  tok = tokenizer_lib.train(texts, config.tokenizer.vocab_size, byte_fallback=False,
                            extra_symbols=[prefix])
  tok.save(path)
  log("tokenizer: %d pieces -> %s", tok.vocab_size, path)
  return tok


def lm_batch(config: Any, tok: tokenizer_lib.Tokenizer, step: int) -> dict[str, np.ndarray]:
  """The pretraining batch of `step` (a pure function of seed and step: resumable)."""
  t, p = config.task, config.pretrain
  rng = np.random.default_rng([config.seed, step])
  problems = sample_task(config, int(rng.integers(2**31)), p.batch_size, "train")
  seq = p.seq_len
  tokens = np.full((p.batch_size, seq + 1), tok.pad_id, np.int32)
  mask = np.zeros((p.batch_size, seq), np.float32)
  for i, prob in enumerate(problems):
    style = "worked" if rng.random() < t.worked_fraction else "direct"
    prompt, comp = task_example(prob, style)
    pi = tok.encode(prompt, bos=True)
    ci = tok.encode(comp, eos=True)
    ids = (pi + ci)[: seq + 1]
    tokens[i, : len(ids)] = ids
    # Loss on completion tokens only (targets are tokens[1:]).
    mask[i, len(pi) - 1: len(ids) - 1] = 1.0
  return {"tokens": tokens, "loss_mask": mask}


def check_lengths(config: Any, tok: tokenizer_lib.Tokenizer, n: int = 512) -> int:
  """Longest prompt + worked completion (with BOS/EOS) over `n` sampled problems.

  Raises ConfigError when pretraining rows (pretrain.seq_len + 1 tokens) would cut
  examples; warns when the generation caps would cut worked solutions short.
  """
  longest, longest_completion = 0, 0
  for prob in sample_task(config, config.seed + 99, n, "train"):
    prompt, comp = task_example(prob, "worked")
    c = len(tok.encode(comp, eos=True))
    longest = max(longest, len(tok.encode(prompt, bos=True)) + c)
    longest_completion = max(longest_completion, c)
  if longest > config.pretrain.seq_len + 1:
    raise configs.ConfigError(
        f"pretrain.seq_len={config.pretrain.seq_len} would cut pretraining examples: the "
        f"longest of {n} sampled prompts + worked solutions is {longest} tokens with BOS "
        f"and EOS; set pretrain.seq_len >= {longest - 1}.")
  for key in ("rl", "eval"):
    cap = config[key].max_new_tokens
    if cap < longest_completion:
      logging.warning("%s.max_new_tokens=%d is shorter than the longest worked solution "
                      "(%d tokens): such completions are truncated.", key, cap,
                      longest_completion)
  return longest


def run_pretrain(config: Any, workdir: str, tok: tokenizer_lib.Tokenizer,
                 mesh: jax.sharding.Mesh) -> Any:
  """Pretrains the base model on the task corpus; returns its params (sharded)."""
  check_lengths(config, tok)
  d = _stage_dir(workdir, "pretrain_base")
  mc, pc = config.model, config.pretrain
  tx = state_lib.make_optimizer(pc.optimizer)
  state, shardings = state_lib.create_train_state(mc, tx, mesh, config.mesh.rules,
                                                  jax.random.key(config.seed))
  ckpt = ckpt_lib.Checkpointer(os.path.join(d, "checkpoints"), max_to_keep=2)
  writer = metrics_lib.MetricWriter(d)
  state, start, done = ckpt_lib.resume(ckpt, state, shardings, writer, "pretrain_base", log)
  if done:
    ckpt.close()
    writer.close()
    return state.params
  step_fn = state_lib.make_train_step(state_lib.lm_loss(mc), mc, tx, shardings, mesh,
                                      config.mesh.rules,
                                      state_lib.learning_rate_schedule(pc.optimizer))
  t0 = time.time()
  pending = None  # metrics fetched one step late, so the host never stalls the device
  for step in range(start, pc.steps):
    state, m = step_fn(state, lm_batch(config, tok, step))
    if pending is not None:
      _log_step(writer, *pending, t0)
    pending = (step + 1, m)
    if (step + 1) % pc.checkpoint_every == 0 and step + 1 < pc.steps:
      ckpt.save(step + 1, state, {"step": step + 1, "done": False})
  if pending is not None:
    _log_step(writer, *pending, t0)
  ckpt.save(pc.steps, state, {"step": pc.steps, "done": True}, force=True)
  ckpt.close()
  writer.close()
  return state.params


def _log_step(writer: metrics_lib.MetricWriter, step: int, m: dict, t0: float) -> None:
  m = jax.device_get(m)
  if int(m["train/nonfinite"]):
    logging.warning("step %d: non-finite loss, update skipped.", step)
  row = writer.write(step, {**m, "time/elapsed_s": time.time() - t0})
  if step % 20 == 0 or step == 1:
    log("step %d loss %.4f token_acc %.3f", step, row["train/loss"],
                 row["train/token_accuracy"])


def heldout_problems(config: Any, workdir: str) -> list[dict[str, str]]:
  """The evaluation problems: the `test` split of the task's TFDS builder, prepared
  once under DIR/data (a hash split never used for training)."""
  import tensorflow_datasets as tfds
  from r1jax.data import builders

  t = config.task
  tfds.disable_progress_bar()
  verbosity = logging.get_verbosity()
  logging.set_verbosity(logging.ERROR)  # TFDS announces every custom config
  try:
    problems = list(builders.load_split(
        "arithmetic", "test", data_dir=os.path.join(workdir, "data"), task=t.name,
        digits=t.digits, min_terms=t.min_terms, max_terms=t.max_terms, num_train=1,
        num_test=config.eval.num_problems, seed=config.seed + 1000))
  finally:
    logging.set_verbosity(verbosity)
  log("data: %d held-out problems (TFDS r1jax_arithmetic, test split) in %s",
      len(problems), os.path.join(workdir, "data"))
  return problems


def rl_prompts_fn(config: Any) -> Callable[[int], tuple[list[str], list[dict]]]:
  """Step -> (B prompts, examples with the gold answer); a pure function of seed, step."""
  def fn(step: int) -> tuple[list[str], list[dict]]:
    rng = np.random.default_rng([config.seed, 10_000 + step])
    probs = sample_task(config, int(rng.integers(2**31)), config.rl.batch_prompts, "train")
    return ([templates.r1_zero_prompt(p.question) for p in probs],
            [{"answer": p.answer} for p in probs])
  return fn


def run_eval(config: Any, params: Any, tok: Any, mesh: Any, problems: list[dict[str, str]],
             *, k: int, num_problems: int) -> dict[str, Any]:
  """The paper's protocol on held-out problems (k samples, temperature, top-p)."""
  from r1jax.eval import evaluate as eval_lib

  probs = problems[:num_problems]
  e = config.eval
  return eval_lib.evaluate(params, config.model, tok,
                           [templates.r1_zero_prompt(p["question"]) for p in probs],
                           [p["answer"] for p in probs], k=k, temperature=e.temperature,
                           top_p=e.top_p, max_new_tokens=e.max_new_tokens, seed=config.seed,
                           batch_rows=e.batch_rows, mesh=mesh, rules=config.mesh.rules)


def run_r1_zero(config: Any, workdir: str, tok: Any, base_params: Any, mesh: Any,
                heldout: Callable[[], list[dict[str, str]]]) -> Any:
  """R1-Zero: GRPO from the base with rule rewards; periodic held-out eval for the plots."""
  from r1jax.train import rl

  d = _stage_dir(workdir, "r1_zero")
  e = config.eval
  eval_fn = lambda params, step: run_eval(config, params, tok, mesh, heldout(), k=e.curve_k,
                                          num_problems=e.curve_problems)
  return rl.run_grpo(config, d, tok, base_params, mesh, rl_prompts_fn(config), eval_fn, log=log)


def write_plots(workdir: str) -> list[str]:
  """Held-out accuracy and mean response length against RL step (paper Figs. 2, 3)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  rows = [r for r in metrics_lib.read_metrics(os.path.join(workdir, "r1_zero", "metrics.jsonl"))
          if "eval/pass@1" in r]
  steps = [r["step"] for r in rows]
  paths = []
  for key, label, name in (("eval/pass@1", "held-out pass@1", "accuracy.png"),
                           ("eval/mean_response_tokens", "mean response length (tokens)",
                            "response_length.png")):
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(steps, [r[key] for r in rows], marker="o")
    if key == "eval/pass@1":
      ax.plot(steps, [r["eval/cons@k"] for r in rows], marker="x", label="cons@k")
      ax.legend()
    ax.set_xlabel("RL step")
    ax.set_ylabel(label)
    ax.set_title(f"R1-Zero (tiny): {label}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = os.path.join(workdir, name)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    paths.append(path)
  return paths


STAGE_NAMES = ("tokenizer", "pretrain_base", "r1_zero")


def _eval_row(r: dict[str, Any]) -> str:
  fmt = lambda v: "  -  " if v is None else f"{v:.3f}"
  return (f"pass@1 {r['pass@1']:.3f}  cons@{r['k']} {r['cons@k']:.3f}  "
          f"format {r['format_rate']:.3f}  tokens {r['mean_response_tokens']:.1f}  "
          f"thinks {r.get('think_rate', float('nan')):.2f} (acc {fmt(r.get('accuracy_thinking'))}"
          f" thinking, {fmt(r.get('accuracy_not_thinking'))} not)")


def train_and_evaluate(config: Any, workdir: str) -> dict[str, Any]:
  """Runs the config's stages in order; writes eval.json and plots; returns a summary."""
  unknown = [s for s in config.stages if s not in STAGE_NAMES]
  if unknown:
    raise configs.ConfigError(f"Unknown stages {unknown}; available: {list(STAGE_NAMES)}.")
  configs.validate_model(config.model)
  mesh = sharding.make_mesh(config.mesh)
  configs.validate_mesh_for_model(mesh.devices.shape, config.model, config.pretrain.batch_size)
  os.makedirs(workdir, exist_ok=True)
  summary: dict[str, Any] = {}
  t0 = time.time()
  tok = run_tokenizer(config, workdir)
  if config.model.vocab_size < tok.vocab_size:
    raise configs.ConfigError(f"model.vocab_size={config.model.vocab_size} is smaller than "
                              f"the tokenizer's {tok.vocab_size} pieces.")
  params = None
  if "pretrain_base" in config.stages:
    params = run_pretrain(config, workdir, tok, mesh)
    rows = metrics_lib.read_metrics(os.path.join(workdir, "pretrain_base", "metrics.jsonl"))
    summary["pretrain_base"] = {"final_loss": rows[-1]["train/loss"],
                                "final_token_accuracy": rows[-1]["train/token_accuracy"]}
  if "r1_zero" in config.stages:
    if params is None:
      raise StageError("r1_zero needs the base model: add 'pretrain_base' to config.stages.")
    e = config.eval
    # Loaded on first use (a rerun of a finished pipeline never reads it), then kept.
    heldout = functools.cache(lambda: heldout_problems(config, workdir))
    eval_path = os.path.join(workdir, "eval.json")
    results = json.load(open(eval_path)) if os.path.exists(eval_path) else {}
    if "base" not in results:
      log("eval: base model ...")
      results["base"] = run_eval(config, params, tok, mesh, heldout(), k=e.k,
                                 num_problems=e.num_problems)
      _write_json(eval_path, results)
    final = run_r1_zero(config, workdir, tok, params, mesh, heldout)
    if "final" not in results:
      log("eval: final model ...")
      results["final"] = run_eval(config, final, tok, mesh, heldout(), k=e.k,
                                  num_problems=e.num_problems)
      _write_json(eval_path, results)
    summary["eval"] = {s: {k: v for k, v in r.items() if k != "examples"}
                       for s, r in results.items()}
    summary["plots"] = write_plots(workdir)
    log("\n          " + "  ".join(["held-out", "(k samples, T=%.1f, top-p %.2f)" % (
        e.temperature, e.top_p)]))
    for name in ("base", "final"):
      log(f"  {name:6s}  {_eval_row(results[name])}")
    log(f"  plots: {', '.join(summary['plots'])}")
  summary["elapsed_s"] = time.time() - t0
  _write_json(os.path.join(workdir, "summary.json"), summary)
  return summary


def _write_json(path: str, obj: Any) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=1)
  os.replace(tmp, path)
