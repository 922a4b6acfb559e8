"""MoE decode at small batch and bf16 decode (issue 17, items 3 and 4).

Times `sampling.sample_padded` (the jitted core of `sampling.generate`) on the shapes
of benchmarks/sampler.py, greedy off (temperature 1, full vocabulary), prompt 32, 64 new
tokens, weights `sampling.prepare`d, at batch 1 and 64:

  * item 3, float32: the MoE config with its routed experts in the dense form (every
    expert on every token: `moe.GATHER_MAX_PAIRS` = 0 while it is traced), the same
    with the gathered form where `moe.use_gather` picks it (the default: batch-1 decode),
    and a dense model of equal *active* width: the MoE config with no routed experts
    and an MLP of k*F + shared*F (2*176 + 176 = 528) in every layer;
  * item 4: the dense (Qwen2-shaped) and the MoE config in float32 and bfloat16
    (`dtype` and `param_dtype`), and at batch 1 the bytes of weights a decode step reads
    over two measured bandwidths: a 256 MiB memory copy (benchmarks/sampler.py; DRAM)
    and a read of a buffer of the weights' own size (the weights stay in the 32 MiB
    L3 cache between steps), beside the step's matmuls alone on the same weights
    (benchmarks/sampler_floor.py's `matmul_chain`, dense config).

Every variant is compiled first (one program per variant and batch: a call of 64 new
tokens and one of 1 share it, as in sampler_floor.py); then --repeats rounds time each
call of each variant once in turn, --settle seconds apart, so that all meet the same
spells of load on this shared machine. Reported: tokens/s of the best whole call
(batch * 64 / seconds), the decode step ((call_64 - call_1) / 63, best calls), and
ratios between variants as the median of the per-round ratios of whole calls (each
from adjacent calls). The load average is printed at the start and the end.

    .venv/bin/python benchmarks/decode_moe_bf16.py              # ~3 min on 2 loaded cores
    .venv/bin/python benchmarks/decode_moe_bf16.py --repeats 3 --batches 1
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from typing import Any, Callable

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402

import sampler as bench  # noqa: E402
import sampler_floor as floor  # noqa: E402
from r1jax import model, sampling  # noqa: E402
from r1jax.model import layers, moe  # noqa: E402

N = bench.NEW_TOKENS


def dense_active_config(moe_cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`moe_cfg` with a dense MLP of the MoE layers' active width (k + shared experts)."""
  c = moe_cfg.copy_and_resolve_references()
  e = c.moe
  c.mlp_dim = (e.num_experts_per_tok + e.n_shared_experts) * e.moe_intermediate_size
  c.moe.n_routed_experts = 0
  return c


def with_dtype(cfg: ml_collections.ConfigDict, dtype: str) -> ml_collections.ConfigDict:
  c = cfg.copy_and_resolve_references()
  c.dtype = c.param_dtype = dtype
  return c


def active_bytes(params: Any, cfg: Any) -> int:
  """Bytes of weights one token's decode step needs: all but the embedding table, and
  of each MoE layer's routed experts only the k chosen."""
  total = bench.weight_bytes_per_step(params)
  if "moe_layers" in params:
    e = cfg.moe
    routed = sum(params["moe_layers"]["moe"][w].nbytes for w in ("w_gate", "w_up", "w_down"))
    total -= routed * (1 - e.num_experts_per_tok / e.n_routed_experts)
  return int(total)


def read_bandwidth_gbs(nbytes: int, repeats: int = 20) -> float:
  """GB/s of a jitted sum over a float32 buffer of `nbytes` (best of `repeats`)."""
  a = jnp.ones((nbytes // 4,), jnp.float32)
  f = jax.jit(jnp.sum)
  f(a).block_until_ready()
  return nbytes / min(bench._timed(lambda: f(a).block_until_ready())
                      for _ in range(repeats)) / 1e9


DENSE_FORM = {"GATHER_MAX_PAIRS": 0}  # never gather: the routed experts' dense form


@dataclasses.dataclass
class Variant:
  """One model (config, prepared weights) with its own jitted copy of the sampler, traced
  with the `moe` module's gather bounds (`moe.use_gather`) overridden by `bounds`."""
  name: str
  cfg: Any
  bounds: dict = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    self.cfg = ml_collections.FrozenConfigDict(self.cfg)
    self.raw = model.init_params(self.cfg, jax.random.key(bench.SEED))
    self.params = jax.block_until_ready(sampling.prepare(self.raw))
    # A jit of its own (a new function object: its own trace cache).
    self.fn = jax.jit(lambda *a, **kw: sampling.sample_padded.__wrapped__(*a, **kw),
                      static_argnames=("config", "gen_bucket"))

  def args(self, batch: int, new_tokens: int) -> tuple:
    prompts = bench.prompts_array()[:batch]
    lens = np.full((batch,), bench.PROMPT_LEN, np.int32)
    return (self.params, prompts, lens, jax.random.key(1), np.int32(new_tokens),
            np.float32(1.0), np.float32(1.0), np.int32(0), np.asarray([-1], np.int32))

  def call(self, batch: int, new_tokens: int) -> Callable[[], Any]:
    args = self.args(batch, new_tokens)
    return lambda: self.fn(*args, config=self.cfg, gen_bucket=N)

  def compile(self, batch: int) -> str:
    """Traces and compiles for `batch`; returns the lowered program's text."""
    old = {k: getattr(moe, k) for k in self.bounds}
    for k, v in self.bounds.items():
      setattr(moe, k, v)
    try:
      text = self.fn.lower(*self.args(batch, N), config=self.cfg, gen_bucket=N).as_text()
      out = jax.block_until_ready(self.call(batch, N)())
    finally:
      for k, v in old.items():
        setattr(moe, k, v)
    assert int(out[2].min()) == N  # every row made exactly N tokens
    return text


def interleaved(args: Any, batches: list[int], variants: list[Variant]
                ) -> dict[tuple, list[float]]:
  """Seconds of each (variant, batch, new tokens) call, --repeats rounds, in turn."""
  keys = [(v.name, b, m) for b in batches for v in variants for m in (N, 1)]
  calls = {k: v.call(k[1], k[2]) for v in variants for k in keys if k[0] == v.name}
  times: dict[tuple, list[float]] = {k: [] for k in keys}
  for _ in range(args.repeats):
    for k in keys:
      time.sleep(args.settle)
      times[k].append(floor.seconds(calls[k]))
  return times


def threshold(args: Any, batches: list[int], moe_cfg: Any) -> None:
  """Whole-call time of the MoE with decode gathered over the dense form's, by batch (the
  bounds overridden so that exactly the decode steps' N = batch tokens gather)."""
  e = moe_cfg.moe
  k, n_exp = e.num_experts_per_tok, e.n_routed_experts
  print(f"\nMoE f32, decode gathered / dense form: median of per-round call-time ratios "
        f"({args.repeats} rounds, interleaved per batch)")
  for b in batches:
    variants = [Variant("dense-form", moe_cfg, DENSE_FORM),
                Variant("gather", moe_cfg, {"GATHER_MAX_PAIRS": b * k,
                                            "GATHER_MAX_PAIRS_PER_EXPERT": 10 ** 9})]
    for v in variants:
      v.compile(b)
    times = interleaved(args, [b], variants)
    dense, gather = times[("dense-form", b, N)], times[("gather", b, N)]
    ratio = statistics.median(g / d for g, d in zip(gather, dense))
    print(f"  batch {b:3d}: N*k = {b * k:3d} pairs of E = {n_exp}: {ratio:.2f} (dense-form "
          f"{b * N / min(dense):.0f}, gather {b * N / min(gather):.0f} tok/s; `use_gather` "
          f"{moe.use_gather(b, k, n_exp)})", flush=True)


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--repeats", type=int, default=5, help="timed rounds")
  ap.add_argument("--batches", default="1,64")
  ap.add_argument("--settle", type=float, default=0.2, help="idle seconds before each call")
  ap.add_argument("--threshold", action="store_true",
                  help="only the MoE in float32, its decode gathered or not, batch by "
                       "batch (for `moe.use_gather`'s bounds; try --batches 1,2,4,8)")
  args = ap.parse_args()
  batches = [int(b) for b in args.batches.split(",")]
  load_start = bench.loadavg()
  print(f"load average at start: {load_start}  (cpus {os.cpu_count()}, jax {jax.__version__})",
        flush=True)
  moe32 = bench.moe_config()
  if args.threshold:
    threshold(args, batches, moe32)
    print(f"\nload average at start: {load_start}; at end: {bench.loadavg()}")
    return
  variants = [
      Variant("moe f32 dense-form", moe32, DENSE_FORM),
      Variant("moe f32 gather", moe32),
      Variant("dense-active f32", dense_active_config(moe32)),
      Variant("moe bf16 gather", with_dtype(moe32, "bfloat16")),
      Variant("dense-active bf16", with_dtype(dense_active_config(moe32), "bfloat16")),
      Variant("dense f32", bench.dense_config()),
      Variant("dense bf16", with_dtype(bench.dense_config(), "bfloat16")),
  ]
  for v in variants:
    print(f"  {v.name:20s} {v.cfg.attention} dtype {v.cfg.dtype:8s} routed experts "
          f"{v.cfg.moe.n_routed_experts:2d}  MLP {v.cfg.mlp_dim}  active weights (no "
          f"embedding) {active_bytes(v.raw, v.cfg) / 2 ** 20:.2f} MiB")
  assert all(v.cfg.moe.n_routed_experts == ("moe" in v.name) * moe32.moe.n_routed_experts
             for v in variants)
  for b in batches:
    t0 = time.perf_counter()
    texts = {v.name: v.compile(b) for v in variants}
    n_slices = {k: t.count("dynamic_slice") for k, t in texts.items()}
    e = moe32.moe
    if moe.use_gather(b, e.num_experts_per_tok, e.n_routed_experts):  # decode gathers
      assert n_slices["moe f32 gather"] > n_slices["moe f32 dense-form"], n_slices
    else:
      assert n_slices["moe f32 gather"] == n_slices["moe f32 dense-form"], n_slices
    print(f"batch {b}: {len(variants)} programs compiled in {time.perf_counter() - t0:.1f} s",
          flush=True)

  times = interleaved(args, batches, variants)
  best = {k: min(v) for k, v in times.items()}

  def tps(name: str, b: int) -> float:
    return b * N / best[(name, b, N)]

  def step_ms(name: str, b: int) -> float:
    return (best[(name, b, N)] - best[(name, b, 1)]) / (N - 1) * 1e3

  def ratio(slow: str, fast: str, b: int) -> float:
    """Median over rounds of slow's call time / fast's (whole calls of N tokens)."""
    return statistics.median(s / f for s, f in zip(times[(slow, b, N)], times[(fast, b, N)]))

  print(f"\nbest of {args.repeats} interleaved rounds; tok/s = batch x {N} / best call; "
        f"step = (call_{N} - call_1) / {N - 1}")
  print(f"{'variant':20s} {'batch':>5s} {'tok/s':>8s} {'step ms':>8s} {'call_1 ms':>9s}")
  for b in batches:
    for v in variants:
      print(f"{v.name:20s} {b:5d} {tps(v.name, b):8.0f} {step_ms(v.name, b):8.3f} "
            f"{best[(v.name, b, 1)] * 1e3:9.2f}")
  print("\nratios (median of per-round call-time ratios):")
  for b in batches:
    print(f"  b={b:<3d} gather speed-up over dense-form: "
          f"{ratio('moe f32 dense-form', 'moe f32 gather', b):.2f}x; "
          f"MoE (gather) time / dense-active: f32 {ratio('moe f32 gather', 'dense-active f32', b):.2f}"
          f", bf16 {ratio('moe bf16 gather', 'dense-active bf16', b):.2f}; "
          f"bf16 speed-up over f32: dense {ratio('dense f32', 'dense bf16', b):.2f}x, "
          f"moe {ratio('moe f32 gather', 'moe bf16 gather', b):.2f}x, dense-active "
          f"{ratio('dense-active f32', 'dense-active bf16', b):.2f}x")

  if 1 in batches:
    copy = bench.copy_bandwidth_gbs()
    print(f"\nbatch-1 decode step against the weights' roof (memory copy {copy:.1f} GB/s: "
          "DRAM; cache read: a sum over a buffer of the weights' size)")
    print(f"{'variant':20s} {'MiB/step':>8s} {'step ms':>8s} {'GB/s':>6s} {'read GB/s':>9s} "
          f"{'roof/step DRAM':>14s} {'roof/step cache':>15s} {'matmuls ms':>10s}")
    for v in variants:
      nbytes = active_bytes(v.raw, v.cfg)
      read = read_bandwidth_gbs(nbytes)
      step = step_ms(v.name, 1) / 1e3
      mm = "-"
      if v.cfg.attention == "gqa":  # sampler_floor's chain of the dense step's matmuls
        chain = floor.matmul_chain(v.params, v.cfg, 1, N)
        x0 = jnp.ones((1, v.cfg.d_model), layers.dtype_of(v.cfg.dtype))
        jax.block_until_ready(chain(x0))
        mm = f"{min(floor.seconds(lambda: chain(x0)) for _ in range(10)) / N * 1e3:.3f}"
      print(f"{v.name:20s} {nbytes / 2 ** 20:8.2f} {step * 1e3:8.3f} {nbytes / step / 1e9:6.1f} "
            f"{read:9.1f} {100 * nbytes / copy / 1e9 / step:13.0f}% "
            f"{100 * nbytes / read / 1e9 / step:14.0f}% {mm:>10s}")
  print(f"\nload average at start: {load_start}; at end: {bench.loadavg()}")


if __name__ == "__main__":
  main()
