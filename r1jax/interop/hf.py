"""Hugging Face checkpoints <-> r1jax params: Qwen2, Llama and DeepSeek-V3 safetensors.

`load_checkpoint(path)` reads `config.json` and the safetensors files (one file, or
shards behind a `*.safetensors.index.json`) of a `Qwen2ForCausalLM`,
`LlamaForCausalLM` or `DeepseekV3ForCausalLM` and returns `(model_config, params)`.
`save_checkpoint(params, model_config, path)` writes the same layout back, with a
`config.json` that `transformers` loads (`AutoModelForCausalLM.from_pretrained`); the
config mapping lives in r1jax.interop.hf_config (its names are re-exported here).

What the conversion does to each tensor:
  * A linear weight is stored by torch as [O, I] and applied as x W^T; r1jax keeps
    [I, ...] with the output split into named axes (e.g. q_proj [H*E, D] -> wq
    [D, H, E]). Transpose and reshape only, so values round-trip bit for bit.
  * Layers are stacked: `dense_layers` holds HF layers 0..k-1 and `moe_layers` the
    rest (k = first_k_dense_replace; a dense model has only `dense_layers`); routed
    experts are stacked once more ([L, E, ...]) from `mlp.experts.{e}.*`.
  * DeepSeek-V3 with `rope_interleave` (the default, and what the released weights
    expect) rotates (x0, x1), (x2, x3), ... pairs of q_pe/k_pe. r1jax rotates halves
    (x_i, x_{i+N/2}). Permuting the rope output rows of q_b_proj/q_proj and of the
    k_pe rows of kv_a_proj_with_mqa to [even rows, odd rows] on load makes the two
    identical (attention scores are dot products, indifferent to a shared
    permutation of q_pe and k_pe); `save_checkpoint` applies the inverse.
  * FP8 weights (float8_e4m3fn with `<name>_scale_inv` of shape
    [ceil(O/128), ceil(I/128)], the released DeepSeek-V3/R1 format) are dequantised on
    load: w * scale_inv per 128x128 block (block from `quantization_config`).
  * The DeepSeek-V3 multi-token-prediction layers (HF layer indices n_layers, ...)
    are kept as HF-named raw tensors in `params["mtp"]["<j>"]` (j = 0 for layer
    n_layers). The r1jax forward ignores them; `save_checkpoint` writes them back.

Memory. Tensors are memory-mapped and read one at a time; nothing ever holds the whole
model. Each leaf of the param tree is built directly as the shards of its target
sharding that live on this host: host buffers for those shards are filled tensor by
tensor (one layer, or one expert of one layer, at a time), copied to their devices and
freed. The distinct shards of a leaf are filled in passes of at most
`host_buffer_bytes` (default 8 GiB); each pass reads the tensors it needs once, so a
small budget trades re-reads for memory. Peak host memory is about
max(host_buffer_bytes, one device's shard of the largest leaf) plus one source tensor
in float32 and its converted copy (DeepSeek-V3's largest is the 129280x7168 embedding
or lm_head: 2 x 3.7 GB; an expert matrix is 59 MB). Device memory holds only the final
shards. `save_checkpoint`
fetches one small leaf (<= 64 MiB), or one (layer[, expert]) slice of a larger one, at
a time, and needs arrays this process can address (a single host).

Shape letters: V vocab, D width, L stacked layers, H query heads, K kv heads, E head
width (GQA) or routed experts (MoE), F MLP width, Q query latent, R kv latent,
N rope width (MLA), O/I output/input rows/columns of a torch linear weight.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import shutil
from typing import Any, Callable, Sequence

import jax
import ml_dtypes
import numpy as np
from jax.sharding import Mesh, NamedSharding, SingleDeviceSharding

from r1jax import configs, model, sharding
from r1jax.interop import safetensors_io
# The config side (config.json <-> model config), re-exported: callers use hf.<name>.
from r1jax.interop.hf_config import (  # noqa: F401
    ARCHITECTURES, _check_architecture, architecture_of, config_from_hf, config_to_hf,
    default_architecture)

Params = dict[str, Any]
ConfigDict = configs.ConfigDict

_NP_DTYPES = {"float32": np.dtype(np.float32), "bfloat16": np.dtype(ml_dtypes.bfloat16)}
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                    "chat_template.jinja", "generation_config.json", "tokenizer.model")
_FP8 = (np.dtype(ml_dtypes.float8_e4m3fn), np.dtype(ml_dtypes.float8_e5m2))
# A leaf at most this large is fetched to the host whole when saving (else per slot).
_WHOLE_LEAF_BYTES = 64 << 20


# ---------------------------------------------------------------------------------------
# The tensor map: every r1jax leaf, and the HF tensor behind each of its slots


@dataclasses.dataclass(frozen=True)
class _Leaf:
  """One r1jax leaf: `n_stack` leading axes index slots, each one HF tensor."""
  path: tuple[str, ...]
  shape: tuple[int, ...]
  n_stack: int
  name: Callable[[tuple[int, ...]], str]
  hf_shape: tuple[int, ...]
  linear: bool  # HF [O, I] -> transpose -> reshape; else a plain reshape
  row_perm: np.ndarray | None = None  # HF rows in r1jax order (interleaved -> half rope)

  @property
  def slot_shape(self) -> tuple[int, ...]:
    return self.shape[self.n_stack:]

  def slots(self) -> Sequence[tuple[int, ...]]:
    return list(itertools.product(*(range(n) for n in self.shape[:self.n_stack])))

  def to_ours(self, w: np.ndarray) -> np.ndarray:
    if self.row_perm is not None:
      w = w[self.row_perm]
    return (w.T if self.linear else w).reshape(self.slot_shape)

  def to_hf(self, x: np.ndarray) -> np.ndarray:
    if self.linear:
      o, i = self.hf_shape
      w = x.reshape(i, o).T
    else:
      w = x.reshape(self.hf_shape)
    if self.row_perm is not None:
      w = w[np.argsort(self.row_perm)]
    return w


def _rope_rows(n: int) -> np.ndarray:
  """Interleaved pairs (0,1),(2,3),... -> halves: r1jax row j reads HF row perm[j]."""
  return np.concatenate([np.arange(0, n, 2), np.arange(1, n, 2)])


def _leaves(c: ConfigDict, interleaved_rope: bool = True) -> dict[tuple[str, ...], _Leaf]:
  """Every leaf of `model.param_specs(c)` with its HF tensor names and conversion."""
  specs = model.param_specs(c)
  D, V, H = c.d_model, c.vocab_size, c.n_heads
  out: dict[tuple[str, ...], _Leaf] = {}

  def add(path: tuple[str, ...], name: Callable[[tuple[int, ...]], str],
          hf_shape: tuple[int, ...], linear: bool, n_stack: int = 1,
          row_perm: np.ndarray | None = None) -> None:
    node: Any = specs
    for k in path:
      node = node[k]
    out[path] = _Leaf(path, tuple(node.shape), n_stack, name, tuple(hf_shape), linear, row_perm)

  add(("embed",), lambda s: "model.embed_tokens.weight", (V, D), False, 0)
  add(("final_norm",), lambda s: "model.norm.weight", (D,), False, 0)
  if not c.tie_embeddings:
    add(("lm_head",), lambda s: "lm_head.weight", (V, D), True, 0)
  n_dense, _ = model.layer_counts(c)
  for stack, first in (("dense_layers", 0), ("moe_layers", n_dense)):
    if stack not in specs:
      continue
    pre = lambda s, first=first: f"model.layers.{first + s[0]}."
    lin = lambda suffix, pre=pre: (lambda s: pre(s) + suffix)
    add((stack, "attn_norm"), lin("input_layernorm.weight"), (D,), False)
    add((stack, "mlp_norm"), lin("post_attention_layernorm.weight"), (D,), False)
    a = (stack, "attn")
    if c.attention == "gqa":
      E, K = c.head_dim, c.n_kv_heads
      add(a + ("wq",), lin("self_attn.q_proj.weight"), (H * E, D), True)
      add(a + ("wk",), lin("self_attn.k_proj.weight"), (K * E, D), True)
      add(a + ("wv",), lin("self_attn.v_proj.weight"), (K * E, D), True)
      add(a + ("wo",), lin("self_attn.o_proj.weight"), (D, H * E), True)
      if c.qkv_bias:
        add(a + ("bq",), lin("self_attn.q_proj.bias"), (H * E,), False)
        add(a + ("bk",), lin("self_attn.k_proj.bias"), (K * E,), False)
        add(a + ("bv",), lin("self_attn.v_proj.bias"), (K * E,), False)
    else:
      m = c.mla
      qk, N, R = m.qk_nope_head_dim + m.qk_rope_head_dim, m.qk_rope_head_dim, m.kv_lora_rank
      q_perm = kv_perm = None
      if interleaved_rope:
        head = np.concatenate([np.arange(m.qk_nope_head_dim), m.qk_nope_head_dim + _rope_rows(N)])
        q_perm = (np.arange(H)[:, None] * qk + head[None]).reshape(-1)
        kv_perm = np.concatenate([np.arange(R), R + _rope_rows(N)])
      if m.q_lora_rank:
        Q = m.q_lora_rank
        add(a + ("wq_a",), lin("self_attn.q_a_proj.weight"), (Q, D), True)
        add(a + ("q_norm",), lin("self_attn.q_a_layernorm.weight"), (Q,), False)
        add(a + ("wq_b",), lin("self_attn.q_b_proj.weight"), (H * qk, Q), True, row_perm=q_perm)
      else:
        add(a + ("wq",), lin("self_attn.q_proj.weight"), (H * qk, D), True, row_perm=q_perm)
      add(a + ("wkv_a",), lin("self_attn.kv_a_proj_with_mqa.weight"), (R + N, D), True,
          row_perm=kv_perm)
      add(a + ("kv_norm",), lin("self_attn.kv_a_layernorm.weight"), (R,), False)
      add(a + ("wkv_b",), lin("self_attn.kv_b_proj.weight"),
          (H * (m.qk_nope_head_dim + m.v_head_dim), R), True)
      add(a + ("wo",), lin("self_attn.o_proj.weight"), (D, H * m.v_head_dim), True)
    if stack == "dense_layers":
      F = c.mlp_dim
      add((stack, "mlp", "w_gate"), lin("mlp.gate_proj.weight"), (F, D), True)
      add((stack, "mlp", "w_up"), lin("mlp.up_proj.weight"), (F, D), True)
      add((stack, "mlp", "w_down"), lin("mlp.down_proj.weight"), (D, F), True)
    else:
      e = c.moe
      n_exp, F = e.n_routed_experts, e.moe_intermediate_size
      mo = (stack, "moe")
      add(mo + ("router",), lin("mlp.gate.weight"), (n_exp, D), True)
      add(mo + ("router_bias",), lin("mlp.gate.e_score_correction_bias"), (n_exp,), False)
      ex = lambda suffix, pre=pre: (lambda s: f"{pre(s)}mlp.experts.{s[1]}.{suffix}")
      add(mo + ("w_gate",), ex("gate_proj.weight"), (F, D), True, 2)
      add(mo + ("w_up",), ex("up_proj.weight"), (F, D), True, 2)
      add(mo + ("w_down",), ex("down_proj.weight"), (D, F), True, 2)
      if e.n_shared_experts:
        S = e.n_shared_experts * F
        add(mo + ("shared", "w_gate"), lin("mlp.shared_experts.gate_proj.weight"), (S, D), True)
        add(mo + ("shared", "w_up"), lin("mlp.shared_experts.up_proj.weight"), (S, D), True)
        add(mo + ("shared", "w_down"), lin("mlp.shared_experts.down_proj.weight"), (D, S), True)
  spec_paths = {_path_keys(p) for p, _ in jax.tree_util.tree_flatten_with_path(
      specs, is_leaf=lambda x: isinstance(x, model.ParamSpec))[0]}
  if spec_paths != set(out):
    raise AssertionError(f"interop.hf has no mapping for {sorted(spec_paths - set(out))} and "
                         f"maps unknown leaves {sorted(set(out) - spec_paths)}.")
  return out


def _path_keys(path: Sequence[Any]) -> tuple[str, ...]:
  return tuple(str(getattr(k, "key", k)) for k in path)


# ---------------------------------------------------------------------------------------
# FP8


def dequantize_fp8(w_OxI: np.ndarray, scale_inv: np.ndarray,
                   block: tuple[int, int] = (128, 128)) -> np.ndarray:
  """float32 w * scale_inv, one scale per block (scale_inv [ceil(O/bo), ceil(I/bi)])."""
  if w_OxI.ndim != 2:
    raise ValueError(f"Block-quantised weights must be 2-D [O, I]; got shape {w_OxI.shape}.")
  (o, i), (bo, bi) = w_OxI.shape, block
  nbo, nbi = -(-o // bo), -(-i // bi)
  if scale_inv.shape != (nbo, nbi):
    raise ValueError(f"weight_scale_inv has shape {scale_inv.shape}; a [{o}, {i}] weight in "
                     f"{bo}x{bi} blocks needs ({nbo}, {nbi}).")
  padded = np.zeros((nbo * bo, nbi * bi), np.float32)
  padded[:o, :i] = w_OxI.astype(np.float32)
  blocks = padded.reshape(nbo, bo, nbi, bi) * scale_inv.astype(np.float32)[:, None, :, None]
  return blocks.reshape(nbo * bo, nbi * bi)[:o, :i]


def _reader_fn(reader: safetensors_io.CheckpointReader, block: tuple[int, int]
               ) -> Callable[[str], np.ndarray]:
  def read(name: str) -> np.ndarray:
    w = reader.read(name)
    scale = name + "_scale_inv"
    if scale in reader:
      return dequantize_fp8(w, reader.read(scale), block)
    if w.dtype in _FP8:
      raise ValueError(f"Tensor {name!r} is {w.dtype} but the checkpoint has no {scale!r} to "
                       f"dequantise it with.")
    return w
  return read


# ---------------------------------------------------------------------------------------
# Loading


def _place(leaf: _Leaf, read: Callable[[str], np.ndarray], target: jax.sharding.Sharding,
           dtype: np.dtype, host_bytes: int) -> jax.Array:
  """Builds one leaf as its addressable shards, filled slot by slot from HF tensors.

  The distinct shards this host holds are filled in passes of at most `host_bytes`
  (at least one shard per pass); a pass reads each HF tensor it needs once.
  """
  index_map = target.addressable_devices_indices_map(leaf.shape)
  bounds = {d: tuple(s.indices(n)[:2] for s, n in zip(idx, leaf.shape))
            for d, idx in index_map.items()}
  passes: list[list[tuple[tuple[int, int], ...]]] = [[]]
  size = 0
  for b in sorted(set(bounds.values())):  # neighbours share slots: fewer re-reads
    nbytes = math.prod(hi - lo for lo, hi in b) * dtype.itemsize
    if passes[-1] and size + nbytes > host_bytes:
      passes.append([])
      size = 0
    passes[-1].append(b)
    size += nbytes
  k = leaf.n_stack
  on_device: dict[tuple[tuple[int, int], ...], dict[Any, jax.Array]] = {}
  for group in passes:
    buffers = {b: np.empty([hi - lo for lo, hi in b], dtype) for b in group}
    for slot in leaf.slots():
      owners = [b for b in group if all(b[a][0] <= slot[a] < b[a][1] for a in range(k))]
      if not owners:
        continue
      value = np.asarray(leaf.to_ours(read(leaf.name(slot)))).astype(dtype, copy=False)
      for b in owners:
        local = tuple(slot[a] - b[a][0] for a in range(k))
        buffers[b][local] = value[tuple(slice(lo, hi) for lo, hi in b[k:])]
    for b in group:
      on_device[b] = {d: jax.device_put(buffers[b], d) for d in index_map if bounds[d] == b}
    jax.block_until_ready([x for b in group for x in on_device[b].values()])
    del buffers  # copied to the devices; the next pass reuses the memory
  arrays = [on_device[bounds[d]][d] for d in index_map]
  return jax.make_array_from_single_device_arrays(leaf.shape, target, arrays)


def _mtp_axes(shape: tuple[int, ...]) -> tuple[str | None, ...]:
  """Logical axes for a raw MTP tensor: 2-D+ split by the 'embed' and 'mlp' rules."""
  if len(shape) < 2:
    return (None,) * len(shape)
  return ("embed", "mlp") + (None,) * (len(shape) - 2)


def _set_nested(tree: Params, keys: Sequence[str], value: Any) -> None:
  for key in keys[:-1]:
    tree = tree.setdefault(key, {})
  tree[keys[-1]] = value


def read_hf_config(path: str) -> dict[str, Any]:
  """The config.json dict of an HF checkpoint directory."""
  file = os.path.join(path, "config.json") if os.path.isdir(path) else path
  if not os.path.exists(file):
    raise FileNotFoundError(f"No config.json at {file}; an HF checkpoint directory has one.")
  with open(file) as f:
    return json.load(f)


def load_checkpoint(path: str, *, mesh: Mesh | None = None,
                    rules: Sequence[tuple[str, Any]] | None = None,
                    param_dtype: str | None = None, keep_mtp: bool = True,
                    host_buffer_bytes: int = 8 << 30) -> tuple[ConfigDict, Params]:
  """Reads an HF Qwen2 / Llama / DeepSeek-V3 checkpoint directory as (model_config, params).

  With `mesh`, every leaf is placed with the sharding its logical axes get under
  `rules` (default: `configs.mesh_config().rules`); without, on the default device.
  `param_dtype` ('float32' or 'bfloat16') defaults to float32 for a float32 checkpoint
  and bfloat16 otherwise; the config's activation dtype is set to match.
  `keep_mtp=False` skips the DeepSeek-V3 MTP layers (else `params['mtp']`, sharded by
  `mtp_axes`). `host_buffer_bytes` bounds the host buffers of one leaf (module
  docstring, "Memory").
  """
  hf = read_hf_config(path)
  c = config_from_hf(hf, param_dtype=param_dtype)
  if c.param_dtype not in _NP_DTYPES:
    raise ValueError(f"param_dtype={c.param_dtype!r}; allowed: {sorted(_NP_DTYPES)}.")
  dtype = _NP_DTYPES[c.param_dtype]
  reader = safetensors_io.CheckpointReader(path)
  qc = hf.get("quantization_config") or {}
  read = _reader_fn(reader, tuple(qc.get("weight_block_size") or (128, 128)))
  leaves = _leaves(c, bool(hf.get("rope_interleave", True)))

  expected: dict[str, tuple[int, ...]] = {}
  for leaf in leaves.values():
    for slot in leaf.slots():
      expected[leaf.name(slot)] = leaf.hf_shape
  missing = [n for n in expected if n not in reader]
  if missing:
    raise ValueError(f"{architecture_of(hf)} checkpoint at {path} lacks {len(missing)} "
                     f"tensor(s) the config needs, e.g. {missing[:5]}.")
  for name, shape in expected.items():
    got = reader.info(name).shape
    if got != shape:
      raise ValueError(f"Tensor {name!r} has shape {list(got)}; the config needs {list(shape)}.")
  mtp_names: dict[str, list[str]] = {}
  unexpected = []
  for name in reader.names():
    if name in expected or name.endswith("_scale_inv") and name[:-len("_scale_inv")] in reader:
      continue
    parts = name.split(".")
    if parts[:2] == ["model", "layers"] and parts[2].isdigit() and int(parts[2]) >= c.n_layers:
      mtp_names.setdefault(str(int(parts[2]) - c.n_layers), []).append(name)
    elif name.endswith("rotary_emb.inv_freq") or (name == "lm_head.weight" and c.tie_embeddings):
      continue  # recomputed / tied to the embedding
    else:
      unexpected.append(name)
  if unexpected:
    raise ValueError(f"Checkpoint at {path} has {len(unexpected)} tensor(s) the "
                     f"{architecture_of(hf)} conversion would drop, e.g. {unexpected[:5]}; "
                     f"check the config (biases, tied embeddings, layer counts).")

  rules = tuple(rules if rules is not None else configs.mesh_config().rules)
  axes = model.param_axes(c)

  def target(shape: tuple[int, ...], logical: Sequence[str | None]) -> jax.sharding.Sharding:
    if mesh is None:
      return SingleDeviceSharding(jax.devices()[0])
    return NamedSharding(mesh, sharding.logical_to_spec(logical, rules, shape, mesh))

  params: Params = {}
  for path_keys, leaf in leaves.items():
    logical: Any = axes
    for k in path_keys:
      logical = logical[k]
    placed = _place(leaf, read, target(leaf.shape, logical), dtype, host_buffer_bytes)
    _set_nested(params, path_keys, placed)
  if keep_mtp and mtp_names:
    params["mtp"] = {}
    for j, names in sorted(mtp_names.items(), key=lambda kv: int(kv[0])):
      prefix = f"model.layers.{c.n_layers + int(j)}."
      for name in names:
        shape = reader.info(name).shape
        leaf = _Leaf((), shape, 0, lambda s, name=name: name, shape, False)
        leaf_dtype = dtype if reader.info(name).dtype.kind in "fV" else reader.info(name).dtype
        _set_nested(params["mtp"], [j] + name[len(prefix):].split("."),
                    _place(leaf, read, target(shape, _mtp_axes(shape)), leaf_dtype,
                           host_buffer_bytes))
  reader.close()
  return c, params


def mtp_axes(mtp: Params) -> Params:
  """Logical axes of `params['mtp']` (what `load_checkpoint` shards it by)."""
  return jax.tree.map(lambda x: _mtp_axes(tuple(x.shape)), mtp)


# ---------------------------------------------------------------------------------------
# Saving


class _HostLeaf:
  """Slots of one (possibly sharded) array on the host, fetched whole when small."""

  def __init__(self, array: Any, n_slots: int):
    self.array = array
    self.left = n_slots
    self.whole: np.ndarray | None = None
    if isinstance(array, jax.Array) and not array.is_fully_addressable:
      raise ValueError("save_checkpoint needs arrays this process can address (run it on one "
                       "host, or gather the params first).")

  def slot(self, s: tuple[int, ...]) -> np.ndarray:
    a = self.array
    if self.whole is None and (isinstance(a, np.ndarray) or a.nbytes <= _WHOLE_LEAF_BYTES):
      self.whole = np.asarray(jax.device_get(a))
    out = self.whole[s] if self.whole is not None else np.asarray(jax.device_get(a[s]))
    self.left -= 1
    if self.left == 0:
      self.whole = None
    return out


def save_checkpoint(params: Params, model_config: ConfigDict, path: str, *,
                    architecture: str | None = None, dtype: str | None = None,
                    max_shard_bytes: int = 4 << 30, extra_config: dict[str, Any] | None = None,
                    tokenizer_from: str | None = None) -> None:
  """Writes params as an HF safetensors checkpoint + config.json that transformers loads.

  `architecture` defaults to DeepseekV3ForCausalLM for MLA models, Qwen2ForCausalLM
  with q/k/v biases and LlamaForCausalLM otherwise. `dtype` ('float32'/'bfloat16')
  casts the written weights (default: as stored). `extra_config` is merged into
  config.json (e.g. bos_token_id / eos_token_id); `tokenizer_from` copies the
  tokenizer and generation files of that HF directory next to the weights.
  """
  c = model_config
  configs.validate_model(c)
  arch = architecture or default_architecture(c)
  _check_architecture(c, arch)
  leaves = _leaves(c)
  entries: list[safetensors_io.TensorEntry] = []
  dtypes = set()
  for path_keys, leaf in leaves.items():
    node: Any = params
    for k in path_keys:
      if not isinstance(node, dict) or k not in node:
        raise ValueError(f"params lack {'/'.join(path_keys)}, which the config needs.")
      node = node[k]
    if tuple(node.shape) != leaf.shape:
      raise ValueError(f"params {'/'.join(path_keys)} has shape {list(node.shape)}; the config "
                       f"needs {list(leaf.shape)}.")
    out_dt = _NP_DTYPES[dtype] if dtype else np.dtype(node.dtype)
    dtypes.add(str(out_dt))
    slots = leaf.slots()
    host = _HostLeaf(node, len(slots))
    for s in slots:
      produce = lambda leaf=leaf, host=host, s=s, dt=out_dt: np.ascontiguousarray(
          leaf.to_hf(host.slot(s))).astype(dt, copy=False)
      entries.append(safetensors_io.TensorEntry(leaf.name(s), out_dt, leaf.hf_shape, produce))
  mtp = params.get("mtp") or {}
  for j, tree in sorted(mtp.items(), key=lambda kv: int(kv[0])):
    prefix = f"model.layers.{c.n_layers + int(j)}."
    for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]:
      dt = _NP_DTYPES[dtype] if dtype and np.dtype(x.dtype).kind in "fV" else np.dtype(x.dtype)
      host = _HostLeaf(x, 1)
      produce = lambda host=host, dt=dt: host.slot(()).astype(dt, copy=False)
      entries.append(safetensors_io.TensorEntry(prefix + ".".join(_path_keys(p)), dt,
                                                tuple(x.shape), produce))
  extra = set(params) - {k[0] for k in leaves} - {"mtp"}
  if extra:
    raise ValueError(f"params have entries {sorted(extra)} that no HF tensor holds; allowed "
                     f"top-level keys: {sorted({k[0] for k in leaves} | {'mtp'})}.")
  if len(dtypes) != 1:
    raise ValueError(f"params mix dtypes {sorted(dtypes)}; pass dtype='float32' or "
                     f"'bfloat16' to write one.")
  stored = {"float32": "float32", "bfloat16": "bfloat16"}.get(dtypes.pop(), "float32")
  os.makedirs(path, exist_ok=True)
  safetensors_io.write_checkpoint(path, entries, max_shard_bytes=max_shard_bytes)
  hf = config_to_hf(c, arch, dtype=stored, n_mtp=len(mtp))
  hf.update(extra_config or {})
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump(hf, f, indent=2, sort_keys=True)
  if tokenizer_from:
    for name in _TOKENIZER_FILES:
      src = os.path.join(tokenizer_from, name)
      if os.path.exists(src):
        shutil.copyfile(src, os.path.join(path, name))
