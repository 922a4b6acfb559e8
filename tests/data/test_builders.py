"""TFDS builders (array_record, no TensorFlow): arithmetic task, GSM8K, MATH-500."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

from r1jax.data import arithmetic
from r1jax.data import bilingual
from r1jax.data import builders

GSM8K_TRAIN = [
    {"question": "Tom has 3 apples and buys 4 more. How many?",
     "answer": "He has 3+4=<<3+4=7>>7 apples.\n#### 7"},
    {"question": "A car costs $1,200 and a bike $34. Total?",
     "answer": "1,200+34=<<1200+34=1234>>1,234 dollars.\n#### 1,234"},
    {"question": "Unicode: how many ½-cups in 2 cups?",
     "answer": "2/(1/2)=4 \u00bd-cups\n####  4 "},
]
GSM8K_TEST = [
    {"question": "What is 5 times 6?", "answer": "5*6=30\n#### 30"},
    {"question": "Pay -3 then 10?", "answer": "It is -3+10=7\n#### 7"},
]
MATH500_TEST = [
    {"problem": "Compute $1+1$.", "solution": "$1+1=\\boxed{2}$.", "answer": "2",
     "subject": "Prealgebra", "level": 1, "unique_id": "test/prealgebra/1.json"},
    {"problem": "Solve $x^2=4$, $x>0$.", "solution": "$x=\\boxed{2}$", "answer": "2",
     "subject": "Algebra", "level": 3, "unique_id": "test/algebra/7.json"},
    {"problem": "What is $\\frac{1}{2}$?", "solution": "\\boxed{\\frac12}",
     "answer": "\\frac{1}{2}", "subject": "Algebra", "level": "Level 5",
     "unique_id": "test/algebra/9.json"},
]

ARITH = dict(digits=3, num_train=200, num_test=50, seed=7, eval_fraction=0.2)


def write_jsonl(path: pathlib.Path, records, extra_lines=()):
  path.parent.mkdir(parents=True, exist_ok=True)
  lines = [json.dumps(r) for r in records] + list(extra_lines)
  path.write_text("\n".join(lines) + "\n")
  return path


@pytest.fixture
def gsm8k_dir(tmp_path):
  src = tmp_path / "gsm8k_src"
  write_jsonl(src / "train.jsonl", GSM8K_TRAIN)
  write_jsonl(src / "test.jsonl", GSM8K_TEST)
  return src


@pytest.fixture
def math500_dir(tmp_path):
  src = tmp_path / "math500_src"
  write_jsonl(src / "test.jsonl", MATH500_TEST)
  return src


def prepared_files(data_dir):
  return {p: p.stat().st_mtime_ns for p in pathlib.Path(data_dir).rglob("*")
          if p.is_file() and "downloads" not in p.parts}


# ---------------------------------------------------------------------------------
# GSM8K


def test_gsm8k_roundtrip(tmp_path, gsm8k_dir):
  data_dir = tmp_path / "tfds"
  train = builders.load_split("gsm8k", "train", data_dir=data_dir, source_dir=gsm8k_dir)
  test = builders.load_split("gsm8k", "test", data_dir=data_dir, source_dir=gsm8k_dir)
  assert len(train) == 3 and len(test) == 2
  assert list(train) == [
      {"question": r["question"], "answer": a, "solution": r["answer"]}
      for r, a in zip(GSM8K_TRAIN, ["7", "1234", "4"])]
  assert test[1] == {"question": GSM8K_TEST[1]["question"], "answer": "7",
                     "solution": GSM8K_TEST[1]["answer"]}
  ex = train[0]
  assert all(type(v) is str for v in ex.values())
  assert train[-1] == train[2] and train[1:] == [train[1], train[2]]
  with pytest.raises(IndexError):
    train[3]
  assert [e["answer"] for e in builders.load_split(
      "gsm8k", "train[1:]", data_dir=data_dir, source_dir=gsm8k_dir)] == ["1234", "4"]


def test_gsm8k_final_answer():
  assert builders.gsm8k_final_answer("a\nb\n#### 1,234") == "1234"
  assert builders.gsm8k_final_answer("#### -5 ") == "-5"
  assert builders.gsm8k_final_answer("x #### 1 #### 2,000,000") == "2000000"
  with pytest.raises(ValueError):
    builders.gsm8k_final_answer("no marker 42")


def test_gsm8k_manual_dir(tmp_path, gsm8k_dir):
  ds = builders.load_split("gsm8k", "test", data_dir=tmp_path / "tfds",
                           manual_dir=gsm8k_dir)
  assert [e["answer"] for e in ds] == ["30", "7"]


def test_gsm8k_missing_file(tmp_path):
  src = tmp_path / "only_train"
  write_jsonl(src / "train.jsonl", GSM8K_TRAIN)
  with pytest.raises(builders.DatasetFileMissing) as e:
    builders.load_split("gsm8k", "train", data_dir=tmp_path / "tfds", source_dir=src)
  msg = str(e.value)
  assert str(src / "test.jsonl") in msg
  assert "github.com/openai/grade-school-math" in msg
  assert "grade_school_math/data/test.jsonl" in msg
  assert isinstance(e.value, FileNotFoundError)
  # Nothing half-prepared is left to be mistaken for a dataset.
  assert not list((tmp_path / "tfds").rglob("dataset_info.json"))


def test_gsm8k_missing_manual_dir(tmp_path):
  data_dir = tmp_path / "tfds"
  with pytest.raises(builders.DatasetFileMissing) as e:
    builders.load_split("gsm8k", "test", data_dir=data_dir)
  assert str(data_dir / "downloads" / "manual" / "train.jsonl") in str(e.value)


def test_gsm8k_malformed_line(tmp_path):
  src = tmp_path / "bad"
  write_jsonl(src / "test.jsonl", GSM8K_TEST)
  write_jsonl(src / "train.jsonl", GSM8K_TRAIN, extra_lines=['{"question": "q", "answ'])
  with pytest.raises(builders.MalformedLine, match=rf"{src / 'train.jsonl'}:4:"):
    builders.load_split("gsm8k", "train", data_dir=tmp_path / "tfds", source_dir=src)

  src2 = tmp_path / "nomarker"
  write_jsonl(src2 / "train.jsonl", GSM8K_TRAIN)
  write_jsonl(src2 / "test.jsonl", [GSM8K_TEST[0], {"question": "q", "answer": "42"}])
  with pytest.raises(builders.MalformedLine, match=rf"{src2 / 'test.jsonl'}:2:.*####"):
    builders.load_split("gsm8k", "test", data_dir=tmp_path / "tfds2", source_dir=src2)


# ---------------------------------------------------------------------------------
# MATH-500


def test_math500_roundtrip(tmp_path, math500_dir):
  ds = builders.load_split("math500", "test", data_dir=tmp_path / "tfds",
                           source_dir=math500_dir)
  assert len(ds) == 3
  want = [{"question": r["problem"], "answer": r["answer"], "solution": r["solution"],
           "subject": r["subject"], "level": lv, "unique_id": r["unique_id"]}
          for r, lv in zip(MATH500_TEST, [1, 3, 5])]
  assert list(ds) == want
  assert type(ds[0]["level"]) is int and type(ds[0]["question"]) is str
  with pytest.raises(ValueError, match="splits"):
    builders.load_split("math500", "train", data_dir=tmp_path / "tfds",
                        source_dir=math500_dir)


def test_math500_missing_file(tmp_path):
  src = tmp_path / "empty"
  src.mkdir()
  with pytest.raises(builders.DatasetFileMissing) as e:
    builders.load_split("math500", "test", data_dir=tmp_path / "tfds", source_dir=src)
  assert str(src / "test.jsonl") in str(e.value)
  assert "huggingface.co/datasets/HuggingFaceH4/MATH-500" in str(e.value)


def test_math500_malformed_line(tmp_path):
  src = tmp_path / "bad"
  rec = dict(MATH500_TEST[0])
  del rec["unique_id"]
  write_jsonl(src / "test.jsonl", MATH500_TEST[:2] + [rec])
  with pytest.raises(builders.MalformedLine,
                     match=rf"{src / 'test.jsonl'}:3:.*unique_id"):
    builders.load_split("math500", "test", data_dir=tmp_path / "tfds", source_dir=src)


# ---------------------------------------------------------------------------------
# Arithmetic task


def test_arithmetic_splits(tmp_path):
  data_dir = tmp_path / "tfds"
  train = builders.load_split("arithmetic", "train", data_dir=data_dir, **ARITH)
  test = builders.load_split("arithmetic", "test", data_dir=data_dir, **ARITH)
  assert len(train) == ARITH["num_train"] and len(test) == ARITH["num_test"]
  train_qs = {e["question"] for e in train}
  test_qs = {e["question"] for e in test}
  assert not train_qs & test_qs
  # Exactly the problems of r1jax.data.arithmetic, in order, with rule-checkable answers.
  want = arithmetic.sample_problems(7, 50, 3, split="eval", eval_fraction=0.2)
  assert [e["question"] for e in test] == [p.question for p in want]
  for e, p in zip(test, want):
    assert e == {"question": p.question, "answer": p.answer,
                 "worked": arithmetic.worked_steps(p), "language": ""}
    assert arithmetic.is_eval_problem(p, 0.2)
    assert int(e["answer"]) == p.a + p.b


def test_bilingual_last_digit_split(tmp_path):
  """With `languages`, each test problem is posed and worked in its language (the same
  problems as without, in the same order)."""
  cfg = dict(task="last_digit", min_terms=4, max_terms=7, num_train=10, num_test=60, seed=3)
  test = builders.load_split("arithmetic", "test", data_dir=tmp_path / "a",
                             languages="en,ve", **cfg)
  want = arithmetic.sample_last_digit_problems(3, 60, 4, 7, split="eval")
  assert {e["language"] for e in test} == {"en", "ve"}
  for e, p in zip(test, want, strict=True):
    code = bilingual.language_of(p, ("en", "ve"), 3)
    assert e == {"question": bilingual.question(p, code), "answer": p.answer,
                 "worked": bilingual.worked(p, code), "language": code}
  with pytest.raises(ValueError, match="needs task='last_digit'"):
    builders.load_split("arithmetic", "test", data_dir=tmp_path / "b", languages="en,ve",
                        task="addition")
  with pytest.raises(ValueError, match="distinct codes"):
    builders.load_split("arithmetic", "test", data_dir=tmp_path / "b", languages="en,fr",
                        **cfg)


def test_arithmetic_deterministic_and_seeded(tmp_path):
  a = builders.load_split("arithmetic", "train", data_dir=tmp_path / "a", **ARITH)
  b = builders.load_split("arithmetic", "train", data_dir=tmp_path / "b", **ARITH)
  assert list(a) == list(b)
  c = builders.load_split("arithmetic", "train", data_dir=tmp_path / "a",
                          **{**ARITH, "seed": 8})
  assert [e["question"] for e in a] != [e["question"] for e in c]
  # Different settings live side by side in one data_dir.
  configs = sorted(p.name for p in (tmp_path / "a" / "r1jax_arithmetic").iterdir())
  assert configs == ["d3_train200_test50_seed7_evalfrac0p2",
                     "d3_train200_test50_seed8_evalfrac0p2"]


def test_last_digit_task(tmp_path):
  """The demo's task through TFDS: the same problems as r1jax.data.arithmetic, with the
  held-out split disjoint from train as sets of digits."""
  kw = dict(task="last_digit", min_terms=4, max_terms=6, num_train=300, num_test=40,
            seed=3)
  train = builders.load_split("arithmetic", "train", data_dir=tmp_path, **kw)
  test = builders.load_split("arithmetic", "test", data_dir=tmp_path, **kw)
  want = arithmetic.sample_last_digit_problems(3, 40, 4, 6, split="eval")
  assert [e["question"] for e in test] == [p.question for p in want]
  for e, p in zip(test, want):
    assert e == {"question": p.question, "answer": p.answer,
                 "worked": arithmetic.worked_steps(p), "language": ""}
  digits = lambda q: frozenset(q.split("of ")[1].rstrip("?").split("+"))
  assert not {digits(e["question"]) for e in train} & {digits(e["question"]) for e in test}
  names = [p.name for p in (tmp_path / "r1jax_arithmetic").iterdir()]
  assert names == ["last_digit_t4-6_train300_test40_seed3_evalfrac0p1"]


def test_arithmetic_config_validation():
  with pytest.raises(ValueError, match="allowed"):
    builders.ArithmeticConfig(task="division")
  with pytest.raises(ValueError, match="<= 10 for last_digit"):
    builders.ArithmeticConfig(task="last_digit", min_terms=4, max_terms=12)
  with pytest.raises(ValueError, match="eval_fraction"):
    builders.ArithmeticConfig(eval_fraction=0.0)
  with pytest.raises(ValueError, match="digits"):
    builders.ArithmeticConfig(digits=0)
  assert builders.ArithmeticConfig().name == "d3_train10000_test500_seed0_evalfrac0p1"


# ---------------------------------------------------------------------------------
# Loading


def test_reprepare_is_noop(tmp_path, gsm8k_dir):
  data_dir = tmp_path / "tfds"
  builders.load_split("arithmetic", "train", data_dir=data_dir, **ARITH)
  builders.load_split("gsm8k", "train", data_dir=data_dir, source_dir=gsm8k_dir)
  before = prepared_files(data_dir)
  assert any(p.name.startswith("r1jax_gsm8k-train.array_record") for p in before)
  # Once prepared, the source files are no longer needed.
  for f in gsm8k_dir.iterdir():
    f.unlink()
  ds = builders.load_split("arithmetic", "test", data_dir=data_dir, **ARITH)
  gs = builders.load_split("gsm8k", "train", data_dir=data_dir, source_dir=gsm8k_dir)
  assert len(ds) == ARITH["num_test"] and gs[1]["answer"] == "1234"
  assert prepared_files(data_dir) == before


def test_unknown_name(tmp_path):
  with pytest.raises(ValueError, match=r"'arithmetic', 'gsm8k', 'math500'"):
    builders.load_split("gsm8", "train", data_dir=tmp_path)


def test_no_tensorflow(tmp_path, gsm8k_dir):
  """A fresh interpreter imports, prepares and reads without importing TensorFlow."""
  script = textwrap.dedent(f"""
      import importlib.util, sys
      from r1jax.data import builders
      ds = builders.load_split("gsm8k", "test", data_dir={str(tmp_path / 'tfds')!r},
                               source_dir={str(gsm8k_dir)!r})
      ar = builders.load_split("arithmetic", "test", data_dir={str(tmp_path / 'tfds')!r},
                               digits=2, num_train=5, num_test=5)
      assert ds[0]["answer"] == "30" and len(ar) == 5
      assert "tensorflow" not in sys.modules, "TensorFlow was imported"
      print("ok", importlib.util.find_spec("tensorflow") is None)
      """)
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  root = pathlib.Path(__file__).resolve().parents[2]
  out = subprocess.run([sys.executable, "-c", script], cwd=root, env=env,
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.splitlines()[-1].split()[0] == "ok", out.stdout
  # In-process too (whatever the other tests did): no real TensorFlow module loaded.
  assert "tensorflow" not in sys.modules
