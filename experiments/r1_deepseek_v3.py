r"""DeepSeek-R1 at full size: GRPO on DeepSeek-V3-Base (671B, MLA + 256-expert MoE).

Status: config ready; the pipeline stages for real data are not wired yet (the pipeline
runs the tiny arithmetic task only: `r1_zero` on GSM8K/MATH, cold-start SFT, rejection
sampling and the second RL stage are still to come). The tests build this config at full
size (671B parameters by `jax.eval_shape`, mesh checked for 1024 chips) and AOT-compile
its GRPO step and sampler with the model scaled down (`:aot_test`, 8 CPU devices).

Command (once the stages are wired):
  python -m r1jax.main --config=experiments/r1_deepseek_v3.py --workdir=gs://BUCKET/r1_v3
  (one process per host; `R1JAX_NUM_PROCESSES`/`COORDINATOR_ADDRESS` make main.py call
  `jax.distributed.initialize()`). `:aot_test` is the scaled-down variant for the tests.
Hardware: TPU v5p-2048 (1024 chips, 95 GB HBM each; v5p names count TensorCores).
Runtime: not measured (no pod available to this project).
Expected result: the paper's DeepSeek-R1-Zero curve (Figure 2: AIME 2024 pass@1 from
15.6% to 71.0% over ~8k steps); not reproduced here.

Mesh: expert=16 x fsdp=8 x tensor=8 (data=1).
  * expert=16: 256 routed experts / 16 = 16 experts per chip per layer; the token
    all-to-all stays inside groups of 16 chips.
  * tensor=8: 128 heads / 8 = 16 heads per chip. MLA's up-projections (wq_b, wkv_b) have
    no 'embed' axis, so only 'heads' (tensor) splits them; tensor=8 also splits the
    [B, H, T, S] attention scores (the model has no flash/splash kernel yet) and the
    logits' vocab. tensor=4 doubles the recompute peak (67-72 GB in total).
  * fsdp=8: splits the 'embed' dimensions, so routed experts are split 16 x 8 x 8 = 1024
    ways (1/1024 per chip) and the q/kv down-projections 8 ways. expert=32 x fsdp=4 costs
    6.6 GB more per chip (54 GB); expert=8 x fsdp=16 saves 3 GB but makes the
    all-to-all groups 8 chips with 32 experts each.
  * batch rows split over data*fsdp*expert = 128.
Per-chip memory (GB, `memory_per_chip_gb(get_config())`; f32 master parameters,
bf16 activations, 8 prompts x 16 = 128 rollouts of 8192 tokens = 1 row per batch
shard, remat on):
  parameters (f32; 1.38B of the 671B per chip)          5.53
  gradients (f32)                                       5.53
  Adam moments (2 x f32)                               11.06
  reference policy (f32, for the KL)                    5.53
  KV cache (MLA: 61 x (512+64) x 2 B x 8192 x 1 row)     0.58
  remat checkpoints (61 x 8192 x 7168 x 2 B x 1 row)    7.16
  one layer's recompute (16 heads x 8192^2 x ~10 B)    10.74
  logits (8192 x 129280/8 x 4 B x 3 copies)             1.59
  total                                                47.72 of 95 GB HBM
Parameters are 671.0B (routed experts 653.9B, the rest 17.1B); per chip the state costs
20 B per local parameter (4 f32 weights + 4 f32 gradient + 8 Adam + 4 reference); the
non-expert 17.1B split only 8-64 ways are 0.74B of the 1.38B per chip. 32k-token
rollouts (the paper's limit) would need a chunked/flash attention: the scores of one
layer grow to 16 x 32768^2 x 10 B = 172 GB per row. Not counted: transients (one layer's
FSDP all-gather of 16 local experts, 16 x 3 x 7168 x 2048 / 8 x 4 B = 0.35 GB, plus XLA
scratch); the 47 GB margin is for them.
"""

import math
import types

import jax

from r1jax import configs, model, sharding
from r1jax.interop import hf

# DeepSeek-V3 config.json (huggingface.co/deepseek-ai/DeepSeek-V3-Base); MTP layer omitted.
V3_HF = dict(
    architectures=["DeepseekV3ForCausalLM"], hidden_size=7168, num_hidden_layers=61,
    num_attention_heads=128, q_lora_rank=1536, kv_lora_rank=512, qk_nope_head_dim=128,
    qk_rope_head_dim=64, v_head_dim=128, n_routed_experts=256, n_shared_experts=1,
    num_experts_per_tok=8, moe_intermediate_size=2048, intermediate_size=18432,
    first_k_dense_replace=3, n_group=8, topk_group=4, routed_scaling_factor=2.5,
    norm_topk_prob=True, scoring_func="sigmoid", topk_method="noaux_tc", vocab_size=129280,
    rope_theta=10000.0, max_position_embeddings=163840, rms_norm_eps=1e-6, hidden_act="silu",
    rope_scaling=dict(type="yarn", factor=40, original_max_position_embeddings=4096,
                      beta_fast=32, beta_slow=1, mscale=1.0, mscale_all_dim=1.0),
    torch_dtype="bfloat16")
NUM_CHIPS = 1024  # TPU v5p-2048.
HBM_GB = 95.0  # Per v5p chip.


def model_config():
  """The full DeepSeek-V3 main model: f32 master weights, bf16 activations, remat."""
  c = hf.config_from_hf(V3_HF, param_dtype="float32")
  c.dtype = "bfloat16"
  c.remat = True
  c.max_seq_len = 8192
  c.moe.bias_update_rate = 1e-3  # DeepSeek-V3's gamma for the aux-loss-free balancing.
  return c


def get_config(arg=None):
  c = configs.ConfigDict()
  c.seed = 0  # Seeds data order, initialisation and sampling.
  # Run in order; 'r1_zero' on this task is not wired in r1jax.pipeline yet.
  c.stages = ("r1_zero",)

  c.task = configs.ConfigDict()
  c.task.name = "math"  # Rule-rewarded math prompts (GSM8K train + MATH train).
  # Prepared TFDS/array_record data (r1jax.data.builders.load_split).
  c.task.data_dir = "gs://BUCKET/r1jax_data"
  # Raw JSONL: GSM8K from github.com/openai/grade-school-math (grade_school_math/data),
  # MATH-500 from github.com/openai/prm800k (prm800k/math_splits).
  c.task.source_dir = "gs://BUCKET/raw/math"

  c.tokenizer = configs.ConfigDict()
  c.tokenizer.path = "gs://BUCKET/DeepSeek-V3-Base"  # HF tokenizer.json of the checkpoint.

  c.model = model_config()
  c.checkpoint = "gs://BUCKET/DeepSeek-V3-Base"  # HF safetensors (FP8, dequantised on load).
  c.mesh = configs.mesh_config(data=1, fsdp=8, expert=16, tensor=8)

  c.pretrain = configs.ConfigDict()
  c.pretrain.batch_size = 128  # Unused (no pretraining); the mesh check reads it.

  c.rl = configs.rl_config(  # configs.rl_config documents every key.
      steps=8000,  # paper Figure 2: ~8k.
      batch_prompts=8,  # B*G rows = 1 per batch shard.
      max_new_tokens=7168, reward_workers=32, checkpoint_every=50, eval_every=200,
      optimizer=dict(learning_rate=3e-6, warmup_steps=10, b2=0.95, weight_decay=0.1))
  c.rl.max_prompt_tokens = 1024  # Padded prompt bucket (P); P + C = model.max_seq_len.

  c.eval = configs.eval_config(num_problems=500, k=16, max_new_tokens=7168, batch_rows=1024)
  c.eval.split = "math500:test"  # Held-out set (MATH-500).

  if arg == "aot_test":
    # Same structure (MLA with q-LoRA, yarn, grouped routing, shared expert, dense-first
    # layers), tiny sizes; a 2x2x2 mesh over 8 simulated CPU devices.
    c.model = configs.tiny_moe_config(
        vocab_size=256, max_seq_len=64, n_layers=3, d_model=64, n_heads=4, mlp_dim=128,
        dtype="bfloat16", param_dtype="float32", remat=True, rope=dict(V3_ROPE_TINY),
        moe=dict(n_routed_experts=8, n_group=4, topk_group=2, num_experts_per_tok=2,
                 first_k_dense_replace=1, routed_scaling_factor=2.5))
    c.mesh = configs.mesh_config(data=1, fsdp=2, expert=2, tensor=2)
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


V3_ROPE_TINY = dict(scaling="yarn", factor=4.0, original_max_position=16, mscale=1.0,
                    mscale_all_dim=1.0)


def memory_per_chip_gb(c, num_chips: int = NUM_CHIPS) -> dict[str, float]:
  """Per-chip HBM estimate (GB) of one GRPO step of `c` on `num_chips` (no devices used).

  State: f32 weights, gradients, Adam moments and the reference policy, each sharded by
  the config's rule table (a dimension a mesh axis does not divide is replicated).
  Activations for one batch shard: the remat checkpoints (one [T, D] residual per layer),
  one layer's recomputed attention scores (f32 scores + f32 softmax + bf16 weights and
  their gradients, ~10 B per entry), the logits (3 f32 copies) and the rollout KV cache.
  """
  m = c.model
  sizes = dict(zip(configs.MESH_AXES, configs.mesh_shape(c.mesh, num_chips)))
  fake_mesh = types.SimpleNamespace(shape=sizes)
  specs = model.param_specs(m)
  is_spec = lambda x: isinstance(x, model.ParamSpec)

  local = 0.0
  for s in jax.tree.leaves(specs, is_leaf=is_spec):
    spec = sharding.logical_to_spec(s.axes, c.mesh.rules, s.shape, fake_mesh)
    split = 1
    for entry in spec:
      for ax in (() if entry is None else (entry,) if isinstance(entry, str) else entry):
        split *= sizes[ax]
    local += math.prod(s.shape) / split
  gb = 1e-9
  pbytes = 4 if m.param_dtype == "float32" else 2
  abytes = 4 if m.dtype == "float32" else 2
  batch_split = sizes["data"] * sizes["fsdp"] * sizes["expert"]
  rows = c.rl.batch_prompts * c.rl.group_size / batch_split
  t = c.rl.max_prompt_tokens + c.rl.max_new_tokens
  heads = m.n_heads / sizes["tensor"]
  cache_width = (m.mla.kv_lora_rank + m.mla.qk_rope_head_dim if m.attention == "mla"
                 else 2 * m.n_kv_heads * m.head_dim)
  out = {
      "parameters": local * pbytes * gb,
      "gradients": local * pbytes * gb,
      "adam_moments": 2 * local * pbytes * gb,
      "reference_policy": local * pbytes * gb,
      "kv_cache": rows * t * m.n_layers * cache_width * abytes * gb,
      "remat_checkpoints": rows * m.n_layers * t * m.d_model * abytes * gb,
      "layer_recompute": rows * heads * t * t * 10 * gb,
      "logits": rows * t * (m.vocab_size / sizes["tensor"]) * 4 * 3 * gb,
  }
  out["total"] = sum(out.values())
  return out


if __name__ == "__main__":
  for k, v in memory_per_chip_gb(get_config()).items():
    print(f"{k:20s} {v:8.2f}")
