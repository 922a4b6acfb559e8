"""Tasks: where a stage's problems and examples come from, behind one interface.

A task is named in the experiment config (`config.tasks.<name>`, a section with a
`kind`) and referred to by stages as `"<name>:<split>"`. Kinds:

  synthetic  the generated tasks of `r1jax.data.arithmetic` (train: drawn afresh from a
             seed, never ending; test: the TFDS builder's held-out split), optionally
             in the two languages of `r1jax.data.bilingual` and in R1's output format
  gsm8k      GSM8K's original JSONL, `<data_dir>/gsm8k/{train,test}.jsonl`
  math       MATH train, `<data_dir>/math/train.jsonl` ({"problem", "solution"}; the answer
             is the last \\boxed{} of the solution)
  math500    MATH-500, `<data_dir>/math500/test.jsonl`
  jsonl      any JSONL files (a glob per split): {"prompt", "answer"} rows for RL and
             evaluation, {"prompt", "completion"} rows for SFT
  code       programming problems, `<data_dir>/code/<split>.jsonl` (or a glob per split):
             {"prompt", "tests"} rows, tests as r1jax.rewards.code takes them (stdin/stdout
             or call/expected); scored by running the last fenced Python block
  general    the miniature world's non-reasoning requests (r1jax.data.general), with
             noisy SFT rows and preference pairs for reward models

Every task serves `problems(split)` (dicts with `question` and `answer`) and
`sft_examples(split)` (dicts with `question` and `completion`); `question` is put into
the prompt by the task's `template` (r1jax.data.templates). Training order over a
finite pool is a pure function of (seed, step) (r1jax.data.streams), so resumed runs
see the same data. Adding a kind: a class with its KIND (and `default_config` for
extra fields), here for generated worlds or in r1jax.data.file_tasks for data on disk,
listed in KINDS.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from absl import logging

from r1jax import configs
from r1jax.data import arithmetic, bilingual, streams
from r1jax.data.file_tasks import GSM8K, MATH, MATH500, Code, Jsonl
from r1jax.data.task_base import Example, Task, TaskError, _prepared, read_jsonl

__all__ = ["Example", "Task", "TaskError", "read_jsonl", "KINDS", "config", "parse_ref",
           "Registry", "Stream", "Synthetic", "General", "GSM8K", "MATH", "MATH500", "Jsonl",
           "Code"]

class Synthetic(Task):
  """The generated tasks of r1jax.data.arithmetic: worked/direct completions in the
  R1-Zero tag format (or R1's cold-start format); held-out problems from a hash split
  never drawn for training. With `languages`, last-digit problems are posed and worked
  in the miniature world's languages (r1jax.data.bilingual) and every problem carries
  its `language` (for the language-consistency reward and the mixing metrics)."""

  KIND = "synthetic"
  INFINITE = ("train",)
  FORMATS = ("r1_zero", "r1")

  @classmethod
  def default_config(cls) -> configs.ConfigDict:
    c = super().default_config()
    c.name = "last_digit"  # arithmetic.TASKS: 'last_digit', 'digit_sum' or 'addition'.
    c.digits = 3  # addition: operands have 1..digits digits.
    c.min_terms = 4  # last_digit/digit_sum: fewest single-digit terms.
    c.max_terms = 7  # last_digit/digit_sum: most single-digit terms.
    c.worked_fraction = 0.5  # Share of worked (step-by-step) solutions in corpora.
    c.num_test = 500  # Held-out problems in the test split (TFDS builder).
    c.num_sft = 2000  # Examples in the finite SFT train split (r1: cold-start data).
    c.languages = ()  # last_digit: bilingual.LANGUAGES codes, the first dominant; () = none.
    c.mix_fraction = 0.0  # Share of worked corpus CoTs of non-dominant prompts that switch.
    c.output_format = "r1_zero"  # 'r1_zero' (<think>/<answer> tags) or 'r1' (cold start).
    c.sft_language_shares = ()  # r1: share of SFT rows per language; () = as drawn.
    return c

  def __init__(self, name: str, cfg: Any, **kwargs: Any):
    super().__init__(name, cfg, **kwargs)
    where = f"tasks.{name}"
    if cfg.output_format not in self.FORMATS:
      raise TaskError(f"{where}.output_format={cfg.output_format!r}; allowed: {self.FORMATS}.")
    if cfg.languages:
      if isinstance(cfg.languages, str) or cfg.name != "last_digit":
        raise TaskError(f"{where}.languages={cfg.languages!r}: a tuple of codes, for the "
                        f"'last_digit' task only.")
      try:
        bilingual.check_languages(cfg.languages)
      except ValueError as e:
        raise TaskError(f"{where}: {e}") from None
    elif cfg.output_format == "r1" or cfg.mix_fraction:
      raise TaskError(f"{where}: output_format='r1' and mix_fraction need languages, "
                      f"e.g. ('en', 've').")
    shares = cfg.sft_language_shares
    if shares and (len(shares) != len(cfg.languages) or min(shares) < 0 or max(shares) <= 0):
      raise TaskError(f"{where}.sft_language_shares={tuple(shares)}: one non-negative share "
                      f"per language of {tuple(cfg.languages)}, not all 0 (or () for as "
                      f"drawn).")
    if not 0 <= cfg.mix_fraction <= 1:
      raise TaskError(f"{where}.mix_fraction={cfg.mix_fraction}; must be in [0, 1].")

  def _sample(self, seed: int, n: int, split: str) -> list[Any]:
    c = self.cfg
    try:
      return arithmetic.sample_task(c.name, seed, n, split=split, digits=c.digits,
                                    min_terms=c.min_terms, max_terms=c.max_terms)
    except ValueError as e:  # unknown task name or bad term counts
      raise TaskError(f"task {self.name!r} (name={c.name!r}): {e}") from None

  def _language(self, p: Any) -> str | None:
    langs = self.cfg.languages
    return bilingual.language_of(p, langs, self.seed) if langs else None

  def _problem(self, p: Any) -> Example:
    code = self._language(p)
    if code is None:
      return {"question": p.question, "answer": p.answer}
    return {"question": bilingual.question(p, code), "answer": p.answer, "language": code,
            "language_identifier": "words"}

  def _completion(self, p: Any, worked: bool, rng: np.random.Generator) -> str:
    """A corpus completion in the task's output format (CoT blank when not worked)."""
    c = self.cfg
    code = self._language(p)
    if not worked:
      cot = ""
    elif code is None:
      cot = arithmetic.worked_steps(p)
    else:
      cot = bilingual.corpus_reasoning(p, code, c.languages, c.mix_fraction, rng)
    if c.output_format == "r1":
      return bilingual.r1_completion(cot, p.answer, code)
    return arithmetic.tagged(cot, p.answer)

  def draw(self, split: str, rng: np.random.Generator, n: int) -> list[Example]:
    self.check_split(split)
    return [self._problem(p) for p in self._sample(int(rng.integers(2**31)), n, "train")]

  def corpus_examples(self, rng: np.random.Generator, n: int) -> list[tuple[str, str]]:
    """(prompt, completion) of `n` fresh train problems, worked with probability
    worked_fraction (else answered directly): the base model's pretraining corpus."""
    probs = self._sample(int(rng.integers(2**31)), n, "train")
    out = []
    for p in probs:
      worked = rng.random() < self.cfg.worked_fraction
      out.append((self.prompt(self._problem(p)["question"]), self._completion(p, worked, rng)))
    return out

  def corpus_texts(self, n: int) -> list[str]:
    """Prompt + completion texts for training a tokenizer (a pure function of seed)."""
    rng = np.random.default_rng(self.seed + 7)
    out = []
    for p in self._sample(self.seed, n, "train"):
      worked = rng.random() < self.cfg.worked_fraction
      out.append(self.prompt(self._problem(p)["question"]) + self._completion(p, worked, rng))
    return out

  def longest_examples(self, n: int = 512) -> list[tuple[str, str]]:
    """(prompt, worked completion) of `n` sampled train problems (length checks)."""
    rng = np.random.default_rng(self.seed + 99)
    return [(self.prompt(self._problem(p)["question"]), self._completion(p, True, rng))
            for p in self._sample(self.seed + 99, n, "train")]

  def _problems(self, split: str) -> list[Example]:
    if split == "train":
      return [self._problem(p) for p in self._sample(self.seed, self.cfg.num_sft, "train")]
    c = self.cfg
    rows = _prepared("arithmetic", "test", self.workdir, task=c.name, digits=c.digits,
                     min_terms=c.min_terms, max_terms=c.max_terms, num_train=1,
                     num_test=c.num_test, seed=self.seed + 1000,
                     languages=",".join(c.languages))
    for r in rows:
      if r.get("language"):
        r["language_identifier"] = "words"
      else:  # the builder writes '' without languages
        r.pop("language", None)
    return rows

  def _sft_examples(self, split: str) -> list[Example]:
    c = self.cfg
    if split != "train":  # held-out worked solutions
      if c.output_format == "r1":
        return [{"question": p["question"],
                 "completion": bilingual.r1_completion(p["worked"], p["answer"], p["language"])}
                for p in self.problems(split)]
      return [{"question": p["question"], "completion": arithmetic.tagged(p["worked"],
                                                                          p["answer"])}
              for p in self.problems(split)]
    if c.output_format == "r1":
      rows, rejected = bilingual.cold_start(self.seed, c.num_sft, c.languages, c.mix_fraction,
                                            c.worked_fraction, c.min_terms, c.max_terms,
                                            shares=_normalised(c.sft_language_shares))
      logging.info("task %s: %d cold-start examples; the readability filter rejected %s",
                   self.name, len(rows), rejected)
      return rows
    return [{"question": p.question, "completion": arithmetic.completion(p, "worked")}
            for p in self._sample(self.seed, c.num_sft, "train")]


def _normalised(shares: Sequence[float]) -> tuple[float, ...]:
  total = sum(shares)
  return tuple(x / total for x in shares) if shares else ()


class General(Task):
  """The miniature world's general (non-reasoning) requests (r1jax.data.general): greet,
  copy, translate a number word, say who it is, refuse to tell the secret. Problems
  carry `type: general` (RL for all scenarios routes them to the reward models) and the
  gold summary as `answer`; SFT rows are the world's noisy non-reasoning data; the task
  also serves preference pairs for reward models (train: with label noise; test: clean).
  """

  KIND = "general"

  @classmethod
  def default_config(cls) -> configs.ConfigDict:
    c = super().default_config()
    c.template = "r1"
    c.languages = ("en", "ve")  # Languages requests are posed in (bilingual.LANGUAGES).
    c.num_train = 2000  # Requests in the train split (RL prompts).
    c.num_test = 200  # Held-out requests.
    c.num_sft = 1000  # Non-reasoning SFT rows (train).
    c.unhelpful_fraction = 0.3  # SFT rows with a verbose or wrong summary.
    c.harmful_fraction = 0.3  # SFT rows of secret requests that leak the secret.
    c.num_pairs = 2000  # Preference pairs in the train split.
    c.num_heldout_pairs = 400  # Preference pairs in the test split (no label noise).
    c.label_noise = 0.1  # Share of train pairs with chosen and rejected swapped.
    return c

  def __init__(self, name: str, cfg: Any, **kwargs: Any):
    super().__init__(name, cfg, **kwargs)
    from r1jax.data import general
    self.world = general
    try:
      bilingual.check_languages(cfg.languages)
      for key in ("unhelpful_fraction", "harmful_fraction", "label_noise"):
        if not 0 <= cfg[key] <= 1:
          raise ValueError(f"{key}={cfg[key]}; must be in [0, 1]")
    except ValueError as e:
      raise TaskError(f"tasks.{name}: {e}.") from None

  def _problems(self, split: str) -> list[Example]:
    n = self.cfg.num_train if split == "train" else self.cfg.num_test
    return self.world.requests(self.seed, n, split, self.cfg.languages)

  def _sft_examples(self, split: str) -> list[Example]:
    c = self.cfg
    if split == "train":
      return self.world.sft_examples(self.seed, c.num_sft, languages=c.languages,
                                     unhelpful_fraction=c.unhelpful_fraction,
                                     harmful_fraction=c.harmful_fraction)
    rng = np.random.default_rng([self.seed, 17])
    return [{**p, "completion": self.world.response(p, rng=rng)} for p in self.problems(split)]

  def preference_pairs(self, split: str, preference: str) -> list[Example]:
    """{question, chosen, rejected} pairs ranking `preference` ('helpful'/'harmless')."""
    self.check_split(split)
    c = self.cfg
    n, noise = ((c.num_pairs, c.label_noise) if split == "train"
                else (c.num_heldout_pairs, 0.0))
    try:
      return self.world.preference_pairs(self.seed, n, preference, split, label_noise=noise,
                                         languages=c.languages)
    except ValueError as e:
      raise TaskError(f"task {self.name!r}: {e}") from None

  def corpus_texts(self, n: int) -> list[str]:
    return self.world.corpus_texts(self.seed, n, self.cfg.languages)

  def corpus_examples(self, rng: np.random.Generator, n: int) -> list[tuple[str, str]]:
    """(prompt, plain answer) of `n` fresh train requests, for a base model's corpus:
    the SFT rows' distribution (flaws included, as in web text) without R1's format,
    the answer alone (a base model has not seen the reasoning/summary format)."""
    c = self.cfg
    rows = self.world.sft_examples(int(rng.integers(2**31)), n, languages=c.languages,
                                   unhelpful_fraction=c.unhelpful_fraction,
                                   harmful_fraction=c.harmful_fraction)
    return [(self.prompt(r["question"]), " " + self.world.summary_of(r["completion"]))
            for r in rows]

  def longest_examples(self, n: int = 512) -> list[tuple[str, str]]:
    return self.corpus_examples(np.random.default_rng(self.seed + 99), n)


KINDS: dict[str, type[Task]] = {c.KIND: c for c in (Synthetic, GSM8K, MATH, MATH500, Jsonl,
                                                    Code, General)}


def config(kind: str, **overrides: Any) -> configs.ConfigDict:
  """A task section of `kind` with its defaults, overridden (unknown keys are errors)."""
  if kind not in KINDS:
    raise configs.ConfigError(f"task kind {kind!r}; allowed: {sorted(KINDS)}.")
  c = KINDS[kind].default_config()
  configs.apply_overrides(c, overrides)
  return c


def parse_ref(ref: str) -> tuple[str, str]:
  """'name:split' -> (name, split)."""
  name, sep, split = ref.partition(":")
  if not sep or not name or not split:
    raise configs.ConfigError(f"data reference {ref!r}; expected 'task:split', e.g. "
                              f"'gsm8k:train'.")
  return name, split


class Registry:
  """The run's tasks (config.tasks), built on first use."""

  def __init__(self, config: Any, workdir: str):
    self.config, self.workdir = config, workdir
    self._tasks: dict[str, Task] = {}

  def get(self, name: str) -> Task:
    if name not in self._tasks:
      if name not in self.config.tasks:
        raise configs.ConfigError(f"no task {name!r} in config.tasks; tasks: "
                                  f"{sorted(self.config.tasks.keys())}.")
      cfg = self.config.tasks[name]
      if cfg.kind not in KINDS:
        raise configs.ConfigError(f"tasks.{name}.kind={cfg.kind!r}; allowed: {sorted(KINDS)}.")
      self._tasks[name] = KINDS[cfg.kind](name, cfg, data_dir=self.config.data_dir,
                                          workdir=self.workdir, seed=self.config.seed)
    return self._tasks[name]

  def resolve(self, ref: str) -> tuple[Task, str]:
    name, split = parse_ref(ref)
    task = self.get(name)
    task.check_split(split)
    return task, split


Stream = streams.Stream  # training streams live in r1jax.data.streams
