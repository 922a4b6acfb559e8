"""How far the sampler's decode step is from its matmul floor (issue 5).

For the dense shape of benchmarks/sampler.py (greedy, prompt 32, 64 new tokens, weights
`sampling.prepare`d), this times in one process, interleaved, best of --repeats:

  * ours: `sampling.sample_padded` with max_new_tokens 64 and 1 in the same compiled
    program (generation bucket 64); a decode step = (call_64 - call_1) / 63, and
    call_1 is the per-call fixed cost (prefill, setup, dispatch);
  * floor: only the matmuls of one decode step (joined q|k|v, o, joined gate|up and down
    per layer, then the vocabulary head) on the same weights, chained as in the model
    and run 64 times in one jitted loop: no norms, rope, attention, cache or token
    choice. What XLA:CPU takes for the weights alone bounds any step made of its ops;

and, with --peers=JSON (the --json output of benchmarks/sampler.py), the step time a
2x margin over each peer would need: (peer's call time / 2 - call_1) / 63.

    .venv/bin/python benchmarks/sampler_floor.py --peers=/tmp/sampler.json
"""

from __future__ import annotations

import json
import os
import sys
import time

from absl import app, flags

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402

import sampler as bench  # noqa: E402
from r1jax import model, sampling  # noqa: E402

_BATCHES = flags.DEFINE_list("batches", ["1", "64"], "Batch sizes.")
_REPEATS = flags.DEFINE_integer("repeats", 15, "Timed rounds (each times every variant).")
_PEERS = flags.DEFINE_string("peers", None, "benchmarks/sampler.py --json output.")


def matmul_chain(prepared: dict, cfg, batch: int, steps: int):
  """A jitted loop of `steps` decode steps' matmuls (a toy residual chain: each result
  feeds the next, as in the model, so nothing runs ahead or is left out)."""
  layers = prepared["dense_layers"]
  head = prepared["lm_head"]
  hd = cfg.n_heads * cfg.head_dim

  def step(_, x):
    for lp in layers:
      a, m = lp["attn"], lp["mlp"]
      qkv = jnp.einsum("bd,dne->bne", x, a["wqkv"]).reshape(batch, -1)
      x = x + 1e-3 * (qkv[:, :hd] @ a["wo"].reshape(hd, -1))
      gu = jnp.einsum("bd,dcf->bcf", x, m["w_gate_up"])
      x = x + 1e-3 * ((gu[:, 0] * gu[:, 1]) @ m["w_down"])
    logits = x @ head
    return x + 1e-3 * logits.reshape(batch, -1, x.shape[1]).sum(1)

  return jax.jit(lambda x: jax.lax.fori_loop(0, steps, step, x))


def seconds(fn) -> float:
  t0 = time.perf_counter()
  jax.block_until_ready(fn())
  return time.perf_counter() - t0


def main(_) -> None:
  cfg = ml_collections.FrozenConfigDict(bench.dense_config())
  prepared = jax.block_until_ready(sampling.prepare(model.init_params(cfg, jax.random.key(0))))
  peers = json.loads(open(_PEERS.value).read())["table"] if _PEERS.value else {}
  print(f"dense shape of benchmarks/sampler.py, greedy, best of {_REPEATS.value}; "
        f"load {os.getloadavg()[0]:.2f}")
  print(f"{'batch':>5s} | {'call_1 ms':>9s} {'step ms':>8s} {'floor ms':>8s} "
        f"{'step/floor':>10s} | {'2x HF step':>10s} {'2x Tunix step':>13s}  (greedy)")
  for b in map(int, _BATCHES.value):
    prompts = bench.prompts_array()[:b]
    lens = np.full((b,), bench.PROMPT_LEN, np.int32)
    call = lambda m: lambda: sampling.sample_padded(
        prepared, prompts, lens, jax.random.key(1), np.int32(m), np.float32(0),
        np.float32(1), np.int32(0), np.asarray([-1], np.int32), config=cfg,
        gen_bucket=bench.NEW_TOKENS)
    chain = matmul_chain(prepared, cfg, b, bench.NEW_TOKENS)
    x0 = jnp.ones((b, cfg.d_model), jnp.float32)
    fns = {"call_64": call(bench.NEW_TOKENS), "call_1": call(1), "floor": lambda: chain(x0)}
    times = {k: [] for k in fns}
    for fn in fns.values():
      jax.block_until_ready(fn())  # compile
    for _ in range(_REPEATS.value):
      for k, fn in fns.items():
        time.sleep(0.1)
        times[k].append(seconds(fn))
    t = {k: min(v) for k, v in times.items()}
    step = (t["call_64"] - t["call_1"]) / (bench.NEW_TOKENS - 1)
    floor = t["floor"] / bench.NEW_TOKENS

    def need(peer: str) -> str:
      tps = peers.get(f"dense/{b}/greedy", {}).get(peer)
      if not tps:
        return "-"
      return f"{(b * bench.NEW_TOKENS / tps / 2 - t['call_1']) / (bench.NEW_TOKENS - 1) * 1e3:.3f}"

    print(f"{b:5d} | {t['call_1'] * 1e3:9.2f} {step * 1e3:8.3f} {floor * 1e3:8.3f} "
          f"{step / floor:10.2f} | {need('hf'):>10s} {need('tunix'):>13s}", flush=True)
  print("step: (call_64 - call_1) / 63; floor: the step's matmuls alone; 2x PEER step: the "
        "step a 2x margin over that peer's best greedy call would need, given call_1.")


if __name__ == "__main__":
  app.run(main)
