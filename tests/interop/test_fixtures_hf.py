"""The offline fixtures of `tests/fixtures_hf.py` look like what they stand in for.

The tiny Qwen2.5-style model loads with `r1jax.interop.hf` and matches `transformers`'
logits; its tokenizer, read by `HFTokenizer`, has Qwen2.5's special tokens (no BOS),
single-token R1 tags and the same chat template output and ids as `transformers`; the
data files parse as GSM8K / MATH-500 / MATH / teacher samples. One directory is
written per module.

Needs the `hf` extra (torch CPU, transformers); skipped only when they are absent.
"""

import filecmp
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from r1jax import model  # noqa: E402
from r1jax.data import builders, templates  # noqa: E402
from r1jax.interop import hf  # noqa: E402
from r1jax.interop.hf_tokenizer import HFTokenizer  # noqa: E402
from r1jax.rewards import format as format_rewards  # noqa: E402
from r1jax.rewards import math_equiv  # noqa: E402
from tests import fixtures_hf  # noqa: E402

RTOL = 1e-3
LENGTH = 24
MESSAGES = [
    {"role": "system", "content": "Please reason step by step."},
    {"role": "user", "content": "What is 2 + 2?"},
    {"role": "assistant", "content": "<think>2 + 2 = 4</think> <answer>4</answer>"},
    {"role": "user", "content": "And 30 + 12?"},
]


def _rel(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _write(root):
  data, model_dir = str(root / "data"), str(root / "model")
  fixtures_hf.write_gsm8k(data)
  fixtures_hf.write_math500(data)
  fixtures_hf.write_math_train(data)
  fixtures_hf.write_teacher(data)
  fixtures_hf.write_tiny_qwen2(model_dir, corpus=fixtures_hf.corpus_for(data))
  return data, model_dir


@pytest.fixture(scope="module")
def written(tmp_path_factory):
  """(data_dir, model_dir), written once per module."""
  return _write(tmp_path_factory.mktemp("fixtures"))


def _jsonl(path):
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f]


def test_model_loads_and_matches_transformers(written):
  data, path = written
  cfg, params = hf.load_checkpoint(path)
  tok = HFTokenizer.load(path)
  assert cfg.param_dtype == "float32" and cfg.tie_embeddings and cfg.qkv_bias
  assert (cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads) == (64, 2, 4, 2)
  assert cfg.max_seq_len >= 512
  assert cfg.vocab_size % 64 == 0 and tok.vocab_size <= cfg.vocab_size < tok.vocab_size + 64
  # Rows of real text (a GSM8K prompt, a teacher trace) and of ids up to the padded rows.
  rows = [tok.encode(templates.r1_zero_prompt(r["question"]))[-LENGTH:]
          for r in _jsonl(os.path.join(data, "gsm8k", "test.jsonl"))[:2]]
  rows.append(tok.encode(_jsonl(os.path.join(data, "teacher", "part-0000.jsonl"))[0]
                         ["completion"])[:LENGTH])
  rows.append(np.random.RandomState(0).randint(0, cfg.vocab_size, LENGTH).tolist())
  tokens = np.asarray(rows, np.int32)
  assert tokens.shape == (4, LENGTH)
  m = transformers.AutoModelForCausalLM.from_pretrained(path).eval()
  assert type(m).__name__ == "Qwen2ForCausalLM"
  with torch.no_grad():
    ref = m(torch.tensor(tokens, dtype=torch.long)).logits.float().numpy()
  ours = jax.jit(lambda p, t: model.forward(p, t, cfg))(params, jnp.asarray(tokens))
  assert _rel(ours, ref) < RTOL


def test_tokenizer_is_qwen2_5_like(written):
  data, path = written
  tok = HFTokenizer.load(path)
  endoftext = tok.token_to_id("<|endoftext|>")
  assert tok.bos_id == -1 and tok.eos_id == endoftext and tok.pad_id == endoftext
  assert endoftext > 255  # after the BPE vocabulary, as in Qwen2.5
  assert tok.encode("<|im_start|>user\nhi<|im_end|>")[0] == tok.token_to_id("<|im_start|>")
  for tag in fixtures_hf.R1_TAGS:
    ids = tok.encode(tag)
    assert ids == [tok.token_to_id(tag)] and tok.decode(ids) == tag
  assert tok.encode("12345") == [tok.token_to_id(d) for d in "12345"]  # digits split
  questions = [r["question"] for split in ("train", "test")
               for r in _jsonl(os.path.join(data, "gsm8k", f"{split}.jsonl"))]
  for q in questions:
    assert tok.decode(tok.encode(q)) == q
  prompt = tok.encode(templates.r1_zero_prompt(questions[0]))
  assert len(prompt) < 150  # the corpus makes prompts compact (~110 tokens here)
  with pytest.raises(ValueError, match="bos_token requested"):
    tok.encode("x", bos=True)


def test_tokenizer_matches_transformers(written):
  data, path = written
  tok = HFTokenizer.load(path)
  ref = transformers.AutoTokenizer.from_pretrained(path)
  assert ref.bos_token is None and ref.eos_token == ref.pad_token == "<|endoftext|>"
  assert (tok.vocab_size, tok.eos_id, tok.pad_id) == (len(ref), ref.eos_token_id,
                                                       ref.pad_token_id)
  texts = [r["completion"] for r in _jsonl(os.path.join(data, "teacher", "part-0001.jsonl"))]
  texts += [r["solution"] for r in _jsonl(os.path.join(data, "math", "train.jsonl"))]
  for text in texts:
    assert tok.encode(text) == ref.encode(text, add_special_tokens=False)
  for msgs in (MESSAGES, MESSAGES[1:2], MESSAGES[1:3]):
    for gen in (True, False):
      text = tok.apply_chat_template(msgs, add_generation_prompt=gen)
      assert text == ref.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)
      assert tok.encode(text) == ref.encode(text, add_special_tokens=False)
  assert tok.apply_chat_template(MESSAGES[1:2]) == (
      "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
      "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n")


def test_gsm8k_files(written):
  data, _ = written
  commas = 0
  for split in ("train", "test"):
    records = _jsonl(os.path.join(data, "gsm8k", f"{split}.jsonl"))
    assert len(records) == 16 and all(set(r) == {"question", "answer"} for r in records)
    for r in records:
      final = builders.gsm8k_final_answer(r["answer"])
      assert final.isdigit(), r
      if "," in r["answer"].rsplit("####", 1)[1]:
        commas += 1
        assert int(final) >= 1000
  assert commas >= 2  # one in each split at least


def test_math_files(written):
  data, _ = written
  records = _jsonl(os.path.join(data, "math500", "test.jsonl"))
  assert len(records) == 8
  for r in records:
    assert set(r) == {"problem", "answer", "solution", "subject", "level", "unique_id"}
    assert isinstance(r["level"], int) and r["unique_id"].startswith("test/")
    assert math_equiv.extract_answer(r["solution"]) == r["answer"]
  answers = {r["answer"] for r in records}
  assert any(a.startswith("\\frac{") for a in answers)
  assert any(a.startswith("\\sqrt{") for a in answers)
  assert any(a.lstrip("-").isdigit() for a in answers)
  train = _jsonl(os.path.join(data, "math", "train.jsonl"))
  assert len(train) == 8 and all(set(r) == {"problem", "solution"} for r in train)
  assert math_equiv.extract_answer(train[0]["solution"]).startswith("\\frac{")
  assert "\\boxed{\\frac{" in train[0]["solution"]


def test_teacher_files(written):
  data, _ = written
  shards = [_jsonl(os.path.join(data, "teacher", f"part-{s:04d}.jsonl")) for s in range(2)]
  assert sorted(os.listdir(os.path.join(data, "teacher"))) == ["part-0000.jsonl",
                                                                "part-0001.jsonl"]
  records = [r for shard in shards for r in shard]
  assert len(records) == 16 and all(set(r) == {"prompt", "completion"} for r in records)
  for r in shards[0]:  # even records: R1-Zero's format
    assert format_rewards.format_reward(r["completion"]) == 1.0
  for r in shards[1]:  # odd records: R1's boxed answer
    assert r["completion"].startswith("<think>") and r["completion"].endswith("}")
    assert math_equiv.extract_answer(r["completion"]).isdigit()


def test_writing_is_deterministic(written, tmp_path):
  data, path = _write(tmp_path)
  for a, b in zip(written, (data, path)):
    cmp = filecmp.dircmp(a, b)
    assert not (cmp.left_only or cmp.right_only)
    for root, _, files in os.walk(a):
      for f in files:
        other = os.path.join(b, os.path.relpath(os.path.join(root, f), a))
        assert filecmp.cmp(os.path.join(root, f), other, shallow=False), f


def test_model_overrides_and_vocab_size(written, tmp_path):
  data, _ = written
  path = fixtures_hf.write_tiny_qwen2(tmp_path, corpus=fixtures_hf.corpus_for(data),
                                      vocab_size=300, num_hidden_layers=1,
                                      max_position_embeddings=2048)
  cfg = hf.config_from_hf(hf.read_hf_config(path))
  assert (cfg.n_layers, cfg.max_seq_len) == (1, 2048)
  # 300 BPE tokens + 3 special + 4 R1 tags, rounded up to a multiple of 64.
  assert HFTokenizer.load(path).vocab_size == 307 and cfg.vocab_size == 320
