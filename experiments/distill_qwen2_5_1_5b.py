r"""Distillation: SFT of Qwen2.5-Math-1.5B on reasoning traces sampled from a teacher.

As DeepSeek-R1-Distill-Qwen-1.5B (whose base is Qwen2.5-Math-1.5B; paper section 2.4):
plain SFT, loss on the completion tokens only, on teacher samples, 2 epochs, then the
paper's evaluation protocol on MATH-500 and GSM8K.

Command:
  python -m r1jax.main --config=experiments/distill_qwen2_5_1_5b.py --workdir=DIR \
      --config.init=hf:~/models/Qwen2.5-Math-1.5B --config.data_dir=~/r1jax_data
  `data_dir` holds teacher/*.jsonl ({"prompt": question, "completion": the teacher's
  reasoning and answer} per line, e.g. written by a `sample` stage or any R1-style
  traces), math500/test.jsonl and gsm8k/test.jsonl (see
  experiments/r1_zero_qwen2_5_math_1_5b.py for their formats). Prompts are put in the
  checkpoint's chat template (as the R1-Distill models are used).
Stages: distill (sft from the checkpoint; also written as an HF checkpoint,
DIR/distill/hf) -> final (evaluate distill). eval.json["final"] holds MATH-500's
metrics, both sets under "tasks".
Args: `:cpu` shrinks everything so that a tiny random checkpoint runs end to end on a
laptop CPU in a couple of minutes (the tests do that); `:aot_test` is the scaled-down
model the tests AOT-compile on 8 CPU devices.
Hardware: one TPU v5e-8 (fsdp=8) or one 80 GB GPU. State: 16 B per parameter (f32
weights, gradient, Adam; no reference policy) = 24.7 GB, 3.1 GB per v5e chip. Per
sequence of 4096 tokens: f32 logits 4096 x 151936 x 4 B x 3 = 7.5 GB: 1 sequence per
v5e chip (8 per step), 6 on one 80 GB GPU; `accum_steps` raises the batch beyond that.
Runtime: not measured (no accelerator here).
Expected result (the paper, Table 5, 800k teacher samples; not measured here):
MATH-500 pass@1 83.9, AIME 2024 28.9.
"""

from r1jax import configs, presets, stages
from r1jax.data import tasks


def get_config(arg=None):
  c = configs.run_config(init="hf:~/models/Qwen2.5-Math-1.5B", data_dir="~/r1jax_data")
  c.stages = ("distill", "final")
  c.tasks.teacher = tasks.config("jsonl", train="{data_dir}/teacher/*.jsonl", template="chat")
  c.tasks.gsm8k = tasks.config("gsm8k", template="chat")
  c.tasks.math500 = tasks.config("math500", template="chat")
  c.model = presets.qwen2_5_math_1_5b(max_seq_len=4096)
  c.mesh = configs.mesh_config(data=1, fsdp=-1)

  c.distill = stages.config(  # r1jax/stages/sft.py documents every key.
      "sft", input="init", train=("teacher:train",), epochs=2.0,  # paper: 2 epochs
      batch_size=8, seq_len=4096, accum_steps=1, checkpoint_every=500, export_hf=True,
      optimizer=dict(learning_rate=1e-5, warmup_steps=300, weight_decay=0.01))
  c.final = stages.config("evaluate", input="distill", tasks=("math500:test", "gsm8k:test"),
                          num_problems=500, k=4, max_new_tokens=3584, batch_rows=64)

  if arg == "cpu":
    c.model = presets.qwen2_5_math_1_5b(max_seq_len=512, dtype="float32", remat=False)
    c.mesh = configs.mesh_config()
    d = c.distill
    d.batch_size, d.seq_len, d.checkpoint_every = 8, 256, 1
    d.optimizer.learning_rate, d.optimizer.warmup_steps = 1e-3, 0
    f = c.final
    f.tasks, f.num_problems, f.k, f.max_new_tokens = ("gsm8k:test", "math500:test"), 4, 2, 16
  elif arg == "aot_test":
    c.model = presets.qwen2_test_model()
    c.distill.seq_len = 32
    c.final.max_new_tokens, c.final.batch_rows = 16, 8
  elif arg not in (None, ""):
    raise ValueError(f"Unknown config arg {arg!r}; allowed: '', 'cpu' or 'aot_test'.")
  return c
