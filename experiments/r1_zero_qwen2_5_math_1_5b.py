r"""R1-Zero on a 1.5B base: GRPO from Qwen2.5-Math-1.5B on GSM8K + MATH train problems.

Status: config ready; the pipeline stage `r1_zero` for GSM8K/MATH is not wired yet (the
pipeline runs the tiny arithmetic task only; data loading, the HF checkpoint/tokenizer
and the math reward exist as modules). The tests build this config at full size
(1.54B parameters by `jax.eval_shape`, mesh checked for 8 and 1 devices) and AOT-compile
its GRPO step and sampler with the model scaled down (`:aot_test`, 8 CPU devices).

Command (once the stage is wired):
  python -m r1jax.main --config=experiments/r1_zero_qwen2_5_math_1_5b.py --workdir=DIR
  `:aot_test` is the scaled-down variant for the tests.
Hardware: one TPU v5e-8 (8 chips x 16 GB; fsdp=8) or one 80 GB GPU (the mesh's -1
takes the one device). State per parameter: 4 B f32 weights + 4 B gradient + 8 B Adam +
4 B reference policy = 20 B x 1.54B = 30.9 GB (3.9 GB per v5e chip). Activations per
row of L=1536 with remat: f32 logits 1536 x 151936 x 4 B x 3 copies = 2.8 GB, scores
12 x 1536^2 x ~10 B = 0.28 GB, residuals 28 x 1536 x 1536 x 2 B = 0.13 GB: ~3.2 GB.
v5e-8: 2 x 8 = 16 rows, 2 per chip -> 3.9 + 6.4 = 10.3 of 16 GB. One 80 GB GPU:
use --config.rl.group_size=4 (8 rows: 30.9 + 25.6 = 57 GB).
Runtime: not measured.
Expected result (other open reproductions, not measured here): MATH-500 pass@1 of the
base ~0.3-0.5 with this template rising to ~0.6-0.7 within a few hundred steps while
the response length first drops then grows.
"""

from r1jax import configs
from r1jax.interop import hf

# Qwen2.5-Math-1.5B config.json (huggingface.co/Qwen/Qwen2.5-Math-1.5B).
QWEN2_5_MATH_1_5B_HF = dict(
    architectures=["Qwen2ForCausalLM"], hidden_size=1536, num_hidden_layers=28,
    num_attention_heads=12, num_key_value_heads=2, intermediate_size=8960,
    vocab_size=151936, rope_theta=10000.0, tie_word_embeddings=True,
    max_position_embeddings=4096, rms_norm_eps=1e-6, hidden_act="silu",
    use_sliding_window=False, torch_dtype="bfloat16")


def model_config():
  """Qwen2.5-Math-1.5B (GQA 12/2 heads, qkv bias, tied embeddings): f32 master, bf16 compute."""
  c = hf.config_from_hf(QWEN2_5_MATH_1_5B_HF, param_dtype="float32")
  c.dtype = "bfloat16"
  c.remat = True
  c.max_seq_len = 1536
  return c


def aot_test_model():
  """The same structure at test size: GQA (4 heads, 2 KV), qkv bias, tied embeddings."""
  return configs.model_config(vocab_size=256, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2,
                              head_dim=16, mlp_dim=128, max_seq_len=64, qkv_bias=True,
                              tie_embeddings=True, dtype="bfloat16", param_dtype="float32",
                              remat=True)


def get_config(arg=None):
  c = configs.ConfigDict()
  c.seed = 0  # Seeds data order, initialisation and sampling.
  c.stages = ("r1_zero",)  # Run in order; 'r1_zero' on GSM8K/MATH is not wired yet.

  c.task = configs.ConfigDict()
  c.task.name = "math"  # Rule-rewarded math prompts: GSM8K train + MATH train.
  c.task.train_splits = ("gsm8k:train", "math:train")  # builders.load_split names.
  c.task.data_dir = "~/r1jax_data"  # Prepared array_record data (builders.load_split).
  # Raw JSONL: GSM8K from github.com/openai/grade-school-math (grade_school_math/data),
  # MATH-500 from github.com/openai/prm800k (prm800k/math_splits).
  c.task.source_dir = "~/r1jax_data/raw"

  c.tokenizer = configs.ConfigDict()
  c.tokenizer.path = "~/models/Qwen2.5-Math-1.5B"  # HF tokenizer.json of the checkpoint.

  c.model = model_config()
  c.checkpoint = "~/models/Qwen2.5-Math-1.5B"  # HF safetensors (interop.hf.load_checkpoint).
  c.mesh = configs.mesh_config(data=1, fsdp=-1)  # v5e-8: fsdp=8; one GPU: fsdp=1.

  c.pretrain = configs.ConfigDict()
  c.pretrain.batch_size = 64  # Unused (no pretraining); the mesh check reads it.

  c.rl = configs.rl_config(  # configs.rl_config documents every key.
      steps=500, batch_prompts=2, group_size=8,  # B*G = 16 rows, 2 per v5e chip (paper G=16).
      max_new_tokens=1024, reward_workers=4, checkpoint_every=50, eval_every=50,
      optimizer=dict(learning_rate=1e-6, warmup_steps=10, b2=0.99, weight_decay=0.01))
  c.rl.max_prompt_tokens = 512  # Padded prompt bucket (P); P + C = model.max_seq_len.

  c.eval = configs.eval_config(num_problems=500, k=4, max_new_tokens=1024, batch_rows=256)
  c.eval.splits = ("math500:test", "gsm8k:test")  # Held-out sets.

  if arg == "aot_test":
    c.model = aot_test_model()
    c.mesh = configs.mesh_config(data=1, fsdp=-1)  # 8 simulated CPU devices.
    c.pretrain.batch_size = 8
    c.rl.batch_prompts = 2
    c.rl.group_size = 4
    c.rl.max_prompt_tokens = 16
    c.rl.max_new_tokens = 16
    c.eval.max_new_tokens = 16
    c.eval.batch_rows = 8
  elif arg not in (None, ""):
    raise ValueError(f"Unknown config arg {arg!r}; allowed: '' or 'aot_test'.")
  return c
