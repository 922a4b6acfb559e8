"""Logit parity with `transformers` for Qwen2, Llama (Llama-3 RoPE) and DeepSeek-V3.

Tiny random models are built with the `transformers` config classes, saved with
`save_pretrained`, loaded by `r1jax.interop.hf` and compared on random tokens in
float32 (relative error ||a - b|| / ||b|| of the logits under 1e-3). The DeepSeek-V3
model routes with a non-zero selection bias and group limits, and the test checks that
both change HF's logits, so a routing difference would show. Saving goes the other
way: r1jax -> safetensors -> `AutoModelForCausalLM.from_pretrained`, and save -> load
round-trips bit for bit. A released-format checkpoint (FP8 block-quantised weights
with `weight_scale_inv`, an MTP layer, sharded with an index) is built by hand.

Needs the `hf` extra (torch CPU, transformers); skipped only when they are absent.
"""

import json
import os

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from r1jax import configs, model  # noqa: E402
from r1jax.interop import hf, safetensors_io  # noqa: E402

RTOL = 1e-3
BATCH, LENGTH = 2, 16
_FORWARD = {}


def _rel(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _tokens(vocab):
  return np.random.RandomState(0).randint(0, vocab, (BATCH, LENGTH)).astype(np.int32)


def _r1_logits(cfg, params, tokens):
  key = cfg.to_json()
  if key not in _FORWARD:  # one compile per config, reused across tests
    _FORWARD[key] = jax.jit(lambda p, t, cfg=cfg: model.forward(p, t, cfg))
  return np.asarray(_FORWARD[key](params, jnp.asarray(tokens)))


def _hf_logits(m, tokens):
  with torch.no_grad():
    return m(torch.tensor(tokens, dtype=torch.long)).logits.float().numpy()


def _qwen2():
  return transformers.Qwen2ForCausalLM(transformers.Qwen2Config(
      vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
      rope_theta=1e6, tie_word_embeddings=True, initializer_range=0.1, rms_norm_eps=1e-6))


def _llama():
  return transformers.LlamaForCausalLM(transformers.LlamaConfig(
      vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
      num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=256,
      initializer_range=0.1, rms_norm_eps=1e-5,
      rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                       "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                       "original_max_position_embeddings": 32}))


def _deepseek_v3():
  m = transformers.DeepseekV3ForCausalLM(transformers.DeepseekV3Config(
      vocab_size=128, hidden_size=64, intermediate_size=96, moe_intermediate_size=32,
      num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4, n_routed_experts=8,
      n_shared_experts=1, num_experts_per_tok=2, n_group=4, topk_group=2,
      first_k_dense_replace=1, routed_scaling_factor=2.5, q_lora_rank=24, kv_lora_rank=32,
      qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16, max_position_embeddings=256,
      initializer_range=0.1,
      rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                       "original_max_position_embeddings": 64, "beta_fast": 32,
                       "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0}))
  with torch.no_grad():
    for layer in m.model.layers[1:]:
      # Small enough that sigmoid(score) + bias > 0 (HF and r1jax mask groups alike then).
      layer.mlp.gate.e_score_correction_bias.uniform_(-0.05, 0.05)
  return m


FAMILIES = {"qwen2": _qwen2, "llama": _llama, "deepseek_v3": _deepseek_v3}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  """family -> (HF model, directory it was saved to), built once per module."""
  out = {}

  def get(family):
    if family not in out:
      torch.manual_seed(0)
      m = FAMILIES[family]().eval()
      path = str(tmp_path_factory.mktemp(family))
      m.save_pretrained(path)
      out[family] = (m, path)
    return out[family]

  return get


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_logits_match_transformers(saved, family):
  m, path = saved(family)
  cfg, params = hf.load_checkpoint(path)
  assert cfg.param_dtype == "float32"
  tokens = _tokens(cfg.vocab_size)
  ref = _hf_logits(m, tokens)
  assert _rel(_r1_logits(cfg, params, tokens), ref) < RTOL


def test_deepseek_routing_bias_and_group_limits_matter(saved):
  """The parity above would catch a routing bug: bias and group limits change HF's logits."""
  m, path = saved("deepseek_v3")
  cfg, params = hf.load_checkpoint(path)
  assert cfg.moe.n_group == 4 and cfg.moe.topk_group == 2
  assert float(jnp.abs(params["moe_layers"]["moe"]["router_bias"]).min()) > 0
  tokens = _tokens(cfg.vocab_size)
  ours = _r1_logits(cfg, params, tokens)
  gates = [layer.mlp.gate for layer in m.model.layers[1:]]
  with torch.no_grad():
    saved_bias = [g.e_score_correction_bias.clone() for g in gates]
    for g in gates:
      g.e_score_correction_bias.zero_()
    no_bias = _hf_logits(m, tokens)
    for g, b in zip(gates, saved_bias):
      g.e_score_correction_bias.copy_(b)
      g.topk_group = g.num_group
    no_groups = _hf_logits(m, tokens)
    for g in gates:
      g.topk_group = 2
  assert _rel(ours, no_bias) > 30 * RTOL
  assert _rel(ours, no_groups) > 30 * RTOL
  assert _rel(ours, _hf_logits(m, tokens)) < RTOL


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_save_round_trips_and_transformers_loads_it(saved, family, tmp_path):
  m, path = saved(family)
  cfg, params = hf.load_checkpoint(path)
  out = str(tmp_path / "out")
  hf.save_checkpoint(params, cfg, out, max_shard_bytes=64 << 10)
  assert os.path.exists(os.path.join(out, "model.safetensors.index.json"))
  cfg2, params2 = hf.load_checkpoint(out)
  assert cfg2.to_dict() == cfg.to_dict()
  assert jax.tree.structure(params2) == jax.tree.structure(params)
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(params2)):
    assert a.dtype == b.dtype and np.array_equal(np.asarray(a), np.asarray(b))
  back = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
  assert type(back) is type(m)
  sd, sd_back = m.state_dict(), back.state_dict()
  assert set(sd) == set(sd_back)
  for k in sd:
    assert torch.equal(sd[k], sd_back[k]), k
  tokens = _tokens(cfg.vocab_size)
  assert _rel(_hf_logits(back, tokens), _r1_logits(cfg, params, tokens)) < RTOL


def test_r1jax_model_served_by_transformers(tmp_path):
  """A model born in r1jax (direct q projection, YaRN, non-zero bias) runs in transformers."""
  cfg = configs.tiny_moe_config(
      vocab_size=128, init_std=0.1, mla=dict(q_lora_rank=0),
      rope=dict(scaling="yarn", factor=4.0, original_max_position=64, mscale=1.0,
                mscale_all_dim=1.0))
  rng = np.random.RandomState(0)

  def draw(spec):  # numpy, not init_params: no per-op compiles; norms and biases random too
    if spec.init == "ones":
      return (1 + 0.1 * rng.randn(*spec.shape)).astype(np.float32)
    if spec.init == "zeros":  # the router's selection bias
      return rng.uniform(-0.05, 0.05, spec.shape).astype(np.float32)
    return (cfg.init_std * rng.randn(*spec.shape)).astype(np.float32)

  params = jax.tree.map(draw, model.param_specs(cfg),
                        is_leaf=lambda x: isinstance(x, model.ParamSpec))
  hf.save_checkpoint(params, cfg, str(tmp_path))
  m = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path)).eval()
  assert type(m).__name__ == "DeepseekV3ForCausalLM"
  tokens = _tokens(cfg.vocab_size)
  assert _rel(_r1_logits(cfg, params, tokens), _hf_logits(m, tokens)) < RTOL


# ---------------------------------------------------------------------------------------
# The released DeepSeek-V3 format: FP8 block-quantised weights, an MTP layer, shards

BLOCK = (16, 16)  # small blocks so the tiny weights span several, some partial


def _quantize(w):
  """float8_e4m3fn weight and float32 scale_inv per block (what the release stores)."""
  o, i = w.shape
  bo, bi = BLOCK
  nbo, nbi = -(-o // bo), -(-i // bi)
  scale = np.zeros((nbo, nbi), np.float32)
  q = np.zeros((o, i), ml_dtypes.float8_e4m3fn)
  for a in range(nbo):
    for b in range(nbi):
      blk = w[a * bo:(a + 1) * bo, b * bi:(b + 1) * bi]
      s = max(float(np.abs(blk).max()), 1e-12) / 448.0
      scale[a, b] = s
      q[a * bo:(a + 1) * bo, b * bi:(b + 1) * bi] = (blk / s).astype(ml_dtypes.float8_e4m3fn)
  return q, scale


def _is_quantised(name, shape):
  return (len(shape) == 2 and name.endswith("proj.weight")) or name.endswith("eh_proj.weight")


def _release_format(src, dst, n_layers):
  """Rewrites an HF save as the release does: FP8 linears, bf16 rest, MTP layer, shards."""
  reader = safetensors_io.CheckpointReader(src)
  tensors = {n: np.array(reader.read(n), np.float32) for n in reader.names()}
  rng = np.random.RandomState(1)
  last = f"model.layers.{n_layers - 1}."
  mtp = f"model.layers.{n_layers}."
  d, v = tensors["model.norm.weight"].shape[0], tensors["model.embed_tokens.weight"].shape[0]
  for n in [n for n in tensors if n.startswith(last)]:
    tensors[mtp + n[len(last):]] = tensors[n] + 0.01 * rng.randn(*tensors[n].shape)
  tensors.update({
      mtp + "enorm.weight": 1 + 0.1 * rng.randn(d), mtp + "hnorm.weight": 1 + 0.1 * rng.randn(d),
      mtp + "eh_proj.weight": 0.1 * rng.randn(d, 2 * d),
      mtp + "shared_head.norm.weight": 1 + 0.1 * rng.randn(d),
      mtp + "shared_head.head.weight": 0.1 * rng.randn(v, d)})
  entries = []
  for n, w in sorted(tensors.items()):
    w = np.asarray(w, np.float32)
    if _is_quantised(n, w.shape):
      q, s = _quantize(w)
      entries.append(safetensors_io.TensorEntry(n, q.dtype, q.shape, lambda q=q: q))
      entries.append(safetensors_io.TensorEntry(n + "_scale_inv", s.dtype, s.shape,
                                                lambda s=s: s))
    else:
      b = w.astype(ml_dtypes.bfloat16)
      entries.append(safetensors_io.TensorEntry(n, b.dtype, b.shape, lambda b=b: b))
  safetensors_io.write_checkpoint(dst, entries, max_shard_bytes=48 << 10)
  with open(os.path.join(src, "config.json")) as f:
    cfg = json.load(f)
  cfg.pop("rope_parameters")  # the release's legacy keys
  cfg.update(torch_dtype="bfloat16", num_nextn_predict_layers=1, rope_theta=10000.0,
             rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64,
                           "beta_fast": 32, "beta_slow": 1, "mscale": 1.0,
                           "mscale_all_dim": 1.0},
             quantization_config={"quant_method": "fp8", "fmt": "e4m3",
                                  "activation_scheme": "dynamic",
                                  "weight_block_size": list(BLOCK)})
  del cfg["dtype"]
  with open(os.path.join(dst, "config.json"), "w") as f:
    json.dump(cfg, f)
  return tensors


def test_fp8_release_format_with_mtp(saved, tmp_path):
  m, path = saved("deepseek_v3")
  release = str(tmp_path / "release")
  original = _release_format(path, release, m.config.num_hidden_layers)
  assert len(safetensors_io.checkpoint_files(release)) > 1
  cfg, params = hf.load_checkpoint(release, param_dtype="float32")
  assert cfg.rope.scaling == "yarn" and cfg.moe.n_group == 4

  # Dequantised weights sit within FP8 e4m3 rounding of the originals: 2^-4 relative,
  # plus half the smallest subnormal (2^-10) times the block scale.
  out = str(tmp_path / "dequantised")
  hf.save_checkpoint(params, cfg, out)
  reader = safetensors_io.CheckpointReader(out)
  assert set(reader.names()) == set(original)
  n_quantised = 0
  for n, w in original.items():
    got = np.asarray(reader.read(n), np.float32)
    if _is_quantised(n, w.shape):
      n_quantised += 1
      bound = 2 ** -4 * np.abs(w) + 2 ** -10 * np.abs(w).max() / 448 + 1e-7
      assert np.all(np.abs(got - w) <= bound), n
      assert not np.array_equal(got, w), n
    else:
      np.testing.assert_array_equal(got, w.astype(ml_dtypes.bfloat16).astype(np.float32))
  assert n_quantised > 30

  # The MTP layer is kept under its HF names and ignored by the forward.
  mtp = params["mtp"]["0"]
  assert mtp["eh_proj"]["weight"].shape == (cfg.d_model, 2 * cfg.d_model)
  assert mtp["mlp"]["experts"]["7"]["down_proj"]["weight"].shape == (cfg.d_model, 32)
  assert json.load(open(os.path.join(out, "config.json")))["num_nextn_predict_layers"] == 1

  # Logits: exact parity on the dequantised weights; close to the unquantised model.
  tokens = _tokens(cfg.vocab_size)
  ours = _r1_logits(cfg, params, tokens)
  deq = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
  assert _rel(ours, _hf_logits(deq, tokens)) < RTOL
  # FP8 rounding (up to 2^-4 of each weight) compounds through the layers: 0.11 here.
  assert _rel(ours, _hf_logits(m, tokens)) < 0.25


def test_sharded_load_places_every_leaf_on_the_mesh(saved, tmp_path):
  _, path = saved("deepseek_v3")
  sharded_dir = str(tmp_path / "sharded")
  cfg, params = hf.load_checkpoint(path)
  hf.save_checkpoint(params, cfg, sharded_dir, max_shard_bytes=32 << 10)
  mesh_cfg = configs.mesh_config(data=1, fsdp=2, expert=2, tensor=2)
  from r1jax import sharding
  mesh = sharding.make_mesh(mesh_cfg)
  cfg2, placed = hf.load_checkpoint(sharded_dir, mesh=mesh, rules=mesh_cfg.rules)
  axes = model.param_axes(cfg2)
  for (p, a), b, ax in zip(jax.tree_util.tree_flatten_with_path(placed)[0],
                           jax.tree.leaves(params),
                           jax.tree.leaves(axes, is_leaf=lambda x: isinstance(x, tuple))):
    want = sharding.logical_to_spec(ax, mesh_cfg.rules, a.shape, mesh)
    assert a.sharding.spec == want, p
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  w_gate = placed["moe_layers"]["moe"]["w_gate"]
  assert w_gate.sharding.spec == jax.sharding.PartitionSpec(None, "expert", "fsdp", "tensor")
  assert w_gate.addressable_shards[0].data.shape == (2, 4, 32, 16)
