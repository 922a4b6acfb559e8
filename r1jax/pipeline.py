"""The stages of the recipe, each a function of (config, workdir, previous checkpoint).

Each stage writes DIR/<stage>/ (checkpoints, metrics). A stage whose final checkpoint
exists is skipped; one with a partial checkpoint resumes from it (train state, data
position and RNG are restored, so the run continues the same trajectory).

Implemented stages: `tokenizer`, `pretrain_base`. The RL stages (r1_zero, ...) come
with the GRPO trainer.
"""

from __future__ import annotations

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


def task_example(p: arithmetic.Problem, style: str) -> tuple[str, str]:
  """(prompt, completion) text of one problem in the R1-Zero template."""
  return templates.r1_zero_prompt(p.question), arithmetic.completion(p, style)


def corpus_texts(config: Any, n: int, seed: int) -> list[str]:
  """Prompt + completion texts of the base-model corpus (worked/direct mix)."""
  t = config.task
  rng = np.random.default_rng(seed + 7)
  out = []
  for p in arithmetic.sample_problems(seed, n, t.digits, split="train"):
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
  tok = tokenizer_lib.train(texts, config.tokenizer.vocab_size, byte_fallback=False)
  tok.save(path)
  log("tokenizer: %d pieces -> %s", tok.vocab_size, path)
  return tok


def lm_batch(config: Any, tok: tokenizer_lib.Tokenizer, step: int) -> dict[str, np.ndarray]:
  """The pretraining batch of `step` (a pure function of seed and step: resumable)."""
  t, p = config.task, config.pretrain
  rng = np.random.default_rng([config.seed, step])
  problems = arithmetic.sample_problems(int(rng.integers(2**31)), p.batch_size, t.digits,
                                        split="train")
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


def run_pretrain(config: Any, workdir: str, tok: tokenizer_lib.Tokenizer,
                 mesh: jax.sharding.Mesh) -> Any:
  """Pretrains the base model on the task corpus; returns its params (sharded)."""
  d = _stage_dir(workdir, "pretrain_base")
  mc, pc = config.model, config.pretrain
  tx = state_lib.make_optimizer(pc.optimizer)
  state, shardings = state_lib.create_train_state(mc, tx, mesh, config.mesh.rules,
                                                  jax.random.key(config.seed))
  ckpt = ckpt_lib.Checkpointer(os.path.join(d, "checkpoints"), max_to_keep=2)
  writer = metrics_lib.MetricWriter(d)
  start = 0
  if ckpt.latest_step() is not None:
    state, meta = ckpt.restore(state, shardings)
    start = int(meta["step"])
    if meta.get("done"):
      log("pretrain_base: finished checkpoint in %s, skipping.", d)
      ckpt.close()
      writer.close()
      return state.params
    log("pretrain_base: resuming from step %d.", start)
    writer.truncate_after(start)
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


STAGES: dict[str, Callable[..., Any]] = {}


def train_and_evaluate(config: Any, workdir: str) -> dict[str, Any]:
  """Runs the config's stages in order; returns a summary dict."""
  unknown = [s for s in config.stages if s not in ("tokenizer", "pretrain_base")]
  if unknown:
    raise configs.ConfigError(f"Unknown stages {unknown}; available: ['tokenizer', "
                              f"'pretrain_base'].")
  configs.validate_model(config.model)
  mesh = sharding.make_mesh(config.mesh)
  configs.validate_mesh_for_model(mesh.devices.shape, config.model, config.pretrain.batch_size)
  os.makedirs(workdir, exist_ok=True)
  summary: dict[str, Any] = {}
  tok = run_tokenizer(config, workdir)
  if config.model.vocab_size < tok.vocab_size:
    raise configs.ConfigError(f"model.vocab_size={config.model.vocab_size} is smaller than "
                              f"the tokenizer's {tok.vocab_size} pieces.")
  if "pretrain_base" in config.stages:
    run_pretrain(config, workdir, tok, mesh)
    rows = metrics_lib.read_metrics(os.path.join(workdir, "pretrain_base", "metrics.jsonl"))
    summary["pretrain_base"] = {"final_loss": rows[-1]["train/loss"],
                                "final_token_accuracy": rows[-1]["train/token_accuracy"]}
  with open(os.path.join(workdir, "summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
  return summary
