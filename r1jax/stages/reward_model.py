"""`reward_model` stages: a scalar-head model trained with the Bradley-Terry loss on
preference pairs (paper section 2.3.4: helpfulness and harmlessness reward models).

The model starts from the `input` policy (e.g. the final SFT checkpoint) with a fresh
value head (r1jax.train.reward_model). Pairs come from the `pairs` sources: tasks that
serve `preference_pairs(split, preference)` ({question, chosen, rejected} rows, the
responses without the prompt). Each side is shown to the model through its `view`
(r1jax.rewards.reward_model: 'summary' for helpfulness, 'response' for harmlessness),
in the task's prompt template. Held-out pairwise accuracy (the share of `heldout`
pairs ranked the right way) is logged every `eval_every` steps and at the end, and
goes to DIR/eval.json under `report_as`. The trained model is scored in-graph by
`grpo` stages (`reward_models`) and `evaluate` stages (`helpfulness_rm`).
"""

from __future__ import annotations

import os
from typing import Any

import jax

from r1jax import configs
from r1jax.rewards import reward_model as rm_rewards
from r1jax.stages import common
from r1jax.train import loop
from r1jax.train import metrics as metrics_lib
from r1jax.train import reward_model as rm_lib
from r1jax.train import state as state_lib


def default_config() -> configs.ConfigDict:
  c = configs.ConfigDict()
  c.kind = "reward_model"
  c.input = "init"  # Starting weights (body): a stage name, 'init', 'random' or 'hf:DIR'.
  c.pairs = ()  # 'task:split' sources of preference pairs.
  c.heldout = ()  # 'task:split' held-out pairs for the pairwise accuracy (may be empty).
  c.preference = "helpful"  # The property the pairs rank (the task defines which exist).
  c.view = "summary"  # What the model reads: 'summary' (helpfulness) or 'response'.
  c.epochs = 1.0  # Passes over the pairs; used when steps=0.
  c.steps = 0  # Optimiser steps; 0 = as many as `epochs` takes.
  c.batch_pairs = 16  # Pairs per step (2x rows).
  c.seq_len = 128  # Tokens per side (longer pairs are dropped, counted).
  c.eval_rows = 64  # Rows per jitted scoring call (held-out accuracy).
  c.checkpoint_every = 100  # Steps between (async) checkpoints.
  c.max_to_keep = 2  # Checkpoints kept.
  c.max_nonfinite = 3  # Stop after this many consecutive non-finite losses.
  c.eval_every = 0  # Steps between held-out accuracies (0 = only at the end).
  c.report_as = ""  # Key in DIR/eval.json ('' = the stage's name).
  c.optimizer = configs.optimizer_config(learning_rate=1e-5, warmup_steps=10)
  return c


def validate(section: Any, where: str, mesh_sizes: dict[str, int]) -> None:
  s = section
  if not s.pairs:
    raise configs.ConfigError(f"{where}.pairs is empty; name preference-pair sources, "
                              f"e.g. ('general:train',).")
  if s.view not in rm_rewards.VIEWS:
    raise configs.ConfigError(f"{where}.view={s.view!r}; allowed: {rm_rewards.VIEWS}.")
  if s.steps < 0 or (s.steps == 0 and s.epochs <= 0):
    raise configs.ConfigError(f"{where}: set steps >= 1 or epochs > 0 (steps=0 means "
                              f"'from epochs').")
  if min(s.batch_pairs, s.checkpoint_every, s.eval_rows) < 1 or s.seq_len < 2:
    raise configs.ConfigError(f"{where}: batch_pairs, checkpoint_every and eval_rows must "
                              f"be >= 1 and seq_len >= 2.")
  common.check_batch(f"{where}: 2*batch_pairs", 2 * s.batch_pairs, mesh_sizes)
  common.check_batch(f"{where}: eval_rows", s.eval_rows, mesh_sizes)


def encode_pairs(run: common.Run, refs: Any, section: Any, tok: Any
                 ) -> list[tuple[list[int], list[int]]]:
  """(chosen ids, rejected ids) of every pair of the sources, each through the view."""
  out = []
  for ref in refs:
    task, split = run.tasks.resolve(ref)
    if not hasattr(task, "preference_pairs"):
      raise common.StageError(f"{ref}: a {task.cfg.kind} task has no preference pairs; "
                              f"reward models need a task that serves them (e.g. "
                              f"'general').")
    for p in task.preference_pairs(split, section.preference):
      prompt = task.prompt(p["question"], tok)
      out.append((rm_rewards.encode(tok, prompt, p["chosen"], section.view),
                  rm_rewards.encode(tok, prompt, p["rejected"], section.view)))
  return out


def load(run: common.Run, name: str, *, batch_rows: int = 64) -> rm_rewards.RewardModel:
  """The trained reward model of the finished stage `name`, as a batched scorer (loaded
  once per run)."""
  cache = run.reward_models
  if (name, batch_rows) in cache:
    return cache[(name, batch_rows)]
  out = run.finished(name)
  if out is None:
    raise common.StageError(f"reward model stage {name!r} has not finished (no "
                            f"{run.output_path(name)}); run it first.")
  if out.kind != "reward_model":
    raise common.StageError(f"stage {name!r} is a {out.kind} stage, not a reward_model one.")
  mc = out.model_config
  params = common.load_params(out.params, mc, run.mesh, run.rules, value_head=True)
  cache[(name, batch_rows)] = rm_rewards.RewardModel(
      params, mc, run.tokenizer(out.tokenizer), out.summary["view"], mesh=run.mesh,
      rules=run.rules, batch_rows=batch_rows)
  return cache[(name, batch_rows)]


def run(run: common.Run, name: str, section: Any, source: common.Source) -> common.Output:
  s = section
  tok = run.tokenizer(source.tokenizer)
  mc = source.model_config
  pairs = encode_pairs(run, s.pairs, s, tok)
  if not pairs:
    raise common.StageError(f"{name}: the sources {tuple(s.pairs)} hold no pairs.")
  try:
    data = rm_lib.PairData(pairs, seq_len=s.seq_len, pad_id=tok.pad_id,
                           batch_pairs=s.batch_pairs, seed=run.config.seed)
    heldout = (rm_lib.PairData(encode_pairs(run, s.heldout, s, tok), seq_len=s.seq_len,
                               pad_id=tok.pad_id, batch_pairs=s.batch_pairs,
                               seed=run.config.seed) if s.heldout else None)
  except ValueError as e:
    raise common.StageError(f"{name}: {e}; raise {name}.seq_len.") from None
  if data.dropped:
    common.log(f"{name}: {data.dropped} of {len(pairs)} pairs exceed seq_len = {s.seq_len} "
               f"tokens and were dropped.")
  steps = s.steps or data.steps_for(s.epochs)
  common.log(f"{name}: {data.num_pairs} '{s.preference}' pairs seen as {s.view!r}, {steps} "
             f"steps ({data.epoch_at(steps):.2f} epochs).")
  tx = state_lib.make_optimizer(s.optimizer)
  body = run.params_for_sampling(source)  # the input's weights (fresh ones for 'random')
  state, shardings = state_lib.create_train_state(
      mc, tx, run.mesh, run.rules, jax.random.key(run.config.seed + 4),
      rm_lib.with_head(body, mc))
  step_fn = state_lib.make_train_step(rm_lib.bradley_terry_loss(mc), mc, tx, shardings,
                                      run.mesh, run.rules,
                                      state_lib.learning_rate_schedule(s.optimizer))
  produce = lambda step, st: (data.batch(step), {"train/epoch": data.epoch_at(step + 1)})
  eval_fn = None
  if heldout is not None:
    eval_fn = lambda params, step: {f"heldout/{k}": v for k, v in rm_lib.pairwise_accuracy(
        params, mc, heldout, batch_rows=s.eval_rows, mesh=run.mesh, rules=run.rules).items()}
  d = run.stage_dir(name)
  state = loop.train(state, shardings, step_fn, produce, workdir=d, name=name, steps=steps,
                     checkpoint_every=s.checkpoint_every, max_to_keep=s.max_to_keep,
                     max_nonfinite=s.max_nonfinite, eval_fn=eval_fn,
                     eval_every=s.eval_every or steps, progress_every=max(1, steps // 10),
                     progress_keys=("train/bt_loss", "train/pairwise_accuracy",
                                    "eval/heldout/pairwise_accuracy"),
                     log=common.log, hint=f"lower {name}.optimizer.learning_rate",
                     crash_after_step=run.crash_after_step)
  rows = metrics_lib.read_metrics(os.path.join(d, "metrics.jsonl"))
  summary: dict[str, Any] = {"view": s.view, "preference": s.preference, "steps": steps,
                             "train_pairs": data.num_pairs, "dropped": data.dropped,
                             "final_loss": rows[-1]["train/bt_loss"]}
  final = [r for r in rows if "eval/heldout/pairwise_accuracy" in r]
  if final:
    result = {k.split("/")[-1]: final[-1][k] for k in final[-1] if k.startswith("eval/heldout/")}
    summary.update(result)
    run.record_eval(s.report_as or name, {**result, "view": s.view,
                                          "preference": s.preference})
    common.log(f"{name}: held-out pairwise accuracy {result['pairwise_accuracy']:.3f} "
               f"on {result['pairs']} pairs")
  common.save_params(os.path.join(d, "params"), state.params)
  return run.finish(common.Output(name=name, kind="reward_model", model=mc.to_dict(),
                                  tokenizer=source.tokenizer, params=os.path.join(d, "params"),
                                  summary=summary))
