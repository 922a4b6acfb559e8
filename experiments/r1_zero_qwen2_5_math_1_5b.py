r"""R1-Zero on a 1.5B base: GRPO from Qwen2.5-Math-1.5B on GSM8K + MATH train problems.

Command:
  python -m r1jax.main --config=experiments/r1_zero_qwen2_5_math_1_5b.py --workdir=DIR \
      --config.init=hf:~/models/Qwen2.5-Math-1.5B --config.data_dir=~/r1jax_data
  The checkpoint directory holds config.json, *.safetensors and tokenizer.json (the
  tokenizer is read from it; Qwen2.5 has no BOS token). `data_dir` holds the raw files:
    gsm8k/train.jsonl, gsm8k/test.jsonl  GSM8K's original format, {"question", "answer"}
                                         with '#### N' ending the answer
                                         (github.com/openai/grade-school-math)
    math/train.jsonl                     {"problem", "solution"}, the answer \boxed in the
                                         solution (MATH train, Hendrycks et al.)
    math500/test.jsonl                   {"problem", "answer", ...}
                                         (huggingface.co/datasets/HuggingFaceH4/MATH-500)
  A missing file is an error naming its path and format.
Stages: base (evaluate the checkpoint) -> r1_zero (grpo from it; also written as an HF
checkpoint, DIR/r1_zero/hf) -> final (evaluate r1_zero). eval.json: "base" and "final"
hold MATH-500's metrics, with both sets under "tasks".
Args: `:cpu` keeps every stage but shrinks steps, batch and lengths so that a tiny random
checkpoint runs end to end on a laptop CPU in a couple of minutes (R1-Zero on
gsm8k/train.jsonl alone; evaluation on gsm8k and math500 test); the tests do that.
`:aot_test` is the scaled-down model the tests AOT-compile on 8 CPU devices.
Hardware: one TPU v5e-8 (8 chips x 16 GB; fsdp=8) or one 80 GB GPU (the mesh's -1
takes the one device). State per parameter: 4 B f32 weights + 4 B gradient + 8 B Adam +
4 B reference policy = 20 B x 1.54B = 30.9 GB (3.9 GB per v5e chip). Activations per
row of L=1536 with remat: f32 logits 1536 x 151936 x 4 B x 3 copies = 2.8 GB, scores
12 x 1536^2 x ~10 B = 0.28 GB, residuals 28 x 1536 x 1536 x 2 B = 0.13 GB: ~3.2 GB.
v5e-8: 2 x 8 = 16 rows, 2 per chip -> 3.9 + 6.4 = 10.3 of 16 GB. One 80 GB GPU:
use --config.r1_zero.group_size=4 (8 rows: 30.9 + 25.6 = 57 GB).
Runtime: not measured (no accelerator here).
Expected result (other open reproductions, not measured here): MATH-500 pass@1 of the
base ~0.3-0.5 with this template rising to ~0.6-0.7 within a few hundred steps while
the response length first drops then grows.
"""

from r1jax import configs, presets, stages
from r1jax.data import tasks


def get_config(arg=None):
  c = configs.run_config(init="hf:~/models/Qwen2.5-Math-1.5B", data_dir="~/r1jax_data")
  c.stages = ("base", "r1_zero", "final")
  # Questions in the paper's Table 1 template, asked to box the answer (Qwen2.5-Math's
  # habit); the rule reward extracts the last \boxed{} inside <answer> or anywhere.
  for name in ("gsm8k", "math", "math500"):
    c.tasks[name] = tasks.config(name, template="r1_zero_boxed")
  c.model = presets.qwen2_5_math_1_5b()  # Runs in bf16 with remat; weights from init.
  c.mesh = configs.mesh_config(data=1, fsdp=-1)  # v5e-8: fsdp=8; one GPU: fsdp=1.

  evaluation = dict(tasks=("math500:test", "gsm8k:test"), num_problems=500, k=4,
                    max_new_tokens=1024, batch_rows=256)
  c.base = stages.config("evaluate", input="init", **evaluation)
  c.r1_zero = stages.config(  # r1jax/stages/grpo.py documents every key.
      "grpo", input="init", train=("gsm8k:train", "math:train"), steps=500,
      batch_prompts=2, group_size=8,  # B*G = 16 rows, 2 per v5e chip (paper G=16).
      max_new_tokens=1024, reward_workers=4, checkpoint_every=50, eval_every=50,
      curve=dict(evaluation, tasks=("math500:test",), num_problems=128), export_hf=True,
      optimizer=dict(learning_rate=1e-6, warmup_steps=10, b2=0.99, weight_decay=0.01))
  c.final = stages.config("evaluate", input="r1_zero", **evaluation)

  if arg == "cpu":
    c.model = presets.qwen2_5_math_1_5b(max_seq_len=512, dtype="float32", remat=False)
    c.mesh = configs.mesh_config()
    r = c.r1_zero
    r.train = ("gsm8k:train",)
    r.steps, r.batch_prompts, r.group_size, r.max_new_tokens = 2, 2, 4, 16
    r.reward_workers, r.checkpoint_every, r.eval_every = 1, 1, 1
    r.curve.tasks, r.curve.num_problems, r.curve.k, r.curve.max_new_tokens = (
        ("gsm8k:test",), 2, 2, 16)
    r.optimizer.warmup_steps = 0
    for s in (c.base, c.final):
      s.tasks = ("gsm8k:test", "math500:test")
      s.num_problems, s.k, s.max_new_tokens, s.batch_rows = 4, 2, 16, 64
  elif arg == "aot_test":
    c.model = presets.qwen2_test_model()
    c.mesh = configs.mesh_config(data=1, fsdp=-1)  # 8 simulated CPU devices.
    c.r1_zero.batch_prompts, c.r1_zero.group_size = 2, 4
    c.r1_zero.max_new_tokens = 16
    for s in (c.base, c.final, c.r1_zero.curve):
      s.max_new_tokens, s.batch_rows = 16, 8
  elif arg not in (None, ""):
    raise ValueError(f"Unknown config arg {arg!r}; allowed: '', 'cpu' or 'aot_test'.")
  return c
