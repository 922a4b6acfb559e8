r"""Distillation: SFT of Qwen2.5-Math-1.5B on reasoning traces sampled from the teacher.

As DeepSeek-R1-Distill-Qwen-1.5B (whose base is Qwen2.5-Math-1.5B): plain next-token
SFT (`train.state.lm_loss`, loss on the completion tokens only) on teacher samples.
Status: config ready; the pipeline stage `distill_sft` (reading the teacher-sample JSONL
below) is not wired yet (the pipeline runs the tiny task only). The tests build this
config at full size (1.54B parameters, mesh checked for 8 devices) and AOT-compile its
SFT step and sampler with the model scaled down (`:aot_test`, 8 CPU devices).

Command (once the stage is wired):
  python -m r1jax.main --config=experiments/distill_qwen2_5_1_5b.py --workdir=DIR
Hardware: one TPU v5e-8 (fsdp=8) or one 80 GB GPU. State: 16 B per parameter (f32
weights, gradient, Adam; no reference policy) = 24.7 GB, 3.1 GB per v5e chip. Per
sequence of 4096 tokens: f32 logits 4096 x 151936 x 4 B x 3 = 7.5 GB: 1 sequence per
v5e chip (8 per step), 6 on one 80 GB GPU.
Runtime: not measured.
Expected result (the paper, Table 5, 800k teacher samples; not measured here):
MATH-500 pass@1 83.9, AIME 2024 28.9.
"""

from r1jax import configs
from r1jax.interop import hf

# Qwen2.5-Math-1.5B config.json (huggingface.co/Qwen/Qwen2.5-Math-1.5B); context raised
# to the 4096 tokens of this SFT.
STUDENT_HF = dict(
    architectures=["Qwen2ForCausalLM"], hidden_size=1536, num_hidden_layers=28,
    num_attention_heads=12, num_key_value_heads=2, intermediate_size=8960,
    vocab_size=151936, rope_theta=10000.0, tie_word_embeddings=True,
    max_position_embeddings=4096, rms_norm_eps=1e-6, hidden_act="silu",
    use_sliding_window=False, torch_dtype="bfloat16")


def get_config(arg=None):
  c = configs.ConfigDict()
  c.seed = 0  # Seeds data order and sampling.
  c.stages = ("distill_sft",)  # Not wired in r1jax.pipeline yet.

  c.task = configs.ConfigDict()
  c.task.name = "distill"  # SFT on teacher samples (prompt, completion) pairs.
  # Teacher samples: JSONL {"prompt", "completion"} written by the teacher's rejection
  # sampling (experiments/r1_deepseek_v3.py, not wired yet) or any R1-style traces.
  c.task.source_dir = "~/r1jax_data/teacher_samples"
  c.task.data_dir = "~/r1jax_data"  # Prepared data (builders.load_split) for eval sets.
  c.task.max_examples = 800_000  # Paper: 800k samples (600k reasoning + 200k other).

  c.tokenizer = configs.ConfigDict()
  c.tokenizer.path = "~/models/Qwen2.5-Math-1.5B"  # HF tokenizer.json of the student.

  c.model = hf.config_from_hf(STUDENT_HF, param_dtype="float32")
  c.model.dtype = "bfloat16"
  c.model.remat = True
  c.checkpoint = "~/models/Qwen2.5-Math-1.5B"  # Student initialisation (HF safetensors).
  c.mesh = configs.mesh_config(data=1, fsdp=-1)

  c.pretrain = configs.ConfigDict()  # The SFT run (same loss and step as pretraining).
  c.pretrain.steps = 200_000  # 2 epochs of 800k samples at 8 per step.
  c.pretrain.batch_size = 8  # 1 per v5e chip (memory); no gradient accumulation yet.
  c.pretrain.seq_len = 4096  # Tokens per sequence (prompt + completion, padded).
  c.pretrain.checkpoint_every = 500  # Steps between (async) checkpoints.
  c.pretrain.optimizer = configs.optimizer_config(learning_rate=1e-5, warmup_steps=300,
                                                  decay_steps=199_700, weight_decay=0.01)

  c.eval = configs.ConfigDict()
  c.eval.splits = ("math500:test", "gsm8k:test")  # Held-out sets.
  c.eval.num_problems = 500  # Problems per set.
  c.eval.k = 4  # Samples per problem.
  c.eval.temperature = 0.6  # Paper's evaluation temperature.
  c.eval.top_p = 0.95  # Paper's evaluation top-p.
  c.eval.max_new_tokens = 3584  # Generation cap.
  c.eval.batch_rows = 64  # Sequences per sampler call.

  if arg == "aot_test":
    # Same structure (GQA 4/2 heads, qkv bias, tied embeddings) at test size.
    c.model = configs.model_config(vocab_size=256, d_model=64, n_layers=2, n_heads=4,
                                   n_kv_heads=2, head_dim=16, mlp_dim=128, max_seq_len=64,
                                   qkv_bias=True, tie_embeddings=True, dtype="bfloat16",
                                   param_dtype="float32", remat=True)
    c.pretrain.batch_size = 8
    c.pretrain.seq_len = 32
    c.eval.max_new_tokens = 16
    c.eval.batch_rows = 8
  elif arg not in (None, ""):
    raise ValueError(f"Unknown config arg {arg!r}; allowed: '' or 'aot_test'.")
  return c
