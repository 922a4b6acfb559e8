"""Sampling-based evaluation of a policy on held-out problems (the paper's protocol)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import re

import jax
import numpy as np

from r1jax import sampling
from r1jax import tokenizer as tokenizer_lib
from r1jax.eval import metrics
from r1jax.rewards import language as language_lib
from r1jax.rewards.format import format_reward, parse_r1, r1_format_reward
from r1jax.rewards.math_equiv import extract_answer, is_equiv


_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


def thinks(text: str) -> bool:
  """Whether a completion reasons before answering: a non-blank <think> block (R1-Zero)
  or a non-blank reasoning between R1's separators."""
  parts = parse_r1(text)
  if parts is not None:
    return bool(parts[0].strip())
  m = _THINK.search(text)
  return bool(m and m.group(1).strip())


def evaluate(params: Any, model_cfg: Any, tok: Any, prompts: Sequence[str],
             answers: Sequence[str], *, k: int, temperature: float, top_p: float,
             max_new_tokens: int, seed: int, batch_rows: int = 256, mesh: Any = None,
             rules: Any = None, languages: Sequence[tuple[str, str] | None] | None = None
             ) -> dict[str, Any]:
  """pass@1 (mean over k samples), cons@k, pass@k, format rates, mean response tokens;
  `think_rate` (share of samples with a non-blank <think>) and the accuracy of samples
  with and without thinking (None when there are none); readability and language
  mixing (`score`), `languages` giving each problem's (language, identifier)."""
  texts, lengths, truncated = generate(
      params, model_cfg, tok, prompts, k=k, temperature=temperature, top_p=top_p,
      max_new_tokens=max_new_tokens, seed=seed, batch_rows=batch_rows, mesh=mesh,
      rules=rules)
  return {**score(texts, answers, k=k, lengths=lengths, truncated=truncated,
                  languages=languages),
          "num_problems": len(prompts), "temperature": temperature, "top_p": top_p,
          "examples": [{"prompt_tail": prompts[i][-40:], "completion": texts[i * k],
                        "gold": answers[i]} for i in range(min(3, len(prompts)))]}


def generate(params: Any, model_cfg: Any, tok: Any, prompts: Sequence[str], *, k: int,
             temperature: float, top_p: float, max_new_tokens: int, seed: int,
             batch_rows: int = 256, mesh: Any = None, rules: Any = None, prepared: bool = False,
             first_chunk: int = 0) -> tuple[list[str], list[int], list[bool]]:
  """k completions per prompt (problem-major): texts, token counts, truncation flags.
  Chunk c of `batch_rows` rows samples with fold_in(key(seed), first_chunk + c)."""
  ids = [tokenizer_lib.encode_prompt(tok, p) for p in prompts]
  rows = [i for i in range(len(prompts)) for _ in range(k)]
  texts: list[str] = []
  lengths: list[int] = []
  truncated: list[bool] = []
  if not prepared:
    params = sampling.prepare(params)  # once for all chunks (the weights do not change)
  for c, start in enumerate(range(0, len(rows), batch_rows)):
    chunk = rows[start:start + batch_rows]
    out = sampling.generate(params, model_cfg, [ids[i] for i in chunk],
                            rng=jax.random.fold_in(jax.random.key(seed), first_chunk + c),
                            max_new_tokens=max_new_tokens, temperature=temperature,
                            top_p=top_p, stop_ids=tokenizer_lib.stop_ids(tok), mesh=mesh,
                            rules=rules)
    texts += [tok.decode(t) for t in out.tokens]
    lengths += [len(t) for t in out.tokens]
    truncated += out.truncated
  return texts, lengths, truncated


def score(texts: Sequence[str], answers: Sequence[str], *, k: int,
          lengths: Sequence[int], truncated: Sequence[bool],
          languages: Sequence[tuple[str, str] | None] | None = None,
          verdicts: Sequence[tuple[str | None, bool]] | None = None,
          equiv: Callable[[str, str], bool] = is_equiv) -> dict[str, Any]:
  """The metrics of `evaluate` from k completions per problem (problem-major order).

  `verdicts` (extracted answer, correct) per sample default to the math answer's
  equivalence with the gold one; cons@k votes over extracted answers by `equiv` and
  scores the winning class by its first sample's verdict.

  `readability`: share of samples in R1's format with a reasoning and a summary, every
  word in the problem's language (r1jax.rewards.language.readable); `language_mixing`:
  share of samples whose CoT (r1jax.rewards.language.reasoning) has a word of another
  language (None unless every problem has a language); problems without a language
  count R1's format alone for readability.
  """
  if len(texts) != k * len(answers):
    raise ValueError(f"{len(texts)} completions for {len(answers)} problems x k={k}.")
  langs = [None] * k * len(answers) if languages is None else [
      languages[i // k] for i in range(len(texts))]
  if verdicts is None:
    verdicts = []
    for i, t in enumerate(texts):
      a = extract_answer(t)
      verdicts.append((a, a is not None and is_equiv(a, answers[i // k])))
  extracted = [a for a, _ in verdicts]
  flat = [c for _, c in verdicts]
  correct = [flat[i * k:(i + 1) * k] for i in range(len(answers))]
  majority = []
  for i in range(len(answers)):
    group = extracted[i * k:(i + 1) * k]
    maj = metrics.majority_answer(group, equiv=equiv)
    majority.append(maj is not None and correct[i][group.index(maj)])
  think = [thinks(t) for t in texts]
  acc_if = lambda want: (float(np.mean([c for c, t in zip(flat, think) if t == want]))
                         if want in think else None)
  return {
      "pass@1": metrics.pass_at_1(correct),
      "cons@k": float(np.mean(majority)),
      "pass@k": float(np.mean([metrics.pass_at_k(k, sum(c), k) for c in correct])),
      "k": k,
      "format_rate": float(np.mean([format_reward(t) for t in texts])),
      "r1_format_rate": float(np.mean([r1_format_reward(t) for t in texts])),
      "readability": float(np.mean([
          language_lib.readable(t, *lang) if lang else bool(r1_format_reward(t))
          for t, lang in zip(texts, langs)])),
      "language_mixing": (float(np.mean([
          language_lib.mixes_languages(language_lib.reasoning(t), *lang)
          for t, lang in zip(texts, langs)]))
                          if all(langs) else None),
      "mean_response_tokens": float(np.mean(lengths)),
      "truncated_fraction": float(np.mean(truncated)),
      "think_rate": float(np.mean(think)),
      "accuracy_thinking": acc_if(True),
      "accuracy_not_thinking": acc_if(False),
  }
