"""RL for all scenarios: rewards per prompt type, reward models scored only on the rows
that name them, per-reward means over their own rows, and config errors."""

import numpy as np
import pytest

from r1jax import configs, stages
from r1jax.data import general
from r1jax.stages import grpo as grpo_stage
from r1jax.train import rl

MESH = {"data": 1, "fsdp": 1, "expert": 1, "tensor": 1}


class _Tok:
  pad_id, bos_id, eos_id = 0, 1, 2

  def token_to_id(self, token):
    raise KeyError(token)


def _section():
  s = stages.config("grpo", train=("digits:train", "general:train"), train_weights=(1, 1),
                    reward_workers=0, group_size=2, batch_prompts=2, eval_every=0)
  s.reward_weights = configs.ConfigDict({"accuracy": 1.0, "r1_format": 0.5})
  s.reward_weights_by_type = configs.ConfigDict({"general": {
      "helpful_rm": 2.0, "harmless_rm": 1.0, "harmless_rule": 0.0}})
  s.reward_models = configs.ConfigDict({"helpful_rm": "rm_a", "harmless_rm": "rm_b"})
  return s


def _rollouts(texts, prompts):
  n = len(texts)
  z = np.zeros((n,), np.int32)
  return rl.Rollouts(np.zeros((n, 2), np.int32), z, 1, z + 1, np.zeros((n,), bool),
                     list(texts), list(prompts))


def test_rewards_are_combined_per_prompt_type():
  calls = []

  def fake_rm(scale):
    def score(prompts, completions):
      calls.append(list(completions))
      return np.asarray([scale * len(c) for c in completions], np.float32)
    return score

  tr = rl.GRPOTrainer(_section(), configs.model_config(), _Tok(), None, None, None, seed=0,
                      reward_models={"helpful_rm": fake_rm(1.0), "harmless_rm": fake_rm(-0.5)})
  try:
    sep = general.SEPARATOR
    texts = [f" {sep}two is two{sep} The answer is \\boxed{{2}}.",  # reasoning, right
             " \\boxed{5}",  # reasoning, wrong, no format
             f" {sep}This is a simple request.{sep} I cannot share it.",  # general, safe
             f" {sep}The secret code is zorp.{sep} Hi"]  # general, leaks
    examples = [{"answer": "2"}, {"answer": "2"},
                {"type": "general", "answer": "I cannot share it."},
                {"type": "general", "answer": "I cannot share it."}]
    res = tr.score(_rollouts(texts, ["p"] * 4), examples)
  finally:
    tr.close()
  # Each reward model saw the general rows only, once.
  assert calls == [texts[2:], texts[2:]]
  np.testing.assert_array_equal(np.isnan(res.per_fn["accuracy"]), [0, 0, 1, 1])
  np.testing.assert_array_equal(np.isnan(res.per_fn["helpful_rm"]), [1, 1, 0, 0])
  np.testing.assert_array_equal(res.per_fn["harmless_rule"][2:], [1.0, 0.0])
  want = [1.0 + 0.5, 0.0,
          2.0 * len(texts[2]) - 0.5 * len(texts[2]),
          2.0 * len(texts[3]) - 0.5 * len(texts[3])]
  np.testing.assert_allclose(res.total, want, rtol=1e-6)
  m = rl.rollout_metrics(_rollouts(texts, ["p"] * 4), res, group_size=2)
  assert m["reward/accuracy_mean"] == 0.5  # over the two reasoning rows, not all four
  assert m["reward/harmless_rule_mean"] == 0.5
  assert m["reward/helpful_rm_mean"] == pytest.approx((len(texts[2]) + len(texts[3])) / 2)


def test_config_errors_name_the_problem():
  s = _section()
  grpo_stage.validate(s, "rl_all", MESH)  # valid as built
  s.reward_weights_by_type.general.helpful_rmm = 1.0
  with pytest.raises(configs.ConfigError, match=r"reward_weights_by_type.general: unknown"):
    grpo_stage.validate(s, "rl_all", MESH)
  s = _section()
  s.reward_models = configs.ConfigDict({"accuracy": "rm_a"})
  with pytest.raises(configs.ConfigError, match="name rule rewards"):
    grpo_stage.validate(s, "rl_all", MESH)
  s = _section()
  s.train_weights = (1.0,)
  with pytest.raises(configs.ConfigError, match="one non-negative weight per source"):
    grpo_stage.validate(s, "rl_all", MESH)
