"""Hugging Face config.json <-> r1jax model config (Qwen2, Llama, DeepSeek-V3).

`config_from_hf(hf)` maps an HF config dict to a validated r1jax model config;
`config_to_hf(c, architecture, dtype=...)` writes one back in the legacy key layout
(`rope_theta` / `rope_scaling`) that every `transformers` release reads. The tensors
are r1jax.interop.hf's.
"""

from __future__ import annotations

from typing import Any

from r1jax import configs

ConfigDict = configs.ConfigDict

ARCHITECTURES = ("Qwen2ForCausalLM", "LlamaForCausalLM", "DeepseekV3ForCausalLM")
_MODEL_TYPES = {"Qwen2ForCausalLM": "qwen2", "LlamaForCausalLM": "llama",
                "DeepseekV3ForCausalLM": "deepseek_v3"}
_REQUIRED = object()



def _field(hf: dict[str, Any], key: str, default: Any = _REQUIRED) -> Any:
  if key in hf and hf[key] is not None:
    return hf[key]
  if default is _REQUIRED:
    raise ValueError(f"config.json ({hf.get('architectures')}) lacks the field {key!r}, "
                     f"which the conversion needs.")
  return default


def architecture_of(hf: dict[str, Any]) -> str:
  """The one supported architecture named by an HF config dict; ValueError otherwise."""
  archs = hf.get("architectures") or []
  known = [a for a in archs if a in ARCHITECTURES]
  if len(known) != 1:
    raise ValueError(f"Unsupported architecture {archs or hf.get('model_type')!r}; "
                     f"supported: {list(ARCHITECTURES)}.")
  return known[0]


def _rope_from_hf(hf: dict[str, Any]) -> dict[str, Any]:
  """The `rope` section from `rope_parameters` (transformers 5) or rope_theta/rope_scaling."""
  p = dict(hf.get("rope_parameters") or hf.get("rope_scaling") or {})
  kind = p.get("rope_type", p.get("type", "default"))
  theta = p.get("rope_theta", hf.get("rope_theta", 10000.0))
  if float(p.get("partial_rotary_factor", hf.get("partial_rotary_factor") or 1.0)) != 1.0:
    raise ValueError("partial_rotary_factor != 1 is not supported (r1jax ropes the whole "
                     "rope width).")
  out: dict[str, Any] = {"theta": float(theta)}
  if kind == "default":
    out["scaling"] = "none"
    return out
  if kind not in ("yarn", "llama3"):
    raise ValueError(f"rope type {kind!r} is not supported; allowed: 'default', 'yarn', "
                     f"'llama3'.")
  orig = hf.get("original_max_position_embeddings") or p.get("original_max_position_embeddings")
  if orig is None:
    raise ValueError(f"rope type {kind!r} needs original_max_position_embeddings; the config "
                     f"has none.")
  needed = ("factor", "low_freq_factor", "high_freq_factor") if kind == "llama3" else ()
  for key in needed:
    if p.get(key) is None:
      raise ValueError(f"rope type {kind!r} needs {key!r}; the config's rope parameters are "
                       f"{p}.")
  if kind == "yarn":
    if p.get("attention_factor") is not None:
      raise ValueError("yarn with an explicit attention_factor is not supported; allowed: "
                       "the factor derived from factor/mscale/mscale_all_dim.")
    if p.get("truncate", True) is False:
      raise ValueError("yarn with truncate=False is not supported; allowed: truncate=True.")
    factor = p.get("factor") or _field(hf, "max_position_embeddings") / orig
    out.update(scaling="yarn", factor=float(factor), original_max_position=int(orig),
               beta_fast=float(p.get("beta_fast") or 32.0),
               beta_slow=float(p.get("beta_slow") or 1.0),
               # HF treats a missing mscale like 0: cos/sin scale = mscale(factor, 1).
               mscale=float(p.get("mscale") or 0.0),
               mscale_all_dim=float(p.get("mscale_all_dim") or 0.0))
  else:
    out.update(scaling="llama3", factor=float(p["factor"]), original_max_position=int(orig),
               low_freq_factor=float(p["low_freq_factor"]),
               high_freq_factor=float(p["high_freq_factor"]))
  return out


def config_from_hf(hf: dict[str, Any], *, param_dtype: str | None = None) -> ConfigDict:
  """The r1jax model config of an HF config.json dict (validated)."""
  arch = architecture_of(hf)
  act = _field(hf, "hidden_act", "silu")
  if act != "silu":
    raise ValueError(f"{arch}: hidden_act={act!r} is not supported; allowed: 'silu'.")
  if param_dtype is None:
    stored = hf.get("dtype") or hf.get("torch_dtype") or "float32"
    param_dtype = "float32" if stored == "float32" else "bfloat16"
  n_heads = int(_field(hf, "num_attention_heads"))
  d_model = int(_field(hf, "hidden_size"))
  o: dict[str, Any] = dict(
      vocab_size=int(_field(hf, "vocab_size")), d_model=d_model,
      n_layers=int(_field(hf, "num_hidden_layers")), n_heads=n_heads,
      mlp_dim=int(_field(hf, "intermediate_size")),
      max_seq_len=int(_field(hf, "max_position_embeddings")),
      norm_eps=float(_field(hf, "rms_norm_eps", 1e-6)),
      tie_embeddings=bool(_field(hf, "tie_word_embeddings", False)),
      dtype=param_dtype, param_dtype=param_dtype, rope=_rope_from_hf(hf))
  if arch == "DeepseekV3ForCausalLM":
    if _field(hf, "attention_bias", False):
      raise ValueError(f"{arch}: attention_bias=True is not supported; allowed: False.")
    scoring = _field(hf, "scoring_func", "sigmoid")
    topk_method = _field(hf, "topk_method", "noaux_tc")
    if scoring != "sigmoid" or topk_method != "noaux_tc":
      raise ValueError(f"{arch}: scoring_func={scoring!r}, topk_method={topk_method!r} are "
                       f"not supported; allowed: 'sigmoid', 'noaux_tc' (DeepSeek-V3).")
    if int(_field(hf, "moe_layer_freq", 1)) != 1:
      raise ValueError(f"{arch}: moe_layer_freq={hf['moe_layer_freq']} is not supported; "
                       f"allowed: 1 (every layer after first_k_dense_replace is MoE).")
    n_experts = int(_field(hf, "n_routed_experts", 0))
    if int(_field(hf, "first_k_dense_replace", 0)) >= o["n_layers"]:
      n_experts = 0  # every layer dense: r1jax's dense MLA model
    o.update(attention="mla", mla=dict(
        q_lora_rank=int(_field(hf, "q_lora_rank", 0)),
        kv_lora_rank=int(_field(hf, "kv_lora_rank")),
        qk_nope_head_dim=int(_field(hf, "qk_nope_head_dim")),
        qk_rope_head_dim=int(_field(hf, "qk_rope_head_dim")),
        v_head_dim=int(_field(hf, "v_head_dim"))))
    if n_experts:
      o["moe"] = dict(
          n_routed_experts=n_experts,
          n_shared_experts=int(_field(hf, "n_shared_experts", 0)),
          num_experts_per_tok=int(_field(hf, "num_experts_per_tok")),
          moe_intermediate_size=int(_field(hf, "moe_intermediate_size")),
          first_k_dense_replace=int(_field(hf, "first_k_dense_replace", 0)),
          n_group=int(_field(hf, "n_group", 1)), topk_group=int(_field(hf, "topk_group", 1)),
          norm_topk_prob=bool(_field(hf, "norm_topk_prob", True)),
          routed_scaling_factor=float(_field(hf, "routed_scaling_factor", 2.5)))
  else:
    if arch == "LlamaForCausalLM" and (_field(hf, "attention_bias", False) or
                                       _field(hf, "mlp_bias", False)):
      raise ValueError(f"{arch}: attention_bias/mlp_bias=True is not supported (r1jax has no "
                       f"o_proj or MLP biases); allowed: False.")
    if arch == "Qwen2ForCausalLM" and _field(hf, "use_sliding_window", False):
      raise ValueError(f"{arch}: use_sliding_window=True is not supported; allowed: False.")
    o.update(attention="gqa", n_kv_heads=int(_field(hf, "num_key_value_heads", n_heads)),
             head_dim=int(_field(hf, "head_dim", d_model // n_heads)),
             qkv_bias=arch == "Qwen2ForCausalLM")
  c = configs.model_config(**o)
  try:
    configs.validate_model(c)
  except configs.ConfigError as e:
    raise configs.ConfigError(f"{arch} config maps to an invalid r1jax model: {e}") from e
  return c


def default_architecture(c: ConfigDict) -> str:
  """The HF architecture `save_checkpoint` writes for a model config."""
  if c.attention == "mla":
    return "DeepseekV3ForCausalLM"
  return "Qwen2ForCausalLM" if c.qkv_bias else "LlamaForCausalLM"


def _rope_to_hf(r: ConfigDict) -> dict[str, Any] | None:
  if r.scaling == "none":
    return None
  if r.scaling == "yarn":
    out: dict[str, Any] = {"rope_type": "yarn", "factor": r.factor,
                           "original_max_position_embeddings": r.original_max_position,
                           "beta_fast": r.beta_fast, "beta_slow": r.beta_slow}
    if r.mscale:
      out["mscale"] = r.mscale
    if r.mscale_all_dim:
      out["mscale_all_dim"] = r.mscale_all_dim
    return out
  return {"rope_type": "llama3", "factor": r.factor, "low_freq_factor": r.low_freq_factor,
          "high_freq_factor": r.high_freq_factor,
          "original_max_position_embeddings": r.original_max_position}


def config_to_hf(c: ConfigDict, architecture: str, *, dtype: str, n_mtp: int = 0
                 ) -> dict[str, Any]:
  """The config.json dict of `c` as `architecture` (legacy rope_theta/rope_scaling keys)."""
  hf: dict[str, Any] = {
      "architectures": [architecture], "model_type": _MODEL_TYPES[architecture],
      "vocab_size": c.vocab_size, "hidden_size": c.d_model,
      "intermediate_size": c.mlp_dim, "num_hidden_layers": c.n_layers,
      "num_attention_heads": c.n_heads, "max_position_embeddings": c.max_seq_len,
      "rms_norm_eps": c.norm_eps, "hidden_act": "silu",
      "tie_word_embeddings": c.tie_embeddings, "rope_theta": c.rope.theta,
      "rope_scaling": _rope_to_hf(c.rope), "attention_dropout": 0.0, "use_cache": True,
      "initializer_range": c.init_std, "torch_dtype": dtype,
  }
  if architecture == "DeepseekV3ForCausalLM":
    m, e = c.mla, c.moe
    dense = not e.n_routed_experts
    hf.update({
        "num_key_value_heads": c.n_heads, "attention_bias": False, "rope_interleave": True,
        "q_lora_rank": m.q_lora_rank or None, "kv_lora_rank": m.kv_lora_rank,
        "qk_nope_head_dim": m.qk_nope_head_dim, "qk_rope_head_dim": m.qk_rope_head_dim,
        "v_head_dim": m.v_head_dim,
        "n_routed_experts": e.n_routed_experts or 1, "n_shared_experts": e.n_shared_experts,
        "num_experts_per_tok": e.num_experts_per_tok if not dense else 1,
        "moe_intermediate_size": e.moe_intermediate_size,
        "first_k_dense_replace": c.n_layers if dense else e.first_k_dense_replace,
        "n_group": e.n_group if not dense else 1, "topk_group": e.topk_group if not dense else 1,
        "norm_topk_prob": e.norm_topk_prob, "routed_scaling_factor": e.routed_scaling_factor,
        "scoring_func": "sigmoid", "topk_method": "noaux_tc",
        "num_nextn_predict_layers": n_mtp,
    })
  else:
    hf.update({"num_key_value_heads": c.n_kv_heads, "head_dim": c.head_dim})
    if architecture == "LlamaForCausalLM":
      hf.update({"attention_bias": False, "mlp_bias": False})
    else:
      hf.update({"use_sliding_window": False})
  return hf


def _check_architecture(c: ConfigDict, architecture: str) -> None:
  if architecture not in ARCHITECTURES:
    raise ValueError(f"architecture={architecture!r}; supported: {list(ARCHITECTURES)}.")
  mla = architecture == "DeepseekV3ForCausalLM"
  if mla != (c.attention == "mla"):
    raise ValueError(f"{architecture} needs attention={'mla' if mla else 'gqa'!r}; the config "
                     f"has attention={c.attention!r}.")
  if not mla and c.moe.n_routed_experts:
    raise ValueError(f"{architecture} is dense; the config has "
                     f"moe.n_routed_experts={c.moe.n_routed_experts} (only "
                     f"DeepseekV3ForCausalLM has MoE).")
  if architecture == "LlamaForCausalLM" and c.qkv_bias:
    raise ValueError("LlamaForCausalLM has no q/k/v-only bias; save a qkv_bias model as "
                     "Qwen2ForCausalLM.")
  if architecture == "Qwen2ForCausalLM" and not c.qkv_bias:
    raise ValueError("Qwen2ForCausalLM always has q/k/v biases; save a model without them as "
                     "LlamaForCausalLM.")
