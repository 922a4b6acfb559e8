"""Hugging Face `transformers` peer for benchmarks/sampler.py (runs in its own process).

Reads one JSON request on stdin (shape, prompts, batches, modes, repeats; see
sampler.py) and prints one JSON line: per (batch, mode) the first-call seconds and
the seconds of each timed `generate` call. Random Qwen2 weights of the requested
shape; EOS is off and min_new_tokens = max_new_tokens, so every row gets exactly the
requested number of new tokens. Defaults otherwise (dynamic cache, sdpa attention).
"""

import json
import sys
import time

import torch
import transformers


def main() -> None:
  req = json.loads(sys.stdin.read())
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
  new = req["new_tokens"]
  results = []
  for b in req["batches"]:
    ids = torch.tensor(req["prompts"][:b], dtype=torch.long)
    mask = torch.ones_like(ids)
    for mode in req["modes"]:
      kw = dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0) if mode == "sample" \
          else dict(do_sample=False)

      def call() -> float:
        t0 = time.perf_counter()
        with torch.inference_mode():
          out = model.generate(ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new,
                               eos_token_id=None, pad_token_id=0, **kw)
        dt = time.perf_counter() - t0
        assert out.shape == (b, ids.shape[1] + new), out.shape
        return dt

      first = call()
      times = [call() for _ in range(req["repeats"])]
      results.append({"batch": b, "mode": mode, "first_s": first, "times_s": times})
      print(f"hf b={b} {mode}: first {first:.3f}s best {min(times):.3f}s", file=sys.stderr,
            flush=True)
  print(json.dumps({"engine": "hf", "versions": {"torch": torch.__version__,
                                                 "transformers": transformers.__version__},
                    "threads": torch.get_num_threads(), "results": results}))


if __name__ == "__main__":
  main()
