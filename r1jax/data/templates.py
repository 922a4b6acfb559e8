"""Prompt templates: the DeepSeek-R1 paper's (arXiv 2501.12948) and the model's own chat.

A task names its template; `render(name, question, tok)` turns a question into the
prompt text the model sees. Templates by name:

  r1_zero        Table 1 of the paper, verbatim, `prompt` replaced by the question.
  r1_zero_boxed  Table 1 with the question followed by an instruction to put the final
                 answer in \\boxed{} (for models pretrained on boxed math, e.g. Qwen2.5-Math).
  chat           the tokenizer's own chat template (HF `chat_template`), one user turn
                 holding the question and the \\boxed{} instruction, generation prompt on.
  r1             one plain chat turn, 'User: question Assistant:', for R1's cold start and
                 later stages (whose output format the SFT data teaches, not the prompt).
  none           the question as is (rows whose prompt is already formatted).
"""

from __future__ import annotations

from typing import Any

# Table 1 of the paper, verbatim; `prompt` is replaced by the question.
R1_ZERO_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. The assistant first thinks about the reasoning process in the mind and then "
    "provides the user with the answer. The reasoning process and answer are enclosed within "
    "<think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning "
    "process here </think> <answer> answer here </answer>. User: prompt. Assistant:")

BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."

TEMPLATES = ("r1_zero", "r1_zero_boxed", "chat", "r1", "none")


def r1_zero_prompt(question: str) -> str:
  """The R1-Zero training prompt (Table 1) with `question` in place of `prompt`."""
  return R1_ZERO_TEMPLATE.replace("User: prompt.", f"User: {question}.", 1)


def render(name: str, question: str, tok: Any = None) -> str:
  """The prompt text of `question` under the template `name` (one of TEMPLATES)."""
  if name == "r1_zero":
    return r1_zero_prompt(question)
  if name == "r1_zero_boxed":
    return r1_zero_prompt(f"{question} {BOXED_INSTRUCTION}")
  if name == "chat":
    if not hasattr(tok, "apply_chat_template"):
      raise ValueError("template 'chat' needs a tokenizer with a chat template (an HF "
                       "tokenizer.json directory); this one has none.")
    return tok.apply_chat_template([{"role": "user",
                                     "content": f"{question}\n{BOXED_INSTRUCTION}"}])
  if name == "r1":
    return f"User: {question} Assistant:"
  if name == "none":
    return question
  raise ValueError(f"template {name!r}; allowed: {TEMPLATES}.")
