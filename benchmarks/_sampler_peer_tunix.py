"""Tunix peer for benchmarks/sampler.py (a worker process in its own venv, .venv-tunix).

Protocol (one JSON object per line): the first line on stdin sets up (shape, prompts,
new_tokens, prompt_len, seed); the worker answers {"ready": true, "versions": ...}. Each
further line {"batch": B, "mode": "sample"|"greedy", "seed": S} runs one whole call of
`tunix.generate.sampler.Sampler` on the first B prompts and answers {"s": seconds}.

The model is Tunix's own Qwen2 (`tunix.models.qwen2.model.Qwen2`) with random weights of
the requested shape. The sampler takes strings, so a stand-in tokenizer maps "12 7 99"
to token ids and back; EOS is an id that never occurs (-1), so every row gets exactly
the requested number of new tokens. Sampling: temperature 1, top_p=1 and no top_k (Tunix
then samples from the full vocabulary); greedy: Tunix's default mode. Logprobs are
requested, as our sampler always returns them.
"""

import importlib.metadata
import json
import logging
import sys
import time
import warnings

import flax
import jax
from flax import nnx
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
  req = json.loads(sys.stdin.readline())
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
  texts = [" ".join(map(str, p)) for p in req["prompts"]]
  print(json.dumps({"ready": True, "versions": {
      "google-tunix": importlib.metadata.version("google-tunix"), "jax": jax.__version__,
      "flax": flax.__version__}}), flush=True)
  for line in sys.stdin:
    r = json.loads(line)
    b = r["batch"]
    kw = dict(temperature=1.0, top_p=1.0, top_k=None) if r["mode"] == "sample" else {}
    t0 = time.perf_counter()
    out = sampler(texts[:b], max_generation_steps=new, max_prompt_length=plen, echo=False,
                  return_logprobs=True, eos_tokens=[-1], seed=r["seed"], **kw)
    dt = time.perf_counter() - t0
    assert all(len(t) == new for t in out.tokens), [len(t) for t in out.tokens]
    print(json.dumps({"s": dt}), flush=True)


if __name__ == "__main__":
  main()
