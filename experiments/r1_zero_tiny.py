r"""R1-Zero in miniature on a laptop CPU: tokenizer, base pretraining, GRPO, evaluation.

Command:
  python -m r1jax.main --config=experiments/r1_zero_tiny.py --workdir=/tmp/r1_zero_tiny
  (`:smoke` runs the same stages for seconds; the tests use it.)
Stages: pretrain_base (pretrain, from random weights) -> base (evaluate) -> r1_zero
(grpo from pretrain_base) -> final (evaluate r1_zero).
Hardware: 2 CPU cores. Runtime: 2.6-2.8 minutes on a 2-core AMD EPYC with AVX-512
(2026-12-01), 7.3-8.3 on an older 2-core AVX2 EPYC.

Task: the last digit of a sum of 4-7 distinct digits ("What is the last digit of
7+2+4?"). The base corpus answers half of the problems directly and half with a worked
solution that adds the terms in increasing order ("<think>2:2,4:6,7:3</think>"). A tiny
model learns the worked steps (each is a lookup by content plus a one-digit addition)
but cannot do the whole sum mod 10 at a glance, so thinking pays; GRPO, rewarded only
for correct, well-formatted answers, discovers that. (Digit sums with running totals,
the earlier task, failed here: finding "the next term" by position is an offset copy a
tiny model barely learns in minutes, so its worked solutions were worse than its
guesses and GRPO taught it to stop thinking.)
Goal: held-out pass@1 (k samples, T=0.6, top-p 0.95) rises from the base to the final
policy and the mean response length grows as the policy learns to think:
DIR/eval.json, DIR/accuracy.png, DIR/response_length.png (analogues of the paper's
Figures 2 and 3).
Measured (200 held-out problems x 8 samples; `benchmarks/r1_zero_tiny_seeds.py`; 2-core
AMD EPYC with AVX-512, 2026-12-01; another CPU rounds differently and trains a different
base, so the numbers move from machine to machine, the gains less so):
  seed 0: pass@1 0.409 -> 0.631, cons@8 0.625 -> 0.705, thinks 61% -> 99%, 20.4 -> 28.2 tokens
  seed 1: pass@1 0.265 -> 0.624, cons@8 0.400 -> 0.710, thinks 48% -> 100%, 18.0 -> 28.5 tokens
  seed 2: pass@1 0.389 -> 0.714, cons@8 0.640 -> 0.785, thinks 44% -> 100%, 16.9 -> 28.4 tokens
"""

from r1jax import configs, stages
from r1jax.data import tasks


def get_config(arg=None):
  c = configs.run_config(seed=0)  # The seed drives data, initialisation and sampling.
  # base -> R1-Zero; `base` and `final` evaluate before and after (r1jax.stages).
  c.stages = ("pretrain_base", "base", "r1_zero", "final")

  # The last digit of a sum of 4-7 distinct digits (r1jax/data/arithmetic.py); prompts
  # in the R1-Zero template (paper Table 1).
  c.tasks.digits = tasks.config("synthetic", name="last_digit", min_terms=4, max_terms=7,
                                worked_fraction=0.5, num_test=200)

  # A sentencepiece tokenizer trained on the task's corpus (the template prefix is one
  # piece).
  c.tokenizer = configs.tokenizer_config(vocab_size=64, train_examples=2000,
                                         train_task="digits")

  # A DeepSeek-V3-shaped model in miniature: MLA, 1 dense + 2 MoE layers, each with 4
  # routed experts (top-2) and 1 shared expert.
  c.model = configs.tiny_moe_config(vocab_size=64, max_seq_len=128, n_layers=3, d_model=64,
                                    moe=dict(n_routed_experts=4, n_group=1, topk_group=1,
                                             num_experts_per_tok=2, routed_scaling_factor=1.0))

  # The paper's evaluation protocol (k samples at T=0.6, top-p 0.95) on held-out digit sets.
  evaluation = dict(tasks=("digits:test",), num_problems=200, k=8, max_new_tokens=40,
                    batch_rows=512)

  c.pretrain_base = stages.config(
      "pretrain", input="random", train=("digits:train",), steps=500, batch_size=64,
      seq_len=72, checkpoint_every=100,
      optimizer=dict(learning_rate=3e-3, warmup_steps=30, decay_steps=470))
  c.base = stages.config("evaluate", input="pretrain_base", **evaluation)
  c.r1_zero = stages.config(  # r1jax/stages/grpo.py documents every key.
      "grpo", input="pretrain_base", train=("digits:train",), steps=60, batch_prompts=16,
      group_size=16, max_new_tokens=40, checkpoint_every=10, eval_every=10,
      curve={**evaluation, "num_problems": 64, "k": 4},
      # 2e-4 collapsed the policy within 5 steps (KL 0.5, accuracy to 3%).
      optimizer=dict(learning_rate=5e-5, warmup_steps=3))
  c.final = stages.config("evaluate", input="r1_zero", **evaluation)

  if arg == "smoke":
    c.pretrain_base.steps = 6
    c.pretrain_base.batch_size = 8
    c.pretrain_base.checkpoint_every = 3
    c.pretrain_base.optimizer.decay_steps = 0
    c.tokenizer.train_examples = 300
    c.r1_zero.steps = 2
    c.r1_zero.batch_prompts = 2
    c.r1_zero.group_size = 4
    c.r1_zero.eval_every = 1
    c.r1_zero.checkpoint_every = 1
    c.r1_zero.curve.num_problems = 2
    c.r1_zero.curve.k = 2
    for s in (c.base, c.final):
      s.num_problems = 4
      s.k = 2
  elif arg not in (None, ""):
    raise ValueError(f"Unknown config arg {arg!r}; allowed: '' or 'smoke'.")
  return c
