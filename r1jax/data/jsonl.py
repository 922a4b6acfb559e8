"""One JSONL reader for the TFDS builders and the tasks: a bad line names file:line."""

from __future__ import annotations

import json
from typing import Any, Iterable, Iterator, Sequence


def records(lines: Iterable[str], name: Any, required: Sequence[str],
            error: type[Exception] = ValueError) -> Iterator[tuple[int, dict[str, Any]]]:
  """(1-based line number, object) for each non-blank line of `lines` (the file `name`);
  `error` for a line that is not a JSON object holding every `required` key."""
  for lineno, line in enumerate(lines, start=1):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
    except json.JSONDecodeError as e:
      raise error(f"{name}:{lineno}: not valid JSON ({e.msg}).") from None
    if not isinstance(record, dict):
      raise error(f"{name}:{lineno}: expected a JSON object, got {type(record).__name__}.")
    missing = [k for k in required if k not in record]
    if missing:
      raise error(f"{name}:{lineno}: missing key(s) {missing}; expected {list(required)}.")
    yield lineno, record
