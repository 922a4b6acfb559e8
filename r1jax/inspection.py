"""Looking inside a run: one GRPO batch piece by piece, and the MoE router over training.

GRPO (`GRPOInspector`, `loss_pieces`): the batch a `grpo` stage's step produces, made by
that stage's own pieces (r1jax.train.rl.GRPOTrainer: rollouts, rule rewards, group
advantages, pi_ref log-probs), kept apart instead of consumed: prompts, completions,
each reward function's score, advantages, token log-probs. `loss_pieces` splits
`r1jax.train.grpo.grpo_loss` (paper eq. 1-2) into its clipped-ratio term and its k3 KL
term by calling it, never by restating it: with beta=0 it is the policy term, with zero
advantages it is beta times the KL term; per token, it is called on each token alone.

MoE (`router_trace`): the routed experts' load and the selection bias of
auxiliary-loss-free balancing (r1jax.model.moe, DeepSeek-V3 eq. 16) at every checkpoint
of the training stages of a run, on a fixed probe batch, routed with and without the
bias. Keep checkpoints (`checkpoint_every`, `max_to_keep`) to get a trajectory.

Shape letters: N completions (B prompts x G), T target tokens, L MoE layers, E routed
experts.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from r1jax import configs, model, sharding
from r1jax.stages import common
from r1jax.train import grpo
from r1jax.train import rl
from r1jax.train import state as state_lib

# -- GRPO --------------------------------------------------------------------------------


@dataclasses.dataclass
class LossPieces:
  """grpo_loss and its terms: total = policy + beta * kl (means as the loss takes them)."""

  total: float  # grpo_loss: the negated objective of eq. 1
  policy: float  # -mean min(ratio * A, clip(ratio) * A)  (grpo_loss with beta=0)
  kl: float  # mean k3 estimate of KL(pi_theta || pi_ref), eq. 2
  beta: float
  clip_low_fraction: float
  clip_high_fraction: float
  ratio_NxT: np.ndarray  # pi_theta / pi_old per token (1 off the mask)
  policy_NxT: np.ndarray  # per token: -min(ratio * A, clip(ratio) * A)
  kl_NxT: np.ndarray  # per token: k3
  per_completion_N: np.ndarray  # mean over a completion's tokens of policy + beta * kl


@functools.partial(jax.jit, static_argnames=("epsilon", "beta", "epsilon_high", "aggregation"))
def _pieces(logp, old_logp, ref_logp, adv, mask, *, epsilon, beta, epsilon_high, aggregation):
  loss = functools.partial(grpo.grpo_loss, epsilon=epsilon, epsilon_high=epsilon_high,
                           aggregation=aggregation)
  total, m = loss(logp, old_logp, ref_logp, adv, mask, beta=beta)
  policy, _ = loss(logp, old_logp, ref_logp, adv, mask, beta=0.0)
  kl_term, _ = loss(logp, old_logp, ref_logp, jnp.zeros_like(adv), mask, beta=1.0)

  def token(lp, olp, rlp, a, b):  # the loss of one token alone
    one = lambda x: jnp.reshape(x, (1, 1))
    return loss(one(lp), one(olp), one(rlp), jnp.reshape(a, (1,)), jnp.ones((1, 1)), beta=b)[0]

  over_tokens = jax.vmap(jax.vmap(token, (0, 0, 0, None, None)), (0, 0, 0, 0, None))
  policy_t = over_tokens(logp, old_logp, ref_logp, adv, 0.0)
  kl_t = over_tokens(logp, old_logp, ref_logp, jnp.zeros_like(adv), 1.0)
  return total, policy, kl_term, m, policy_t, kl_t


def loss_pieces(logp_NxT: Any, old_logp_NxT: Any, ref_logp_NxT: Any, advantages_N: Any,
                mask_NxT: Any, *, epsilon: float, beta: float,
                epsilon_high: float | None = None, aggregation: str = "sequence_mean"
                ) -> LossPieces:
  """`grpo.grpo_loss` and its terms, as totals and per token (see the module docstring)."""
  args = [jnp.asarray(x, jnp.float32) for x in (logp_NxT, old_logp_NxT, ref_logp_NxT,
                                                advantages_N, mask_NxT)]
  total, policy, kl, m, policy_t, kl_t = jax.device_get(_pieces(
      *args, epsilon=float(epsilon), beta=float(beta), epsilon_high=epsilon_high,
      aggregation=aggregation))
  mask = np.asarray(mask_NxT, np.float32)
  ratio = np.where(mask > 0, np.exp(np.asarray(logp_NxT) - np.asarray(old_logp_NxT)), 1.0)
  per_completion = ((policy_t + beta * kl_t) * mask).sum(1) / np.maximum(mask.sum(1), 1.0)
  return LossPieces(total=float(total), policy=float(policy), kl=float(kl), beta=float(beta),
                    clip_low_fraction=float(m["clip/low_fraction"]),
                    clip_high_fraction=float(m["clip/high_fraction"]),
                    ratio_NxT=ratio, policy_NxT=np.asarray(policy_t) * mask,
                    kl_NxT=np.asarray(kl_t) * mask, per_completion_N=per_completion)


@dataclasses.dataclass
class GRPOBatch:
  """One step's batch, piece by piece."""

  step: int
  group_size: int
  prompts: list[str]  # [N] (each prompt G times)
  completions: list[str]  # [N]
  rewards: dict[str, np.ndarray]  # reward function -> [N] (NaN outside its scope)
  total_reward: np.ndarray  # [N] weighted sum
  advantages: np.ndarray  # [N] group-normalised (eq. 3)
  device_batch: dict[str, Any]  # what the train step takes (tokens, masks, ref_logp, ...)
  old_logp: np.ndarray  # [N, T] log pi_old (the rollout policy) of every target token
  ref_logp: np.ndarray  # [N, T] log pi_ref
  mask: np.ndarray  # [N, T] completion tokens
  token_ids: np.ndarray  # [N, T] the target tokens

  def completion_tokens(self, i: int) -> list[int]:
    return [int(t) for t, m in zip(self.token_ids[i], self.mask[i]) if m]


class GRPOInspector:
  """A `grpo` stage of `config` opened at its input (which must have finished): its
  trainer, train state, reference and jitted step, as `stages.grpo.run` builds them."""

  def __init__(self, config: Any, workdir: str, stage: str):
    from r1jax.stages import grpo as grpo_stage

    configs.validate(config)
    self.section = r = config[stage]
    self.run = run = common.Run(config, workdir, sharding.make_mesh(config.mesh))
    source = run.source(r.input)
    self.tok = run.tokenizer(source.tokenizer)
    self.model_cfg = mc = source.model_config
    su = grpo_stage.setup(run, r, source)
    self.trainer, self.state, self.ref_params, self.step_fn = (su.trainer, su.state,
                                                               su.ref_params, su.step_fn)
    self._logprobs = jax.jit(lambda p, b: rl.token_logprobs(p, mc, b)[0])

  def close(self) -> None:
    self.trainer.close()

  def logprobs(self, params: Any, batch: GRPOBatch) -> np.ndarray:
    """log pi(target | prefix) [N, T] under `params` (teacher-forced, jitted)."""
    with sharding.use_mesh(self.run.mesh, self.run.rules):
      return np.asarray(jax.device_get(self._logprobs(params, batch.device_batch)))

  def batch(self, step: int = 0) -> GRPOBatch:
    """Step `step`'s batch from the current policy (as `GRPOTrainer.produce` makes it)."""
    r = self.section
    ro, examples = self.trainer.rollout(self.state.params, step)
    rewards = self.trainer.score(ro, examples)
    adv = np.asarray(grpo.group_advantages(jnp.asarray(rewards.total), r.group_size,
                                           scale_by_std=r.scale_rewards))
    b = self.trainer.make_batch(self.state.params, self.ref_params, ro, adv)
    out = GRPOBatch(step=step, group_size=r.group_size, prompts=ro.prompts,
                    completions=ro.texts, rewards=dict(rewards.per_fn),
                    total_reward=rewards.total, advantages=adv, device_batch=b,
                    old_logp=np.zeros(0), ref_logp=np.asarray(jax.device_get(b["ref_logp"])),
                    mask=np.asarray(jax.device_get(b["loss_mask"])),
                    token_ids=np.asarray(ro.tokens[:, 1:]))
    out.old_logp = self.logprobs(self.state.params, out)
    return out

  def pieces(self, batch: GRPOBatch) -> LossPieces:
    """The loss pieces of `batch` under the current policy (pi_old: the rollout policy)."""
    r = self.section
    logp = self.logprobs(self.state.params, batch)
    return loss_pieces(logp, batch.old_logp, batch.ref_logp, batch.advantages, batch.mask,
                       epsilon=r.epsilon, beta=r.beta,
                       epsilon_high=r.epsilon_high if r.epsilon_high > 0 else None,
                       aggregation=r.aggregation)

  def update(self, batch: GRPOBatch) -> dict[str, float]:
    """One optimiser step of the stage's train step on `batch`; its metrics."""
    self.state, m = self.step_fn(self.state, batch.device_batch)
    return {k: float(v) for k, v in jax.device_get(m).items() if np.ndim(v) == 0}

  def token_rows(self, batch: GRPOBatch, i: int, pieces: LossPieces | None = None
                 ) -> list[dict[str, Any]]:
    """Completion `i` token by token: text, log pi_old, log pi_ref (and with `pieces`,
    the ratio, policy term and k3 KL of each token)."""
    rows = []
    positions = np.nonzero(batch.mask[i])[0]
    ids = [int(batch.token_ids[i, t]) for t in positions]
    texts = [self.tok.decode(ids[:n]) for n in range(len(ids) + 1)]
    for n, t in enumerate(positions):  # a token's text: what it adds to the decoded prefix
      row = {"token": texts[n + 1][len(texts[n]):] if texts[n + 1].startswith(texts[n])
                      else self.tok.decode(ids[n:n + 1]),
             "logp_old": float(batch.old_logp[i, t]), "logp_ref": float(batch.ref_logp[i, t])}
      if pieces is not None:
        row.update(ratio=float(pieces.ratio_NxT[i, t]), policy=float(pieces.policy_NxT[i, t]),
                   kl=float(pieces.kl_NxT[i, t]))
      rows.append(row)
    return rows


def group_table(batch: GRPOBatch, group: int, *, width: int = 60) -> str:
  """One prompt's G completions: each reward function's score, the total, the advantage."""
  g = batch.group_size
  names = sorted(batch.rewards)
  lines = [f"prompt ...{batch.prompts[group * g][-70:]!r}",
           "  ".join(f"{n:>8s}" for n in [*names, "total", "adv"]) + "  completion"]
  for i in range(group * g, (group + 1) * g):
    vals = [batch.rewards[n][i] for n in names] + [batch.total_reward[i], batch.advantages[i]]
    text = batch.completions[i].replace("\n", " ")
    lines.append("  ".join(f"{v:8.3f}" for v in vals) + f"  {text[:width]!r}")
  return "\n".join(lines)


def plot_pieces(batch: GRPOBatch, pieces: LossPieces, epsilon: float, path: str, *,
                epsilon_high: float | None = None) -> str:
  """Left: pi_theta / pi_old over the completion tokens, with the clip range. Right: each
  completion's share of the loss against its advantage. PNG at `path`."""
  from matplotlib.figure import Figure

  fig = Figure(figsize=(11, 3.4))
  a_ratio, a_adv = fig.subplots(1, 2)
  ratios = pieces.ratio_NxT[batch.mask > 0]
  a_ratio.hist(ratios, bins=40, color="tab:blue", log=True)
  hi = epsilon if epsilon_high is None else epsilon_high
  for x in (1 - epsilon, 1 + hi):
    a_ratio.axvline(x, color="tab:red", linestyle="--")
  a_ratio.set_title(f"ratio pi/pi_old on {ratios.size} completion tokens "
                    f"(clipped: {pieces.clip_low_fraction + pieces.clip_high_fraction:.1%})",
                    fontsize=9)
  a_adv.scatter(batch.advantages, pieces.per_completion_N, s=12)
  a_adv.set_xlabel("advantage")
  a_adv.set_title(f"per-completion loss; total {pieces.total:.3g} = policy "
                  f"{pieces.policy:.3g} + {pieces.beta:g} x KL {pieces.kl:.3g}", fontsize=9)
  for ax in (a_ratio, a_adv):
    ax.grid(alpha=0.3)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=90)
  return path


# -- MoE router --------------------------------------------------------------------------


def router_bias(params: Any) -> np.ndarray:
  """The selection bias [L, E] of the MoE layers."""
  return np.asarray(jax.device_get(params["moe_layers"]["moe"]["router_bias"]), np.float32)


@functools.partial(jax.jit, static_argnames=("config",))
def _load(params: Any, tokens: Any, token_mask: Any, config: Any) -> Any:
  return model.apply(params, tokens, config, token_mask=token_mask)[2].expert_load


def expert_load(params: Any, model_cfg: Any, tokens_BxT: Any, token_mask_BxT: Any, *,
                use_bias: bool = True) -> np.ndarray:
  """Tokens routed to each expert [L, E] (real tokens only), with the selection bias
  as trained or (use_bias=False) zeroed: what routing would be without balancing."""
  if not use_bias:
    moe_p = {**params["moe_layers"]["moe"]}
    moe_p["router_bias"] = jnp.zeros_like(moe_p["router_bias"])
    params = {**params, "moe_layers": {**params["moe_layers"], "moe": moe_p}}
  return np.asarray(jax.device_get(_load(params, jnp.asarray(tokens_BxT, jnp.int32),
                                         jnp.asarray(token_mask_BxT, bool),
                                         ml_collections.FrozenConfigDict(model_cfg))))


def max_over_mean(load_LxE: np.ndarray) -> np.ndarray:
  """Per layer, the busiest expert's load over the mean load (1 = balanced) [L]."""
  load = np.asarray(load_LxE, np.float64)
  return load.max(-1) / np.maximum(load.mean(-1), 1e-9)


@dataclasses.dataclass
class RouterTrace:
  """Router state at each kept checkpoint of one or more training stages, in order."""

  steps: list[int]  # global step (a later stage's steps follow an earlier one's)
  stages: list[str]  # the stage of each point
  bias: np.ndarray  # [P, L, E]
  load: np.ndarray  # [P, L, E] on the probe batch, routed with the bias
  load_no_bias: np.ndarray  # [P, L, E] the same, bias zeroed


def probe_batch(config: Any, workdir: str, stage: str, *, step: int = 10 ** 6
                ) -> tuple[np.ndarray, np.ndarray]:
  """A fixed batch of a finished pretrain stage's corpus (its batch at `step`, beyond
  training): tokens [B, T] and the mask of real tokens."""
  from r1jax.stages import pretrain

  run = common.Run(config, workdir, sharding.make_mesh(config.mesh))
  finished = run.finished(stage)
  if finished is None:
    raise common.StageError(f"stage {stage!r} has not finished in {workdir}.")
  section = config[stage]
  tasks = [run.tasks.resolve(ref)[0] for ref in section.train]
  tok = run.tokenizer(finished.tokenizer)
  b = pretrain.lm_batch(section, tasks if len(tasks) > 1 else tasks[0], tok,
                        config.seed, step)
  tokens = b["tokens"][:, :-1]
  return tokens, tokens != tok.pad_id


def checkpoint_params(config: Any, workdir: str, stage: str, model_cfg: Any
                      ) -> list[tuple[int, Any]]:
  """(step, params) of every checkpoint a training stage kept, oldest first; a stage
  from random weights starts with (0, its initial params)."""
  from r1jax.train import checkpoint as ckpt_lib

  mesh = sharding.make_mesh(config.mesh)
  tx = state_lib.make_optimizer(config[stage].optimizer)
  target, shardings = state_lib.create_train_state(model_cfg, tx, mesh, config.mesh.rules,
                                                   jax.random.key(config.seed))
  ckpt = ckpt_lib.Checkpointer(os.path.join(workdir, stage, "checkpoints"))
  try:
    kept = [(int(s), ckpt.restore(target, shardings, int(s))[0].params)
            for s in sorted(ckpt.manager.all_steps())]
  finally:
    ckpt.close()
  # The stage's own initial state: `create_train_state` from key(seed) (stages.pretrain).
  return ([(0, target.params)] if config[stage].input == "random" else []) + kept


def router_trace(config: Any, workdir: str, stages: Sequence[str], tokens_BxT: np.ndarray,
                 token_mask_BxT: np.ndarray) -> RouterTrace:
  """Bias and load at every kept checkpoint of `stages` (finished, in training order;
  `checkpoint_params`) on the probe tokens."""
  run = common.Run(config, workdir, sharding.make_mesh(config.mesh))
  points: list[tuple[int, str, Any, Any]] = []
  offset = 0
  for stage in stages:
    finished = run.finished(stage)
    if finished is None:
      raise common.StageError(f"stage {stage!r} has not finished in {workdir}.")
    model_cfg = finished.model_config
    kept = checkpoint_params(config, workdir, stage, model_cfg)
    points += [(offset + s, stage, p, model_cfg) for s, p in kept]
    offset += config[stage].steps
  load = lambda p, mc, use_bias: expert_load(p, mc, tokens_BxT, token_mask_BxT,
                                             use_bias=use_bias)
  return RouterTrace(steps=[s for s, *_ in points], stages=[st for _, st, *_ in points],
                     bias=np.stack([router_bias(p) for *_, p, _ in points]),
                     load=np.stack([load(p, mc, True) for *_, p, mc in points]),
                     load_no_bias=np.stack([load(p, mc, False) for *_, p, mc in points]))


def plot_router(trace: RouterTrace, path: str) -> str:
  """Per MoE layer: each expert's share of the probe's tokens and its bias against step,
  and the busiest expert's load over the mean with and without the bias. PNG at `path`."""
  from matplotlib.figure import Figure

  n_layers = trace.bias.shape[1]
  fig = Figure(figsize=(13, 3.2 * n_layers))
  axes = fig.subplots(n_layers, 3, squeeze=False)
  share = trace.load / np.maximum(trace.load.sum(-1, keepdims=True), 1)
  for layer in range(n_layers):
    a_share, a_bias, a_bal = axes[layer]
    for e in range(trace.bias.shape[2]):
      a_share.plot(trace.steps, share[:, layer, e], marker=".", label=f"expert {e}")
      a_bias.plot(trace.steps, trace.bias[:, layer, e], marker=".", label=f"expert {e}")
    a_share.axhline(1 / trace.bias.shape[2], color="gray", linestyle=":")
    a_share.set_title(f"MoE layer {layer}: share of routed tokens", fontsize=10)
    a_bias.set_title(f"MoE layer {layer}: selection bias", fontsize=10)
    a_bal.plot(trace.steps, [max_over_mean(x)[layer] for x in trace.load], marker="o",
               label="with bias (as trained)")
    a_bal.plot(trace.steps, [max_over_mean(x)[layer] for x in trace.load_no_bias],
               marker="x", linestyle="--", label="bias zeroed")
    a_bal.set_title(f"MoE layer {layer}: max load / mean load", fontsize=10)
    for ax in axes[layer]:
      for k in range(1, len(trace.steps)):  # where a later stage takes over
        if trace.stages[k] != trace.stages[k - 1]:
          ax.axvline(trace.steps[k - 1], color="gray", linestyle="--", linewidth=0.8)
      ax.set_xlabel("step")
      ax.grid(alpha=0.3)
      ax.legend(fontsize=7)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=80)
  return path

