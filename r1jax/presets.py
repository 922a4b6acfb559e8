"""Model presets of published checkpoints, defined once (experiments import them).

Each is the checkpoint's own config.json (the fields r1jax reads), turned into a model
section by `interop.hf.config_from_hf`, plus how it runs: f32 master weights, bf16
activations, remat. A run that starts from the checkpoint (`init='hf:DIR'`) takes the
architecture from DIR/config.json and only dtype, remat and max_seq_len from here.
"""

from __future__ import annotations

from typing import Any

from r1jax import configs

# huggingface.co/Qwen/Qwen2.5-Math-1.5B config.json.
QWEN2_5_MATH_1_5B = dict(
    architectures=["Qwen2ForCausalLM"], hidden_size=1536, num_hidden_layers=28,
    num_attention_heads=12, num_key_value_heads=2, intermediate_size=8960,
    vocab_size=151936, rope_theta=10000.0, tie_word_embeddings=True,
    max_position_embeddings=4096, rms_norm_eps=1e-6, hidden_act="silu",
    use_sliding_window=False, torch_dtype="bfloat16")

# huggingface.co/deepseek-ai/DeepSeek-V3-Base config.json (the MTP layer is not used).
DEEPSEEK_V3 = dict(
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


def from_hf(hf_config: dict[str, Any], *, max_seq_len: int, **overrides: Any
            ) -> configs.ConfigDict:
  """A model section of an HF config: f32 master weights, bf16 activations, remat."""
  from r1jax.interop import hf
  c = hf.config_from_hf(hf_config, param_dtype="float32")
  c.dtype = "bfloat16"
  c.remat = True
  c.max_seq_len = max_seq_len
  configs.apply_overrides(c, overrides)
  return c


def qwen2_5_math_1_5b(max_seq_len: int = 1536, **overrides: Any) -> configs.ConfigDict:
  """Qwen2.5-Math-1.5B (GQA 12/2 heads, qkv bias, tied embeddings; 1.54B parameters)."""
  return from_hf(QWEN2_5_MATH_1_5B, max_seq_len=max_seq_len, **overrides)


def deepseek_v3(max_seq_len: int = 8192, **overrides: Any) -> configs.ConfigDict:
  """DeepSeek-V3 main model (MLA, 256-expert MoE; 671B parameters)."""
  return from_hf(DEEPSEEK_V3, max_seq_len=max_seq_len,
                 **{"moe": {"bias_update_rate": 1e-3}, **overrides})


def qwen2_test_model(**overrides: Any) -> configs.ConfigDict:
  """Qwen2.5's structure at test size (GQA 4/2 heads, qkv bias, tied embeddings)."""
  return configs.model_config(vocab_size=256, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2,
                              head_dim=16, mlp_dim=128, max_seq_len=64, qkv_bias=True,
                              tie_embeddings=True, dtype="bfloat16", param_dtype="float32",
                              remat=True, **overrides)
