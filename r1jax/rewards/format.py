r"""Format rewards: R1-Zero's tag template and R1's cold-start output format.

R1-Zero (`format_reward`): a completion earns 1.0 when, judged as is (the text the
model wrote, without the prompt), it is exactly::

    <think> ... </think> <answer> ... </answer>

that is, it matches ``^\s*<think>.*?</think>\s*<answer>.*?</answer>\s*$`` (DOTALL) and
contains exactly one of each of the four tags. Whitespace is allowed before
``<think>``, between ``</think>`` and ``<answer>``, and after ``</answer>``; any other
text outside the tags, a missing, repeated or misordered tag gives 0.0. The contents of
the tags may be empty. Tags are case-sensitive. Non-string input gives 0.0.

R1 (`r1_format_reward`, paper section 2.3.1): ``|special_token|<reasoning>|special_token|
<summary>``: exactly two separators, only whitespace before the first, and a
non-blank reasoning and summary.
"""

from __future__ import annotations

import re

__all__ = ["SEPARATOR", "format_reward", "parse_r1", "r1_format_reward"]

_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
_FORMAT_RE = re.compile(r"\s*<think>.*?</think>\s*<answer>.*?</answer>\s*", re.DOTALL)

SEPARATOR = "|special_token|"
_R1_RE = re.compile(r"\s*" + re.escape(SEPARATOR) + r"(?P<reasoning>.*?)"
                    + re.escape(SEPARATOR) + r"(?P<summary>.*)", re.DOTALL)


def format_reward(completion: str) -> float:
  """1.0 if `completion` is `<think>...</think><answer>...</answer>`, else 0.0."""
  if not isinstance(completion, str):
    return 0.0
  if any(completion.count(tag) != 1 for tag in _TAGS):
    return 0.0
  return 1.0 if _FORMAT_RE.fullmatch(completion) else 0.0


def parse_r1(completion: str) -> tuple[str, str] | None:
  """(reasoning, summary) of a completion in R1's format, else None (blank parts allowed)."""
  if not isinstance(completion, str) or completion.count(SEPARATOR) != 2:
    return None
  m = _R1_RE.fullmatch(completion)
  return (m["reasoning"], m["summary"]) if m else None


def r1_format_reward(completion: str) -> float:
  """1.0 if `completion` is R1's format with a non-blank reasoning and summary."""
  parts = parse_r1(completion)
  return 1.0 if parts and parts[0].strip() and parts[1].strip() else 0.0
