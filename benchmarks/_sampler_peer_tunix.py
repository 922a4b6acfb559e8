"""Tunix peer for benchmarks/sampler.py (runs in its own venv, .venv-tunix).

Reads one JSON request on stdin (shape, prompts, batches, modes, repeats; see
sampler.py) and prints one JSON line: per (batch, mode) the first-call seconds and
the seconds of each timed call of `tunix.generate.sampler.Sampler`, on Tunix's own
Qwen2 model (`tunix.models.qwen2.model.Qwen2`) with random weights of the requested
shape. The sampler takes strings, so a stand-in tokenizer maps "12 7 99" to token ids
and back; EOS is a token that never occurs (-1), so every row gets exactly the
requested number of new tokens. Sampling: temperature 1, top_p=1 and no top_k (Tunix
then samples from the full vocabulary); greedy: Tunix's default mode. Logprobs are
requested (our sampler always returns them).
"""

import json
import logging
import sys
import time
import warnings

import flax
import jax
import jax.numpy as jnp
from flax import nnx

import tunix
from tunix.generate import sampler as sampler_lib
from tunix.models.qwen2 import model as qwen2


class IdTokenizer:
  """Token ids written as decimal numbers separated by spaces."""

  def encode(self, text: str, **kw) -> list[int]:
    return [int(t) for t in text.split()]

  def decode(self, ids, **kw) -> str:
    return " ".join(str(int(i)) for i in ids)

  def bos_id(self) -> int:
    return 0  # falsy: Tunix then adds no BOS

  def eos_id(self) -> int:
    return -1

  def pad_id(self) -> int:
    return 0  # prompts use ids >= 1


def main() -> None:
  warnings.filterwarnings("ignore")
  logging.disable(logging.WARNING)
  req = json.loads(sys.stdin.read())
  s = req["shape"]
  cfg = qwen2.ModelConfig(
      num_layers=s["n_layers"], vocab_size=s["vocab_size"], embed_dim=s["d_model"],
      hidden_dim=s["mlp_dim"], num_heads=s["n_heads"], head_dim=s["head_dim"],
      num_kv_heads=s["n_kv_heads"], rope_theta=10000, norm_eps=1e-6, use_tied_embedding=False,
      shd_config=qwen2.ShardingConfig.get_default_sharding(is_sampling=True))
  model = qwen2.Qwen2(cfg, rngs=nnx.Rngs(req["seed"]))
  # Tunix initialises the MLP (and biases) with zeros: give every matrix random values.
  params = nnx.state(model, nnx.Param)
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(req["seed"]), len(leaves))
  leaves = [0.02 * jax.random.normal(k, x.shape, x.dtype) if x.ndim >= 2 else x
            for x, k in zip(leaves, keys)]
  nnx.update(model, jax.tree.unflatten(treedef, leaves))
  new, plen = req["new_tokens"], req["prompt_len"]
  sampler = sampler_lib.Sampler(
      transformer=model, tokenizer=IdTokenizer(),
      cache_config=sampler_lib.CacheConfig(cache_size=plen + new, num_layers=s["n_layers"],
                                           num_kv_heads=s["n_kv_heads"], head_dim=s["head_dim"]))
  results = []
  for b in req["batches"]:
    texts = [" ".join(map(str, p)) for p in req["prompts"][:b]]
    for mode in req["modes"]:
      kw = dict(temperature=1.0, top_p=1.0, top_k=None) if mode == "sample" else {}

      def call(seed: int) -> float:
        t0 = time.perf_counter()
        out = sampler(texts, max_generation_steps=new, max_prompt_length=plen, echo=False,
                      return_logprobs=True, eos_tokens=[-1], seed=seed, **kw)
        dt = time.perf_counter() - t0
        assert all(len(t) == new for t in out.tokens), [len(t) for t in out.tokens]
        return dt

      first = call(0)
      times = [call(i + 1) for i in range(req["repeats"])]
      results.append({"batch": b, "mode": mode, "first_s": first, "times_s": times})
      print(f"tunix b={b} {mode}: first {first:.3f}s best {min(times):.3f}s", file=sys.stderr,
            flush=True)
  import importlib.metadata as md
  print(json.dumps({"engine": "tunix", "versions": {
      "google-tunix": md.version("google-tunix"), "jax": jax.__version__,
      "flax": flax.__version__}, "results": results}))


if __name__ == "__main__":
  main()
