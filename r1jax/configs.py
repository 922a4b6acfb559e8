"""Shared config pieces for experiments/ and the checks every config must pass.

Experiments are Python files with `get_config(arg=None) -> ConfigDict` that build
their config from the functions here (never by copying another config). Every
default lives in a config; code reads `config.x`, never `config.get("x", default)`.

`validate(config)` runs before anything is compiled and raises `ConfigError` with a
message that says what is wrong and what is allowed.
"""

from __future__ import annotations

import difflib
import math
from typing import Any, Iterable

import ml_collections

ConfigDict = ml_collections.ConfigDict
FieldReference = ml_collections.FieldReference

MESH_AXES = ("data", "fsdp", "expert", "tensor")
DTYPES = ("float32", "bfloat16")
ROPE_SCALING_TYPES = ("none", "yarn", "llama3")


class ConfigError(ValueError):
  """A config value or combination that cannot run; the message says what to change."""


def model_config(**overrides: Any) -> ConfigDict:
  """A model section: a small dense (GQA) transformer unless overridden.

  A switch picks the variant: `attention` ('gqa' or 'mla') and `moe.n_routed_experts`
  (0 = dense MLP everywhere). Names follow the Hugging Face configs of Qwen2, Llama and
  DeepSeek-V3 where they exist, so that `interop.hf` maps them one to one.
  """
  c = ConfigDict()
  c.vocab_size = 256  # Tokens in the vocabulary (embedding rows, logit columns).
  c.d_model = 64  # Residual width (HF hidden_size).
  c.n_layers = 2  # Decoder blocks (HF num_hidden_layers).
  c.n_heads = 4  # Query heads.
  c.n_kv_heads = 2  # Key/value heads for GQA (divides n_heads). Unused by MLA.
  c.head_dim = 16  # Per-head width for GQA. Unused by MLA (see mla.*).
  c.mlp_dim = 128  # SwiGLU hidden width of dense layers (HF intermediate_size).
  c.max_seq_len = 256  # Longest sequence (prompt + completion) the model is used at.
  c.norm_eps = 1e-6  # RMSNorm epsilon.
  c.qkv_bias = False  # Bias on q/k/v projections (Qwen2: True).
  c.tie_embeddings = False  # lm_head shares the embedding matrix (HF tie_word_embeddings).
  c.attention = "gqa"  # 'gqa' (Qwen2/Llama) or 'mla' (DeepSeek-V2/V3 multi-head latent).
  c.dtype = "float32"  # Activation dtype: 'float32' or 'bfloat16'. Logits/losses are f32.
  c.param_dtype = "float32"  # Parameter storage dtype.
  c.remat = False  # Recompute each block in the backward pass (saves activation memory).
  c.init_std = 0.02  # Std of the normal initialiser for weight matrices.

  c.rope = ConfigDict()
  c.rope.theta = 10000.0  # RoPE base (HF rope_theta).
  c.rope.scaling = "none"  # 'none', 'yarn' (DeepSeek-V3) or 'llama3' (Llama 3.1+).
  c.rope.factor = 1.0  # Context extension factor (yarn, llama3).
  c.rope.original_max_position = 4096  # Pre-extension context (yarn, llama3).
  c.rope.beta_fast = 32.0  # YaRN: high-frequency boundary in rotations.
  c.rope.beta_slow = 1.0  # YaRN: low-frequency boundary in rotations.
  c.rope.mscale = 1.0  # YaRN: attention temperature coefficient.
  c.rope.mscale_all_dim = 0.0  # YaRN: DeepSeek-V3's second mscale (0 = unused).
  c.rope.low_freq_factor = 1.0  # Llama 3 scaling.
  c.rope.high_freq_factor = 4.0  # Llama 3 scaling.

  c.mla = ConfigDict()
  c.mla.q_lora_rank = 0  # Low-rank query projection rank; 0 = direct query projection.
  c.mla.kv_lora_rank = 32  # Compressed KV latent width (what the decode cache holds).
  c.mla.qk_nope_head_dim = 16  # Per-head query/key width without RoPE.
  c.mla.qk_rope_head_dim = 8  # Per-head query width with RoPE (one key shared by heads).
  c.mla.v_head_dim = 16  # Per-head value width.

  c.moe = ConfigDict()
  c.moe.n_routed_experts = 0  # Routed experts per MoE layer; 0 = dense model.
  c.moe.n_shared_experts = 1  # Always-on experts (one SwiGLU of n_shared * moe_intermediate_size).
  c.moe.num_experts_per_tok = 2  # Routed experts chosen per token (top-k).
  c.moe.moe_intermediate_size = 32  # SwiGLU hidden width of each expert.
  c.moe.first_k_dense_replace = 1  # The first k layers use a dense MLP.
  c.moe.n_group = 1  # Expert groups for group-limited routing.
  c.moe.topk_group = 1  # Groups a token may route to.
  c.moe.norm_topk_prob = True  # Normalise the chosen weights to sum to 1.
  c.moe.routed_scaling_factor = 1.0  # Multiplies the routed weights (DeepSeek-V3: 2.5).
  c.moe.bias_update_rate = 1e-3  # Aux-loss-free balancing step (DeepSeek-V3 gamma); 0 = off.
  c.moe.aux_loss_alpha = 0.0  # Weight of the sequence-wise balance loss; 0 = off.

  apply_overrides(c, overrides)
  return c


def tiny_moe_config(**overrides: Any) -> ConfigDict:
  """A DeepSeek-V3-shaped model small enough for CPU tests: MLA + grouped MoE."""
  c = model_config(
      attention="mla", n_layers=3, d_model=64, n_heads=4, mlp_dim=128,
      mla=dict(q_lora_rank=24, kv_lora_rank=32, qk_nope_head_dim=16,
               qk_rope_head_dim=8, v_head_dim=16),
      moe=dict(n_routed_experts=8, n_shared_experts=1, num_experts_per_tok=2,
               moe_intermediate_size=32, first_k_dense_replace=1, n_group=4,
               topk_group=2, routed_scaling_factor=2.5),
  )
  apply_overrides(c, overrides)
  return c


def mesh_config(**overrides: Any) -> ConfigDict:
  """Mesh axis sizes; exactly one may be -1 (takes the remaining devices)."""
  c = ConfigDict()
  c.data = -1  # Pure data parallelism (batch split, parameters replicated).
  c.fsdp = 1  # Batch split and parameters sharded (ZeRO-3 style).
  c.expert = 1  # Routed experts split across devices (expert parallelism).
  c.tensor = 1  # Heads / MLP width split across devices (Megatron style).
  # Logical axis -> mesh axes. Parameters and activations name logical axes only.
  c.rules = (
      ("batch", ("data", "fsdp", "expert")),
      ("vocab", "tensor"),
      ("embed", "fsdp"),
      ("heads", "tensor"),
      ("kv_heads", "tensor"),
      ("mlp", "tensor"),
      ("experts", "expert"),
      ("expert_mlp", "tensor"),
      ("layers", None),
      ("head_dim", None),
      ("q_lora", None),
      ("kv_lora", None),
      ("length", None),
  )
  apply_overrides(c, overrides)
  return c


def optimizer_config(**overrides: Any) -> ConfigDict:
  """AdamW with warmup + cosine decay and global-norm clipping."""
  c = ConfigDict()
  c.learning_rate = 1e-3  # Peak learning rate.
  c.warmup_steps = 10  # Linear warmup from 0.
  c.decay_steps = 0  # Cosine decay length after warmup; 0 = constant after warmup.
  c.end_lr_ratio = 0.1  # Final lr as a fraction of the peak (cosine).
  c.b1 = 0.9
  c.b2 = 0.95
  c.eps = 1e-8
  c.weight_decay = 0.0  # Decoupled weight decay on matrices (not norms/biases).
  c.grad_clip = 1.0  # Global-norm clip; 0 = off.
  apply_overrides(c, overrides)
  return c


def tokenizer_config(**overrides: Any) -> ConfigDict:
  """The tokenizer of stages that start from random weights (HF inputs bring their own)."""
  c = ConfigDict()
  c.kind = "sentencepiece"  # 'sentencepiece' or 'hf' (a directory with tokenizer.json).
  c.path = ""  # Model file / directory; '' (sentencepiece) = train one on `train_task`.
  c.vocab_size = 64  # Pieces of a trained sentencepiece model.
  c.train_examples = 2000  # Corpus texts a trained tokenizer sees.
  c.train_task = ""  # Synthetic task(s) (keys of config.tasks, comma-separated) to train on.
  apply_overrides(c, overrides)
  return c


def run_config(**overrides: Any) -> ConfigDict:
  """The top level every experiment shares; experiments add tasks and stage sections."""
  c = ConfigDict()
  c.seed = 0  # Seeds data order, initialisation and sampling.
  c.init = "random"  # Weights of stages whose input is 'init': 'random' or 'hf:DIR'.
  c.data_dir = "~/r1jax_data"  # Raw dataset files (gsm8k/, math/, math500/, teacher/ ...).
  c.stages = ()  # Stage section names, run in order (r1jax.stages).
  c.tasks = ConfigDict()  # Named task sections (r1jax.data.tasks), used as 'name:split'.
  c.tokenizer = tokenizer_config()
  c.model = model_config()
  c.mesh = mesh_config()
  apply_overrides(c, overrides)
  return c


def apply_overrides(config: ConfigDict, overrides: dict[str, Any]) -> None:
  """Sets nested values, failing on unknown keys with the list of valid ones."""
  for key, value in overrides.items():
    check_key(config, key)
    if isinstance(value, dict):
      apply_overrides(config[key], value)
    else:
      config[key] = value


def check_key(config: ConfigDict, key: str, path: str = "") -> None:
  """Raises ConfigError naming `key` and the valid keys if `config` lacks it."""
  if key not in config:
    valid = sorted(config.keys())
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise ConfigError(f"Unknown config key '{path}{key}'.{hint} Valid keys: {valid}.")


def lock(config: ConfigDict) -> ConfigDict:
  """Locks the config so a misspelt attribute assignment is an error."""
  config.lock()
  return config


def _require(cond: bool, msg: str) -> None:
  if not cond:
    raise ConfigError(msg)


def validate_model(m: ConfigDict, where: str = "model") -> None:
  """Checks a model section; raises ConfigError that says what to change."""
  _require(m.vocab_size > 0 and m.d_model > 0 and m.n_layers > 0,
           f"{where}: vocab_size, d_model and n_layers must be positive.")
  _require(m.dtype in DTYPES, f"{where}.dtype={m.dtype!r}; allowed: {DTYPES}.")
  _require(m.param_dtype in DTYPES, f"{where}.param_dtype={m.param_dtype!r}; allowed: {DTYPES}.")
  _require(m.attention in ("gqa", "mla"),
           f"{where}.attention={m.attention!r}; allowed: 'gqa', 'mla'.")
  _require(m.rope.scaling in ROPE_SCALING_TYPES,
           f"{where}.rope.scaling={m.rope.scaling!r}; allowed: {ROPE_SCALING_TYPES}.")
  _require(m.n_heads > 0, f"{where}.n_heads must be positive.")
  if m.attention == "gqa":
    _require(m.n_kv_heads > 0 and m.n_heads % m.n_kv_heads == 0,
             f"{where}: n_heads={m.n_heads} must be a multiple of n_kv_heads={m.n_kv_heads}.")
    _require(m.head_dim % 2 == 0, f"{where}.head_dim={m.head_dim} must be even for RoPE.")
  else:
    _require(m.mla.qk_rope_head_dim % 2 == 0,
             f"{where}.mla.qk_rope_head_dim={m.mla.qk_rope_head_dim} must be even for RoPE.")
    _require(m.mla.kv_lora_rank > 0, f"{where}.mla.kv_lora_rank must be positive.")
    _require(m.mla.q_lora_rank >= 0, f"{where}.mla.q_lora_rank must be >= 0 (0 = direct).")
  e = m.moe
  if e.n_routed_experts:
    _require(e.n_routed_experts > 0, f"{where}.moe.n_routed_experts must be >= 0.")
    _require(1 <= e.num_experts_per_tok <= e.n_routed_experts,
             f"{where}.moe.num_experts_per_tok={e.num_experts_per_tok} must be in "
             f"[1, n_routed_experts={e.n_routed_experts}].")
    _require(e.n_group >= 1 and e.n_routed_experts % e.n_group == 0,
             f"{where}.moe.n_group={e.n_group} must divide n_routed_experts={e.n_routed_experts}.")
    _require(1 <= e.topk_group <= e.n_group,
             f"{where}.moe.topk_group={e.topk_group} must be in [1, n_group={e.n_group}].")
    per_group = e.n_routed_experts // e.n_group
    _require(e.n_group == 1 or per_group >= 2,
             f"{where}.moe: group-limited routing scores a group by its top-2 experts, so each "
             f"of the n_group={e.n_group} groups needs >= 2 experts (has {per_group}).")
    _require(e.num_experts_per_tok <= e.topk_group * per_group,
             f"{where}.moe.num_experts_per_tok={e.num_experts_per_tok} exceeds the experts in "
             f"the topk_group={e.topk_group} allowed groups ({e.topk_group * per_group}).")
    _require(0 <= e.first_k_dense_replace <= m.n_layers,
             f"{where}.moe.first_k_dense_replace={e.first_k_dense_replace} must be in "
             f"[0, n_layers={m.n_layers}].")
    _require(e.moe_intermediate_size > 0, f"{where}.moe.moe_intermediate_size must be positive.")


def mesh_shape(mesh: ConfigDict, num_devices: int) -> tuple[int, ...]:
  """Resolves -1 in the mesh config; ConfigError if the product is not num_devices."""
  sizes = [int(mesh[a]) for a in MESH_AXES]
  n_fill = sum(s == -1 for s in sizes)
  _require(n_fill <= 1, f"mesh: at most one axis may be -1, got {dict(zip(MESH_AXES, sizes))}.")
  _require(all(s == -1 or s >= 1 for s in sizes),
           f"mesh: sizes must be >= 1 or -1, got {dict(zip(MESH_AXES, sizes))}.")
  known = math.prod(s for s in sizes if s != -1)
  if n_fill:
    _require(num_devices % known == 0,
             f"mesh: the fixed axes {dict(zip(MESH_AXES, sizes))} multiply to {known}, which "
             f"does not divide the {num_devices} devices.")
    sizes = [num_devices // known if s == -1 else s for s in sizes]
  _require(math.prod(sizes) == num_devices,
           f"mesh: {dict(zip(MESH_AXES, sizes))} multiplies to {math.prod(sizes)} but there "
           f"are {num_devices} devices; set one axis to -1 or make the product {num_devices}.")
  return tuple(sizes)


def validate_mesh_for_model(mesh_sizes: Iterable[int], m: ConfigDict, batch: int | None = None,
                            where: str = "mesh") -> None:
  """Checks that the model's split dimensions divide by the mesh axes that split them."""
  sizes = dict(zip(MESH_AXES, mesh_sizes))
  if m.moe.n_routed_experts:
    _require(m.moe.n_routed_experts % sizes["expert"] == 0,
             f"{where}.expert={sizes['expert']} must divide moe.n_routed_experts="
             f"{m.moe.n_routed_experts}.")
  elif sizes["expert"] != 1:
    # A dense model has no experts; the axis still splits the batch.
    pass
  heads = m.n_kv_heads if m.attention == "gqa" else m.n_heads
  _require(heads % sizes["tensor"] == 0 and m.n_heads % sizes["tensor"] == 0,
           f"{where}.tensor={sizes['tensor']} must divide the attention heads "
           f"(n_heads={m.n_heads}" + (f", n_kv_heads={m.n_kv_heads}" if m.attention == "gqa"
                                      else "") + ").")
  if batch is not None:
    split = sizes["data"] * sizes["fsdp"] * sizes["expert"]
    _require(batch % split == 0,
             f"batch size {batch} must be divisible by data*fsdp*expert={split}.")


_TOP_LEVEL = ("seed", "init", "data_dir", "stages", "tasks", "tokenizer", "model", "mesh")
_SOURCE_FIELDS = ("train", "tasks", "prompts", "heldout")  # stage keys holding 'task:split'


def validate(config: ConfigDict, num_devices: int | None = None) -> None:
  """Checks a whole experiment config before anything compiles; ConfigError says what
  to change. Every stage: its kind exists, its input is an earlier stage that makes
  weights (or 'random', 'init', 'hf:DIR'), its tasks exist, its own checks (batch vs
  mesh among them) pass."""
  from r1jax import stages
  from r1jax.data import tasks as tasks_lib
  from r1jax.data import templates

  missing = [k for k in _TOP_LEVEL if k not in config]
  _require(not missing, f"config lacks {missing}; build it from configs.run_config().")
  validate_model(config.model)
  if num_devices is None:
    import jax
    num_devices = len(jax.devices())
  sizes = mesh_shape(config.mesh, num_devices)
  validate_mesh_for_model(sizes, config.model)
  mesh_sizes = dict(zip(MESH_AXES, sizes))
  _require(config.init == "random" or str(config.init).startswith("hf:"),
           f"init={config.init!r}; allowed: 'random' or 'hf:DIR'.")
  t = config.tokenizer
  _require(t.kind in ("sentencepiece", "hf"),
           f"tokenizer.kind={t.kind!r}; allowed: 'sentencepiece', 'hf'.")
  random_init = any(config[n].input == "random" or (config[n].input == "init" and
                                                   config.init == "random")
                    for n in config.stages if n in config and "input" in config[n])
  if random_init and t.kind == "sentencepiece" and not t.path:
    _require(all(n in config.tasks for n in t.train_task.split(",")),
             f"tokenizer.train_task={t.train_task!r} must name a task of config.tasks "
             f"(or several, comma-separated) "
             f"({sorted(config.tasks.keys())}) to train the tokenizer on, or set "
             f"tokenizer.path.")
  for name, task in config.tasks.items():
    _require("kind" in task and task.kind in tasks_lib.KINDS,
             f"tasks.{name}.kind={task.get('kind')!r}; allowed: {sorted(tasks_lib.KINDS)}.")
    _require(task.template in templates.TEMPLATES,
             f"tasks.{name}.template={task.template!r}; allowed: {templates.TEMPLATES}.")
  _require(bool(config.stages) and not isinstance(config.stages, str),
           f"stages={config.stages!r}: list the stage sections to run, in order.")
  seen: dict[str, str] = {}
  for name in config.stages:
    _require(name in config and isinstance(config[name], ConfigDict) and "kind" in config[name],
             f"stage {name!r} has no config section with a 'kind' (config.{name}).")
    _require(name not in seen, f"stage {name!r} is listed twice in config.stages.")
    section = config[name]
    kind = stages.get(section.kind)
    ref = section.input
    if ref not in ("random", "init") and not ref.startswith("hf:"):
      _require(ref in seen, f"{name}.input={ref!r} must be 'random', 'init', 'hf:DIR' or an "
                            f"earlier stage ({list(seen)}).")
      _require(seen[ref] not in ("evaluate", "sample"),
               f"{name}.input={ref!r} is a {seen[ref]} stage, which makes no weights.")
    for field in _SOURCE_FIELDS:
      refs = section[field] if field in section else ()
      refs = tuple(refs) + (tuple(section.curve.tasks) if field == "tasks" and "curve" in
                            section and section.eval_every else ())
      for r in refs:
        task_name, split = tasks_lib.parse_ref(r)
        _require(task_name in config.tasks,
                 f"{name}.{field}: {r!r} names no task of config.tasks "
                 f"({sorted(config.tasks.keys())}).")
        cls = tasks_lib.KINDS[config.tasks[task_name].kind]
        _require(split in cls.SPLITS, f"{name}.{field}: task {task_name!r} "
                                      f"({config.tasks[task_name].kind}) has no split "
                                      f"{split!r}; splits: {list(cls.SPLITS)}.")
    kind.validate(section, name, mesh_sizes)
    if "optimizer" in section:
      _require(section.optimizer.learning_rate > 0 and section.optimizer.warmup_steps >= 0,
               f"{name}.optimizer: learning_rate must be > 0 and warmup_steps >= 0.")
    seen[name] = section.kind
