"""Stage kinds: each a module `r1jax.stages.<kind>` with `default_config()`,
`validate(section, where, mesh_sizes)` and `run(run, name, section, source) -> Output`.

An experiment lists its stages in `config.stages` (names, run in order); each name is
a config section with a `kind` (one of KINDS) and an `input`: 'random' (fresh weights
of config.model and config.tokenizer), 'init' (whatever config.init says), an earlier
stage's name, or 'hf:DIR' (a Hugging Face checkpoint with its tokenizer.json). The same
kind may appear under several names (a cold start and a final SFT are both `sft`).
Adding a kind: one new module here and its name in KINDS.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from r1jax import configs

KINDS = ("pretrain", "sft", "grpo", "reward_model", "sample", "evaluate")


def get(kind: str) -> ModuleType:
  """The module of a stage kind."""
  if kind not in KINDS:
    raise configs.ConfigError(f"stage kind {kind!r}; allowed: {list(KINDS)}.")
  return importlib.import_module(f"r1jax.stages.{kind}")


def config(kind: str, **overrides: Any) -> configs.ConfigDict:
  """A stage section of `kind` with its defaults, overridden (unknown keys are errors)."""
  c = get(kind).default_config()
  configs.apply_overrides(c, overrides)
  return c
