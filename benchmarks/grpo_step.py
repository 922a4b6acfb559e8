"""GRPO step benchmark (issue 17): r1jax's GRPO step against Hugging Face TRL's GRPOTrainer.

One step = rollouts (G=8 completions of 64 tokens per prompt at temperature 1), rule
rewards, group advantages, the reference model's log-probs (beta 0.001), one optimiser
update (AdamW, lr 1e-5). Ours is the trainer the `grpo` stage runs, wired as
`r1jax.stages.grpo.setup` wires it (with this file's prompts in place of a task's):
`rl.GRPOTrainer.produce` then the jitted step from
`state.make_train_step(rl.grpo_loss_fn(...))`. TRL's is `trl.GRPOTrainer.train()` in its
own process and virtual environment (benchmarks/_grpo_peer_trl.py), stepped one step at
a time. Both run the same model directory (written here: a random Qwen2-shaped model
from r1jax's initialiser, saved with `interop.hf.save_checkpoint`) and the same
tokenizer (a byte-level BPE tokenizer.json trained here with Qwen2's pre-tokenizer on
fixed text; nothing is downloaded).

Shape: vocab 4096, width 256, MLP 704, 4 layers, 8 query / 2 KV heads of width 32, qkv
bias, untied head, float32. Prompts "What is A+B? Answer:" (A, B two-digit), reward 1
when the completion contains A+B. 8 and 64 completions per step (1 and 8 prompts).

Per step count the script prints s/step and completions/s for both (best and median of
--repeats, timed in turn, each after --settle s of idle), the ratio, our step split
(rollout = the sampler call; rewards = scoring; reference = pi_ref's log-prob forward;
update = the jitted train step; host = the rest: tokenising, decoding, advantages,
batch assembly), the update timed alone, its model FLOPs (every matmul, forward and
backward) as a fraction of the matmul peak (a 2048^3 float32 jnp.dot, measured here),
the same matmuls timed alone (what the update would take if nothing else cost time),
and our first step's compilation time. TRL runs once with torch's default threads and
once with one thread (`--trl_threads`); ratios are against the faster. --compile_check
also runs a fresh process twice with the persistent compilation cache
(r1jax.use_compilation_cache) in a new directory: cold, then served from the cache.

Setup of the peer (once):
    python3 -m venv .venv-trl && .venv-trl/bin/pip install torch==2.13.0 transformers trl

Usage:
    .venv/bin/python benchmarks/grpo_step.py --repeats 5 --compile_check --json /tmp/g.json
    .venv/bin/python benchmarks/grpo_step.py --quick        # 2 timed steps each, no TRL
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import pathlib
import random
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from typing import Any, Callable

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
from absl import logging  # noqa: E402

import r1jax  # noqa: E402
from r1jax import configs, model, sampling, sharding  # noqa: E402
from r1jax.interop import hf, hf_tokenizer  # noqa: E402
from r1jax.rewards import scoring  # noqa: E402
from r1jax.stages import grpo as grpo_stage  # noqa: E402
from r1jax.train import rl  # noqa: E402
from r1jax.train import state as state_lib  # noqa: E402

GROUP = 8  # completions per prompt
NEW_TOKENS = 64  # completion length cap
BETA = 0.001  # KL weight: the reference forward runs
LR = 1e-5
TEMPERATURE = 1.0
SEED = 0
ENDOFTEXT = "<|endoftext|>"


# ---------------------------------------------------------------------------------------
# The work: model, tokenizer, prompts, reward


def model_config() -> ml_collections.ConfigDict:
  """The Qwen2-shaped model both trainers run."""
  return configs.model_config(
      vocab_size=4096, d_model=256, mlp_dim=704, n_layers=4, n_heads=8, n_kv_heads=2,
      head_dim=32, qkv_bias=True, tie_embeddings=False, max_seq_len=256, norm_eps=1e-6)


def prompt_rows(n: int, offset: int = 0) -> list[dict[str, Any]]:
  """`n` prompts "What is A+B? Answer:" with their sums; row i depends only on i."""
  rows = []
  for i in range(offset, offset + n):
    r = random.Random(f"grpo_step/{i}")
    a, b = r.randrange(10, 100), r.randrange(10, 100)
    rows.append({"prompt": f"What is {a}+{b}? Answer:", "answer": str(a + b)})
  return rows


def contains_reward(completion: str, example: dict) -> float:
  """1.0 when the completion contains the answer (the sum) anywhere."""
  return 1.0 if str(example["answer"]) in completion else 0.0


def _tokenizer_corpus() -> list[str]:
  """Fixed text for the BPE merges: arithmetic prompts and this Python's standard library
  sources (enough text for 4096 tokens; the same on every run of one Python)."""
  corpus = [f"{r['prompt']} {r['answer']}" for r in prompt_rows(2000, offset=10 ** 6)]
  lib = pathlib.Path(sysconfig.get_paths()["stdlib"])
  for name in ("argparse", "collections/__init__", "json/decoder", "json/encoder", "textwrap",
               "string", "random", "fractions", "decimal", "statistics", "calendar",
               "difflib", "inspect", "pathlib", "shutil", "tarfile", "zipfile/__init__",
               "email/message", "http/client", "urllib/parse", "logging/__init__",
               "unittest/case", "configparser", "csv", "datetime", "tempfile"):
    f = lib / f"{name}.py"
    if f.exists():
      corpus += f.read_text(encoding="utf-8", errors="replace").splitlines()
  return corpus


def write_model_dir(path: str, mc: Any, params: Any) -> None:
  """The shared model directory: HF weights and config (Qwen2ForCausalLM) + tokenizer."""
  from tests.fixtures_hf import train_qwen2_tokenizer
  tok = train_qwen2_tokenizer(_tokenizer_corpus(), mc.vocab_size - 1,
                              special_tokens=(ENDOFTEXT,), added_tokens=())
  n = tok.get_vocab_size(with_added_tokens=True)
  if n > mc.vocab_size:
    raise ValueError(f"tokenizer has {n} tokens, the model {mc.vocab_size}")
  os.makedirs(path, exist_ok=True)
  tok.save(os.path.join(path, "tokenizer.json"))
  with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
    json.dump({"bos_token": None, "eos_token": ENDOFTEXT, "pad_token": ENDOFTEXT,
               "add_bos_token": False, "tokenizer_class": "PreTrainedTokenizerFast",
               "model_max_length": mc.max_seq_len}, f, indent=1)
  eos = tok.token_to_id(ENDOFTEXT)
  hf.save_checkpoint(params, mc, path, extra_config={"bos_token_id": None, "eos_token_id": eos,
                                                     "pad_token_id": eos})


# ---------------------------------------------------------------------------------------
# Machine


def best_call_s(f: Callable[..., Any], *args: Any, repeats: int) -> float:
  """Seconds of the fastest of `repeats` calls f(*args) (after one warm-up call)."""
  f(*args).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    f(*args).block_until_ready()
    best = min(best, time.perf_counter() - t0)
  return best


def matmul_peak_gflops(n: int = 2048, repeats: int = 10) -> float:
  """Best of `repeats` 2048^3 float32 jnp.dot: the machine's matmul peak."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  return 2 * n ** 3 / best_call_s(jax.jit(jnp.dot), a, a, repeats=repeats) / 1e9


def loadavg() -> str:
  return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ---------------------------------------------------------------------------------------
# FLOPs of the update


def update_matmuls(c: Any, n: int, length: int, head_positions: int
                   ) -> list[tuple[int, int, int, int]]:
  """(count, M, K, N) of every matmul of one update on n rows of `length` - 1 inputs:
  each forward A[M, K] @ B[K, N] and its two backward products, dA = dC @ B^T (M, N, K)
  and dB = A^T @ dC (K, M, N); attention over the whole (masked) square, the head at
  `head_positions` positions per row."""
  t = length - 1
  m, d, h, k, e, f = n * t, c.d_model, c.n_heads, c.n_kv_heads, c.head_dim, c.mlp_dim
  g = h // k
  fwd = [(c.n_layers, m, d, h * e), (2 * c.n_layers, m, d, k * e),  # q; k, v
         (c.n_layers, m, h * e, d),  # output projection
         (2 * c.n_layers, m, d, f), (c.n_layers, m, f, d),  # gate, up; down
         (n * k * c.n_layers, g * t, e, t), (n * k * c.n_layers, g * t, t, e),  # scores, values
         (1, n * head_positions, d, c.vocab_size)]  # head
  out = []
  for cnt, mm, kk, nn in fwd:
    out += [(cnt, mm, kk, nn), (cnt, mm, nn, kk), (cnt, kk, mm, nn)]
  return out


def update_model_flops(c: Any, n: int, length: int, head_positions: int) -> float:
  """Model FLOPs of one update: 2 per multiply-add of every matmul (`update_matmuls`)."""
  return float(sum(2 * cnt * m * k * nn for cnt, m, k, nn in
                   update_matmuls(c, n, length, head_positions)))


def matmul_floor_s(c: Any, n: int, length: int, head_positions: int, repeats: int = 5
                   ) -> float:
  """Seconds of the update's matmuls alone (`update_matmuls`), each a jitted row-major
  A @ B on operands laid out for it (transposes not timed), best of `repeats`; batched
  attention products run as one batched matmul per shape."""
  total = 0.0
  key = jax.random.key(1)
  for cnt, m, k, nn in update_matmuls(c, n, length, head_positions):
    batched = cnt > 4 * c.n_layers
    b = cnt // c.n_layers if batched else 1
    a = jax.random.normal(key, (b, m, k) if batched else (m, k), jnp.float32)
    w = jax.random.normal(key, (b, k, nn) if batched else (k, nn), jnp.float32)
    total += best_call_s(jax.jit(jnp.matmul), a, w, repeats=repeats) * (cnt // b)
  return total


# ---------------------------------------------------------------------------------------
# Ours


class Timers:
  """Seconds spent in named pieces during the current step."""

  def __init__(self):
    self.t: dict[str, float] = {}

  def wrap(self, name: str, fn: Callable) -> Callable:
    @functools.wraps(fn)
    def timed(*a, **kw):
      t0 = time.perf_counter()
      out = jax.block_until_ready(fn(*a, **kw))
      self.t[name] = self.t.get(name, 0.0) + time.perf_counter() - t0
      return out
    return timed


class Ours:
  """r1jax's GRPO step as the `grpo` stage wires it (r1jax.stages.grpo.run), timed piece
  by piece: the sampler call, the scorer and pi_ref's forward are wrapped (each blocks
  until its result is ready, which the step would wait for anyway)."""

  def __init__(self, n: int, model_dir: str, mc: Any, params: Any, reward_workers: int,
               steps: int):
    self.rl_cfg = r = grpo_stage.default_config()
    r.train = ("bench:train",)
    r.batch_prompts, r.group_size = n // GROUP, GROUP
    r.temperature, r.max_new_tokens, r.num_iterations = TEMPERATURE, NEW_TOKENS, 1
    r.beta, r.steps, r.eval_every = BETA, steps, 0
    r.reward_weights = configs.ConfigDict({"contains": 1.0})
    r.reward_workers = reward_workers
    r.optimizer = configs.optimizer_config(learning_rate=LR, warmup_steps=0)
    grpo_stage.validate(r, "bench", {"data": 1, "fsdp": 1, "expert": 1, "tensor": 1})
    mesh_cfg = configs.mesh_config(data=1)
    self.mesh = sharding.make_mesh(mesh_cfg, jax.devices()[:1])
    self.mc = mc
    tok = hf_tokenizer.HFTokenizer.load(model_dir)
    self.b = r.batch_prompts

    def prompts_fn(step: int) -> tuple[list[str], list[dict]]:
      rows = prompt_rows(self.b, offset=step * self.b)
      return [x["prompt"] for x in rows], [{"answer": x["answer"]} for x in rows]

    self.trainer = rl.GRPOTrainer(r, mc, tok, self.mesh, mesh_cfg.rules, prompts_fn, SEED)
    self.state, shardings = state_lib.create_train_state(
        mc, self.trainer.tx, self.mesh, mesh_cfg.rules, jax.random.key(SEED + 2), params)
    self.ref_params = jax.tree.map(jnp.copy, self.state.params)
    self.step_fn = state_lib.make_train_step(rl.grpo_loss_fn(mc, r), mc, self.trainer.tx,
                                             shardings, self.mesh, mesh_cfg.rules,
                                             self.trainer.lr)
    self.timers = Timers()
    self.trainer.score = self.timers.wrap("rewards", self.trainer.score)
    self.trainer._logprob_fn = self.timers.wrap("reference", self.trainer._logprob_fn)
    self.step = 0
    self.last_batch: dict | None = None

  @contextlib.contextmanager
  def _timed_sampler(self):
    orig = sampling.sample_padded
    sampling.sample_padded = self.timers.wrap("rollout", orig)
    try:
      yield
    finally:
      sampling.sample_padded = orig

  def __call__(self) -> dict[str, float]:
    """One whole step (the loop's produce + update); its seconds and split."""
    self.timers.t = {}
    t0, c0 = time.perf_counter(), time.process_time()
    with self._timed_sampler():
      batch, host = self.trainer.produce(self.step, self.state, self.ref_params)
    t1 = time.perf_counter()
    self.state, m = self.step_fn(self.state, batch)
    jax.block_until_ready(self.state)
    t2 = time.perf_counter()
    m = jax.device_get(m)  # the loop fetches them (one step late)
    total = time.perf_counter() - t0
    if not np.isfinite(m["train/loss"]):
      raise RuntimeError(f"non-finite loss at step {self.step}")
    self.step += 1
    self.last_batch = batch
    split = dict(self.timers.t, update=t2 - t1)
    split["host"] = total - sum(split.values())
    return {"s": total, "cpu_s": time.process_time() - c0, "split": split,
            "reward_mean": host["reward/total_mean"],
            "length_mean": host["completion/length_mean"]}

  def update_alone(self, repeats: int) -> float:
    """Best seconds of the jitted update alone on the last batch."""
    best = float("inf")
    for _ in range(repeats):
      t0 = time.perf_counter()
      self.state, _ = self.step_fn(self.state, self.last_batch)
      jax.block_until_ready(self.state)
      best = min(best, time.perf_counter() - t0)
    return best

  def update_flops(self) -> float:
    """XLA's FLOP count of the update (its HLO before optimisation) on the last batch
    (it counts the layer scan's body once, not once per layer: kept in the JSON only)."""
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                            (self.state, self.last_batch))
    cost = self.step_fn.lower(*abstract).cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", float("nan")))

  def close(self) -> None:
    self.trainer.close()


# Rewards are looked up by name (and pickled by reference into the reward workers).
scoring.REWARD_FNS["contains"] = contains_reward


# ---------------------------------------------------------------------------------------
# TRL


class Peer:
  """TRL's GRPOTrainer in a worker process (JSON lines; protocol in _grpo_peer_trl.py)."""

  def __init__(self, python: str, setup: dict, threads: int = 0):
    self.error: str | None = None
    self.versions: dict = {}
    if not pathlib.Path(python).exists():
      self.error = f"{python} not found (setup: see this file's docstring)"
      return
    self.log = tempfile.TemporaryFile(mode="w+")
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {}))
    self.proc = subprocess.Popen([python, str(ROOT / "benchmarks" / "_grpo_peer_trl.py")],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=self.log, text=True, bufsize=1, env=env)
    reply = self._ask(dict(setup, threads=threads))
    if reply is not None:
      self.versions = reply.get("versions", {})

  def _ask(self, msg: dict) -> dict | None:
    try:
      self.proc.stdin.write(json.dumps(msg) + "\n")
      self.proc.stdin.flush()
      line = self.proc.stdout.readline()
      if line:
        return json.loads(line)
    except (BrokenPipeError, json.JSONDecodeError):
      pass
    self.log.seek(0)
    self.error = f"worker died: {self.log.read().strip()[-2000:]}"
    return None

  def __call__(self) -> dict[str, Any]:
    reply = self._ask({"step": True})
    if reply is None:
      raise RuntimeError(self.error)
    return reply

  def close(self) -> None:
    if self.error is None:
      self.proc.stdin.close()
      self.proc.wait(timeout=120)


# ---------------------------------------------------------------------------------------
# Compilation


class CompileClock:
  """Seconds JAX spends tracing, lowering and compiling (jax.monitoring events), and
  persistent-cache hits."""

  EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
            "/jax/core/compile/jaxpr_to_mlir_module_duration",
            "/jax/core/compile/backend_compile_duration")

  def __init__(self):
    self.s = {e: 0.0 for e in self.EVENTS}
    self.hits = 0
    jax.monitoring.register_event_duration_secs_listener(self._on_duration)
    jax.monitoring.register_event_listener(self._on_event)

  def _on_duration(self, event: str, duration: float, **kw: Any) -> None:
    if event in self.s:
      self.s[event] += duration

  def _on_event(self, event: str, **kw: Any) -> None:
    if event == "/jax/compilation_cache/cache_hits":
      self.hits += 1

  def total(self) -> float:
    return sum(self.s.values())


def first_step_only(args: argparse.Namespace) -> None:
  """--first_step_only: in a fresh process, the first steps of ours (cache as given)."""
  if args.cache_dir:
    r1jax.use_compilation_cache(args.cache_dir)
  clock = CompileClock()
  mc = model_config()
  with tempfile.TemporaryDirectory() as d:
    params = jax.jit(lambda k: model.init_params(mc, k))(jax.random.key(SEED))
    write_model_dir(d, mc, params)
    before = clock.total()
    ours = Ours(args.first_step_n, d, mc, params, args.reward_workers, 3)
    setup_compile = clock.total() - before
    t0 = time.perf_counter()
    first = ours()
    first_wall = time.perf_counter() - t0
    compile_s = clock.total() - before - setup_compile
    steady = min((ours() for _ in range(2)), key=lambda r: r["s"])
    ours.close()
  print(json.dumps({"first_s": first_wall, "first_cpu_s": first["cpu_s"],
                    "steady_s": steady["s"], "steady_cpu_s": steady["cpu_s"],
                    "compile_s": compile_s,
                    "setup_compile_s": setup_compile, "cache_hits": clock.hits,
                    "backend_compile_s": clock.s[CompileClock.EVENTS[2]],
                    "first_split": first["split"]}), flush=True)


def compile_check(args: argparse.Namespace) -> dict[str, Any]:
  """Two fresh processes sharing a new persistent cache directory: cold, then warm."""
  out = {}
  with tempfile.TemporaryDirectory() as cache:
    for name in ("cold", "cached"):
      cmd = [sys.executable, __file__, "--first_step_only", f"--cache_dir={cache}",
             f"--first_step_n={args.first_step_n}", f"--reward_workers={args.reward_workers}"]
      res = subprocess.run(cmd, capture_output=True, text=True, check=False)
      lines = [l for l in res.stdout.splitlines() if l.startswith("{")]
      if res.returncode or not lines:
        raise RuntimeError(f"{cmd} failed: {res.stderr[-2000:]}")
      out[name] = json.loads(lines[-1])
      print(f"  compile check ({name}): first step {out[name]['first_s']:.2f} s "
            f"({out[name]['first_cpu_s']:.2f} CPU s), steady {out[name]['steady_s']:.2f} s, "
            f"JAX tracing + compiling in the first step "
            f"{out[name]['compile_s']:.2f} s (backend {out[name]['backend_compile_s']:.2f} s), "
            f"setup {out[name]['setup_compile_s']:.2f} s, cache hits {out[name]['cache_hits']}",
            flush=True)
  return out


# ---------------------------------------------------------------------------------------
# Main


def _stats(xs: list[float]) -> dict[str, float]:
  return {"best": min(xs), "median": statistics.median(xs), "worst": max(xs)}


def run_size(n: int, args: argparse.Namespace, d: str, mc: Any, params: Any,
             clock: CompileClock, peak: float) -> dict[str, Any]:
  """Warm-up and `repeats` interleaved steps of each engine at n completions per step."""
  steps = 1 + args.repeats
  before = clock.total()
  ours = Ours(n, d, mc, params, args.reward_workers, steps)
  setup_compile = clock.total() - before
  engines: dict[str, Any] = {"r1jax": ours}
  if "trl" not in args.skip:
    b = n // GROUP
    setup = {"model_dir": d, "rows": prompt_rows(b * steps), "completions": n, "group": GROUP,
             "new_tokens": NEW_TOKENS, "beta": BETA, "lr": LR, "temperature": TEMPERATURE,
             "seed": SEED, "steps": steps}
    for threads in (int(t) for t in args.trl_threads.split(",")):
      key = "trl" if not threads else f"trl/{threads}t"
      peer = Peer(args.trl_python, setup, threads)
      if peer.error:
        print(f"{key}: {peer.error}", flush=True)
      else:
        engines[key] = peer
  res: dict[str, Any] = {k: {"steps": []} for k in engines}
  for key, e in engines.items():  # the first step: compilation / warm-up
    t0 = time.perf_counter()
    c0 = clock.total()
    r = e()
    res[key]["first_s"] = time.perf_counter() - t0
    res[key]["first"] = r
    if key == "r1jax":
      res[key]["first_compile_s"] = clock.total() - c0
  for _ in range(args.repeats):
    for key, e in engines.items():
      time.sleep(args.settle)
      res[key]["steps"].append(e())
  res["r1jax"]["setup_compile_s"] = setup_compile
  for key in engines:
    res[key]["s"] = _stats([r["s"] for r in res[key]["steps"]])
    res[key]["cpu_s"] = _stats([r["cpu_s"] for r in res[key]["steps"]])
  # The update alone, and its FLOPs.
  time.sleep(args.settle)
  upd = ours.update_alone(args.update_repeats)
  xla_flops = ours.update_flops()
  length = ours.last_batch["tokens"].shape[1]
  head = sampling.length_bucket(NEW_TOKENS)  # the loss's head runs at completion positions
  model_flops = update_model_flops(mc, n, length, head)
  floor = matmul_floor_s(mc, n, length, head)
  res["update"] = {"alone_s": upd, "xla_flops": xla_flops, "model_flops": model_flops,
                   "seq_len": length, "xla_gflops_s": xla_flops / upd / 1e9,
                   "model_gflops_s": model_flops / upd / 1e9, "matmul_floor_s": floor,
                   "mfu": model_flops / upd / 1e9 / peak}
  ours.close()
  for e in engines.values():
    if isinstance(e, Peer):
      e.close()
  return res


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--sizes", default="8,64", help="completions per step, comma-separated")
  ap.add_argument("--repeats", type=int, default=3, help="timed steps per engine and size")
  ap.add_argument("--update_repeats", type=int, default=5, help="timed updates alone")
  ap.add_argument("--settle", type=float, default=0.5, help="idle seconds before each step")
  ap.add_argument("--quick", action="store_true", help="2 timed steps, no TRL")
  ap.add_argument("--skip", default="", help="comma-separated: trl")
  ap.add_argument("--reward_workers", type=int,
                  default=grpo_stage.default_config().reward_workers,
                  help="reward scoring processes (the grpo stage's default)")
  ap.add_argument("--compile_check", action="store_true",
                  help="also time a fresh process's first step, cold and from the cache")
  ap.add_argument("--trl_python", default=str(ROOT / ".venv-trl" / "bin" / "python"))
  ap.add_argument("--trl_threads", default="0,1",
                  help="a TRL peer per entry: torch intra-op threads (0 = torch's default, "
                       "one per core); the table compares against the fastest")
  ap.add_argument("--json", default=None, help="write every measurement to this file")
  ap.add_argument("--first_step_only", action="store_true", help=argparse.SUPPRESS)
  ap.add_argument("--first_step_n", type=int, default=8, help=argparse.SUPPRESS)
  ap.add_argument("--cache_dir", default="", help=argparse.SUPPRESS)
  args = ap.parse_args()
  logging.set_verbosity(logging.WARNING)
  if args.first_step_only:
    first_step_only(args)
    return
  if args.quick:
    args.repeats, args.skip = 2, "trl"
  sizes = [int(s) for s in args.sizes.split(",")]
  clock = CompileClock()
  report: dict[str, Any] = {"load_start": loadavg(), "jax": jax.__version__,
                            "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M"),
                            "repeats": args.repeats, "reward_workers": args.reward_workers}
  print(f"load average at start: {report['load_start']} (cpus {os.cpu_count()}, jax "
        f"{jax.__version__})", flush=True)
  report["peak_gflops"] = matmul_peak_gflops()
  print(f"matmul peak (2048^3 f32 jnp.dot): {report['peak_gflops']:.1f} GFLOP/s", flush=True)
  mc = model_config()
  params = jax.jit(lambda k: model.init_params(mc, k))(jax.random.key(SEED))
  results = {}
  with tempfile.TemporaryDirectory() as d:
    write_model_dir(d, mc, params)
    for n in sizes:
      results[n] = run_size(n, args, d, mc, params, clock, report["peak_gflops"])
      _print_size(n, results[n])
      report["peak_gflops"] = max(report["peak_gflops"], matmul_peak_gflops())
  report["results"] = {str(k): v for k, v in results.items()}
  report["peak_gflops_end"] = matmul_peak_gflops()
  report["load_end"] = loadavg()
  if args.compile_check:
    report["compile_check"] = compile_check(args)
  _print_table(report, results)
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(report, indent=1))


def _peers(res: dict[str, Any]) -> list[str]:
  return [k for k in res if k.startswith("trl")]


def _print_size(n: int, res: dict[str, Any]) -> None:
  for key in ["r1jax", *_peers(res)]:
    s, c = res[key]["s"], res[key]["cpu_s"]
    print(f"  n={n:<3d} {key:7s} first {res[key]['first_s']:6.2f} s   best {s['best']:.3f} "
          f"median {s['median']:.3f} worst {s['worst']:.3f} s/step; CPU s/step median "
          f"{c['median']:.3f}", flush=True)


def _print_table(report: dict[str, Any], results: dict[int, Any]) -> None:
  peak = max(report["peak_gflops"], report["peak_gflops_end"])
  print()
  print(f"GRPO step: G={GROUP}, {NEW_TOKENS} new tokens, beta={BETA}; s/step best (median) of "
        f"{report['repeats']} interleaved steps; x TRL: against the fastest TRL setting")
  hdr = (f"{'n':>3s} | {'engine':7s} | {'s/step':>16s} {'compl/s':>7s} {'CPU s':>6s} | "
         f"{'x TRL best':>10s} {'x median':>8s}")
  print(hdr)
  print("-" * len(hdr))
  for n, res in results.items():
    peers = _peers(res)
    o = res["r1jax"]["s"]
    for key in ["r1jax", *peers]:
      s = res[key]["s"]
      row = (f"{n:3d} | {key:7s} | {s['best']:7.3f} ({s['median']:6.3f}) {n / s['best']:7.1f} "
             f"{res[key]['cpu_s']['median']:6.2f} |")
      if key == "r1jax" and peers:
        best = min(res[k]["s"]["best"] for k in peers)
        med = min(res[k]["s"]["median"] for k in peers)
        row += f" {best / o['best']:10.2f} {med / o['median']:8.2f}"
      print(row)
  print()
  print("Split, median over the timed steps (s)")
  for n, res in results.items():
    parts = ("rollout", "rewards", "reference", "update", "host")
    med = {p: statistics.median(r["split"].get(p, 0.0) for r in res["r1jax"]["steps"])
           for p in parts}
    print(f"  n={n:<3d} r1jax: " + ", ".join(f"{p} {med[p]:.3f}" for p in parts))
    for key in _peers(res):
      keys = sorted(res[key]["steps"][0].get("split", {}))
      tmed = {k: statistics.median(r["split"].get(k, 0.0) for r in res[key]["steps"])
              for k in keys}
      print(f"        {key}: " + ", ".join(f"{k} {v:.3f}" for k, v in tmed.items()))
  print()
  print(f"update alone (best of its repeats) vs the matmul peak ({peak:.0f} GFLOP/s):")
  for n, res in results.items():
    u = res["update"]
    print(f"  n={n:<3d} L={u['seq_len']} {u['alone_s'] * 1e3:7.1f} ms; model FLOPs "
          f"{u['model_flops'] / 1e9:.2f} G ({u['model_gflops_s']:.0f} GFLOP/s, "
          f"{100 * u['model_flops'] / u['alone_s'] / 1e9 / peak:.0f}% of peak); its matmuls "
          f"alone {u['matmul_floor_s'] * 1e3:.1f} ms "
          f"({100 * u['model_flops'] / u['matmul_floor_s'] / 1e9 / peak:.0f}% of peak)")
  print()
  for n, res in results.items():
    r = res["r1jax"]
    print(f"  n={n:<3d} r1jax first step {r['first_s']:.2f} s ({r['first']['cpu_s']:.2f} CPU s), "
          f"of which JAX tracing + compiling {r['first_compile_s']:.2f} s (setup: "
          f"{r['setup_compile_s']:.2f} s)")
    for key in _peers(res):
      print(f"        {key} first step {res[key]['first_s']:.2f} s "
            f"({res[key]['first']['cpu_s']:.2f} CPU s)")
  versions = next((res[k]["first"].get("versions") for res in results.values()
                   for k in _peers(res)), None)
  if versions:
    print(f"TRL peer: {versions}")
  print(f"load average at end: {report['load_end']}; matmul peak at end "
        f"{report['peak_gflops_end']:.1f} GFLOP/s")


if __name__ == "__main__":
  main()
