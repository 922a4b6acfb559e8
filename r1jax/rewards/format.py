"""Format reward for the R1-Zero template.

A completion earns 1.0 when, judged as is (the text the model wrote, without
the prompt), it is exactly::

    <think> ... </think> <answer> ... </answer>

that is, it matches ``^\\s*<think>.*?</think>\\s*<answer>.*?</answer>\\s*$``
(DOTALL) and contains exactly one of each of the four tags. Whitespace is
allowed before ``<think>``, between ``</think>`` and ``<answer>``, and after
``</answer>``; any other text outside the tags, a missing, repeated or
misordered tag gives 0.0. The contents of the tags may be empty. Tags are
case-sensitive. Non-string input gives 0.0.
"""

from __future__ import annotations

import re

__all__ = ["format_reward"]

_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
_FORMAT_RE = re.compile(r"\s*<think>.*?</think>\s*<answer>.*?</answer>\s*", re.DOTALL)


def format_reward(completion: str) -> float:
    """Return 1.0 if `completion` is `<think>...</think><answer>...</answer>`, else 0.0."""
    if not isinstance(completion, str):
        return 0.0
    if any(completion.count(tag) != 1 for tag in _TAGS):
        return 0.0
    return 1.0 if _FORMAT_RE.fullmatch(completion) else 0.0
