"""r1jax.colab: the notebooks' setting, experiments by name, result views and offline
stand-ins for downloads."""

import json
import os

import jax
import numpy as np
import pytest

from r1jax import colab, tokenizer
from r1jax.data import builders
from r1jax.interop import hf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_small_setting_and_workdir(monkeypatch):
  monkeypatch.delenv(colab.SMALL_ENV, raising=False)
  monkeypatch.delenv(colab.WORKDIR_ENV, raising=False)
  assert not colab.small_setting()
  assert colab.workdir("x", False) == "/tmp/r1jax_colab/x"
  assert colab.workdir("x", True) == "/tmp/r1jax_colab/x_small"  # never the real run's
  monkeypatch.setenv(colab.SMALL_ENV, "1")
  monkeypatch.setenv(colab.WORKDIR_ENV, "/tmp/elsewhere")
  assert colab.small_setting()
  assert colab.workdir("x", True) == "/tmp/elsewhere"


def test_repo_root_and_load_experiment(monkeypatch, tmp_path):
  assert colab.repo_root(os.path.join(ROOT, "colabs")) == ROOT
  with pytest.raises(FileNotFoundError, match="No r1jax checkout"):
    colab.repo_root(str(tmp_path))
  monkeypatch.chdir(os.path.join(ROOT, "tests"))
  c = colab.load_experiment("r1_zero_tiny", "smoke")
  assert c.stages == ("pretrain_base", "base", "r1_zero", "final")
  assert c.r1_zero.steps == 2  # the :smoke variant
  assert colab.load_experiment("r1_zero_tiny").r1_zero.steps == 60


def _entry(p):
  return {"pass@1": p, "cons@k": p, "k": 2, "format_rate": 1.0, "mean_response_tokens": 9.0,
          "think_rate": 0.5, "accuracy_thinking": p, "accuracy_not_thinking": None,
          "examples": [{"prompt_tail": "digit of 1+2+3?. Assistant:", "gold": "6",
                        "completion": f"<think>1:1,2:3,3:6</think> <answer>{int(p * 6)}</answer>"}]}


def test_eval_table_and_examples(tmp_path):
  with open(tmp_path / "eval.json", "w") as f:
    json.dump({"base": _entry(0.5), "final": _entry(1.0)}, f)
  table = colab.eval_table(str(tmp_path)).splitlines()
  assert table[0].startswith("base   pass@1 0.500  cons@2 0.500")
  assert table[1].startswith("final  pass@1 1.000")
  text = colab.examples_text(str(tmp_path))
  assert "== base (pass@1 0.500)" in text and "answer '3', gold '6': wrong" in text
  assert "answer '6', gold '6': correct" in text


def test_problems_text(tmp_path):
  d = tmp_path / "gsm8k_test"
  d.mkdir()
  with open(d / "problems.jsonl", "w") as f:
    for i in range(3):
      f.write(json.dumps({"index": i, "gold": str(i), "samples": [f"s{i}", "t"],
                          "extracted": [str(i), None], "correct": [True, False]}) + "\n")
  lines = colab.problems_text(str(tmp_path), "gsm8k:test", n=2).splitlines()
  assert lines == ["gold '0'; answers ['0', None]; verdicts [True, False]",
                   "  first sample: 's0'",
                   "gold '1'; answers ['1', None]; verdicts [True, False]",
                   "  first sample: 's1'"]


def test_plot_curves(tmp_path):
  rows = {"a": [{"step": s, "x": 0.1 * s} for s in range(1, 4)] + [{"step": 4}],
          "b": [{"step": 1, "x": 1.0, "y": 2.0}]}
  path = colab.plot_curves(rows, [("x", "x"), ("y", "y"), ("missing", "nothing")],
                           str(tmp_path / "sub" / "p.png"), title="t")
  with open(path, "rb") as f:
    assert f.read(4) == b"\x89PNG"


def test_gsm8k_style_rows_are_gsm8k(tmp_path):
  rows = colab.gsm8k_style_rows(20, 0, "test")
  for r in rows:
    terms = [int(t) for t in r["question"].split("of ")[1].rstrip("?").split("+")]
    assert builders.gsm8k_final_answer(r["answer"]) == str(sum(terms) % 10)
  train = {r["question"] for r in colab.gsm8k_style_rows(50, 0, "train")}
  assert not train & {r["question"] for r in rows}  # held-out digit sets
  d = colab.write_gsm8k_style(str(tmp_path), n_train=3, n_test=2)
  for split, n in (("train", 3), ("test", 2)):
    with open(os.path.join(d, f"{split}.jsonl")) as f:
      assert len([json.loads(line) for line in f]) == n


def test_fetch_gsm8k_from_a_url(tmp_path):
  src = tmp_path / "src"
  src.mkdir()
  for split in ("train", "test"):
    (src / f"{split}.jsonl").write_text(json.dumps({"question": split, "answer": "#### 1"}) + "\n")
  d = colab.fetch_gsm8k(str(tmp_path / "data"), base_url=src.as_uri())
  assert json.loads(open(os.path.join(d, "test.jsonl")).read())["question"] == "test"
  (src / "test.jsonl").write_text("changed\n")
  colab.fetch_gsm8k(str(tmp_path / "data"), base_url=src.as_uri())  # kept, not fetched again
  assert json.loads(open(os.path.join(d, "test.jsonl")).read())["question"] == "test"


def test_tiny_hf_checkpoint_loads_and_samples(tmp_path):
  path = colab.write_tiny_hf_checkpoint(str(tmp_path / "ckpt"))
  mc, params = hf.load_checkpoint(path)
  assert hf.architecture_of(hf.read_hf_config(path)) == "Qwen2ForCausalLM"
  assert mc.qkv_bias and mc.tie_embeddings and mc.vocab_size % 64 == 0
  tok = tokenizer.load({"kind": "hf", "path": path})
  assert tok.vocab_size <= mc.vocab_size and tok.eos_id >= 0 and tok.bos_id == -1
  prompt = tok.apply_chat_template([{"role": "user", "content": "What is 1+2?"}])
  assert prompt == "<|im_start|>user\nWhat is 1+2?<|im_end|>\n<|im_start|>assistant\n"
  ids = tokenizer.encode_prompt(tok, prompt)
  assert tok.decode(ids) == prompt
  from r1jax import sampling
  out = sampling.generate(params, mc, [ids], rng=jax.random.key(0), max_new_tokens=4,
                          temperature=1.0, stop_ids=tokenizer.stop_ids(tok))
  assert 1 <= len(out.tokens[0]) <= 4 and np.all(np.isfinite(out.logprobs[0]))
