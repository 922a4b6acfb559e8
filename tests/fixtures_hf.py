r"""Offline stand-ins for downloaded artefacts: a tiny Qwen2.5 checkpoint and the data sets.

End-to-end tests run real-data experiments with these in place of the Hugging Face
downloads; nothing is fetched. Everything is a pure function of its arguments (seeds
included), so a test that writes the same fixture twice gets the same bytes.

    write_gsm8k(data_dir); write_math500(data_dir); write_math_train(data_dir)
    write_teacher(data_dir)
    write_tiny_qwen2(model_dir, corpus=corpus_for(data_dir))

Layout under `data_dir` (each file in its source's original format):
  gsm8k/{train,test}.jsonl   {"question", "answer": "...reasoning...\n#### N"}
  math500/test.jsonl         {"problem", "answer", "solution", "subject", "level", "unique_id"}
  math/train.jsonl           {"problem", "solution"} (answer in the solution's last \boxed{})
  teacher/part-0000.jsonl..  {"prompt", "completion"}: R1-style traces

The model directory looks like Qwen2.5's: `config.json` + `model.safetensors`
(`Qwen2ForCausalLM`, float32, tied embeddings), `generation_config.json`, a byte-level
BPE `tokenizer.json` with Qwen2's pre-tokenizer (digits split one by one) trained on the
given corpus, and `tokenizer_config.json` with Qwen2.5's special tokens: no BOS,
`<|endoftext|>` as EOS and PAD, `<|im_start|>`/`<|im_end|>` and a ChatML template.
As in Qwen2.5, the special tokens come after the BPE vocabulary (EOS is not id 0) and the
model's embedding has more rows than the tokenizer has tokens (padded to a multiple of 64).
"""

from __future__ import annotations

import fractions
import json
import math
import os
import random
import re
from typing import Any, Iterable, Sequence

from r1jax.data import templates

# Qwen2's pre-tokenizer regex (transformers' `tokenization_qwen2.PRETOKENIZE_REGEX`):
# `\p{N}` alone, so numbers split into single digits.
QWEN2_PRETOKENIZE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+")
ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END)  # ids in this order after the BPE vocab
R1_TAGS = ("<think>", "</think>", "<answer>", "</answer>")  # plain (non-special) added tokens
DEFAULT_SYSTEM = "You are a helpful assistant."
# Qwen2.5's ChatML template without its tool-calling branches.
CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    "{%- else %}\n"
    "    {{- '<|im_start|>system\\n" + DEFAULT_SYSTEM + "<|im_end|>\\n' }}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- if message['role'] in ['user', 'assistant'] or "
    "(message['role'] == 'system' and not loop.first) %}\n"
    "        {{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n' }}\n"
    "    {%- elif message['role'] != 'system' %}\n"
    "        {{- raise_exception('unknown role: ' + message['role']) }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n")
# The tiny model: Qwen2.5's structure (GQA, qkv bias, tied embeddings) at test size.
TINY_QWEN2 = dict(
    hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    intermediate_size=96, max_position_embeddings=1024, rope_theta=1e6, rms_norm_eps=1e-6,
    tie_word_embeddings=True, use_sliding_window=False, initializer_range=0.02,
    hidden_act="silu", dtype="float32")
VOCAB_MULTIPLE = 64  # the model's vocab_size is the tokenizer's size rounded up to this


def _write_jsonl(path: str, records: Iterable[dict[str, Any]]) -> str:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    for r in records:
      f.write(json.dumps(r, ensure_ascii=False) + "\n")
  return path


def _read_jsonl(path: str) -> list[dict[str, Any]]:
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]


# ---------------------------------------------------------------------------------------
# The tokenizer and the model


def train_qwen2_tokenizer(corpus: Iterable[str], vocab_size: int, *,
                          special_tokens: Sequence[str] = SPECIAL_TOKENS,
                          added_tokens: Sequence[str] = R1_TAGS) -> Any:
  """A Qwen2-style byte-level BPE `tokenizers.Tokenizer` trained on `corpus`, with
  `special_tokens` then (non-special) `added_tokens` after the BPE vocabulary."""
  from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers,
                          pre_tokenizers, processors, trainers)
  tok = Tokenizer(models.BPE())
  tok.normalizer = normalizers.NFC()
  tok.pre_tokenizer = pre_tokenizers.Sequence([
      pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
      pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
  tok.decoder = decoders.ByteLevel()
  tok.post_processor = processors.ByteLevel(trim_offsets=False)
  tok.train_from_iterator(list(corpus), trainers.BpeTrainer(
      vocab_size=vocab_size, show_progress=False,
      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
  tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                          for t in special_tokens])
  if added_tokens:
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in added_tokens])
  return tok


def _tokenizer_config(max_length: int) -> dict[str, Any]:
  """tokenizer_config.json as Qwen2.5 (base) ships it, less `added_tokens_decoder`."""
  return {
      "add_bos_token": False, "add_prefix_space": False,
      "additional_special_tokens": [IM_START, IM_END],
      "bos_token": None, "chat_template": CHAT_TEMPLATE,
      "clean_up_tokenization_spaces": False, "eos_token": ENDOFTEXT, "errors": "replace",
      "model_max_length": max_length, "pad_token": ENDOFTEXT,
      "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer", "unk_token": None}


def write_tiny_qwen2(path: str | os.PathLike, *, corpus: list[str], vocab_size: int = 1024,
                     seed: int = 0, **model_overrides: Any) -> str:
  """Writes a random tiny Qwen2.5-style HF model directory at `path`; returns the path.

  `vocab_size` is the BPE training target (the corpus may support fewer merges); the
  model's vocab_size is the trained tokenizer's size rounded up to a multiple of 64.
  `model_overrides` replace fields of `TINY_QWEN2` (any `transformers.Qwen2Config` key
  but vocab_size).
  """
  import torch
  import transformers
  path = os.fspath(path)
  os.makedirs(path, exist_ok=True)
  tok = train_qwen2_tokenizer(corpus, vocab_size)
  n_tokens = tok.get_vocab_size(with_added_tokens=True)
  eos = tok.token_to_id(ENDOFTEXT)
  fields = dict(TINY_QWEN2, vocab_size=-(-n_tokens // VOCAB_MULTIPLE) * VOCAB_MULTIPLE,
                bos_token_id=eos, eos_token_id=eos)  # Qwen2.5's config.json names both so
  fields.update(model_overrides)
  with torch.random.fork_rng(devices=[]):  # leaves the caller's torch RNG as it was
    torch.manual_seed(seed)
    m = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**fields))
  m.save_pretrained(path, safe_serialization=True)
  tok.save(os.path.join(path, "tokenizer.json"))
  with open(os.path.join(path, "tokenizer_config.json"), "w", encoding="utf-8") as f:
    json.dump(_tokenizer_config(fields["max_position_embeddings"]), f, indent=2)
  return path


# ---------------------------------------------------------------------------------------
# GSM8K: grade-school word problems, answers ending "#### N" (thousands with commas)

_PEOPLE = (("Tom", "he", "his"), ("Sara", "she", "her"), ("Liam", "he", "his"),
           ("Maya", "she", "her"), ("Omar", "he", "his"), ("Nina", "she", "her"))
_ITEMS = ("apples", "pencils", "stickers", "marbles", "cookies", "books")


def _gsm8k_problem(rng: random.Random, kind: int) -> dict[str, str]:
  """One GSM8K-format problem of template `kind` (0: a product >= 1000, with a comma)."""
  name, he, his = rng.choice(_PEOPLE)
  items = rng.choice(_ITEMS)
  if kind == 0:
    a, b = rng.randrange(100, 400), rng.randrange(10, 30)
    c = a * b
    return {"question": f"A bakery sells {a} loaves of bread each day. How many loaves "
                        f"does it sell in {b} days?",
            "answer": f"In {b} days the bakery sells {a} * {b} = <<{a}*{b}={c}>>{c:,} "
                      f"loaves.\n#### {c:,}"}
  if kind == 1:
    a, b = rng.randrange(2, 50), rng.randrange(2, 50)
    c = a + b
    return {"question": f"{name} has {a} {items} and buys {b} more. How many {items} does "
                        f"{he} have now?",
            "answer": f"{name} has {a} + {b} = <<{a}+{b}={c}>>{c} {items} now.\n#### {c}"}
  if kind == 2:
    a = rng.randrange(10, 90)
    b = rng.randrange(1, a)
    c = a - b
    return {"question": f"{name} had {a} {items} and gave {b} of them to {his} friend. How "
                        f"many {items} does {he} have left?",
            "answer": f"{name} has {a} - {b} = <<{a}-{b}={c}>>{c} {items} left.\n#### {c}"}
  a, b = rng.randrange(2, 10), rng.randrange(3, 12)
  total = a * b
  d = rng.randrange(1, total)
  c = total - d
  return {"question": f"{name} buys {a} packs of {items} with {b} {items} in each pack, "
                      f"then gives away {d}. How many {items} does {he} have left?",
          "answer": f"{name} buys {a} * {b} = <<{a}*{b}={total}>>{total} {items}.\n"
                    f"After giving away {d}, {he} has {total} - {d} = "
                    f"<<{total}-{d}={c}>>{c} {items} left.\n#### {c}"}


def gsm8k_problems(n: int, seed: int, stream: str) -> list[dict[str, str]]:
  """`n` GSM8K-format problems; the first has a comma answer (>= 1000)."""
  rng = random.Random(f"gsm8k/{stream}/{seed}")
  return [_gsm8k_problem(rng, i % 4) for i in range(n)]


def write_gsm8k(data_dir: str | os.PathLike, n_train: int = 16, n_test: int = 16,
                seed: int = 0) -> str:
  """Writes `data_dir/gsm8k/{train,test}.jsonl` (GSM8K's format); returns that folder."""
  out = os.path.join(os.fspath(data_dir), "gsm8k")
  for split, n in (("train", n_train), ("test", n_test)):
    _write_jsonl(os.path.join(out, f"{split}.jsonl"), gsm8k_problems(n, seed, split))
  return out


# ---------------------------------------------------------------------------------------
# MATH: competition-style problems with LaTeX answers, solutions ending in \boxed{...}


def _latex(q: fractions.Fraction) -> str:
  return str(q.numerator) if q.denominator == 1 else f"\\frac{{{q.numerator}}}{{{q.denominator}}}"


def _math_problem(rng: random.Random, kind: int) -> dict[str, Any]:
  """One MATH-style problem: problem, solution (ending in \\boxed{answer}), answer, meta."""
  if kind == 0:  # a fraction to reduce: nested braces in the box
    den = rng.randrange(3, 10)
    num = rng.randrange(1, den)
    while math.gcd(num, den) != 1:
      num = rng.randrange(1, den)
    k = rng.randrange(2, 6)
    ans = _latex(fractions.Fraction(num, den))
    problem = f"Simplify $\\frac{{{k * num}}}{{{k * den}}}$."
    solution = (f"Both ${k * num}$ and ${k * den}$ are divisible by ${k}$, so "
                f"$\\frac{{{k * num}}}{{{k * den}}} = \\boxed{{{ans}}}$.")
    return dict(problem=problem, solution=solution, answer=ans, subject="Prealgebra",
                level=1)
  if kind == 1:  # an integer
    x, a = rng.randrange(-9, 10), rng.randrange(2, 10)
    b = rng.randrange(1, 20)
    c = a * x + b
    problem = f"Solve for $x$: ${a}x + {b} = {c}$."
    solution = (f"Subtracting ${b}$ from both sides gives ${a}x = {c - b}$, and dividing by "
                f"${a}$ gives $x = \\boxed{{{x}}}$.")
    return dict(problem=problem, solution=solution, answer=str(x), subject="Algebra",
                level=2)
  if kind == 2:  # a square root
    p = rng.choice((2, 3, 5, 6, 7))
    ans = f"\\sqrt{{{p}}}"
    problem = f"What is the positive solution of $x^2 = {p}$?"
    solution = (f"Taking square roots, $x = \\pm\\sqrt{{{p}}}$; the positive solution is "
                f"$\\boxed{{{ans}}}$.")
    return dict(problem=problem, solution=solution, answer=ans, subject="Algebra", level=1)
  a, b = rng.sample(range(2, 10), 2)  # a sum of unit fractions, distinct denominators
  q = fractions.Fraction(1, a) + fractions.Fraction(1, b)
  ans = _latex(q)
  problem = (f"Compute $\\frac{{1}}{{{a}}} + \\frac{{1}}{{{b}}}$. Express your answer as a "
             f"common fraction.")
  solution = (f"Over the common denominator ${a * b}$, $\\frac{{1}}{{{a}}} + "
              f"\\frac{{1}}{{{b}}} = \\frac{{{a + b}}}{{{a * b}}} = \\boxed{{{ans}}}$.")
  return dict(problem=problem, solution=solution, answer=ans, subject="Prealgebra", level=3)


def math_problems(n: int, seed: int, stream: str) -> list[dict[str, Any]]:
  """`n` MATH-style problems cycling through the kinds (the first a reduced fraction)."""
  rng = random.Random(f"math/{stream}/{seed}")
  return [_math_problem(rng, i % 4) for i in range(n)]


def write_math500(data_dir: str | os.PathLike, n: int = 8, seed: int = 0) -> str:
  """Writes `data_dir/math500/test.jsonl` (HuggingFaceH4/MATH-500's keys); returns it."""
  records = []
  for i, p in enumerate(math_problems(n, seed, "math500")):
    uid = f"test/{p['subject'].lower().replace(' ', '_')}/{100 + i}.json"
    records.append({"problem": p["problem"], "solution": p["solution"],
                    "answer": p["answer"], "subject": p["subject"], "level": p["level"],
                    "unique_id": uid})
  return _write_jsonl(os.path.join(os.fspath(data_dir), "math500", "test.jsonl"), records)


def write_math_train(data_dir: str | os.PathLike, n: int = 8, seed: int = 0) -> str:
  """Writes `data_dir/math/train.jsonl` ({"problem", "solution"}); returns it.

  The first solution's answer is a nested-brace `\\boxed{\\frac{a}{b}}`.
  """
  records = [{"problem": p["problem"], "solution": p["solution"]}
             for p in math_problems(n, seed, "train")]
  return _write_jsonl(os.path.join(os.fspath(data_dir), "math", "train.jsonl"), records)


# ---------------------------------------------------------------------------------------
# Teacher samples (distillation): R1-style completions to GSM8K-style prompts


def write_teacher(data_dir: str | os.PathLike, n: int = 16, seed: int = 0,
                  shards: int = 2) -> list[str]:
  """Writes `data_dir/teacher/part-0000.jsonl`... ({"prompt", "completion"}); returns them.

  Record i goes to shard i % shards. Even records answer in R1-Zero's format
  (`<think>...</think> <answer>N</answer>`), odd ones as R1 does (a think block, then a
  summary ending in `\\boxed{N}`). Prompts are bare questions (no chat template);
  the reasoning is GSM8K's without its `<<a*b=c>>` calculator annotations.
  """
  records = []
  for i, p in enumerate(gsm8k_problems(n, seed, "teacher")):
    reasoning, final = p["answer"].rsplit("\n####", 1)
    reasoning = re.sub(r"<<[^>]*>>", "", reasoning)  # GSM8K's calculator annotations
    final = final.strip().replace(",", "")
    if i % 2 == 0:
      completion = f"<think>\n{reasoning}\n</think> <answer>{final}</answer>"
    else:
      completion = (f"<think>\nLet me work through this step by step.\n{reasoning}\n</think>\n\n"
                    f"{reasoning.splitlines()[-1]} The final answer is \\boxed{{{final}}}")
    records.append({"prompt": p["question"], "completion": completion})
  out = os.path.join(os.fspath(data_dir), "teacher")
  return [_write_jsonl(os.path.join(out, f"part-{s:04d}.jsonl"), records[s::shards])
          for s in range(shards)]


def corpus_for(data_dir: str | os.PathLike) -> list[str]:
  """Tokenizer training texts: every written data file's text, the R1 template and tags."""
  data_dir = os.fspath(data_dir)
  texts = [templates.R1_ZERO_TEMPLATE, " ".join(R1_TAGS), DEFAULT_SYSTEM,
           "system\nuser\nassistant\n",
           "Please reason step by step, and put your final answer within \\boxed{}."]
  fields = {"gsm8k": ("question", "answer"), "math500": ("problem", "solution", "answer"),
            "math": ("problem", "solution"), "teacher": ("prompt", "completion")}
  for name, keys in fields.items():
    folder = os.path.join(data_dir, name)
    if not os.path.isdir(folder):
      continue
    for file in sorted(os.listdir(folder)):
      if file.endswith(".jsonl"):
        for r in _read_jsonl(os.path.join(folder, file)):
          texts.extend(str(r[k]) for k in keys)
          if name == "gsm8k":
            texts.append(templates.r1_zero_prompt(r["question"]))
  return texts
