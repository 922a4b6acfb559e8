"""Reward-model rewards (R1 stage 4, paper section 2.3.4): a trained scalar-head model
(r1jax.train.reward_model) scores what its *view* of a response shows it:

  summary   the prompt and the final summary only (helpfulness: "the assessment
            emphasizes the utility and relevance of the response to the user while
            minimizing interference with the underlying reasoning process")
  response  the prompt and the whole response, reasoning and summary (harmlessness:
            "to identify and mitigate any potential risks ... that may arise during
            the generation process")

A completion not in R1's format shows the summary view its text after the last
separator (all of it when it has none), so a policy cannot hide from the helpfulness
RM by dropping the format. Scoring runs in jitted batched forwards on the device, not
in the host reward workers (r1jax.rewards.scoring); the host only tokenizes.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from r1jax import sampling
from r1jax import tokenizer as tokenizer_lib
from r1jax.rewards.format import SEPARATOR, parse_r1

VIEWS = ("summary", "response")


def view_text(completion: str, view: str) -> str:
  """The part of `completion` the reward model reads (module docstring)."""
  if view == "response":
    return completion
  if view != "summary":
    raise ValueError(f"reward model view {view!r}; allowed: {VIEWS}.")
  parts = parse_r1(completion)
  if parts is not None:
    return " " + parts[1].strip()
  return completion.rsplit(SEPARATOR, 1)[-1]


def encode(tok: Any, prompt: str, completion: str, view: str) -> list[int]:
  """Token ids the reward model scores: the prompt, the view of the completion, EOS."""
  return (tokenizer_lib.encode_prompt(tok, prompt)
          + tok.encode(view_text(completion, view), eos=True))


class RewardModel:
  """A trained reward model as a batched scorer: `rm(prompts, completions) -> [N]`."""

  def __init__(self, params: Any, model_cfg: Any, tok: Any, view: str, *, mesh: Any = None,
               rules: Any = None, batch_rows: int = 64):
    if view not in VIEWS:
      raise ValueError(f"reward model view {view!r}; allowed: {VIEWS}.")
    self.params, self.model_cfg, self.tok, self.view = params, model_cfg, tok, view
    self.mesh, self.rules, self.batch_rows = mesh, rules, batch_rows

  def __call__(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
    from r1jax.train import reward_model as rm_lib
    if len(prompts) != len(completions):
      raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    if not prompts:
      return np.zeros((0,), np.float32)
    limit = self.model_cfg.max_seq_len
    seqs = [encode(self.tok, p, c, self.view)[-limit:] for p, c in zip(prompts, completions)]
    width = min(sampling.length_bucket(max(len(s) for s in seqs)), limit)
    tokens, lengths = rm_lib.pad_rows(seqs, width, self.tok.pad_id)
    return rm_lib.score_rows(self.params, self.model_cfg, tokens, lengths,
                             batch_rows=self.batch_rows, mesh=self.mesh, rules=self.rules)
