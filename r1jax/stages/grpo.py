"""`grpo` stages: GRPO from the input policy, which is also the fixed reference (KL).

Each step: B prompts from the `train` sources (a pure function of seed and step), G
rollouts each, rewards weighted by `reward_weights`, group advantages, pi_ref
(and pi_old when num_iterations > 1) log-probs, then `num_iterations` updates on the
GRPO loss (paper eqs. 1-3; r1jax.train.rl, r1jax.train.grpo). Every `eval_every`
steps the policy is evaluated on the `curve` protocol (the accuracy and length curves
of the paper's Figures 2 and 3).

RL for all scenarios (paper section 2.3.4): `train_weights` mixes the sources at a
fixed ratio in every step (e.g. reasoning prompts and general prompts);
`reward_weights_by_type` gives the prompts of a `type` (an example field, e.g.
'general') their own weights instead of `reward_weights`; `reward_models` names trained
`reward_model` stages as rewards (e.g. {'helpful_rm': 'reward_model_helpful'}), scored
in jitted device forwards on the rows whose weights name them. Each reward's mean is
reported over the rows whose weights name it (weight 0 = reported only: a rule check
beside a reward model's score shows reward hacking as the two diverging).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from r1jax import configs
from r1jax.data import streams
from r1jax.rewards import scoring
from r1jax.stages import common
from r1jax.stages import evaluate as evaluate_stage
from r1jax.stages import reward_model as reward_model_stage
from r1jax.train import loop
from r1jax.train import rl
from r1jax.train import state as state_lib


PROMPT_SALT = 10_000  # separates the prompt stream from other seeded streams


def default_config() -> configs.ConfigDict:
  """Defaults are the paper's where it gives one (section 2.2)."""
  c = configs.ConfigDict()
  c.kind = "grpo"
  c.input = "init"  # Policy and reference: a stage name, 'init', 'random' or 'hf:DIR'.
  c.train = ()  # 'task:split' prompt sources, e.g. ('gsm8k:train', 'math:train').
  c.train_weights = ()  # Share of each source in every step's prompts (() = one pool).
  c.steps = 100  # GRPO steps (each: rollouts, rewards, num_iterations updates).
  c.batch_prompts = 16  # Prompts per step (B).
  c.group_size = 16  # Completions per prompt (G; paper: 16).
  c.temperature = 1.0  # Rollout temperature (paper: 1.0).
  c.max_new_tokens = 1024  # Completion cap for rollouts.
  c.num_iterations = 1  # Updates per batch with pi_old fixed (mu); 1 skips pi_old's forward.
  c.epsilon = 0.2  # Clip range (paper: 0.2).
  c.epsilon_high = 0.0  # Clip-higher upper range (DAPO); 0 = same as epsilon.
  c.beta = 0.001  # KL weight to the reference (paper: 0.001).
  c.aggregation = "sequence_mean"  # 'sequence_mean' (paper) or 'token_mean' (DAPO).
  c.scale_rewards = True  # Divide advantages by the group std (False: Dr. GRPO).
  c.reward_weights = configs.ConfigDict({"accuracy": 1.0, "format": 0.1})  # Rule rewards.
  c.reward_weights_by_type = configs.ConfigDict()  # Prompt type -> its own reward weights.
  c.reward_models = configs.ConfigDict()  # Reward name -> reward_model stage (in-graph).
  c.reward_workers = 2  # Reward scoring processes.
  c.reward_timeout_s = 10.0  # Per-sample reward time limit (then 0, counted).
  c.max_nonfinite_steps = 3  # Stop after this many consecutive non-finite losses.
  c.checkpoint_every = 10  # Steps between (async) checkpoints.
  c.max_to_keep = 2  # Checkpoints kept.
  c.eval_every = 10  # Steps between curve evaluations (0 = none).
  c.curve = evaluate_stage.protocol_config(num_problems=64, k=4)  # The curves' protocol.
  c.export_hf = False  # Also write the final policy as an HF checkpoint (DIR/<stage>/hf).
  c.optimizer = configs.optimizer_config(learning_rate=1e-6, warmup_steps=3)
  return c


def validate(section: Any, where: str, mesh_sizes: dict[str, int]) -> None:
  s = section
  if not s.train:
    raise configs.ConfigError(f"{where}.train is empty; name prompt sources, e.g. "
                              f"('gsm8k:train',).")
  if s.group_size < 2:
    raise configs.ConfigError(f"{where}.group_size={s.group_size}: group advantages need "
                              f">= 2 completions per prompt.")
  if s.aggregation not in ("sequence_mean", "token_mean"):
    raise configs.ConfigError(f"{where}.aggregation={s.aggregation!r}; allowed: "
                              f"'sequence_mean', 'token_mean'.")
  clash = [k for k in s.reward_models if k in scoring.REWARD_FNS]
  if clash:
    raise configs.ConfigError(f"{where}.reward_models: {clash} name rule rewards; give "
                              f"reward models their own names (e.g. 'helpful_rm').")
  valid = sorted([*scoring.REWARD_FNS, *s.reward_models])
  for key, weights in weight_sets(s).items():
    unknown = [k for k in weights if k not in valid]
    if unknown:
      raise configs.ConfigError(f"{where}.{key}: unknown reward(s) {unknown}; valid: {valid} "
                                f"(rule rewards and the names in reward_models).")
    if not weights:
      raise configs.ConfigError(f"{where}.{key} is empty; name at least one reward.")
  streams.check_weights(s.train_weights, s.train, f"{where}.train_weights")
  if min(s.steps, s.checkpoint_every, s.num_iterations, s.max_new_tokens) < 1:
    raise configs.ConfigError(f"{where}: steps, checkpoint_every, num_iterations and "
                              f"max_new_tokens must be >= 1.")
  common.check_batch(f"{where}: batch_prompts*group_size", s.batch_prompts * s.group_size,
                     mesh_sizes)
  if s.eval_every:
    evaluate_stage.check_protocol(s.curve, f"{where}.curve")


def weight_sets(s: Any) -> dict[str, dict[str, float]]:
  """Every reward-weight dict of a grpo section, by its config key."""
  out = {"reward_weights": dict(s.reward_weights)}
  for t, w in s.reward_weights_by_type.items():
    out[f"reward_weights_by_type.{t}"] = dict(w)
  return out


@dataclasses.dataclass
class Setup:
  """What a grpo stage trains with (`setup`; also r1jax.inspection's one-batch view)."""

  trainer: rl.GRPOTrainer  # rollouts, rewards, advantages, pi_old/pi_ref log-probs
  state: Any  # the train state at the stage's input weights
  shardings: Any
  ref_params: Any  # pi_ref: the input weights, fixed
  step_fn: Any  # one jitted GRPO update (state.make_train_step)


def setup(run: common.Run, section: Any, source: common.Source) -> Setup:
  """The trainer (prompt stream, reward models), train state, reference and step of a
  grpo section from `source`; close `trainer` when done."""
  r = section
  tok = run.tokenizer(source.tokenizer)
  mc = source.model_config
  stream = streams.Stream(run.tasks, r.train, run.config.seed, salt=PROMPT_SALT,
                          weights=tuple(r.train_weights))

  def prompts_fn(step: int) -> tuple[list[str], list[dict]]:
    items = stream.batch(step, r.batch_prompts)
    return ([t.prompt(x["question"], tok) for t, x in items],
            [{k: v for k, v in x.items() if k != "question"} for _, x in items])

  reward_models = {k: reward_model_stage.load(run, stage) for k, stage in r.reward_models.items()}
  trainer = rl.GRPOTrainer(r, mc, tok, run.mesh, run.rules, prompts_fn, run.config.seed,
                           reward_models=reward_models)
  try:
    state, shardings = state_lib.create_train_state(mc, trainer.tx, run.mesh, run.rules,
                                                    jax.random.key(run.config.seed + 2),
                                                    source.load())
  except BaseException:
    trainer.close()
    raise
  step_fn = state_lib.make_train_step(rl.grpo_loss_fn(mc, r), mc, trainer.tx, shardings,
                                      run.mesh, run.rules, trainer.lr)
  return Setup(trainer, state, shardings, jax.tree.map(jnp.copy, state.params), step_fn)


def run(run: common.Run, name: str, section: Any, source: common.Source) -> common.Output:
  r = section
  tok = run.tokenizer(source.tokenizer)
  mc = source.model_config
  su = setup(run, section, source)
  trainer, state, shardings, ref_params, step_fn = (su.trainer, su.state, su.shardings,
                                                    su.ref_params, su.step_fn)
  del su
  try:

    def update(state: Any, batch: dict) -> tuple[Any, dict]:
      skipped = 0
      for _ in range(r.num_iterations):  # mu updates with pi_old fixed
        state, m = step_fn(state, batch)
        skipped = skipped + m["train/nonfinite"]
      return state, {**m, "train/nonfinite": skipped}  # any skipped update counts

    def eval_fn(params: Any, step: int) -> dict[str, Any]:
      del step
      results = evaluate_stage.evaluate_tasks(run, r.curve, params, mc, tok)
      return {**next(iter(results.values())),
              **evaluate_stage.evaluate_general(run, r.curve, params, mc, tok)}

    state = loop.train(
        state, shardings, update, lambda step, st: trainer.produce(step, st, ref_params),
        workdir=run.stage_dir(name), name=name, steps=r.steps,
        checkpoint_every=r.checkpoint_every, max_to_keep=r.max_to_keep,
        max_nonfinite=r.max_nonfinite_steps, eval_fn=eval_fn if r.eval_every else None,
        eval_every=r.eval_every, eval_at_start=bool(r.eval_every),
        progress_keys=("reward/total_mean", "reward/accuracy_mean", "completion/length_mean",
                       "rl/kl", "eval/pass@1"),
        log=common.log, hint=f"lower {name}.optimizer.learning_rate or check the data",
        crash_after_step=run.crash_after_step)
  finally:
    trainer.close()
  return common.export(run, name, section, source, state.params, {})
