r"""DeepSeek-R1 at full size: GRPO on DeepSeek-V3-Base (671B, MLA + 256-expert MoE).

Stages: base (evaluate the checkpoint) -> r1_zero (GRPO on GSM8K + MATH train) ->
final (evaluate). R1's later stages (cold start, rejection sampling, RL for all
scenarios) are chained the same way as their kinds land. The tests build this config at
full size (671B parameters by `jax.eval_shape`, mesh checked for 1024 chips) and
AOT-compile its GRPO step and sampler with the model scaled down (`:aot_test`, 8 CPU
devices).

Command:
  python -m r1jax.main --config=experiments/r1_deepseek_v3.py --workdir=gs://BUCKET/r1_v3 \
      --config.init=hf:DIR_OF_DEEPSEEK_V3_BASE --config.data_dir=DIR
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

from r1jax import configs, model, presets, sharding, stages
from r1jax.data import tasks

NUM_CHIPS = 1024  # TPU v5p-2048.
HBM_GB = 95.0  # Per v5p chip.
PROMPT_TOKENS = 1024  # Padded prompt bucket of the memory estimate (P; P + C = 8192).


def get_config(arg=None):
  c = configs.run_config(init="hf:gs://BUCKET/DeepSeek-V3-Base",  # FP8, dequantised on load
                         data_dir="gs://BUCKET/r1jax_data")
  c.stages = ("base", "r1_zero", "final")
  for name in ("gsm8k", "math", "math500"):
    c.tasks[name] = tasks.config(name, template="r1_zero")
  c.model = presets.deepseek_v3()  # f32 master weights, bf16 activations, remat.
  c.mesh = configs.mesh_config(data=1, fsdp=8, expert=16, tensor=8)

  evaluation = dict(tasks=("math500:test",), num_problems=500, k=16, max_new_tokens=7168,
                    batch_rows=1024)
  c.base = stages.config("evaluate", input="init", **evaluation)
  c.r1_zero = stages.config(  # r1jax/stages/grpo.py documents every key.
      "grpo", input="init", train=("gsm8k:train", "math:train"),
      steps=8000,  # paper Figure 2: ~8k.
      batch_prompts=8,  # B*G rows = 1 per batch shard.
      max_new_tokens=7168, reward_workers=32, checkpoint_every=50, eval_every=200,
      curve=dict(evaluation, num_problems=128, k=4),
      optimizer=dict(learning_rate=3e-6, warmup_steps=10, b2=0.95, weight_decay=0.1))
  c.final = stages.config("evaluate", input="r1_zero", **evaluation)

  if arg == "aot_test":
    # Same structure (MLA with q-LoRA, yarn, grouped routing, shared expert, dense-first
    # layers), tiny sizes; a 2x2x2 mesh over 8 simulated CPU devices.
    c.model = configs.tiny_moe_config(
        vocab_size=256, max_seq_len=64, n_layers=3, d_model=64, n_heads=4, mlp_dim=128,
        dtype="bfloat16", param_dtype="float32", remat=True, rope=dict(V3_ROPE_TINY),
        moe=dict(n_routed_experts=8, n_group=4, topk_group=2, num_experts_per_tok=2,
                 first_k_dense_replace=1, routed_scaling_factor=2.5))
    c.mesh = configs.mesh_config(data=1, fsdp=2, expert=2, tensor=2)
    c.r1_zero.batch_prompts, c.r1_zero.group_size, c.r1_zero.max_new_tokens = 2, 4, 16
    for s in (c.base, c.final, c.r1_zero.curve):
      s.max_new_tokens, s.batch_rows = 16, 8
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
  rows = c.r1_zero.batch_prompts * c.r1_zero.group_size / batch_split
  t = PROMPT_TOKENS + c.r1_zero.max_new_tokens
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
