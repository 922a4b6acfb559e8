"""What every stage kind shares: the run (config, workdir, mesh, tasks, tokenizers),
stage inputs and outputs, and the params that travel between stages.

A finished stage leaves DIR/<stage>/output.json (written last, atomically): its kind,
model config, tokenizer spec, and where its weights (an Orbax params checkpoint,
DIR/<stage>/params) or samples are. A rerun finds it and skips the stage; a later
stage (or `--only`) reads it to find its input.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from typing import Any, Callable

import jax
import orbax.checkpoint as ocp

from r1jax import configs, distributed, model, sharding
from r1jax import tokenizer as tokenizer_lib
from r1jax.data import tasks as tasks_lib


class StageError(RuntimeError):
  """A stage cannot run (missing input, unfinished dependency, ...)."""


def log(msg: str) -> None:
  """Progress line on stdout from process 0 (absl INFO is left to libraries and
  --verbosity)."""
  if distributed.is_primary():
    print(msg, flush=True)


def write_json(path: str, obj: Any) -> None:
  """Writes JSON atomically (a kill never leaves half a file); process 0 alone writes."""
  if not distributed.is_primary():
    return
  tmp = path + ".tmp"
  try:
    with open(tmp, "w") as f:
      json.dump(obj, f, indent=1)
    os.replace(tmp, path)
  except OSError as e:  # e.g. a full disk: no half file left, and the path named
    if os.path.exists(tmp):
      os.remove(tmp)
    raise OSError(e.errno, f"cannot write {path}: {e.strerror or e}") from e


@dataclasses.dataclass
class Output:
  """What a finished stage hands on (the contents of DIR/<stage>/output.json)."""

  name: str
  kind: str
  model: dict[str, Any] | None = None  # model config (JSON) of the weights
  tokenizer: dict[str, str] | None = None  # tokenizer spec (r1jax.tokenizer.load)
  params: str | None = None  # Orbax params checkpoint directory
  hf_dir: str | None = None  # the weights exported as an HF checkpoint (export_hf)
  samples: str | None = None  # directory of JSONL shards (sample stages)
  summary: dict[str, Any] = dataclasses.field(default_factory=dict)

  def to_json(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @property
  def model_config(self) -> configs.ConfigDict:
    return configs.ConfigDict(self.model)


@dataclasses.dataclass
class Source:
  """A stage's input weights: model config, tokenizer and a loader of the params."""

  ref: str
  model_config: configs.ConfigDict
  tokenizer: dict[str, str]
  load: Callable[[], Any | None]  # sharded params; None = fresh random weights


def save_params(path: str, params: Any) -> None:
  """An Orbax checkpoint of params alone (the stage's output weights)."""
  if distributed.is_primary() and os.path.exists(path):
    shutil.rmtree(path)
  distributed.barrier(f"save_params {path}")
  ckptr = ocp.StandardCheckpointer()
  ckptr.save(os.path.abspath(path), params)
  ckptr.wait_until_finished()
  ckptr.close()


def load_params(path: str, model_cfg: Any, mesh: Any, rules: Any, *,
                value_head: bool = False) -> Any:
  """Params saved by `save_params`, each leaf placed with its logical-axis sharding
  (with `value_head`, a reward model's: r1jax.train.reward_model, head replicated)."""
  shapes = jax.eval_shape(lambda: model.init_params(model_cfg, jax.random.key(0)))
  shards = sharding.tree_shardings(mesh, rules, model.param_axes(model_cfg), shapes)
  if value_head:
    from r1jax.train import reward_model
    head = jax.eval_shape(lambda: reward_model.init_head(model_cfg))
    shapes = {**shapes, reward_model.HEAD: head}
    shards = {**shards, reward_model.HEAD: jax.tree.map(
        lambda _: jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()), head)}
  target = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                        shapes, shards)
  ckptr = ocp.StandardCheckpointer()
  try:
    return ckptr.restore(os.path.abspath(path), target)
  finally:
    ckptr.close()


class Run:
  """One experiment run: its config, workdir, mesh, tasks and the stages' outputs."""

  def __init__(self, config: Any, workdir: str, mesh: Any):
    self.config, self.workdir, self.mesh = config, workdir, mesh
    self.rules = config.mesh.rules
    self.tasks = tasks_lib.Registry(config, workdir)
    self._tokenizers: dict[str, Any] = {}
    self._params: dict[str, Any] = {}  # the latest stage's params, kept in memory
    self.reward_models: dict[Any, Any] = {}  # loaded reward models (stages.reward_model.load)
    self.crash_after_step: int | None = None  # tests: a simulated kill after that step

  def stage_dir(self, name: str) -> str:
    d = os.path.join(self.workdir, name)
    os.makedirs(d, exist_ok=True)
    return d

  # -- outputs --

  def output_path(self, name: str) -> str:
    return os.path.join(self.workdir, name, "output.json")

  def finished(self, name: str) -> Output | None:
    path = self.output_path(name)
    if not os.path.exists(path):
      return None
    with open(path) as f:
      return Output(**json.load(f))

  def finish(self, out: Output, params: Any = None) -> Output:
    write_json(self.output_path(out.name), out.to_json())
    if params is not None:
      self._params = {out.name: params}
    return out

  # -- tokenizers --

  def tokenizer(self, spec: dict[str, str]) -> Any:
    key = json.dumps(spec, sort_keys=True)
    if key not in self._tokenizers:
      self._tokenizers[key] = tokenizer_lib.load(spec)
    return self._tokenizers[key]

  def run_tokenizer_spec(self) -> dict[str, str]:
    """The tokenizer of random-init stages (config.tokenizer); a sentencepiece model
    with no path is trained once on the tasks named by `train_task` (DIR/tokenizer)."""
    t = self.config.tokenizer
    if t.kind == "hf":
      return {"kind": "hf", "path": os.path.expanduser(t.path)}
    if t.path:
      return {"kind": "sentencepiece", "path": os.path.expanduser(t.path)}
    path = os.path.join(self.stage_dir("tokenizer"), "tokenizer.model")
    if os.path.exists(path):
      log(f"tokenizer: found {path}, skipping.")
    elif distributed.is_primary():  # the others wait for it at the barrier below
      from r1jax.data import templates
      names = t.train_task.split(",")
      texts = []
      for task_name in names:
        task = self.tasks.get(task_name)
        if not hasattr(task, "corpus_texts"):
          raise configs.ConfigError(f"tokenizer.train_task: {task_name!r} is a "
                                    f"{task.cfg.kind} task; training a tokenizer needs "
                                    f"synthetic ones (or set tokenizer.path).")
        texts += task.corpus_texts(t.train_examples // len(names))
      prefix = templates.R1_ZERO_TEMPLATE.split(" User:")[0]
      tok = tokenizer_lib.train(texts, t.vocab_size, byte_fallback=False,
                                extra_symbols=[prefix])
      tok.save(path)
      log(f"tokenizer: {tok.vocab_size} pieces -> {path}")
    distributed.barrier("tokenizer")
    return {"kind": "sentencepiece", "path": path}

  # -- inputs --

  def source(self, ref: str) -> Source:
    """The weights a stage's `input` names."""
    if ref == "init":
      ref = self.config.init  # 'random' or 'hf:DIR' (configs.validate)
    if ref == "random":
      return Source(ref, self.config.model, self.run_tokenizer_spec(), lambda: None)
    if ref.startswith("hf:"):
      return self._hf_source(ref)
    out = self.finished(ref)
    if out is None:
      raise StageError(f"input stage {ref!r} has not finished (no {self.output_path(ref)}); "
                       f"run it first (without --only, or --only={ref}).")
    if out.params is None:
      raise StageError(f"stage {ref!r} ({out.kind}) produced no weights to start from.")
    if out.kind == "reward_model":
      raise StageError(f"stage {ref!r} is a reward model; a policy starts from a policy "
                       f"stage (grpo stages use reward models through `reward_models`).")
    mc = out.model_config

    def load() -> Any:
      if ref in self._params:
        return self._params[ref]
      return load_params(out.params, mc, self.mesh, self.rules)

    return Source(ref, mc, out.tokenizer, load)

  def params_for_sampling(self, source: Source) -> Any:
    """The source's params; fresh ones from the run's seed for a 'random' source."""
    params = source.load()
    if params is None:
      params = jax.jit(lambda k: model.init_params(source.model_config, k))(
          jax.random.key(self.config.seed))
    return params

  def _hf_source(self, ref: str) -> Source:
    from r1jax.interop import hf
    path = os.path.expanduser(ref[len("hf:"):])
    if not os.path.exists(os.path.join(path, "config.json")):
      raise StageError(f"{ref}: no config.json in {path}; expected a Hugging Face "
                       f"checkpoint directory (config.json, *.safetensors, tokenizer.json).")
    if not os.path.exists(os.path.join(path, "tokenizer.json")):
      raise StageError(f"{ref}: no tokenizer.json in {path}; the tokenizer is read from the "
                       f"checkpoint directory.")
    m = self.config.model
    mc = hf.config_from_hf(hf.read_hf_config(path), param_dtype=m.param_dtype)
    # The architecture is the checkpoint's; how it runs is the experiment's.
    mc.dtype, mc.remat, mc.max_seq_len = m.dtype, m.remat, m.max_seq_len

    def load() -> Any:
      _, params = hf.load_checkpoint(path, mesh=self.mesh, rules=self.rules,
                                     param_dtype=m.param_dtype, keep_mtp=False)
      return params

    return Source(ref, mc, {"kind": "hf", "path": path}, load)

  # -- results --

  def record_eval(self, key: str, result: dict[str, Any]) -> None:
    """Merges one entry into DIR/eval.json."""
    path = os.path.join(self.workdir, "eval.json")
    results = {}
    if os.path.exists(path):
      with open(path) as f:
        results = json.load(f)
    results[key] = result
    write_json(path, results)


def export(run: Run, name: str, section: Any, source: Source, params: Any,
           summary: dict[str, Any]) -> Output:
  """Writes a training stage's output: params (Orbax), optionally an HF checkpoint."""
  d = run.stage_dir(name)
  save_params(os.path.join(d, "params"), params)
  hf_dir = None
  if section.export_hf:
    from r1jax.interop import hf
    hf_dir = os.path.join(d, "hf")
    tok = source.tokenizer
    # Several processes: every one gathers the whole params (a collective), process 0
    # writes them (the whole model in each host's memory: fine for the sizes one exports).
    host_params = distributed.fetch(params) if jax.process_count() > 1 else params
    if distributed.is_primary():
      hf.save_checkpoint(host_params, source.model_config, hf_dir,
                         tokenizer_from=tok["path"] if tok["kind"] == "hf" else None)
    distributed.barrier(f"{name}: export_hf")
    log(f"{name}: Hugging Face checkpoint -> {hf_dir}")
  out = Output(name=name, kind=section.kind, model=source.model_config.to_dict(),
               tokenizer=source.tokenizer, params=os.path.join(d, "params"),
               hf_dir=hf_dir, summary=summary)
  return run.finish(out, params)


def check_batch(where: str, rows: int, mesh_sizes: dict[str, int]) -> None:
  """A batch of `rows` must split evenly over data*fsdp*expert."""
  split = mesh_sizes["data"] * mesh_sizes["fsdp"] * mesh_sizes["expert"]
  if rows % split:
    raise configs.ConfigError(f"{where}: {rows} rows per step do not split over "
                              f"data*fsdp*expert={split} devices; use a multiple of {split}.")
