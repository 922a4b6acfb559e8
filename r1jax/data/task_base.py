"""What every task kind shares: the Task interface, its error, and the readers of task
files (JSONL rows, TFDS builders' prepared splits). Kinds live in r1jax.data.tasks
(generated worlds) and r1jax.data.file_tasks (datasets on disk)."""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy as np
from absl import logging

from r1jax import configs
from r1jax.data import jsonl, templates

Example = dict[str, Any]


class TaskError(configs.ConfigError):
  """A task cannot serve what a stage asks (missing file, unknown split, bad row)."""


class Task:
  """Base: a named source of problems and SFT examples in one or more splits."""

  KIND = ""  # the name of the kind in config sections (KINDS)
  SPLITS: tuple[str, ...] = ("train", "test")
  INFINITE: tuple[str, ...] = ()  # splits drawn afresh per step (never exhausted)

  def __init__(self, name: str, cfg: Any, *, data_dir: str, workdir: str, seed: int):
    self.name, self.cfg, self.seed = name, cfg, seed
    self.data_dir = os.path.expanduser(data_dir)
    self.workdir = workdir
    self._cache: dict[tuple[str, str], list[Example]] = {}

  @classmethod
  def default_config(cls) -> configs.ConfigDict:
    c = configs.ConfigDict()
    c.kind = cls.KIND
    c.template = "r1_zero"  # r1jax.data.templates.TEMPLATES
    # The language of problems that name none ('' = none), e.g. 'en' for English math
    # with the language-consistency reward; identified by Unicode script by default.
    c.language = ""
    c.language_identifier = "script"  # 'script' (real text) or 'words' (synthetic world)
    return c

  def check_split(self, split: str) -> None:
    if split not in self.SPLITS:
      raise TaskError(f"task {self.name!r} ({self.cfg.kind}) has no split {split!r}; "
                      f"splits: {list(self.SPLITS)}.")

  def prompt(self, question: str, tok: Any = None) -> str:
    return templates.render(self.cfg.template, question, tok)

  def problems(self, split: str) -> Sequence[Example]:
    """The finite list of {question, answer} dicts of `split`."""
    self.check_split(split)
    key = ("problems", split)
    if key not in self._cache:
      rows = self._problems(split)
      lang = self.cfg.get("language")
      if lang:
        rows = [r if r.get("language") else
                {**r, "language": lang, "language_identifier": self.cfg.language_identifier}
                for r in rows]
      self._cache[key] = rows
    return self._cache[key]

  def sft_examples(self, split: str) -> Sequence[Example]:
    """The finite list of {question, completion} dicts of `split`."""
    self.check_split(split)
    key = ("sft", split)
    if key not in self._cache:
      self._cache[key] = self._sft_examples(split)
    return self._cache[key]

  def draw(self, split: str, rng: np.random.Generator, n: int) -> list[Example]:
    """`n` fresh problems of an INFINITE split."""
    raise TaskError(f"task {self.name!r} cannot draw fresh problems; its splits are finite.")

  def _problems(self, split: str) -> list[Example]:
    raise TaskError(f"task {self.name!r} ({self.cfg.kind}) has no problems with answers.")

  def _sft_examples(self, split: str) -> list[Example]:
    raise TaskError(f"task {self.name!r} ({self.cfg.kind}) has no SFT completions; SFT "
                    f"needs a synthetic or a jsonl task with 'completion' rows.")


def _need(path: str, what: str) -> str:
  if not os.path.exists(path):
    raise TaskError(f"{path} not found; expected {what}.")
  return path


def read_jsonl(path: str, required: Sequence[str]) -> list[dict[str, Any]]:
  """Rows of a JSONL file; TaskError naming file:line for a bad line or a missing key."""
  with open(path, encoding="utf-8") as f:
    return [row for _, row in jsonl.records(f, path, required, TaskError)]


def _quiet_tfds() -> Callable[[], None]:
  import tensorflow_datasets as tfds
  tfds.disable_progress_bar()
  verbosity = logging.get_verbosity()
  logging.set_verbosity(logging.ERROR)  # TFDS announces every custom config
  return lambda: logging.set_verbosity(verbosity)


def _prepared(builder: str, split: str, workdir: str, **config: Any) -> list[Example]:
  """{question, answer[, worked]} of a TFDS builder's split, prepared once under DIR/data."""
  from r1jax.data import builders
  restore = _quiet_tfds()
  try:
    ds = builders.load_split(builder, split, data_dir=os.path.join(workdir, "data"), **config)
    # Builders with a worked solution (synthetic tasks) keep it: held-out SFT rows.
    return [{k: e[k] for k in ("question", "answer", "worked", "language") if k in e}
            for e in ds]
  finally:
    restore()
