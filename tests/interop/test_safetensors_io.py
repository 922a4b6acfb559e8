"""safetensors reading/writing, FP8 dequantisation and the HF converter's own checks.

None of these need torch or transformers: checkpoints are written by r1jax itself
(and cross-checked with the `safetensors` package where it can read them).
"""

import json
import os

import jax
import ml_dtypes
import numpy as np
import pytest
from safetensors import numpy as st_numpy

from r1jax import configs, model, sharding
from r1jax.interop import hf, safetensors_io


def _entry(name, arr):
  return safetensors_io.TensorEntry(name, arr.dtype, arr.shape, lambda: arr)


def test_every_dtype_round_trips_and_safetensors_reads_ours(tmp_path):
  rng = np.random.RandomState(0)
  arrays = {
      "f32": rng.randn(3, 5).astype(np.float32),
      "f16": rng.randn(7).astype(np.float16),
      "bf16": rng.randn(4, 2).astype(ml_dtypes.bfloat16),
      "fp8": rng.randn(3, 3).astype(ml_dtypes.float8_e4m3fn),
      "e5m2": rng.randn(2).astype(ml_dtypes.float8_e5m2),
      "i64": np.arange(5, dtype=np.int64), "u8": np.arange(3, dtype=np.uint8),
      "scalar": np.array(2.5, np.float32), "empty": np.zeros((0, 4), np.float32),
  }
  files = safetensors_io.write_checkpoint(str(tmp_path), [_entry(k, v) for k, v in
                                                          arrays.items()])
  assert files == ["model.safetensors"]
  reader = safetensors_io.CheckpointReader(str(tmp_path))
  for k, v in arrays.items():
    got = reader.read(k)
    assert got.dtype == v.dtype and got.shape == v.shape
    assert got.tobytes() == v.tobytes(), k
  with open(tmp_path / "model.safetensors", "rb") as f:
    assert (8 + int.from_bytes(f.read(8), "little")) % 8 == 0  # data 8-byte aligned
  # The reference implementation accepts our file (it validates offsets and sizes).
  numeric = {k: v for k, v in arrays.items() if k in ("f32", "f16", "i64", "u8", "scalar")}
  safetensors_io.write_checkpoint(str(tmp_path / "plain"), [_entry(k, v) for k, v in
                                                            numeric.items()])
  loaded = st_numpy.load_file(str(tmp_path / "plain" / "model.safetensors"))
  for k, v in numeric.items():
    np.testing.assert_array_equal(loaded[k], v)


def test_reads_files_written_by_safetensors_and_sharded_indexes(tmp_path):
  a = {"x": np.arange(6, dtype=np.float32).reshape(2, 3), "y": np.ones(4, np.int32)}
  st_numpy.save_file(a, str(tmp_path / "model.safetensors"))
  r = safetensors_io.CheckpointReader(str(tmp_path))
  np.testing.assert_array_equal(r.read("x"), a["x"])
  np.testing.assert_array_equal(r.read("y"), a["y"])
  with pytest.raises(KeyError, match="'z' is not in the checkpoint"):
    r.read("z")

  entries = [_entry(f"t{i}", np.full((64,), i, np.float32)) for i in range(10)]
  files = safetensors_io.write_checkpoint(str(tmp_path / "sh"), entries, max_shard_bytes=700)
  assert len(files) == 5 and files[0] == "model-00001-of-00005.safetensors"  # 2 per shard
  index = json.load(open(tmp_path / "sh" / "model.safetensors.index.json"))
  assert index["metadata"]["total_size"] == 10 * 256
  r = safetensors_io.CheckpointReader(str(tmp_path / "sh"))
  assert r.names() == sorted(f"t{i}" for i in range(10))
  assert float(r.read("t7")[0]) == 7.0
  # Re-saving into the same directory as one file leaves no stale shards or index.
  safetensors_io.write_checkpoint(str(tmp_path / "sh"), entries[:2])
  assert sorted(os.listdir(tmp_path / "sh")) == ["model.safetensors"]


def test_corrupt_header_is_a_clear_error(tmp_path):
  path = tmp_path / "bad.safetensors"
  header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}).encode()
  path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 8)
  with pytest.raises(ValueError, match="does not match its shape"):
    safetensors_io.read_header(str(path))
  os.makedirs(tmp_path / "empty")
  with pytest.raises(FileNotFoundError, match="no .safetensors files"):
    safetensors_io.CheckpointReader(str(tmp_path / "empty"))


def test_fp8_dequantisation_uses_one_scale_per_128_block():
  rng = np.random.RandomState(0)
  w = rng.randn(300, 200).astype(ml_dtypes.float8_e4m3fn)  # 3 x 2 blocks, partial at the edge
  scale = rng.uniform(0.5, 2.0, (3, 2)).astype(np.float32)
  ref = w.astype(np.float32) * np.kron(scale, np.ones((128, 128), np.float32))[:300, :200]
  np.testing.assert_array_equal(hf.dequantize_fp8(w, scale), ref)
  with pytest.raises(ValueError, match=r"needs \(3, 2\)"):
    hf.dequantize_fp8(w, scale[:2])


# ---------------------------------------------------------------------------------------
# The HF converter without transformers: r1jax writes, r1jax reads


def _random_params(cfg, dtype=np.float32, seed=0):
  rng = np.random.RandomState(seed)
  draw = lambda s: ((1 + 0.1 * rng.randn(*s.shape)) if s.init == "ones"
                    else 0.05 * rng.randn(*s.shape)).astype(dtype)
  return jax.tree.map(draw, model.param_specs(cfg),
                      is_leaf=lambda x: isinstance(x, model.ParamSpec))


def test_bf16_moe_round_trip_onto_a_mesh(tmp_path):
  cfg = configs.tiny_moe_config(dtype="bfloat16", param_dtype="bfloat16")
  params = _random_params(cfg, ml_dtypes.bfloat16)
  hf.save_checkpoint(params, cfg, str(tmp_path), max_shard_bytes=16 << 10)
  hf_cfg = json.load(open(tmp_path / "config.json"))
  assert hf_cfg["architectures"] == ["DeepseekV3ForCausalLM"]
  assert hf_cfg["torch_dtype"] == "bfloat16"
  mesh_cfg = configs.mesh_config(data=2, fsdp=2, expert=2)
  mesh = sharding.make_mesh(mesh_cfg)
  for budget in (8 << 30, 1):  # all of a leaf's shards in one pass, or one shard per pass
    cfg2, params2 = hf.load_checkpoint(str(tmp_path), mesh=mesh, rules=mesh_cfg.rules,
                                       host_buffer_bytes=budget)
    assert cfg2.to_dict() == cfg.to_dict()
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(params2)):
      assert b.dtype == a.dtype
      np.testing.assert_array_equal(np.asarray(b).view(np.uint16), a.view(np.uint16))
    assert params2["moe_layers"]["moe"]["w_up"].sharding.spec[1] == "expert"


def test_save_can_cast_to_bfloat16(tmp_path):
  cfg = configs.model_config(tie_embeddings=True)
  params = _random_params(cfg)
  hf.save_checkpoint(params, cfg, str(tmp_path), dtype="bfloat16")
  cfg2, params2 = hf.load_checkpoint(str(tmp_path))
  assert cfg2.param_dtype == "bfloat16" and "lm_head" not in params2
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(params2)):
    np.testing.assert_array_equal(np.asarray(b), a.astype(ml_dtypes.bfloat16))


def test_unknown_architecture_is_an_error_listing_the_supported(tmp_path):
  cfg = configs.model_config()
  hf.save_checkpoint(_random_params(cfg), cfg, str(tmp_path))
  c = json.load(open(tmp_path / "config.json"))
  c["architectures"] = ["MistralForCausalLM"]
  json.dump(c, open(tmp_path / "config.json", "w"))
  with pytest.raises(ValueError, match=r"MistralForCausalLM.*supported: \['Qwen2ForCausalLM', "
                                       r"'LlamaForCausalLM', 'DeepseekV3ForCausalLM'\]"):
    hf.load_checkpoint(str(tmp_path))


def test_missing_wrong_and_unexpected_tensors_are_named(tmp_path):
  cfg = configs.model_config(qkv_bias=True)
  params = _random_params(cfg)
  hf.save_checkpoint(params, cfg, str(tmp_path / "ok"))
  reader = safetensors_io.CheckpointReader(str(tmp_path / "ok"))
  tensors = {n: np.array(reader.read(n)) for n in reader.names()}
  config = open(tmp_path / "ok" / "config.json").read()

  def write(name, ts):
    d = tmp_path / name
    safetensors_io.write_checkpoint(str(d), [_entry(k, v) for k, v in ts.items()])
    (d / "config.json").write_text(config)
    return str(d)

  gone = dict(tensors)
  del gone["model.layers.1.self_attn.k_proj.bias"]
  with pytest.raises(ValueError, match=r"lacks 1 tensor.*model\.layers\.1\.self_attn\.k_proj"
                                       r"\.bias"):
    hf.load_checkpoint(write("missing", gone))
  bad = dict(tensors, **{"model.norm.weight": np.ones(3, np.float32)})
  with pytest.raises(ValueError, match=r"'model\.norm\.weight' has shape \[3\]; the config "
                                       r"needs \[64\]"):
    hf.load_checkpoint(write("shape", bad))
  extra = dict(tensors, **{"model.layers.0.self_attn.o_proj.bias": np.ones(64, np.float32)})
  with pytest.raises(ValueError, match=r"would drop.*o_proj\.bias"):
    hf.load_checkpoint(write("extra", extra))


def test_config_mapping_errors_and_rope_key_styles():
  base = {"architectures": ["LlamaForCausalLM"], "vocab_size": 256, "hidden_size": 64,
          "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
          "num_key_value_heads": 2, "max_position_embeddings": 512, "rms_norm_eps": 1e-5}
  scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
             "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
  legacy = hf.config_from_hf(dict(base, rope_theta=5e5, rope_scaling=scaling))
  v5 = hf.config_from_hf(dict(base, rope_parameters=dict(scaling, rope_theta=5e5)))
  assert legacy.to_dict() == v5.to_dict()
  assert legacy.rope.scaling == "llama3" and legacy.rope.theta == 5e5 and legacy.head_dim == 16
  with pytest.raises(ValueError, match="rope type 'dynamic' is not supported; allowed"):
    hf.config_from_hf(dict(base, rope_scaling={"rope_type": "dynamic", "factor": 2.0}))
  with pytest.raises(ValueError, match="hidden_act='gelu' is not supported"):
    hf.config_from_hf(dict(base, hidden_act="gelu"))
  with pytest.raises(ValueError, match="lacks the field 'vocab_size'"):
    hf.config_from_hf({k: v for k, v in base.items() if k != "vocab_size"})
  with pytest.raises(ValueError, match="attention_bias/mlp_bias=True is not supported"):
    hf.config_from_hf(dict(base, attention_bias=True))


def test_save_checks_params_against_the_config(tmp_path):
  cfg = configs.model_config()
  params = _random_params(cfg)
  params["dense_layers"]["mlp"]["w_up"] = params["dense_layers"]["mlp"]["w_up"][:, :, :5]
  with pytest.raises(ValueError, match=r"dense_layers/mlp/w_up has shape \[2, 64, 5\]"):
    hf.save_checkpoint(params, cfg, str(tmp_path))
  with pytest.raises(ValueError, match="LlamaForCausalLM needs attention='gqa'"):
    hf.save_checkpoint(_random_params(configs.tiny_moe_config()), configs.tiny_moe_config(),
                       str(tmp_path), architecture="LlamaForCausalLM")


# Field values of released config.json files (legacy rope keys, FP8 quantization block).
RELEASED = {
    "deepseek-v3": ({
        "architectures": ["DeepseekV3ForCausalLM"], "vocab_size": 129280, "hidden_size": 7168,
        "intermediate_size": 18432, "moe_intermediate_size": 2048, "num_hidden_layers": 61,
        "num_attention_heads": 128, "num_key_value_heads": 128, "n_routed_experts": 256,
        "n_shared_experts": 1, "num_experts_per_tok": 8, "first_k_dense_replace": 3,
        "moe_layer_freq": 1, "n_group": 8, "topk_group": 4, "topk_method": "noaux_tc",
        "scoring_func": "sigmoid", "norm_topk_prob": True, "routed_scaling_factor": 2.5,
        "q_lora_rank": 1536, "kv_lora_rank": 512, "qk_nope_head_dim": 128,
        "qk_rope_head_dim": 64, "v_head_dim": 128, "max_position_embeddings": 163840,
        "rms_norm_eps": 1e-6, "rope_theta": 10000, "num_nextn_predict_layers": 1,
        "rope_scaling": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096,
                         "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
        "quantization_config": {"quant_method": "fp8", "fmt": "e4m3",
                                "activation_scheme": "dynamic", "weight_block_size": [128, 128]},
        "tie_word_embeddings": False, "torch_dtype": "bfloat16", "hidden_act": "silu"},
        671.03e9),
    "llama-3.1-8b": ({
        "architectures": ["LlamaForCausalLM"], "vocab_size": 128256, "hidden_size": 4096,
        "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
        "num_key_value_heads": 8, "max_position_embeddings": 131072, "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0, "rope_scaling": {
            "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
        "tie_word_embeddings": False, "torch_dtype": "bfloat16", "attention_bias": False,
        "mlp_bias": False}, 8.03e9),
    "qwen2.5-7b": ({
        "architectures": ["Qwen2ForCausalLM"], "vocab_size": 152064, "hidden_size": 3584,
        "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
        "num_key_value_heads": 4, "max_position_embeddings": 131072, "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0, "rope_scaling": None, "tie_word_embeddings": False,
        "use_sliding_window": False, "sliding_window": 131072, "torch_dtype": "bfloat16"},
        7.62e9),
}


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_released_configs_map_to_their_parameter_counts(name):
  hf_cfg, n_params = RELEASED[name]
  c = hf.config_from_hf(hf_cfg)
  assert c.param_dtype == "bfloat16"
  specs = jax.tree.leaves(model.param_specs(c), is_leaf=lambda x: isinstance(x, model.ParamSpec))
  assert abs(sum(int(np.prod(s.shape)) for s in specs) / n_params - 1) < 1e-3
  if name == "deepseek-v3":
    assert (c.attention, c.rope.scaling, c.rope.factor, c.moe.n_group) == ("mla", "yarn", 40, 8)
    assert model.layer_counts(c) == (3, 58)
