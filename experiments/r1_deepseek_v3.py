r"""DeepSeek-R1 at full size: GRPO on DeepSeek-V3-Base (671B, MLA + 256-expert MoE).

Stages, the R1-Zero arm: base (evaluate the checkpoint) -> r1_zero (GRPO on GSM8K +
MATH train) -> final (evaluate). The R1 recipe (paper section 2.3), from the same base:
  cold_start            sft on the cold-start rows (DATA/cold_start/*.jsonl, R1's format)
  reasoning_rl          grpo: accuracy + R1 format + language consistency (en, by script)
  rejection_sampling    sample 4 per MATH/GSM8K train prompt at T=1.0, keep correct,
                        R1-format, single-language CoTs without long paragraphs or code
  sft                   from the *base*, 2 epochs (paper) on rejection-sampled rows and
                        the non-reasoning rows (DATA/non_reasoning/*.jsonl) at 3:1
                        (the paper's ~600k : ~200k)
  reward_model_helpful  Bradley-Terry on DATA/preferences/*.jsonl, reading the summary
  reward_model_harmless the same, reading the whole response
  rl_all                grpo on reasoning and general prompts (DATA/general/*.jsonl, rows
                        with "type": "general") 1:1, rule rewards for the first, the two
                        reward models for the second; temperature 0.7 (paper)
  r1_final              evaluate, with helpfulness/harmlessness on held-out requests
The data files are the user's (JSONL row formats: r1jax/data/file_tasks.py); none ships.
The tests build this config at full size (671B parameters by `jax.eval_shape`, mesh
checked for 1024 chips, every stage's checks) and AOT-compile its GRPO step, its
reward-model step and its sampler with the model scaled down (`:aot_test`, 8 CPU
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
  c.stages = ("base", "r1_zero", "final", "cold_start", "reasoning_rl",
              "rejection_sampling", "sft", "reward_model_helpful", "reward_model_harmless",
              "rl_all", "r1_final")
  for name in ("gsm8k", "math", "math500"):
    c.tasks[name] = tasks.config(name, template="r1_zero")
    # The same problems in R1's plain prompt, English by Unicode script (language reward).
    c.tasks[name + "_r1"] = tasks.config(name, template="r1", language="en")
  jsonl = lambda d: tasks.config("jsonl", template="r1", train=f"{{data_dir}}/{d}/train*.jsonl",
                                 test=f"{{data_dir}}/{d}/test*.jsonl")
  c.tasks.cold_start = jsonl("cold_start")  # {"prompt", "completion"} in R1's format
  c.tasks.non_reasoning = jsonl("non_reasoning")  # {"prompt", "completion"}
  c.tasks.preferences = jsonl("preferences")  # {"prompt", "chosen", "rejected", "preference"}
  c.tasks.general = jsonl("general")  # {"prompt", "answer": "", "type": "general"}
  c.tasks.rs = tasks.config("jsonl", template="r1",
                            train="{workdir}/rejection_sampling/samples/*.jsonl")
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

  # The R1 recipe. Optimiser settings follow r1_zero's where the paper gives none.
  opt = dict(learning_rate=3e-6, warmup_steps=10, b2=0.95, weight_decay=0.1)
  c.cold_start = stages.config("sft", input="init", train=("cold_start:train",), epochs=2.0,
                               batch_size=128, seq_len=8192, checkpoint_every=100,
                               optimizer=dict(opt, learning_rate=1e-5))
  rl = dict(batch_prompts=8, max_new_tokens=7168, reward_workers=32, checkpoint_every=50,
            eval_every=200, optimizer=opt)
  r1_eval = dict(evaluation, tasks=("math500_r1:test",))
  c.reasoning_rl = stages.config(
      "grpo", input="cold_start", train=("gsm8k_r1:train", "math_r1:train"), steps=4000,
      curve=dict(r1_eval, num_problems=128, k=4), **rl)
  c.reasoning_rl.reward_weights = configs.ConfigDict(
      {"accuracy": 1.0, "r1_format": 0.1, "language": 1.0})
  c.rejection_sampling = stages.config(
      "sample", input="reasoning_rl", prompts=("math_r1:train", "gsm8k_r1:train"),
      samples_per_prompt=4, temperature=1.0, max_new_tokens=7168, batch_rows=1024,
      shard_prompts=256, reward_workers=32, drop_mixed_language=True,
      max_paragraph_chars=2000, drop_code_blocks=True)
  c.rejection_sampling.reward_weights = configs.ConfigDict(
      {"accuracy": 1.0, "r1_format": 0.0, "language": 0.0})
  c.rejection_sampling.require_r1_format = True
  c.sft = stages.config("sft", input="init", train=("rs:train", "non_reasoning:train"),
                        train_weights=(0.75, 0.25), epochs=2.0,  # paper: 2 epochs
                        batch_size=128, seq_len=8192, checkpoint_every=100,
                        optimizer=dict(opt, learning_rate=1e-5))
  rm = dict(input="sft", pairs=("preferences:train",), heldout=("preferences:test",),
            epochs=1.0, batch_pairs=64, seq_len=8192, eval_rows=128, checkpoint_every=100,
            optimizer=dict(opt, learning_rate=1e-6))
  c.reward_model_helpful = stages.config("reward_model", preference="helpful",
                                         view="summary", **rm)
  c.reward_model_harmless = stages.config("reward_model", preference="harmless",
                                          view="response", **rm)
  general_eval = dict(general=("general:test",), helpfulness_rm="reward_model_helpful",
                      harmlessness_rm="reward_model_harmless")
  c.rl_all = stages.config(
      "grpo", input="sft", train=("math_r1:train", "general:train"), train_weights=(1, 1),
      temperature=0.7, steps=2000,  # paper: 0.7 in this stage
      curve=dict(r1_eval, num_problems=128, k=4, **general_eval), **rl)
  c.rl_all.reward_weights = configs.ConfigDict(
      {"accuracy": 1.0, "r1_format": 0.1, "language": 1.0})
  c.rl_all.reward_weights_by_type = configs.ConfigDict({"general": {
      "helpful_rm": 1.0, "harmless_rm": 1.0}})
  c.rl_all.reward_models = configs.ConfigDict({"helpful_rm": "reward_model_helpful",
                                               "harmless_rm": "reward_model_harmless"})
  c.r1_final = stages.config("evaluate", input="rl_all", **r1_eval, **general_eval)

  if arg == "aot_test":
    # Same structure (MLA with q-LoRA, yarn, grouped routing, shared expert, dense-first
    # layers), tiny sizes; a 2x2x2 mesh over 8 simulated CPU devices.
    c.model = configs.tiny_moe_config(
        vocab_size=256, max_seq_len=64, n_layers=3, d_model=64, n_heads=4, mlp_dim=128,
        dtype="bfloat16", param_dtype="float32", remat=True, rope=dict(V3_ROPE_TINY),
        moe=dict(n_routed_experts=8, n_group=4, topk_group=2, num_experts_per_tok=2,
                 first_k_dense_replace=1, routed_scaling_factor=2.5))
    c.mesh = configs.mesh_config(data=1, fsdp=2, expert=2, tensor=2)
    for s in (c.r1_zero, c.reasoning_rl, c.rl_all):
      s.batch_prompts, s.group_size, s.max_new_tokens = 2, 4, 16
    for s in (c.cold_start, c.sft):
      s.batch_size, s.seq_len = 8, 32
    for s in (c.reward_model_helpful, c.reward_model_harmless):
      s.batch_pairs, s.seq_len, s.eval_rows = 4, 32, 8
    c.rejection_sampling.update(max_new_tokens=16, batch_rows=8)
    for s in (c.base, c.final, c.r1_final, c.r1_zero.curve, c.reasoning_rl.curve,
              c.rl_all.curve):
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
