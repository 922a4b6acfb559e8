r"""Distillation in miniature (DeepSeek-R1 section 4.1, Table 6): SFT of small dense
students on a reasoning teacher's samples against GRPO on the students themselves.

Command:
  python -m r1jax.main --config=experiments/distill_tiny.py --workdir=/tmp/distill_tiny
  (`:smoke` runs every stage for seconds; the tests use it.)
Teacher: the R1-Zero demo's policy (experiments/r1_zero_tiny.py: a DeepSeek-V3-shaped
MoE, 139k parameters of which 115k active, pretrained then 60 GRPO steps). Students,
dense and about 5x smaller: `qwen2` (GQA with q/k/v biases, tied embeddings; 26.9k
parameters) and `llama` (GQA without biases, untied; 28.8k). Each student is pretrained
on the teacher's corpus for the teacher's 500 steps (arm `base`), then either
  rl         GRPO on itself with the teacher's recipe and budget (60 steps of 16 x 16
             rollouts, accuracy + format rewards), or
  distilled  SFT (4 epochs, the cold start's recipe of experiments/r1_tiny.py) on the
             teacher's correct, well-formed samples: 4 per prompt at T=0.6 / top-p 0.95
             on 2048 training problems, rejection-sampled by the `sample` stage
             (DIR/teacher_samples/samples/*.jsonl; ~2800 distinct rows).
Compute, at 2N FLOPs per token forward and 6N forward + backward (N: parameters, the
teacher's active ones), prompts of ~35 tokens: the rl arm samples, scores with the
reference and updates on 15,360 sequences: 0.21 TFLOP (qwen2, ~16-token completions)
and 0.26 (llama, ~25). The distilled arm: 0.09 (qwen2) / 0.09 (llama) TFLOP of SFT
(177 steps x 32 rows x 96 tokens) plus 0.11 TFLOP of teacher sampling (8192 samples),
shared by both students: 0.20 TFLOP each if each pays the whole sampling.
Hardware: 2 CPU cores, ~6 minutes; the README has the measured table
(`benchmarks/distill_tiny_seeds.py`).
eval.json: "teacher" and "<student>/<arm>" (students qwen2, llama; arms base, rl,
distilled), each with pass@1 (k=8 at T=0.6, top-p 0.95), cons@k, k, on the 200
held-out problems (the evaluate stage: the protocol of `python -m r1jax.evaluate`).
"""

import importlib.util
import os

from r1jax import configs, stages
from r1jax.data import tasks

STUDENTS = {  # name -> model overrides (dense GQA, 5x smaller than the teacher)
    "qwen2": dict(qkv_bias=True, tie_embeddings=True),
    "llama": dict(qkv_bias=False, tie_embeddings=False),
}


def _teacher_config(arg):
  """experiments/r1_zero_tiny.py's config: its tasks, tokenizer, model and stages."""
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "r1_zero_tiny.py")
  spec = importlib.util.spec_from_file_location("r1_zero_tiny", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def get_config(arg=None):
  if arg not in (None, "", "smoke"):
    raise ValueError(f"Unknown config arg {arg!r}; allowed: '' or 'smoke'.")
  c = _teacher_config(arg)  # pretrain_base -> r1_zero (the teacher) -> final (its eval)
  smoke = arg == "smoke"
  c.final.report_as = "teacher"
  c.teacher_samples = stages.config(
      "sample", input="r1_zero", prompts=("digits:train",),
      num_prompts=8 if smoke else 2048, samples_per_prompt=2 if smoke else 4,
      max_new_tokens=c.r1_zero.max_new_tokens, shard_prompts=4 if smoke else 256,
      require_correct=True, require_format=True)
  c.tasks.digits.num_sft = max(c.teacher_samples.num_prompts, 8)  # digits:train problems
  c.tasks.teacher = tasks.config(
      "jsonl", template="r1_zero", train="{workdir}/teacher_samples/samples/*.jsonl")
  names = ["pretrain_base", "r1_zero", "final", "teacher_samples"]
  evaluation = {k: c.final[k] for k in ("tasks", "num_problems", "k", "max_new_tokens",
                                        "batch_rows")}
  for student, kw in STUDENTS.items():
    base = f"{student}_base"
    c[base] = stages.config("pretrain", input="random", **{
        k: c.pretrain_base[k] for k in ("train", "steps", "batch_size", "seq_len",
                                        "checkpoint_every")})
    c[base].optimizer = c.pretrain_base.optimizer
    c[base].model = configs.model_config(
        vocab_size=c.model.vocab_size, max_seq_len=c.model.max_seq_len, d_model=32,
        n_layers=2, n_heads=4, n_kv_heads=2, head_dim=8, mlp_dim=96, **kw)
    c[f"{student}_rl"] = stages.config("grpo", input=base, **{
        k: c.r1_zero[k] for k in ("train", "steps", "batch_prompts", "group_size",
                                  "max_new_tokens", "checkpoint_every", "eval_every")})
    c[f"{student}_rl"].curve = c.r1_zero.curve
    c[f"{student}_rl"].optimizer = c.r1_zero.optimizer
    c[f"{student}_distilled"] = stages.config(
        "sft", input=base, train=("teacher:train",), epochs=4.0, batch_size=32,
        seq_len=96, checkpoint_every=50,  # two samples to a row (~180 steps)
        # The cold start's recipe (experiments/r1_tiny.py); 1e-3 for 2 epochs left the
        # students below their own base.
        optimizer=dict(learning_rate=2e-3, warmup_steps=10, decay_steps=170))
    if smoke:  # a 2-step teacher is seldom right: keep every sample
      c.teacher_samples.require_correct = c.teacher_samples.require_format = False
      c[f"{student}_distilled"].steps = 2
      c[f"{student}_distilled"].batch_size = 8
    names += [base]
    for arm, src in (("base", base), ("rl", f"{student}_rl"),
                     ("distilled", f"{student}_distilled")):
      c[f"{student}_{arm}_eval"] = stages.config("evaluate", input=src,
                                                  report_as=f"{student}/{arm}", **evaluation)
    names += [f"{student}_base_eval", f"{student}_rl", f"{student}_rl_eval",
              f"{student}_distilled", f"{student}_distilled_eval"]
  c.stages = tuple(names)
  return c
