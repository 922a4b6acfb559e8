"""`sft` stages: supervised fine-tuning on (prompt, completion) rows — the R1 cold start,
the final SFT on rejection-sampled data, and distillation (paper sections 2.3, 2.4).

The rows come from the `train` sources' SFT examples (a synthetic task's worked
solutions, JSONL files such as teacher samples); each question is put in its task's
template. The loss covers completion tokens only; rows are packed several to a sequence
(segment ids keep them apart; r1jax.train.sft), shuffled per epoch, and `epochs` passes
are made (or exactly `steps` steps). Batches are a pure function of (seed, step), so a
killed run resumes mid-epoch on the same trajectory. `accum_steps` splits each batch
into micro-batches accumulated inside the one jitted step. Every `eval_every` steps
(and at the end) the completion-token loss on the `heldout` sources is logged.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from r1jax import configs
from r1jax import tokenizer as tokenizer_lib
from r1jax.data import streams
from r1jax.stages import common
from r1jax.train import loop
from r1jax.train import metrics as metrics_lib
from r1jax.train import sft as sft_lib
from r1jax.train import state as state_lib


def default_config() -> configs.ConfigDict:
  c = configs.ConfigDict()
  c.kind = "sft"
  c.input = "init"  # Starting weights: a stage name, 'init', 'random' or 'hf:DIR'.
  c.train = ()  # 'task:split' sources of (prompt, completion) rows.
  c.train_weights = ()  # Share of each train source in the mix (() = all rows as they are).
  c.heldout = ()  # 'task:split' sources for the held-out loss (may be empty).
  c.epochs = 2.0  # Passes over the rows (paper: 2 for the final SFT); used when steps=0.
  c.steps = 0  # Optimiser steps; 0 = as many as `epochs` takes.
  c.batch_size = 8  # Packed sequences per step.
  c.seq_len = 1024  # Tokens per packed sequence (longer examples are dropped, counted).
  c.pack = True  # Pack several examples per sequence (False: one per sequence).
  c.accum_steps = 1  # Micro-batches per step (gradient accumulation; divides batch_size).
  c.checkpoint_every = 100  # Steps between (async) checkpoints.
  c.max_to_keep = 2  # Checkpoints kept.
  c.max_nonfinite = 3  # Stop after this many consecutive non-finite losses.
  c.eval_every = 0  # Steps between held-out losses (0 = only at the end).
  c.export_hf = False  # Also write the final weights as an HF checkpoint (DIR/<stage>/hf).
  c.optimizer = configs.optimizer_config(learning_rate=1e-5, warmup_steps=10)
  return c


def validate(section: Any, where: str, mesh_sizes: dict[str, int]) -> None:
  s = section
  if not s.train:
    raise configs.ConfigError(f"{where}.train is empty; name (prompt, completion) sources, "
                              f"e.g. ('teacher:train',).")
  if s.steps < 0 or (s.steps == 0 and s.epochs <= 0):
    raise configs.ConfigError(f"{where}: set steps >= 1 or epochs > 0 (steps=0 means "
                              f"'from epochs').")
  if s.accum_steps < 1 or s.batch_size % s.accum_steps:
    raise configs.ConfigError(f"{where}.accum_steps={s.accum_steps} must be >= 1 and divide "
                              f"batch_size={s.batch_size}.")
  if s.checkpoint_every < 1 or s.seq_len < 2:
    raise configs.ConfigError(f"{where}: checkpoint_every must be >= 1 and seq_len >= 2.")
  common.check_batch(f"{where}: batch_size/accum_steps", s.batch_size // s.accum_steps,
                     mesh_sizes)
  streams.check_weights(s.train_weights, s.train, f"{where}.train_weights")


def encode(run: common.Run, refs: Any, tok: Any, weights: Any = ()
           ) -> list[tuple[list[int], list[int]]]:
  """(prompt ids, completion ids + EOS) of every SFT example of the sources; with
  `weights`, a mix of as many rows as the sources hold together, source i's share
  weights[i] of them (its rows in a seeded order, repeated when it holds too few)."""
  per_source = []
  for ref in refs:
    task, split = run.tasks.resolve(ref)
    per_source.append([(tokenizer_lib.encode_prompt(tok, task.prompt(ex["question"], tok)),
                        tok.encode(ex["completion"], eos=True))
                       for ex in task.sft_examples(split)])
  if not weights:
    return [x for rows in per_source for x in rows]
  counts = streams.quotas(sum(len(r) for r in per_source), weights)
  out = []
  for i, (rows, n) in enumerate(zip(per_source, counts)):
    if n and not rows:
      raise common.StageError(f"source {refs[i]!r} holds no rows but has weight {weights[i]}.")
    order = np.random.default_rng([run.config.seed, 23, i]).permutation(len(rows))
    out += [rows[order[j % len(rows)]] for j in range(n)]
  shown = [f"{r} {n} rows (of {len(x)})" for r, n, x in zip(refs, counts, per_source)]
  common.log(f"SFT mix: {', '.join(shown)}")
  return out


def run(run: common.Run, name: str, section: Any, source: common.Source) -> common.Output:
  s = section
  tok = run.tokenizer(source.tokenizer)
  mc = source.model_config
  examples = encode(run, s.train, tok, s.train_weights)
  if not examples:
    raise common.StageError(f"{name}: the sources {tuple(s.train)} hold no rows (e.g. a "
                            f"sample stage that kept no completion); nothing to train on.")
  data = sft_lib.SFTData(examples, seq_len=s.seq_len, pad_id=tok.pad_id,
                         batch_size=s.batch_size, seed=run.config.seed, packed=s.pack)
  if data.dropped:
    common.log(f"{name}: {data.dropped} of {len(examples)} examples exceed seq_len + 1 = "
               f"{s.seq_len + 1} tokens and were dropped (raise {name}.seq_len to keep them).")
  steps = s.steps or data.steps_for(s.epochs)
  common.log(f"{name}: {len(examples) - data.dropped} examples in {data.num_rows} rows, "
             f"{data.steps_per_epoch:.1f} steps per epoch, {steps} steps "
             f"({data.epoch_at(steps):.2f} epochs).")
  heldout = []
  if s.heldout:
    rows = sft_lib.pack(encode(run, s.heldout, tok), s.seq_len, tok.pad_id, packed=s.pack)
    heldout = sft_lib.fixed_batches(rows.rows, s.batch_size)
  tx = state_lib.make_optimizer(s.optimizer)
  state, shardings = state_lib.create_train_state(mc, tx, run.mesh, run.rules,
                                                  jax.random.key(run.config.seed + 3),
                                                  source.load())
  step_fn = state_lib.make_train_step(sft_lib.sft_loss(mc), mc, tx, shardings, run.mesh,
                                      run.rules, state_lib.learning_rate_schedule(s.optimizer),
                                      accum_steps=s.accum_steps)
  produce = lambda step, st: (data.batch(step), {"train/epoch": data.epoch_at(step + 1)})
  eval_fn = (lambda params, step: sft_lib.heldout_loss(params, mc, heldout)) if heldout else None
  d = run.stage_dir(name)
  state = loop.train(state, shardings, step_fn, produce, workdir=d, name=name, steps=steps,
                        checkpoint_every=s.checkpoint_every, max_to_keep=s.max_to_keep,
                        max_nonfinite=s.max_nonfinite, eval_fn=eval_fn,
                        eval_every=s.eval_every or steps,
                        progress_every=max(1, steps // 20),
                        progress_keys=("train/loss", "train/token_accuracy", "train/epoch",
                                       "eval/heldout/ce"),
                        log=common.log, hint=f"lower {name}.optimizer.learning_rate",
                        crash_after_step=run.crash_after_step)
  rows = metrics_lib.read_metrics(os.path.join(d, "metrics.jsonl"))
  summary = {"steps": steps, "epochs": data.epoch_at(steps), "examples": len(examples),
             "dropped": data.dropped, "final_loss": rows[-1]["train/loss"]}
  final_eval = [r for r in rows if "eval/heldout/ce" in r]
  if final_eval:
    summary["heldout_ce"] = final_eval[-1]["eval/heldout/ce"]
  return common.export(run, name, section, source, state.params, summary)
