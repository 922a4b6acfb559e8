r"""A tiny chain of every stage kind, for the fault-injection tests (tests/test_faults.py).

Command (what the tests run, through tests/fault_driver.py):
  python -m r1jax.main --config=tests/fault_chain.py --workdir=DIR
Stages: pretrain_base (pretrain) -> cold (sft) -> cold_eval (evaluate) -> rm
(reward_model, from cold) -> rl (grpo from cold, rewarded by rm in-graph, so that its
advantages and updates are not zero) -> rs (sample, from rl) -> final (evaluate rl). Every
training stage checkpoints every step or two so that a kill lands between, before and
inside saves. (cold_eval comes first in eval.json: the pipeline's table expects an
evaluate entry there.)
Hardware: 1 CPU device. Runtime: seconds per stage (most of it compiling, once per
machine with the persistent compilation cache).
"""

from r1jax import configs, stages
from r1jax.data import tasks


def get_config(arg=None):
  del arg
  c = configs.run_config(seed=0)
  c.stages = ("pretrain_base", "cold", "cold_eval", "rm", "rl", "rs", "final")
  c.tasks.digits = tasks.config("synthetic", name="last_digit", min_terms=4, max_terms=5,
                                worked_fraction=0.5, num_test=16, num_sft=24)
  c.tasks.general = tasks.config("general", num_train=16, num_test=8, num_sft=16,
                                 num_pairs=24, num_heldout_pairs=8)
  c.tokenizer = configs.tokenizer_config(vocab_size=128, train_examples=300,
                                         train_task="digits,general")
  c.model = configs.model_config(vocab_size=128, max_seq_len=96, n_layers=1, d_model=32,
                                 mlp_dim=64)
  c.mesh = configs.mesh_config(data=1, fsdp=-1)
  opt = dict(learning_rate=1e-3, warmup_steps=0)
  c.pretrain_base = stages.config("pretrain", input="random", train=("digits:train",),
                                  steps=5, batch_size=4, seq_len=64, checkpoint_every=2,
                                  optimizer=opt)
  c.cold = stages.config("sft", input="pretrain_base", train=("digits:train",), steps=4,
                         batch_size=4, seq_len=64, checkpoint_every=1, optimizer=opt)
  c.rm = stages.config("reward_model", input="cold", pairs=("general:train",),
                       heldout=("general:test",), view="response", steps=4, batch_pairs=2,
                       seq_len=64, eval_rows=8, checkpoint_every=2, optimizer=opt)
  c.cold_eval = stages.config("evaluate", input="cold", tasks=("digits:test",),
                              num_problems=2, k=2, max_new_tokens=8)
  c.rl = stages.config("grpo", input="cold", train=("digits:train",), steps=3,
                       batch_prompts=2, group_size=2, max_new_tokens=8, checkpoint_every=1,
                       eval_every=0, reward_workers=0, optimizer=opt)
  c.rl.reward_weights = configs.ConfigDict({"accuracy": 1.0, "rm": 1.0})
  c.rl.reward_models = configs.ConfigDict({"rm": "rm"})
  c.rs = stages.config("sample", input="rl", prompts=("digits:test",), num_prompts=6,
                       samples_per_prompt=2, temperature=1.0, max_new_tokens=8,
                       shard_prompts=2, reward_workers=0, require_correct=False,
                       drop_truncated=False)
  c.final = stages.config("evaluate", input="rl", tasks=("digits:test",), num_problems=4,
                          k=2, max_new_tokens=8)
  return c
