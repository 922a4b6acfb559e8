"""GRPO pieces (R1-Zero, reasoning RL): rollouts, rule rewards, advantages, the loss.

One RL step:
  1. B prompts from the train split (a pure function of seed and step: resumable),
     each repeated G times;
  2. completions from the in-graph sampler (`sampling.sample_padded`) at the rollout
     temperature;
  3. rewards (weighted rule rewards scored in worker processes, reward models in jitted
     forwards; weights per prompt type) -> group advantages;
  4. pi_old and pi_ref log-probs of the completions in jitted forwards (pi_ref = the
     starting checkpoint, fixed);
  5. `num_iterations` (mu) optimiser steps on the GRPO loss with pi_old fixed.
Everything on device is jitted; the host only decodes text and scores rewards. The
loop around it is r1jax.train.loop (via the `grpo` stage kind, r1jax.stages.grpo).

Shape letters: N = B*G rollouts, P padded prompt length, C completion bucket,
L = P + C sequence length.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from r1jax import distributed, model, sampling, sharding
from r1jax import tokenizer as tokenizer_lib
from r1jax.rewards import scoring
from r1jax.train import grpo
from r1jax.train import loop
from r1jax.train import state as state_lib

Array = jax.Array


TrainingError = loop.TrainingError


@dataclasses.dataclass
class Rollouts:
  tokens: np.ndarray  # int32 [N, L]: left-padded prompt + completion (+ pad)
  prompt_pad: np.ndarray  # int32 [N]: left padding of each row
  prompt_width: int  # P
  lengths: np.ndarray  # int32 [N]: completion lengths
  truncated: np.ndarray  # bool [N]
  texts: list[str]
  prompts: list[str]  # [N] the prompt text of each row


def sequence_inputs(tokens_NxL: Array, pad_N: Array) -> dict[str, Array]:
  """Model inputs for teacher-forced scoring of left-padded rows."""
  n, length = tokens_NxL.shape
  idx = jnp.arange(length - 1)[None, :]
  return {"inputs": tokens_NxL[:, :-1], "targets": tokens_NxL[:, 1:],
          "positions": jnp.maximum(idx - pad_N[:, None], 0),
          "key_mask": idx >= pad_N[:, None]}


def token_logprobs(params: Any, model_cfg: Any, batch: dict[str, Array],
                   completion_len: int | None = None) -> tuple[Array, Array, Any]:
  """log pi(target | prefix) [N, L-1], token entropies [N, L-1], MoE aux.

  With `completion_len` C, the head (logits, log-softmax, entropy) runs at the last C
  target positions only, those of the completion bucket, and the others hold 0: the
  prompt's targets are never in the loss mask.
  """
  x = sequence_inputs(batch["tokens"], batch["prompt_pad"])
  hidden, _, aux = model.apply(params, x["inputs"], model_cfg, positions=x["positions"],
                               key_mask=x["key_mask"], token_mask=x["key_mask"],
                               return_hidden=True)
  skip = 0 if completion_len is None else max(hidden.shape[1] - completion_len, 0)
  logp, entropy = model.target_logprobs(params, hidden[:, skip:], x["targets"][:, skip:],
                                        model_cfg)
  if skip:
    logp, entropy = (jnp.pad(a, ((0, 0), (skip, 0))) for a in (logp, entropy))
  return logp, entropy, aux


def completion_mask(prompt_width: int, lengths_N: Any, seq_len: int) -> np.ndarray:
  """[N, L-1] mask over target positions that are completion tokens (on the host: as
  jnp ops it compiled six tiny programs in a run's first step)."""
  t = np.arange(seq_len - 1)[None, :] + 1  # target index in the sequence
  return (t >= prompt_width) & (t < prompt_width + np.asarray(lengths_N)[:, None])


def grpo_loss_fn(model_cfg: Any, rl_cfg: Any) -> state_lib.LossFn:
  """The GRPO loss for `state.make_train_step`; batch carries ref (and old) logprobs.

  Without `old_logp` in the batch, pi_old is the policy being updated, held fixed:
  stop_gradient(logp). That is exact for the first update on a batch (the parameters
  have not moved since the rollouts), so with num_iterations=1 the pi_old forward pass
  is skipped (as TRL's GRPOTrainer does).
  """
  completion_len = sampling.length_bucket(rl_cfg.max_new_tokens)  # the rollouts' bucket

  def loss_fn(params: Any, batch: dict[str, Array], rng: Array):
    del rng
    logp, entropy, aux = token_logprobs(params, model_cfg, batch, completion_len)
    mask = batch["loss_mask"]
    old_logp = batch.get("old_logp", jax.lax.stop_gradient(logp))
    loss, m = grpo.grpo_loss(
        logp, old_logp, batch["ref_logp"], batch["advantages"], mask,
        epsilon=rl_cfg.epsilon, beta=rl_cfg.beta,
        epsilon_high=rl_cfg.epsilon_high if rl_cfg.epsilon_high > 0 else None,
        aggregation=rl_cfg.aggregation)
    denom = jnp.maximum(mask.sum(), 1.0)
    metrics = {"rl/kl": m["kl"], "rl/clip_low_fraction": m["clip/low_fraction"],
               "rl/clip_high_fraction": m["clip/high_fraction"],
               "rl/entropy": (entropy * mask).sum() / denom,
               "moe/balance_loss": aux.balance_loss}
    return loss + aux.balance_loss, (metrics, aux.expert_load)

  return loss_fn


class GRPOTrainer:
  """The GRPO batch producer: rollouts, rule rewards, advantages, pi_old/pi_ref log-probs.

  `rl_cfg` is a grpo stage section (r1jax.stages.grpo documents its keys);
  `prompts_fn(step) -> (prompts, examples)` gives a step's B prompts (text) and the
  examples their rewards read (e.g. {"answer"}); `seed` seeds the rollout stream.
  """

  def __init__(self, rl_cfg: Any, model_cfg: Any, tok: Any, mesh: Any, rules: Any,
               prompts_fn: Callable[[int], tuple[list[str], list[dict]]], seed: int, *,
               reward_models: dict[str, Any] | None = None):
    self.rl, self.seed = rl_cfg, seed
    self.model_cfg = model_cfg
    self.frozen_cfg = ml_collections.FrozenConfigDict(model_cfg)
    self.tok, self.mesh, self.rules = tok, mesh, rules
    self.prompts_fn = prompts_fn
    self.stop_ids = jnp.asarray(tokenizer_lib.stop_ids(tok) or [-1], jnp.int32)
    self.tx = state_lib.make_optimizer(self.rl.optimizer)
    self.lr = state_lib.learning_rate_schedule(self.rl.optimizer)
    self.weights = dict(self.rl.reward_weights)
    self.weights_by_type = {t: dict(w) for t, w in
                            getattr(self.rl, "reward_weights_by_type", {}).items()}
    self.reward_models = dict(reward_models or {})
    names = [n for w in (self.weights, *self.weights_by_type.values()) for n in w]
    missing = [n for n in names if n not in scoring.REWARD_FNS and n not in self.reward_models]
    if missing:
      raise ValueError(f"reward(s) {sorted(set(missing))} are neither rule rewards nor "
                       f"loaded reward models ({sorted(self.reward_models)}).")
    rules_named = list(dict.fromkeys(n for n in names if n in scoring.REWARD_FNS))
    self.scorer = scoring.RewardScorer({n: 1.0 for n in rules_named},
                                       num_workers=self.rl.reward_workers,
                                       timeout_s=self.rl.reward_timeout_s)
    self._logprob_fn = jax.jit(lambda p, b: token_logprobs(p, model_cfg, b)[0])

  def close(self) -> None:
    self.scorer.close()

  def rollout(self, params: Any, step: int) -> tuple[Rollouts, list[dict]]:
    """B prompts x G samples at the rollout temperature (deterministic in step)."""
    r = self.rl
    prompts, examples = self.prompts_fn(step)
    ids = [tokenizer_lib.encode_prompt(self.tok, p) for p in prompts]
    rows = [i for i in range(len(ids)) for _ in range(r.group_size)]
    width = sampling.length_bucket(max(len(x) for x in ids))
    arr = np.full((len(rows), width), self.tok.pad_id, np.int32)
    lens = np.zeros((len(rows),), np.int32)
    for j, i in enumerate(rows):
      arr[j, width - len(ids[i]):] = ids[i]
      lens[j] = len(ids[i])
    gen = sampling.length_bucket(r.max_new_tokens)
    rng = jax.random.fold_in(jax.random.key(self.seed + 1), step)
    in_sh = sharding.batch_sharding(self.mesh, self.rules, 2, arr.shape)
    with sharding.use_mesh(self.mesh, self.rules):
      out = sampling.sample_padded(
          params, distributed.put(arr, in_sh),
          distributed.put(lens, sharding.batch_sharding(self.mesh, self.rules, 1, lens.shape)),
          rng, jnp.int32(r.max_new_tokens), jnp.float32(r.temperature), jnp.float32(1.0),
          jnp.int32(0), self.stop_ids, config=self.frozen_cfg,
          gen_bucket=gen)
    toks, _, lengths, trunc = distributed.fetch(out)
    texts = [self.tok.decode(toks[j, :lengths[j]]) for j in range(len(rows))]
    full = np.concatenate([arr, np.where(np.arange(gen)[None] < lengths[:, None], toks,
                                         self.tok.pad_id)], axis=1).astype(np.int32)
    return Rollouts(full, (width - lens).astype(np.int32), width, lengths.astype(np.int32),
                    trunc, texts, [prompts[i] for i in rows]), [examples[i] for i in rows]

  def weights_for(self, example: dict) -> dict[str, float]:
    """The reward weights of an example's prompt type (`reward_weights` by default)."""
    return self.weights_by_type.get(example.get("type", ""), self.weights)

  def score(self, ro: Rollouts, examples: list[dict]) -> scoring.RewardResult:
    """Every named reward of every row (rule rewards in the workers, reward models in
    jitted forwards on the rows whose weights name them), and each row's total under
    its type's weights. Rows outside a reward's scope hold NaN in `per_fn`.

    In a multi-process run each process scores the rule rewards of the rows its devices
    hold (`distributed.owned_rows`) and the results are gathered; reward models run as
    one global jitted computation."""
    rules = score_owned(self.scorer, ro.texts, examples, self.mesh, self.rules)
    weights = [self.weights_for(ex) for ex in examples]
    per_fn: dict[str, np.ndarray] = {}
    for name in list(rules.per_fn) + list(self.reward_models):
      rows = [i for i, w in enumerate(weights) if name in w]
      v = np.full((len(examples),), np.nan, np.float32)
      if name in rules.per_fn:
        v[rows] = rules.per_fn[name][rows]
      elif rows:
        v[rows] = self.reward_models[name]([ro.prompts[i] for i in rows],
                                           [ro.texts[i] for i in rows])
      per_fn[name] = v
    total = np.asarray([sum(w[n] * per_fn[n][i] for n in w) for i, w in enumerate(weights)],
                       np.float32)
    return scoring.RewardResult(total=total, per_fn=per_fn, failures=rules.failures,
                                worker_failures=rules.worker_failures)

  def make_batch(self, params: Any, ref_params: Any, ro: Rollouts, advantages: np.ndarray
                 ) -> dict[str, Array]:
    """Device batch with pi_old / pi_ref log-probs from jitted forwards."""
    batch = {"tokens": ro.tokens, "prompt_pad": ro.prompt_pad,
             "loss_mask": completion_mask(ro.prompt_width, ro.lengths,
                                          ro.tokens.shape[1]).astype(np.float32),
             "advantages": advantages.astype(np.float32)}
    batch = {k: distributed.put(v, sharding.batch_sharding(self.mesh, self.rules, v.ndim,
                                                            v.shape)) for k, v in batch.items()}
    with sharding.use_mesh(self.mesh, self.rules):
      if self.rl.num_iterations > 1:  # else pi_old = stop_gradient(pi_theta), in the loss
        batch["old_logp"] = self._logprob_fn(params, batch)
      batch["ref_logp"] = self._logprob_fn(ref_params, batch)
    return batch


  def produce(self, step: int, state: Any, ref_params: Any) -> tuple[dict[str, Array],
                                                                    dict[str, float]]:
    """The training batch of `step` from the current policy, and its host metrics."""
    r = self.rl
    t0 = time.time()
    ro, examples = self.rollout(state.params, step)
    t_sample = time.time() - t0
    rewards = self.score(ro, examples)
    adv = np.asarray(grpo.group_advantages(jnp.asarray(rewards.total), r.group_size,
                                           scale_by_std=r.scale_rewards))
    batch = self.make_batch(state.params, ref_params, ro, adv)
    return batch, {**rollout_metrics(ro, rewards, r.group_size),
                   "time/sampled_tokens_per_s": float(ro.lengths.sum()) / max(t_sample, 1e-9)}


def score_owned(scorer: scoring.RewardScorer, texts: list[str], examples: list[dict],
                mesh: Any, rules: Any) -> scoring.RewardResult:
  """`scorer(texts, examples)`; in a multi-process run each process scores only the rows
  it owns (`distributed.owned_rows` of a batch-sharded [N] array) and every process gets
  the gathered result, failure counts summed."""
  n = len(texts)
  if jax.process_count() == 1:
    return scorer(texts, examples)
  mine = distributed.owned_rows(n, sharding.batch_sharding(mesh, rules, 1, (n,)))
  local = scorer([texts[i] for i in mine], [examples[i] for i in mine])
  per_fn = {k: distributed.gather_rows(v, mine, n) for k, v in sorted(local.per_fn.items())}
  return scoring.RewardResult(total=distributed.gather_rows(local.total, mine, n),
                              per_fn=per_fn, failures=distributed.sum_counts(local.failures),
                              worker_failures=int(distributed.sum_counts(
                                  {"w": local.worker_failures})["w"]))


def rollout_metrics(ro: Rollouts, rewards: scoring.RewardResult, group_size: int
                    ) -> dict[str, float]:
  """Host-side metrics of one batch of rollouts."""
  total = rewards.total.reshape(-1, group_size)
  m = {"reward/total_mean": float(total.mean()), "reward/total_std": float(total.std()),
       "reward/zero_spread_groups": float(np.mean(total.max(1) == total.min(1))),
       "completion/length_mean": float(ro.lengths.mean()),
       "completion/length_min": float(ro.lengths.min()),
       "completion/length_max": float(ro.lengths.max()),
       "completion/truncated_fraction": float(ro.truncated.mean())}
  for name, v in rewards.per_fn.items():  # over the rows in the reward's scope
    v = v[~np.isnan(v)]
    if v.size:
      m[f"reward/{name}_mean"] = float(v.mean())
      m[f"reward/{name}_std"] = float(v.std())
  for name, n in rewards.failures.items():
    m[f"reward/{name}_failures"] = float(n)
  m["reward/worker_failures"] = float(rewards.worker_failures)  # lost and replaced
  return m
