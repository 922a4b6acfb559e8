"""Sampler benchmark (issue 5): decode tokens/s of `r1jax.sampling` against its peers.

One invocation measures, on this machine and in this order:
  * the matmul peak (a 2048^3 float32 `jnp.dot`) and the memory-copy bandwidth;
  * ours (`sampling.generate`) on a small dense (Qwen2 layout) and a small MLA + MoE
    config at batch 1, 16 and 64, sampling at temperature 1 over the full vocabulary
    and greedy, with the weights `sampling.prepare`d once ("ours") and as trained
    ("raw": each call splits and joins them itself, as in the RL loop);
  * (a) the same models without a cache: one jitted loop that recomputes the whole
    (fixed-length, right-padded) sequence at every step, logits at the last position
    only, same token choice;
  * (b) Hugging Face `transformers` `generate` and (c) Tunix's `Sampler` with its own
    Qwen2 model, each in its own process and virtual environment
    (benchmarks/_sampler_peer_hf.py, benchmarks/_sampler_peer_tunix.py), on the dense
    shape;
and prints one table: tokens/s (batch * new tokens / seconds of a whole `generate`
call, best of --repeats after one warm-up call, each after --settle seconds of idle;
compilation is the warm-up and is reported apart), our ratios to each peer, the
fraction of the matmul peak our calls reach, and the load average at the start and the
end (the machine is shared: judge the noise by it).

Shapes: vocab 4096, width 256, 4 layers, 8 heads, float32, prompt 32 tokens (random
ids, the same for every engine), exactly 64 new tokens (no EOS). Dense: Qwen2 layout
(qkv bias, untied head), 2 KV heads of width 32, MLP 704. MoE: MLA (q rank 96, kv rank
64, nope/rope/v 32/16/32), first layer dense (MLP 704), then 16 routed experts of width
176 in 4 groups (2 groups, 2 experts per token) + 1 shared expert. Weights are random:
the work per token is what is measured.

Setup of the peers (once):
    python3 -m venv .venv-tunix && .venv-tunix/bin/pip install google-tunix
    # HF: .venv already has torch==2.13.0 (CPU) and transformers.

Usage:
    .venv/bin/python benchmarks/sampler.py                 # the full table (~5 min here)
    .venv/bin/python benchmarks/sampler.py --quick         # 1 timed call each, batch 1/64
    .venv/bin/python benchmarks/sampler.py --json out.json # also write every number
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402

from r1jax import configs, model, sampling  # noqa: E402

PROMPT_LEN = 32
NEW_TOKENS = 64
SEED = 0
MODES = ("sample", "greedy")  # temperature 1.0 over the full vocabulary; temperature 0


def dense_config() -> ml_collections.ConfigDict:
  """The peers' shape: Qwen2 layout, float32."""
  return configs.model_config(
      vocab_size=4096, d_model=256, mlp_dim=704, n_layers=4, n_heads=8, n_kv_heads=2,
      head_dim=32, qkv_bias=True, tie_embeddings=False, max_seq_len=128, norm_eps=1e-6)


def moe_config() -> ml_collections.ConfigDict:
  """A DeepSeek-V3-shaped model of about the dense one's size: MLA + grouped MoE."""
  return configs.model_config(
      vocab_size=4096, d_model=256, mlp_dim=704, n_layers=4, n_heads=8, attention="mla",
      max_seq_len=128, norm_eps=1e-6,
      mla=dict(q_lora_rank=96, kv_lora_rank=64, qk_nope_head_dim=32, qk_rope_head_dim=16,
               v_head_dim=32),
      moe=dict(n_routed_experts=16, n_shared_experts=1, num_experts_per_tok=2,
               moe_intermediate_size=176, first_k_dense_replace=1, n_group=4, topk_group=2,
               routed_scaling_factor=2.5))


# ---------------------------------------------------------------------------------------
# FLOPs (for the fraction of the matmul peak)


def _matmul_flops_per_token(c: Any, context: float) -> float:
  """Multiply-add FLOPs (x2) of one token's forward at a given context length, no head."""
  D, H = c.d_model, c.n_heads
  if c.attention == "gqa":
    E, K = c.head_dim, c.n_kv_heads
    proj = D * (H + 2 * K) * E + H * E * D
    attn = 2 * H * E * context
  else:
    m = c.mla
    qk = m.qk_nope_head_dim + m.qk_rope_head_dim
    q = D * m.q_lora_rank + m.q_lora_rank * H * qk if m.q_lora_rank else D * H * qk
    # Decode absorbs the up-projections: scores and values in the latent width.
    proj = (q + D * (m.kv_lora_rank + m.qk_rope_head_dim) + H * m.qk_nope_head_dim *
            m.kv_lora_rank + H * m.kv_lora_rank * m.v_head_dim + H * m.v_head_dim * D)
    attn = H * (m.kv_lora_rank + m.qk_rope_head_dim + m.kv_lora_rank) * context
  n_dense, n_moe = model.layer_counts(c)
  mlp_dense = 3 * D * c.mlp_dim
  e = c.moe
  mlp_moe = (D * e.n_routed_experts + 3 * D * e.moe_intermediate_size *
             (e.num_experts_per_tok + e.n_shared_experts))
  return 2 * (n_dense * (proj + attn + mlp_dense) + n_moe * (proj + attn + mlp_moe))


def call_flops(c: Any, batch: int) -> float:
  """Useful FLOPs of one generate call: prefill (head at the last position) + decode."""
  head = 2 * c.d_model * c.vocab_size
  prefill = sum(_matmul_flops_per_token(c, t + 1) for t in range(PROMPT_LEN)) + head
  decode = sum(_matmul_flops_per_token(c, PROMPT_LEN + i + 1) + head
               for i in range(NEW_TOKENS - 1))
  return batch * (prefill + decode)


def weight_bytes_per_step(params: Any) -> int:
  """Bytes of weights one decode step reads (all but the embedding table)."""
  return sum(x.nbytes for p, x in jax.tree_util.tree_leaves_with_path(params)
             if "embed" != getattr(p[0], "key", None))


# ---------------------------------------------------------------------------------------
# Machine


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  f = jax.jit(jnp.dot)
  f(a, a).block_until_ready()
  best = min(_timed(lambda: f(a, a).block_until_ready()) for _ in range(repeats))
  return 2 * n ** 3 / best / 1e9


def copy_bandwidth_gbs(mb: int = 256, repeats: int = 5) -> float:
  a = np.ones(mb * 2 ** 20 // 4, np.float32)
  b = np.empty_like(a)
  best = min(_timed(lambda: np.copyto(b, a)) for _ in range(repeats))
  return 2 * a.nbytes / best / 1e9  # read + write


def _timed(f: Callable[[], Any]) -> float:
  t0 = time.perf_counter()
  f()
  return time.perf_counter() - t0


def loadavg() -> str:
  return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ---------------------------------------------------------------------------------------
# Engines: each runs one whole generate call and returns its seconds


def prompts_array() -> np.ndarray:
  return np.random.RandomState(SEED).randint(1, 4096, (64, PROMPT_LEN)).astype(np.int32)


class Ours:
  """`sampling.generate` in this process (EOS off: exactly NEW_TOKENS per row), with the
  weights `sampling.prepare`d once (as the peers hold theirs in the layout they run;
  `prepare_s` is that one-off cost) or, `prepared=False`, as trained (the RL loop's
  path: every call splits the layer stacks and joins projections itself)."""

  def __init__(self, cfg: Any, params: Any, prompts: np.ndarray, prepared: bool = True):
    # Frozen once, as the RL loop does (generate would convert a ConfigDict at every call).
    self.cfg = ml_collections.FrozenConfigDict(cfg)
    self.prompts = prompts
    t0 = time.perf_counter()
    self.params = jax.block_until_ready(sampling.prepare(params)) if prepared else params
    self.prepare_s = time.perf_counter() - t0

  def applies(self, batch: int, mode: str) -> bool:
    return True

  def __call__(self, batch: int, mode: str, seed: int) -> float:
    rows = self.prompts[:batch].tolist()
    temp = 1.0 if mode == "sample" else 0.0
    t0 = time.perf_counter()
    out = sampling.generate(self.params, self.cfg, rows, rng=jax.random.key(seed),
                            max_new_tokens=NEW_TOKENS, temperature=temp, eos_id=None)
    dt = time.perf_counter() - t0
    assert all(len(t) == NEW_TOKENS for t in out.tokens)
    return dt


def no_cache_fn(cfg: Any, batch: int) -> Callable:
  """The same model and token choice, recomputing the whole sequence at every step."""
  total = PROMPT_LEN + NEW_TOKENS

  def run(params, prompt_BxP, rng, temperature):
    buf = jnp.zeros((batch, total), jnp.int32).at[:, :PROMPT_LEN].set(prompt_BxP)

    def body(i, st):
      buf, rng = st
      pos = PROMPT_LEN + i  # the token written at this step
      hidden, _, _ = model.apply(params, buf, cfg, return_hidden=True)  # causal: right
      last = jax.lax.dynamic_slice_in_dim(hidden, pos - 1, 1, axis=1)  # padding is unseen
      logits = model.logits_from_hidden(params, last, cfg)[:, 0]
      rng, step_rng = jax.random.split(rng)
      tok, _ = sampling._choose(logits, jax.random.uniform(step_rng, (batch,)), temperature,
                                jnp.float32(1.0), jnp.int32(0))
      return jax.lax.dynamic_update_slice(buf, tok[:, None], (0, pos)), rng

    buf, _ = jax.lax.fori_loop(0, NEW_TOKENS, body, (buf, rng))
    return buf[:, PROMPT_LEN:]

  return jax.jit(run)


class NoCache:
  """(a): one jitted loop of full forwards over the fixed-length sequence, sampling only.

  Its warm-up is an ahead-of-time compilation (a call would cost a minute at batch 64).
  """

  def __init__(self, cfg: Any, params: Any, prompts: np.ndarray, max_batch: int):
    self.cfg = ml_collections.FrozenConfigDict(cfg)
    self.params, self.prompts, self.max_batch = params, prompts, max_batch
    self.compiled: dict[int, Any] = {}

  def applies(self, batch: int, mode: str) -> bool:
    return mode == "sample" and batch <= self.max_batch

  def _args(self, batch: int, seed: int) -> tuple:
    return (self.params, jnp.asarray(self.prompts[:batch]), jax.random.key(seed),
            jnp.float32(1.0))

  def warm_up(self, batch: int, mode: str) -> float:
    t0 = time.perf_counter()
    self.compiled[batch] = no_cache_fn(self.cfg, batch).lower(*self._args(batch, 0)).compile()
    return time.perf_counter() - t0

  def __call__(self, batch: int, mode: str, seed: int) -> float:
    args = self._args(batch, seed)
    t0 = time.perf_counter()
    jax.device_get(self.compiled[batch](*args))
    return time.perf_counter() - t0


class Peer:
  """A peer worker process (JSON lines on stdin/stdout; protocol in the worker files)."""

  def __init__(self, python: str, script: str, setup: dict, modes: tuple[str, ...]):
    self.error: str | None = None
    self.versions: dict = {}
    self.modes = modes
    if not pathlib.Path(python).exists():
      self.error = f"{python} not found (setup: see this file's docstring)"
      return
    self.log = tempfile.TemporaryFile(mode="w+")
    self.proc = subprocess.Popen([python, str(ROOT / "benchmarks" / script)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=self.log, text=True, bufsize=1)
    reply = self._ask(setup)
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
    self.error = f"worker died: {self.log.read().strip()[-1500:]}"
    return None

  def applies(self, batch: int, mode: str) -> bool:
    return self.error is None and mode in self.modes

  def __call__(self, batch: int, mode: str, seed: int) -> float:
    reply = self._ask({"batch": batch, "mode": mode, "seed": seed})
    if reply is None:
      raise RuntimeError(self.error)
    return reply["s"]

  def close(self) -> None:
    if self.error is None:
      self.proc.stdin.close()
      self.proc.wait(timeout=60)


# ---------------------------------------------------------------------------------------
# Report


def _fmt(x: float | None, spec: str = ".0f") -> str:
  return "-" if x is None else format(x, spec)


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--quick", action="store_true",
                  help="1 timed call per measurement, batches 1 and 64")
  ap.add_argument("--repeats", type=int, default=3, help="timed calls after the warm-up")
  ap.add_argument("--batches", default=None, help="comma-separated (default 1,16,64)")
  ap.add_argument("--settle", type=float, default=0.5,
                  help="seconds of idle before each timed call")
  ap.add_argument("--no-cache-repeats", type=int, default=1,
                  help="timed calls of the no-cache baseline (slow: ~1 min at batch 64)")
  ap.add_argument("--no-cache-moe-max-batch", type=int, default=16,
                  help="largest batch of the MoE no-cache baseline (on CPU its routed "
                       "experts run every expert on every token: slow at batch 64)")
  ap.add_argument("--skip", default="", help="comma-separated: moe,raw,nocache,hf,tunix")
  ap.add_argument("--hf-python", default=str(ROOT / ".venv" / "bin" / "python"))
  ap.add_argument("--tunix-python", default=str(ROOT / ".venv-tunix" / "bin" / "python"))
  ap.add_argument("--json", default=None, help="write every measurement to this file")
  args = ap.parse_args()
  repeats = 1 if args.quick else args.repeats
  batches = [int(b) for b in (args.batches or ("1,64" if args.quick else "1,16,64")).split(",")]
  skip = set(filter(None, args.skip.split(",")))

  report: dict[str, Any] = {"load_start": loadavg(), "jax": jax.__version__,
                            "device": str(jax.devices()[0]), "cpus": os.cpu_count(),
                            "batches": batches, "repeats": repeats}
  print(f"load average at start: {report['load_start']}  (cpus: {os.cpu_count()}, "
        f"jax {jax.__version__}, {jax.devices()[0].platform})", flush=True)
  report["peak_gflops"] = matmul_peak_gflops()
  report["copy_gbs"] = copy_bandwidth_gbs()
  print(f"matmul peak (2048^3 f32 jnp.dot): {report['peak_gflops']:.1f} GFLOP/s; "
        f"memory copy: {report['copy_gbs']:.1f} GB/s", flush=True)

  prompts = prompts_array()
  cfgs = {"dense": dense_config()}
  if "moe" not in skip:
    cfgs["moe"] = moe_config()
  engines: dict[str, Any] = {}
  for name, cfg in cfgs.items():
    configs.validate_model(cfg)
    params = model.init_params(cfg, jax.random.key(SEED))
    report[f"{name}_weight_mib"] = weight_bytes_per_step(params) / 2 ** 20
    engines[f"ours/{name}"] = Ours(cfg, params, prompts)
    report[f"{name}_prepare_s"] = engines[f"ours/{name}"].prepare_s
    if "raw" not in skip:
      engines[f"raw/{name}"] = Ours(cfg, params, prompts, prepared=False)
    if "nocache" not in skip:
      engines[f"nocache/{name}"] = NoCache(
          cfg, params, prompts, 64 if name == "dense" else args.no_cache_moe_max_batch)
  d = cfgs["dense"]
  setup = {"shape": {k: d[k] for k in ("vocab_size", "d_model", "mlp_dim", "n_layers",
                                       "n_heads", "n_kv_heads", "head_dim", "max_seq_len")},
           "prompts": prompts.tolist(), "seed": SEED, "new_tokens": NEW_TOKENS,
           "prompt_len": PROMPT_LEN}
  for peer, python, script in (("hf", args.hf_python, "_sampler_peer_hf.py"),
                               ("tunix", args.tunix_python, "_sampler_peer_tunix.py")):
    if peer not in skip:
      engines[f"{peer}/dense"] = Peer(python, script, setup, MODES)
      if engines[f"{peer}/dense"].error:
        print(f"{peer}: {engines[f'{peer}/dense'].error}", flush=True)

  # Per (batch, mode): every engine's warm-up, then `repeats` rounds that time each
  # engine once in turn, so that all of them see the same spells of machine load.
  results: dict[str, dict] = {}
  for b in batches:
    for mode in MODES:
      live = {k: e for k, e in engines.items() if e.applies(b, mode)}
      for key, e in live.items():
        warm = e.warm_up(b, mode) if hasattr(e, "warm_up") else e(b, mode, 0)
        results[f"{key}/{b}/{mode}"] = {"first_s": warm, "times_s": []}
      for r in range(repeats):
        for key, e in live.items():
          n = args.no_cache_repeats if key.startswith("nocache") else repeats
          if r < n:
            # Let the previous engine's worker threads go idle first (OpenMP and XLA
            # pools spin for a while after a call, on the same two cores).
            time.sleep(args.settle)
            results[f"{key}/{b}/{mode}"]["times_s"].append(e(b, mode, r + 1))
      for key in live:
        res = results[f"{key}/{b}/{mode}"]
        best = min(res["times_s"])
        print(f"  {key:14s} b={b:<3d} {mode:6s} warm-up {res['first_s']:7.2f} s   best "
              f"{best:7.3f} s   {b * NEW_TOKENS / best:8.0f} tok/s", flush=True)
  for e in engines.values():
    if isinstance(e, Peer):
      e.close()
  report["results"] = results
  report["peers"] = {k: {"versions": e.versions, "error": e.error}
                     for k, e in engines.items() if isinstance(e, Peer)}
  report["load_end"] = loadavg()
  report["peak_gflops_end"] = matmul_peak_gflops()

  def tps(key: str, b: int) -> float | None:
    r = results.get(key)
    return None if not r or not r["times_s"] else b * NEW_TOKENS / min(r["times_s"])

  peak = max(report["peak_gflops"], report["peak_gflops_end"])
  print()
  print("Decode throughput, tokens/s = batch x 64 new tokens / seconds of a whole generate "
        f"call (prompt 32), best of {repeats} after a warm-up")
  hdr = (f"{'model':5s} {'batch':>5s} {'mode':6s} | {'ours':>7s} {'raw':>7s} {'no-cache':>8s} "
         f"{'HF':>7s} "
         f"{'Tunix':>7s} | {'x no-cache':>10s} {'x HF':>6s} {'x Tunix':>7s} | "
         f"{'compile s':>9s} {'%peak':>5s}")
  print(hdr)
  print("-" * len(hdr))
  table = {}
  for name, cfg in cfgs.items():
    for b in batches:
      for mode in MODES:
        o = tps(f"ours/{name}/{b}/{mode}", b)
        raw = tps(f"raw/{name}/{b}/{mode}", b)
        nc = tps(f"nocache/{name}/{b}/{mode}", b)
        hf = tps(f"hf/{name}/{b}/{mode}", b)
        tx = tps(f"tunix/{name}/{b}/{mode}", b)
        ratio = lambda x: None if x is None else o / x
        entry = results[f"ours/{name}/{b}/{mode}"]
        compile_s = entry["first_s"] - min(entry["times_s"])
        frac = call_flops(cfg, b) / min(entry["times_s"]) / 1e9 / peak
        table[f"{name}/{b}/{mode}"] = {
            "ours": o, "raw": raw, "nocache": nc, "hf": hf, "tunix": tx, "x_nocache": ratio(nc),
            "x_hf": ratio(hf), "x_tunix": ratio(tx), "compile_s": compile_s,
            "peak_fraction": frac}
        print(f"{name:5s} {b:5d} {mode:6s} | {_fmt(o):>7s} {_fmt(raw):>7s} {_fmt(nc):>8s} "
              f"{_fmt(hf):>7s} "
              f"{_fmt(tx):>7s} | {_fmt(ratio(nc), '.1f'):>10s} {_fmt(ratio(hf), '.2f'):>6s} "
              f"{_fmt(ratio(tx), '.2f'):>7s} | {compile_s:9.2f} {100 * frac:5.1f}")
  report["table"] = table
  print()
  print("ours: weights `sampling.prepare`d once (" + ", ".join(
      f"{n} {report[f'{n}_prepare_s'] * 1e3:.0f} ms incl. compilation" for n in cfgs)
        + "); raw: params as trained, split and joined inside every call (the RL loop's "
        "path).")
  print("compile s: our first call minus our best call (one compilation per batch bucket; "
        "greedy reuses the sampling one, so ~0 there).")
  print(f"%peak: our useful model FLOPs per call (prefill + decode, approximate) / call "
        f"time / matmul peak ({peak:.1f} GFLOP/s, the better of start and end).")
  print("no-cache: sampling only; its compile s: "
        + ", ".join(f"{k.split('/')[1]} b={k.split('/')[2]} {v['first_s']:.1f}"
                    for k, v in results.items() if k.startswith("nocache")))
  for key, p in report["peers"].items():
    firsts = ", ".join(f"b={k.split('/')[2]} {k.split('/')[3]} {v['first_s']:.1f}"
                       for k, v in results.items() if k.startswith(key + "/"))
    print(f"{key.split('/')[0]}: {p['error'] or p['versions']}; first calls (s): {firsts}")
  if "ours/dense/1/greedy" in results:
    step_s = min(results["ours/dense/1/greedy"]["times_s"]) / NEW_TOKENS
    mib = report["dense_weight_mib"]
    print(f"batch 1: each decode step reads the {mib:.1f} MiB of dense weights (not the "
          f"embedding): {step_s * 1e3:.2f} ms/token = {mib * 2 ** 20 / step_s / 1e9:.1f} GB/s; "
          f"memory copy {report['copy_gbs']:.1f} GB/s")
  print(f"load average at end: {report['load_end']}; matmul peak at end: "
        f"{report['peak_gflops_end']:.1f} GFLOP/s")
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
  main()
