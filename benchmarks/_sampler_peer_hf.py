"""Hugging Face `transformers` peer for benchmarks/sampler.py (a worker process).

Protocol (one JSON object per line): the first line on stdin sets up (shape, prompts,
new_tokens, seed); the worker answers {"ready": true, "versions": ...}. Each further line
{"batch": B, "mode": "sample"|"greedy", "seed": S} runs one whole `generate` call on the
first B prompts and answers {"s": seconds}. EOF ends the worker.

Random Qwen2 weights of the requested shape; EOS is off and min_new_tokens =
max_new_tokens, so every row gets exactly the requested number of new tokens. Sampling
is temperature 1 with top_k=0 and top_p=1 (the full vocabulary); greedy is
do_sample=False. Everything else is the default (dynamic cache, sdpa attention).
"""

import json
import sys
import time

import torch
import transformers


def main() -> None:
  req = json.loads(sys.stdin.readline())
  s = req["shape"]
  torch.manual_seed(req["seed"])
  cfg = transformers.Qwen2Config(
      vocab_size=s["vocab_size"], hidden_size=s["d_model"], intermediate_size=s["mlp_dim"],
      num_hidden_layers=s["n_layers"], num_attention_heads=s["n_heads"],
      num_key_value_heads=s["n_kv_heads"], head_dim=s["head_dim"],
      max_position_embeddings=s["max_seq_len"], rms_norm_eps=1e-6, rope_theta=10000.0,
      tie_word_embeddings=False, bos_token_id=None, eos_token_id=None, pad_token_id=0,
      dtype="float32")
  model = transformers.Qwen2ForCausalLM(cfg).eval()
  prompts = torch.tensor(req["prompts"], dtype=torch.long)
  new = req["new_tokens"]
  print(json.dumps({"ready": True, "threads": torch.get_num_threads(), "versions": {
      "torch": torch.__version__, "transformers": transformers.__version__}}), flush=True)
  for line in sys.stdin:
    r = json.loads(line)
    b = r["batch"]
    ids = prompts[:b]
    kw = (dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0) if r["mode"] == "sample"
          else dict(do_sample=False))
    torch.manual_seed(r["seed"])
    t0 = time.perf_counter()
    with torch.inference_mode():
      out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new,
                           min_new_tokens=new, eos_token_id=None, pad_token_id=0, **kw)
    dt = time.perf_counter() - t0
    assert out.shape == (b, ids.shape[1] + new), out.shape
    print(json.dumps({"s": dt}), flush=True)


if __name__ == "__main__":
  main()
