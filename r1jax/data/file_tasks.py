"""Task kinds read from files on disk: GSM8K, MATH, MATH-500 (TFDS builders over their
original JSONL), generic JSONL rows, and programming problems with tests
(r1jax.data.tasks documents each kind)."""

from __future__ import annotations

import glob
import os
from typing import Any

from r1jax import configs
from r1jax.data.task_base import Example, Task, TaskError, _need, _prepared, read_jsonl

class GSM8K(Task):
  """GSM8K (Cobbe et al. 2021), prepared from the original JSONL by the TFDS builder."""

  KIND = "gsm8k"

  def _problems(self, split: str) -> list[Example]:
    src = os.path.join(self.data_dir, "gsm8k")
    for s in self.SPLITS:  # the builder prepares both splits at once
      _need(os.path.join(src, f"{s}.jsonl"),
            'GSM8K\'s original JSONL: one {"question": ..., "answer": "...#### N"} per line')
    return _prepared("gsm8k", split, self.workdir, source_dir=src)


class MATH(Task):
  """MATH train (Hendrycks et al. 2021): the answer is the solution's last \\boxed{}."""

  KIND = "math"
  SPLITS = ("train",)

  def _problems(self, split: str) -> list[Example]:
    from r1jax.rewards.math_equiv import extract_answer
    path = _need(os.path.join(self.data_dir, "math", f"{split}.jsonl"),
                 'MATH JSONL: one {"problem": ..., "solution": "... \\boxed{answer}"} per line')
    out = []
    for i, r in enumerate(read_jsonl(path, ("problem", "solution"))):
      answer = extract_answer(r["solution"])
      if answer is None:
        raise TaskError(f"{path}: row {i + 1} has no \\boxed{{}} answer in its solution.")
      out.append({"question": r["problem"], "answer": answer})
    return out


class MATH500(Task):
  """MATH-500 (the PRM800K test subset), prepared by the TFDS builder."""

  KIND = "math500"
  SPLITS = ("test",)

  def _problems(self, split: str) -> list[Example]:
    src = os.path.join(self.data_dir, "math500")
    _need(os.path.join(src, "test.jsonl"),
          'MATH-500 JSONL: one {"problem", "answer", "solution", "subject", "level", '
          '"unique_id"} object per line')
    return _prepared("math500", split, self.workdir, source_dir=src)


class Jsonl(Task):
  """JSONL files, a glob per split: {"prompt", "answer"} rows (RL, evaluation; optional
  "type", "language" and "language_identifier" fields are kept, e.g. "type": "general"
  for RL for all scenarios), {"prompt", "completion"} rows (SFT) and/or {"prompt",
  "chosen", "rejected"} rows (reward models; an optional "preference" field keeps a row
  for that preference only). `{data_dir}` and `{workdir}` in a glob are replaced by the
  run's directories (e.g. a sample stage's output)."""

  KIND = "jsonl"

  @classmethod
  def default_config(cls) -> configs.ConfigDict:
    c = super().default_config()
    c.template = "none"
    c.train = ""  # Glob of the train split's files ('' = no such split).
    c.test = ""  # Glob of the test split's files.
    return c

  def check_split(self, split: str) -> None:
    super().check_split(split)
    if not self.cfg[split]:
      raise TaskError(f"task {self.name!r}: no files for split {split!r} (set "
                      f"tasks.{self.name}.{split} to a glob).")

  KEPT = ("type", "language", "language_identifier")  # optional problem fields

  def _rows(self, split: str, *keys: str) -> list[dict[str, Any]]:
    pattern = self.cfg[split].format(data_dir=self.data_dir, workdir=self.workdir)
    paths = sorted(glob.glob(os.path.expanduser(pattern)))
    if not paths:
      fields = ", ".join(f'"{k}": ...' for k in ("prompt", *keys))
      raise TaskError(f"task {self.name!r}: no file matches {pattern}; expected JSONL with "
                      f"one {{{fields}}} object per line.")
    return [r for p in paths for r in read_jsonl(p, ("prompt", *keys))]

  def _problems(self, split: str) -> list[Example]:
    return [{"question": r["prompt"], "answer": str(r["answer"]),
             **{k: r[k] for k in self.KEPT if k in r}}
            for r in self._rows(split, "answer")]

  def preference_pairs(self, split: str, preference: str) -> list[Example]:
    """{question, chosen, rejected} rows of `split` (those of `preference` when a row
    names one)."""
    self.check_split(split)
    return [{"question": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]}
            for r in self._rows(split, "chosen", "rejected")
            if r.get("preference", preference) == preference]

  def _sft_examples(self, split: str) -> list[Example]:
    return [{"question": r["prompt"], "completion": r["completion"]}
            for r in self._rows(split, "completion")]


class Code(Jsonl):
  """Programming problems with tests (HumanEval-style call/expected or stdin/stdout),
  scored by the sandboxed code reward; problems carry `tests` and an empty `answer`."""

  KIND = "code"

  @classmethod
  def default_config(cls) -> configs.ConfigDict:
    c = super().default_config()
    c.train = "{data_dir}/code/train.jsonl"
    c.test = "{data_dir}/code/test.jsonl"
    return c

  def _problems(self, split: str) -> list[Example]:
    from r1jax.rewards import code
    out = []
    for i, r in enumerate(self._rows(split, "tests")):
      try:
        code.parse_tests(r["tests"])
      except ValueError as e:
        raise TaskError(f"task {self.name!r} ({split}): row {i + 1}: {e}") from None
      out.append({"question": r["prompt"], "answer": "", "tests": r["tests"]})
    return out
