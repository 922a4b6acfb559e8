r"""R1-Zero in miniature on a laptop CPU: tokenizer, base pretraining, GRPO, evaluation.

Command:
  python -m r1jax.main --config=experiments/r1_zero_tiny.py --workdir=/tmp/r1_zero_tiny
  (`:smoke` runs the same pipeline for seconds; the tests use it.)
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

from r1jax import configs


def get_config(arg=None):
  c = configs.ConfigDict()
  c.seed = 0  # Seeds data generation, initialisation and sampling.
  c.stages = ("tokenizer", "pretrain_base", "r1_zero")  # Run in order (r1jax.pipeline).

  c.task = configs.ConfigDict()
  # 'last_digit' (last digit of a sum of distinct digits), 'digit_sum' (d1+...+dn) or
  # 'addition' (a+b); see r1jax/data/arithmetic.py.
  c.task.name = "last_digit"
  c.task.digits = 3  # addition: operands have 1..digits digits.
  c.task.min_terms = 4  # last_digit/digit_sum: fewest single-digit terms.
  c.task.max_terms = 7  # last_digit/digit_sum: most single-digit terms.
  c.task.worked_fraction = 0.5  # Share of worked (step-by-step) solutions in the corpus.

  c.tokenizer = configs.ConfigDict()
  c.tokenizer.vocab_size = 64  # Sentencepiece pieces (the template prefix is one piece).
  c.tokenizer.train_examples = 2000  # Corpus texts the tokenizer is trained on.

  # A DeepSeek-V3-shaped model in miniature: MLA, 1 dense + 2 MoE layers, each with 4
  # routed experts (top-2) and 1 shared expert.
  c.model = configs.tiny_moe_config(vocab_size=64, max_seq_len=128, n_layers=3, d_model=64,
                                    moe=dict(n_routed_experts=4, n_group=1, topk_group=1,
                                             num_experts_per_tok=2, routed_scaling_factor=1.0))
  c.mesh = configs.mesh_config()

  c.pretrain = configs.ConfigDict()
  c.pretrain.steps = 500  # Optimiser steps of base-model pretraining.
  c.pretrain.batch_size = 64  # Sequences per step.
  c.pretrain.seq_len = 72  # Tokens per sequence (prompt + completion, padded).
  c.pretrain.checkpoint_every = 100  # Steps between (async) checkpoints.
  c.pretrain.optimizer = configs.optimizer_config(learning_rate=3e-3, warmup_steps=30,
                                                  decay_steps=470)

  c.rl = configs.rl_config(  # configs.rl_config documents every key.
      steps=60, batch_prompts=16, group_size=16, max_new_tokens=40, checkpoint_every=10,
      eval_every=10,
      # 2e-4 collapsed the policy within 5 steps (KL 0.5, accuracy to 3%).
      optimizer=dict(learning_rate=5e-5, warmup_steps=3))

  c.eval = configs.eval_config(num_problems=200, k=8, max_new_tokens=40, curve_problems=64,
                               curve_k=4, batch_rows=512)

  if arg == "smoke":
    c.pretrain.steps = 6
    c.pretrain.batch_size = 8
    c.pretrain.checkpoint_every = 3
    c.pretrain.optimizer.decay_steps = 0
    c.tokenizer.train_examples = 300
    c.rl.steps = 2
    c.rl.batch_prompts = 2
    c.rl.group_size = 4
    c.rl.eval_every = 1
    c.rl.checkpoint_every = 1
    c.eval.num_problems = 4
    c.eval.k = 2
    c.eval.curve_problems = 2
    c.eval.curve_k = 2
  elif arg not in (None, ""):
    raise ValueError(f"Unknown config arg {arg!r}; allowed: '' or 'smoke'.")
  return c
