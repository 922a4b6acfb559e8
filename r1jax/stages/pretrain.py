"""`pretrain` stages: next-token training of a base model on a synthetic task's corpus.

Each step draws `batch_size` fresh train problems (a pure function of seed and step),
each answered directly or worked step by step (the task's `worked_fraction`), one per
row of `seq_len + 1` tokens; the loss covers the completion tokens. This is how the
tiny demos get a base model in minutes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np
from absl import logging

from r1jax import configs
from r1jax import tokenizer as tokenizer_lib
from r1jax.data import streams
from r1jax.stages import common
from r1jax.train import loop
from r1jax.train import metrics as metrics_lib
from r1jax.train import state as state_lib


def default_config() -> configs.ConfigDict:
  c = configs.ConfigDict()
  c.kind = "pretrain"
  c.input = "random"  # Usually fresh weights ('random'); any stage input works.
  c.train = ()  # Generated 'task:train' corpora, e.g. ('digits:train',).
  c.train_weights = ()  # Share of each source in every batch (() = one source).
  c.steps = 500  # Optimiser steps.
  c.batch_size = 64  # Sequences per step.
  c.seq_len = 128  # Tokens per sequence (prompt + completion, padded).
  c.checkpoint_every = 100  # Steps between (async) checkpoints.
  c.max_to_keep = 2  # Checkpoints kept.
  c.max_nonfinite = 3  # Stop after this many consecutive non-finite losses.
  c.export_hf = False  # Also write the final weights as an HF checkpoint (DIR/<stage>/hf).
  c.optimizer = configs.optimizer_config(learning_rate=3e-3, warmup_steps=30)
  # With input 'random': this stage's own architecture (a configs.model_config()), e.g. a
  # student smaller than the run's model; empty = config.model.
  c.model = configs.ConfigDict()
  return c


def validate(section: Any, where: str, mesh_sizes: dict[str, int]) -> None:
  if not section.train or (len(section.train) > 1 and not section.train_weights):
    raise configs.ConfigError(f"{where}.train={tuple(section.train)}: pretraining takes one "
                              f"generated 'task:train' corpus, or several with "
                              f"train_weights.")
  streams.check_weights(section.train_weights, section.train, f"{where}.train_weights")
  if section.steps < 1 or section.checkpoint_every < 1:
    raise configs.ConfigError(f"{where}: steps and checkpoint_every must be >= 1.")
  if section.model:
    if section.input != "random":
      raise configs.ConfigError(f"{where}.model is set, so {where}.input must be 'random' "
                                f"(got {section.input!r}): a checkpoint brings its own "
                                f"architecture.")
    configs.validate_model(section.model, f"{where}.model")
  common.check_batch(f"{where}.batch_size", section.batch_size, mesh_sizes)


def _tasks(run: common.Run, section: Any, where: str) -> list[Any]:
  out = []
  for ref in section.train:
    task, _ = run.tasks.resolve(ref)
    if not hasattr(task, "corpus_examples"):
      raise configs.ConfigError(f"{where}.train: {ref!r} is a {task.cfg.kind} task; "
                                f"pretraining needs a generated corpus (synthetic, general); "
                                f"use an sft stage for rows from files.")
    out.append(task)
  return out


def _as_list(task: Any) -> list[Any]:
  return list(task) if isinstance(task, (list, tuple)) else [task]


def check_lengths(section: Any, task: Any, tok: Any, where: str,
                  caps: dict[str, int] | None = None) -> int:
  """Longest prompt + worked completion (with BOS/EOS) over sampled problems of the
  task (or each of a list of tasks).

  ConfigError when rows of seq_len + 1 tokens would cut examples; a warning for each
  generation cap in `caps` ({name: max_new_tokens}) shorter than a worked solution.
  """
  longest, longest_completion = 0, 0
  examples = [e for t in _as_list(task) for e in t.longest_examples()]
  for prompt, comp in examples:
    c = len(tok.encode(comp, eos=True))
    longest = max(longest, len(tokenizer_lib.encode_prompt(tok, prompt)) + c)
    longest_completion = max(longest_completion, c)
  if longest > section.seq_len + 1:
    raise configs.ConfigError(
        f"{where}.seq_len={section.seq_len} would cut pretraining examples: the longest of "
        f"the sampled prompts + worked solutions is {longest} tokens with BOS and EOS; set "
        f"{where}.seq_len >= {longest - 1}.")
  for key, cap in (caps or {}).items():
    if cap < longest_completion:
      logging.warning("%s=%d is shorter than the longest worked solution (%d tokens): such "
                      "completions are truncated.", key, cap, longest_completion)
  return longest


def lm_batch(section: Any, task: Any, tok: Any, seed: int, step: int
             ) -> dict[str, np.ndarray]:
  """The batch of `step` (a pure function of seed and step: resumable) from the task
  (or a list of tasks mixed by section.train_weights, source by source)."""
  rng = np.random.default_rng([seed, step])
  seq = section.seq_len
  tokens = np.full((section.batch_size, seq + 1), tok.pad_id, np.int32)
  mask = np.zeros((section.batch_size, seq), np.float32)
  tasks = _as_list(task)
  counts = (streams.quotas(section.batch_size, section.train_weights) if len(tasks) > 1
            else [section.batch_size])
  examples = [e for t, n in zip(tasks, counts) if n for e in t.corpus_examples(rng, n)]
  for i, (prompt, comp) in enumerate(examples):
    pi = tokenizer_lib.encode_prompt(tok, prompt)
    ci = tok.encode(comp, eos=True)
    ids = (pi + ci)[: seq + 1]
    tokens[i, : len(ids)] = ids
    mask[i, len(pi) - 1: len(ids) - 1] = 1.0  # targets are tokens[1:]: completion only
  return {"tokens": tokens, "loss_mask": mask}


def generation_caps(run: common.Run) -> dict[str, int]:
  """max_new_tokens of every stage (and GRPO curve) of the run, for length warnings."""
  caps = {}
  for s in run.config.stages:
    sec = run.config[s]
    if "max_new_tokens" in sec:
      caps[f"{s}.max_new_tokens"] = sec.max_new_tokens
    if "curve" in sec:
      caps[f"{s}.curve.max_new_tokens"] = sec.curve.max_new_tokens
  return caps


def run(run: common.Run, name: str, section: Any, source: common.Source) -> common.Output:
  task = _tasks(run, section, name)
  if section.model:  # validate() made sure the input is 'random'
    source = dataclasses.replace(source, model_config=section.model)
  tok = run.tokenizer(source.tokenizer)
  mc = source.model_config
  if mc.vocab_size < tok.vocab_size:
    raise configs.ConfigError(f"model.vocab_size={mc.vocab_size} is smaller than the "
                              f"tokenizer's {tok.vocab_size} pieces.")
  check_lengths(section, task, tok, name, generation_caps(run))
  d = run.stage_dir(name)
  tx = state_lib.make_optimizer(section.optimizer)
  state, shardings = state_lib.create_train_state(mc, tx, run.mesh, run.rules,
                                                  jax.random.key(run.config.seed),
                                                  source.load())
  step_fn = state_lib.make_train_step(state_lib.lm_loss(mc), mc, tx, shardings, run.mesh,
                                      run.rules,
                                      state_lib.learning_rate_schedule(section.optimizer))
  produce = lambda step, state: (lm_batch(section, task, tok, run.config.seed, step), {})
  state = loop.train(state, shardings, step_fn, produce, workdir=d, name=name,
                        steps=section.steps, checkpoint_every=section.checkpoint_every,
                        max_to_keep=section.max_to_keep, max_nonfinite=section.max_nonfinite,
                        progress_every=20, progress_keys=("train/loss", "train/token_accuracy"),
                        log=common.log, hint=f"lower {name}.optimizer.learning_rate")
  rows = metrics_lib.read_metrics(f"{d}/metrics.jsonl")
  summary = {"final_loss": rows[-1]["train/loss"],
             "final_token_accuracy": rows[-1]["train/token_accuracy"]}
  return common.export(run, name, section, source, state.params, summary)
