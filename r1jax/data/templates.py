"""Prompt templates of the DeepSeek-R1 paper (arXiv 2501.12948)."""

# Table 1 of the paper, verbatim; `prompt` is replaced by the question.
R1_ZERO_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. The assistant first thinks about the reasoning process in the mind and then "
    "provides the user with the answer. The reasoning process and answer are enclosed within "
    "<think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning "
    "process here </think> <answer> answer here </answer>. User: prompt. Assistant:")


def r1_zero_prompt(question: str) -> str:
  """The R1-Zero training prompt (Table 1) with `question` in place of `prompt`."""
  return R1_ZERO_TEMPLATE.replace("User: prompt.", f"User: {question}.", 1)
