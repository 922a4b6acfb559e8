r"""R1-Zero in miniature on a laptop CPU: tokenizer, base pretraining on a synthetic task.

Command:
  python -m r1jax.main --config=experiments/r1_zero_tiny.py --workdir=/tmp/r1_zero_tiny
  (`:smoke` for a seconds-long run of the same pipeline, used by the tests.)
Hardware: 2 CPU cores. Runtime: about 2 minutes (smoke: under a minute).
Expected: the base model's completion-token accuracy rises well above chance
(summary.json, pretrain_base/metrics.jsonl). The GRPO stage is not wired in yet.
"""

from r1jax import configs


def get_config(arg=None):
  c = configs.ConfigDict()
  c.seed = 0  # Seeds data generation, initialisation and sampling.
  c.stages = ("tokenizer", "pretrain_base")  # Stages run in order (see r1jax.pipeline).

  c.task = configs.ConfigDict()
  c.task.digits = 3  # Operands have 1..digits digits.
  c.task.worked_fraction = 0.5  # Share of worked (column-by-column) solutions in the corpus.

  c.tokenizer = configs.ConfigDict()
  c.tokenizer.vocab_size = 256  # Sentencepiece pieces (the template compresses to few).
  c.tokenizer.train_examples = 2000  # Corpus texts the tokenizer is trained on.

  c.model = configs.tiny_moe_config(vocab_size=256, max_seq_len=192)
  c.mesh = configs.mesh_config()

  c.pretrain = configs.ConfigDict()
  c.pretrain.steps = 300  # Optimiser steps of base-model pretraining.
  c.pretrain.batch_size = 32  # Sequences per step.
  c.pretrain.seq_len = 160  # Tokens per sequence (prompt + completion, padded).
  c.pretrain.checkpoint_every = 100  # Steps between (async) checkpoints.
  c.pretrain.optimizer = configs.optimizer_config(learning_rate=3e-3, warmup_steps=20)

  if arg == "smoke":
    c.pretrain.steps = 6
    c.pretrain.batch_size = 8
    c.pretrain.checkpoint_every = 3
    c.tokenizer.train_examples = 300
  elif arg not in (None, ""):
    raise ValueError(f"Unknown config arg {arg!r}; allowed: '' or 'smoke'.")
  return c
