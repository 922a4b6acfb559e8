"""TFDS dataset builders: the synthetic arithmetic task, GSM8K and MATH-500.

All three write ArrayRecord files and are read back with `as_data_source` (random
access), which keeps TensorFlow out of the process entirely: tensorflow-datasets only
imports TensorFlow lazily, for `tf.data` pipelines and TFRecord files, neither of
which is used here.

    ds = load_split("gsm8k", "test", data_dir="~/r1jax_data", source_dir="~/gsm8k")
    len(ds), ds[0]["question"], ds[0]["answer"]

GSM8K and MATH-500 are never downloaded: the builders read the official JSONL files
from a local directory (the config's `source_dir`, else the TFDS manual directory,
`<data_dir>/downloads/manual` unless `manual_dir` says otherwise). A missing file
raises `DatasetFileMissing`, which names the file expected and where to get it.

Prepared data lives under `<data_dir>/<builder name>/<config name>/<version>/`; a
second `load_split` with the same settings reuses it. The arithmetic config's name
encodes all of its settings, so different settings never collide. The GSM8K and
MATH-500 configs are named `default` whatever `source_dir` is: the official files do
not change, and once prepared the source directory is no longer read.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from r1jax.data import arithmetic, bilingual, jsonl

_ARRAY_RECORD = tfds.core.FileFormat.ARRAY_RECORD


class DatasetFileMissing(FileNotFoundError):
  """A source file of a dataset is not where the builder looks for it."""


class MalformedLine(ValueError):
  """A line of a source JSONL file cannot be parsed (names the file and line)."""


# ----------------------------------------------------------------------------------
# Shared helpers.


class _Builder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base: configs are always built from parameters (no predefined BUILDER_CONFIGS).

  TFDS refuses a custom config named like a predefined one, so none are predefined;
  `config=None` means the config class with its defaults.
  """

  CONFIG_CLASS: type[tfds.core.BuilderConfig]

  def __init__(self, *, config: tfds.core.BuilderConfig | str | None = None, **kwargs):
    if config is None:
      config = self.CONFIG_CLASS()
    super().__init__(config=config, **kwargs)


def _source_dir(builder: tfds.core.GeneratorBasedBuilder, dl_manager) -> epath.Path:
  """The config's `source_dir`, else the TFDS manual directory."""
  if builder.builder_config.source_dir:
    return epath.Path(builder.builder_config.source_dir).expanduser()
  # `dl_manager.manual_dir` asserts that the directory exists and is non-empty before
  # saying which one it is; the path is needed to name the missing file, so read the
  # attribute behind it (default as in DatasetBuilder._make_download_manager).
  manual = getattr(dl_manager, "_manual_dir", None)
  return epath.Path(manual or builder.data_dir_root / "downloads" / "manual")


def _require(path: epath.Path, *, dataset: str, how_to_get: str) -> epath.Path:
  if not path.exists():
    raise DatasetFileMissing(
        f"{dataset}: file not found: {path}\n"
        f"Get it from {how_to_get} and put it at {path} (the directory is the config's "
        f"`source_dir`, else `manual_dir`; it is only read when the dataset is first "
        f"prepared).")
  return path


def _read_jsonl(path: epath.Path, required: Sequence[str]) -> Iterator[tuple[int, dict]]:
  """(1-based line number, record) for each non-blank line; MalformedLine otherwise."""
  with path.open() as f:
    yield from jsonl.records(f, path, required, MalformedLine)


# ----------------------------------------------------------------------------------
# The synthetic arithmetic task.


def _fmt_float(x: float) -> str:
  return repr(float(x)).replace(".", "p").replace("-", "m")


@dataclasses.dataclass(eq=False)
class ArithmeticConfig(tfds.core.BuilderConfig):
  """Settings of the arithmetic task; the default name encodes every one of them."""

  name: str = ""
  task: str = "addition"  # One of arithmetic.TASKS.
  digits: int = 3  # addition: operands of 1..digits digits.
  min_terms: int = 4  # digit_sum / last_digit: fewest terms.
  max_terms: int = 7  # digit_sum / last_digit: most terms.
  num_train: int = 10_000
  num_test: int = 500
  seed: int = 0
  eval_fraction: float = 0.1
  # last_digit only: comma-separated codes of r1jax.data.bilingual (e.g. 'en,ve'); each
  # problem is posed, and worked, in one ('' = English questions, symbolic steps).
  languages: str = ""

  def __post_init__(self):
    if self.task not in arithmetic.TASKS:
      raise ValueError(f"task={self.task!r}; allowed: {arithmetic.TASKS}.")
    if self.languages:
      if self.task != "last_digit":
        raise ValueError(f"languages={self.languages!r} needs task='last_digit'.")
      bilingual.check_languages(self.languages.split(","))
    if self.digits < 1:
      raise ValueError(f"digits={self.digits}; must be >= 1.")
    if self.task != "addition" and not 2 <= self.min_terms <= self.max_terms <= (
        10 if self.task == "last_digit" else 10**6):
      raise ValueError(f"min_terms={self.min_terms}, max_terms={self.max_terms}; need "
                       "2 <= min_terms <= max_terms (<= 10 for last_digit: distinct digits).")
    if self.num_train < 0 or self.num_test < 0:
      raise ValueError(f"num_train={self.num_train}, num_test={self.num_test}; "
                       "must be >= 0.")
    if not 0.0 < self.eval_fraction < 1.0:
      # 0 would leave no test problems to draw (and 1 no train ones): sampling never ends.
      raise ValueError(f"eval_fraction={self.eval_fraction}; must be in (0, 1).")
    if self.task == "addition":
      shape, what = f"d{self.digits}", f"Addition of 1..{self.digits}-digit numbers"
    else:
      shape = f"{self.task}_t{self.min_terms}-{self.max_terms}"
      if self.languages:
        shape += "_" + self.languages.replace(",", "-")
      what = f"{self.task} over {self.min_terms}..{self.max_terms} digits"
    if not self.name:
      self.name = (f"{shape}_train{self.num_train}_test{self.num_test}"
                   f"_seed{self.seed}_evalfrac{_fmt_float(self.eval_fraction)}")
    if not self.description:
      self.description = (
          f"{what}: {self.num_train} train and {self.num_test} test problems from seed "
          f"{self.seed}; test problems come from a hash split holding "
          f"{self.eval_fraction:g} of all problems.")


class ArithmeticTask(_Builder):
  """The synthetic tasks of `r1jax.data.arithmetic` (multi-digit addition, digit sums,
  last digit of a sum of distinct digits), generated offline from a seed.

  Splits: `train` and `test`. Test problems come from the hash-defined eval set, so no
  test problem (operand pair; set of digits for last_digit) appears in train. Within a split problems are
  drawn with replacement and may repeat. Features: `question`, `answer`, `worked` (the
  step-by-step solution; TFDS has one feature set for all splits, so test examples
  carry it too; evaluation uses `question` and `answer` only) and `language` (the
  problem's language with config `languages`, else '').
  """

  name = "r1jax_arithmetic"
  VERSION = tfds.core.Version("1.2.0")
  RELEASE_NOTES = {"1.0.0": "Initial release.",
                   "1.1.0": "Tasks digit_sum and last_digit (config `task`).",
                   "1.2.0": "Problems in two languages (config `languages`, feature "
                            "`language`)."}
  CONFIG_CLASS = ArithmeticConfig

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "question": tfds.features.Text(),
            "answer": tfds.features.Text(),
            "worked": tfds.features.Text(),
            "language": tfds.features.Text(),
        }),
        supervised_keys=("question", "answer"),
        # Keep generation order: `ds[i]` is the i-th problem / the i-th line of the
        # source file (TFDS would otherwise order examples by a hash of their key).
        # Training shuffles for itself.
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    c = self.builder_config
    return {
        "train": self._generate_examples("train", c.num_train),
        "test": self._generate_examples("eval", c.num_test),
    }

  def _generate_examples(self, split: str, n: int):
    c = self.builder_config
    problems = arithmetic.sample_task(
        c.task, c.seed, n, split=split, digits=c.digits, min_terms=c.min_terms,
        max_terms=c.max_terms, eval_fraction=c.eval_fraction)
    languages = c.languages.split(",") if c.languages else []
    for i, p in enumerate(problems):
      if languages:
        code = bilingual.language_of(p, languages, c.seed)
        yield i, {"question": bilingual.question(p, code), "answer": p.answer,
                  "worked": bilingual.worked(p, code), "language": code}
      else:
        yield i, {"question": p.question, "answer": p.answer,
                  "worked": arithmetic.worked_steps(p), "language": ""}


# ----------------------------------------------------------------------------------
# GSM8K.


@dataclasses.dataclass(eq=False)
class GSM8KConfig(tfds.core.BuilderConfig):
  """`source_dir` holds the official `train.jsonl` and `test.jsonl`."""

  name: str = "default"
  source_dir: str | None = None


_GSM8K_SOURCE = ("https://github.com/openai/grade-school-math "
                 "(grade_school_math/data/{split}.jsonl)")


def gsm8k_final_answer(answer_text: str) -> str:
  """The number after the last '####' with thousands separators removed ('1,234' -> '1234').

  Raises ValueError if there is no '####'.
  """
  if "####" not in answer_text:
    raise ValueError("no '####' marking the final answer")
  return answer_text.rsplit("####", 1)[1].strip().replace(",", "")


class GSM8K(_Builder):
  """GSM8K (Cobbe et al., 2021) from the official JSONL files in a local directory.

  Features: `question`; `answer`, the final number after '####' (commas removed);
  `solution`, the original answer text (reasoning and the '#### N' line).
  """

  name = "r1jax_gsm8k"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  CONFIG_CLASS = GSM8KConfig
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Put train.jsonl and test.jsonl from https://github.com/openai/grade-school-math "
      "(grade_school_math/data/) in the manual directory, or pass "
      "GSM8KConfig(source_dir=...).")

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "question": tfds.features.Text(),
            "answer": tfds.features.Text(),
            "solution": tfds.features.Text(),
        }),
        supervised_keys=("question", "answer"),
        # Keep generation order: `ds[i]` is the i-th problem / the i-th line of the
        # source file (TFDS would otherwise order examples by a hash of their key).
        # Training shuffles for itself.
        disable_shuffling=True,
        homepage="https://github.com/openai/grade-school-math",
    )

  def _split_generators(self, dl_manager):
    src = _source_dir(self, dl_manager)
    # Check every file before generating any split, so one error names what is missing.
    paths = {split: _require(src / f"{split}.jsonl", dataset="GSM8K",
                             how_to_get=_GSM8K_SOURCE.format(split=split))
             for split in ("train", "test")}
    return {split: self._generate_examples(path) for split, path in paths.items()}

  def _generate_examples(self, path: epath.Path):
    for lineno, r in _read_jsonl(path, ("question", "answer")):
      try:
        final = gsm8k_final_answer(r["answer"])
      except ValueError as e:
        raise MalformedLine(f"{path}:{lineno}: {e} in 'answer'.") from None
      yield lineno, {"question": r["question"], "answer": final, "solution": r["answer"]}


# ----------------------------------------------------------------------------------
# MATH-500.


@dataclasses.dataclass(eq=False)
class MATH500Config(tfds.core.BuilderConfig):
  """`source_dir` holds `test.jsonl` of HuggingFaceH4/MATH-500."""

  name: str = "default"
  source_dir: str | None = None


_MATH500_SOURCE = "https://huggingface.co/datasets/HuggingFaceH4/MATH-500 (test.jsonl)"


def _level(value: Any) -> int:
  """MATH levels are ints in MATH-500 ('Level 3' in the original MATH release)."""
  if isinstance(value, bool):
    raise ValueError(f"level={value!r}")
  if isinstance(value, int):
    return value
  if isinstance(value, str):
    s = value.strip()
    if s.lower().startswith("level"):
      s = s[len("level"):].strip()
    return int(s)
  raise ValueError(f"level={value!r}")


class MATH500(_Builder):
  """MATH-500 (the PRM800K subset of MATH test) from the local `test.jsonl`.

  One split, `test`. Features: `question` (the problem), `answer`, `solution`,
  `subject`, `level` (int) and `unique_id`.
  """

  name = "r1jax_math500"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  CONFIG_CLASS = MATH500Config
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Put test.jsonl from https://huggingface.co/datasets/HuggingFaceH4/MATH-500 in "
      "the manual directory, or pass MATH500Config(source_dir=...).")

  _KEYS = ("problem", "solution", "answer", "subject", "level", "unique_id")

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "question": tfds.features.Text(),
            "answer": tfds.features.Text(),
            "solution": tfds.features.Text(),
            "subject": tfds.features.Text(),
            "level": np.int32,
            "unique_id": tfds.features.Text(),
        }),
        supervised_keys=("question", "answer"),
        # Keep generation order: `ds[i]` is the i-th problem / the i-th line of the
        # source file (TFDS would otherwise order examples by a hash of their key).
        # Training shuffles for itself.
        disable_shuffling=True,
        homepage="https://huggingface.co/datasets/HuggingFaceH4/MATH-500",
    )

  def _split_generators(self, dl_manager):
    path = _require(_source_dir(self, dl_manager) / "test.jsonl", dataset="MATH-500",
                    how_to_get=_MATH500_SOURCE)
    return {"test": self._generate_examples(path)}

  def _generate_examples(self, path: epath.Path):
    for lineno, r in _read_jsonl(path, self._KEYS):
      try:
        level = _level(r["level"])
      except ValueError:
        raise MalformedLine(f"{path}:{lineno}: 'level' must be an int or 'Level N', "
                            f"got {r['level']!r}.") from None
      texts = {k: r[k] for k in ("problem", "solution", "answer", "subject", "unique_id")}
      for k, v in texts.items():
        if not isinstance(v, str):
          raise MalformedLine(f"{path}:{lineno}: {k!r} must be a string, got "
                              f"{type(v).__name__}.")
      yield lineno, {"question": texts["problem"], "answer": texts["answer"],
                     "solution": texts["solution"], "subject": texts["subject"],
                     "level": level, "unique_id": texts["unique_id"]}


# ----------------------------------------------------------------------------------
# Loading.

BUILDERS: dict[str, type[_Builder]] = {
    "arithmetic": ArithmeticTask,
    "gsm8k": GSM8K,
    "math500": MATH500,
}


def _to_python(x: Any) -> Any:
  if isinstance(x, dict):
    return {k: _to_python(v) for k, v in x.items()}
  if isinstance(x, bytes):
    return x.decode("utf-8")
  if isinstance(x, np.ndarray) and x.ndim == 0:
    x = x[()]
  if isinstance(x, np.bytes_):
    return bytes(x).decode("utf-8")
  if isinstance(x, np.generic):
    return x.item()
  return x


class DataSource(Sequence):
  """Random access to one split; examples are dicts of Python `str` / `int`."""

  def __init__(self, source: Sequence[Any]):
    self.source = source  # The tfds ArrayRecordDataSource (values are bytes / numpy).

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, index):
    if isinstance(index, slice):
      return [self[i] for i in range(*index.indices(len(self)))]
    index = int(index)
    if index < 0:
      index += len(self)
    if not 0 <= index < len(self):
      raise IndexError(f"index {index} out of range for {len(self)} examples")
    return _to_python(self.source[index])

  def __getitems__(self, indices: Sequence[int]) -> list[dict]:
    return [_to_python(x) for x in self.source.__getitems__([int(i) for i in indices])]

  def __iter__(self) -> Iterator[dict]:
    for i in range(len(self)):
      yield self[i]

  def __repr__(self) -> str:
    return f"DataSource({len(self)} examples from {self.source!r})"


def make_builder(name: str, *, data_dir: str | os.PathLike,
                 **config_kwargs) -> tfds.core.GeneratorBasedBuilder:
  """The builder for `name` ('arithmetic', 'gsm8k', 'math500') with a config from kwargs."""
  if name not in BUILDERS:
    raise ValueError(f"Unknown dataset {name!r}; valid names: {sorted(BUILDERS)}.")
  cls = BUILDERS[name]
  return cls(config=cls.CONFIG_CLASS(**config_kwargs),
             data_dir=os.fspath(epath.Path(data_dir).expanduser()),
             file_format=_ARRAY_RECORD)


def load_split(name: str, split: str, *, data_dir: str | os.PathLike,
               manual_dir: str | os.PathLike | None = None,
               **config_kwargs) -> DataSource:
  """Prepares `name` under `data_dir` if not done yet and returns `split` for random access.

  `name`: 'arithmetic', 'gsm8k' or 'math500'. `config_kwargs` go to the config class
  (`ArithmeticConfig`: digits, num_train, num_test, seed, eval_fraction; `GSM8KConfig`
  and `MATH500Config`: source_dir). `manual_dir` is where GSM8K / MATH-500 files are
  looked for when no `source_dir` is given. `split` accepts TFDS slicing ('train[:100]').
  In a multi-process run process 0 prepares while the others wait (r1jax.distributed).
  """
  from r1jax import distributed

  builder = make_builder(name, data_dir=data_dir, **config_kwargs)
  download_config = tfds.download.DownloadConfig(
      manual_dir=None if manual_dir is None else os.fspath(manual_dir),
      compute_stats=tfds.download.ComputeStatsMode.SKIP,
  )
  if distributed.is_primary():
    builder.download_and_prepare(file_format=_ARRAY_RECORD, download_config=download_config)
  distributed.barrier(f"prepare {builder.data_dir}")
  if not distributed.is_primary():  # reads what process 0 wrote
    builder = make_builder(name, data_dir=data_dir, **config_kwargs)
  splits = list(builder.info.splits)
  for part in split.split("+"):  # TFDS split syntax: 'train[:10%]+test'.
    if part.split("[", 1)[0].strip() not in splits:
      raise ValueError(f"Dataset {name!r} has no split {part!r}; splits: {sorted(splits)}.")
  return DataSource(builder.as_data_source(split=split))
