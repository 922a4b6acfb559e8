"""extract_answer(lenient=True), the evaluation-only extraction, and the harness flag that
selects it (python -m r1jax.evaluate --lenient_extraction)."""

from __future__ import annotations

import json
import os
import time
import types

import pytest

from r1jax.rewards.math_equiv import extract_answer, is_equiv

LENIENT = [
    ("The answer is 5.", "5"),
    ("So the final answer is $\\frac{1}{2}$. I hope it is correct.", "\\frac{1}{2}"),
    ("Final Answer: The final answer is 18. I hope it is correct.", "18"),
    ("**Answer:** 42", "42"),
    ("Answer: x = 3\nLet me double-check.", "x = 3"),
    ("The answer is: \\(3\\sqrt{2}\\)", "3\\sqrt{2}"),
    ("Natalia sold 48 + 24 = 72 clips.\n#### 72", "72"),
    ("Thus the answer is -2/3.", "-2/3"),
    ("answer is 3.5. Done", "3.5"),
    ("Therefore $x = 2$.", "x = 2"),  # the last math expression
    ("We get $x=2$ and then 5 more, in all 7", "7"),  # a later bare number
    ("She pays \\$5 and \\$7, so 12 dollars in all", "12"),
    ("In total: 1,000 apples", "1,000"),
]


@pytest.mark.parametrize("text, expected", LENIENT)
def test_lenient_reads_answers_without_tags_or_box(text, expected):
  assert extract_answer(text, lenient=True) == expected
  assert extract_answer(text) is None  # the strict default (RL rewards) does not


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The answer is 5, or so I thought; \\boxed{6}", "6"),  # a box wins
        ("the answer is 5 <answer>7</answer>", "7"),  # answer tags win
        ("<answer>unclosed 5", None),  # truncated inside the answer: unfinished
        ("So 3 + 4 = 7. <answer>1", "7"),
        ("Hence the area is \\boxed{12", None),  # truncated inside the box
        ("The area is 12, so \\boxed{1", "12"),
        ("no numbers here", None),
        ("The answer is", None),
        ("", None),
    ],
)
def test_lenient_order_and_nothing_found(text, expected):
  assert extract_answer(text, lenient=True) == expected


def test_lenient_is_keyword_only_and_bounded():
  with pytest.raises(TypeError):
    extract_answer("The answer is 5", True)  # type: ignore[misc]
  t0 = time.monotonic()
  for text in ("\\(" * 100_000, "$" * 100_001, "answer: " * 50_000, "1," * 100_000):
    assert extract_answer(text, lenient=True) is None or isinstance(
        extract_answer(text, lenient=True), str)
  assert time.monotonic() - t0 < 10.0


def test_lenient_answer_still_needs_equivalence():
  assert is_equiv(extract_answer("The answer is 0.5.", lenient=True), "\\frac12")
  assert not is_equiv(extract_answer("The answer is 0.6.", lenient=True), "\\frac12")


# --------------------------------------------------------------------------- harness flag

def _fake_run(tmp_path, texts):
  """A run with one math task of one problem whose k samples are `texts`."""
  task = types.SimpleNamespace(
      KIND="math", cfg=types.SimpleNamespace(template="none"),
      problems=lambda split: [{"question": "1/2 + 1/2 = ?", "answer": "1"}],
      prompt=lambda question, tok: question)
  return types.SimpleNamespace(
      tasks=types.SimpleNamespace(resolve=lambda ref: (task, "test")),
      workdir=str(tmp_path), config=types.SimpleNamespace(seed=0), mesh=None, rules=None)


def test_harness_flag_reaches_extraction_and_protocol(tmp_path, monkeypatch):
  from absl import flags, logging

  from r1jax import configs
  from r1jax import evaluate as harness
  from r1jax.eval import evaluate as eval_lib

  texts = ["The answer is 1.", "\\boxed{1}", "so 2"]
  monkeypatch.setattr(eval_lib, "generate",
                      lambda *a, **kw: (texts, [3, 3, 3], [False, False, False]))
  source = types.SimpleNamespace(ref="fake", model_config=None)
  kw = dict(k=3, temperature=0.6, top_p=0.95, max_new_tokens=8, num_problems=0,
            batch_rows=3)
  lenient = harness.evaluate_task(_fake_run(tmp_path / "l", texts), "gsm8k:test", None,
                                  source, None, lenient_extraction=True, **kw)
  strict = harness.evaluate_task(_fake_run(tmp_path / "s", texts), "gsm8k:test", None,
                                 source, None, **kw)
  assert lenient["pass@1"] == pytest.approx(2 / 3) and lenient["lenient_extraction"]
  assert strict["pass@1"] == pytest.approx(1 / 3) and not strict["lenient_extraction"]
  with open(tmp_path / "l" / "gsm8k_test" / "problems.jsonl") as f:
    assert json.loads(f.readline())["extracted"] == ["1", "1", "2"]
  with open(tmp_path / "l" / "gsm8k_test" / "protocol.json") as f:
    assert json.load(f)["lenient_extraction"] is True
  # A rerun with the other setting in the same workdir is refused, not mixed in.
  with pytest.raises(configs.ConfigError, match="lenient_extraction"):
    harness.evaluate_task(_fake_run(tmp_path / "l", texts), "gsm8k:test", None, source,
                          None, **kw)
  # The command-line flag (off by default) is what main passes on.
  seen = {}
  monkeypatch.setattr(harness, "run_harness", lambda *a, **kw: seen.update(kw))
  monkeypatch.setattr(harness.r1jax, "use_compilation_cache", lambda path: None)
  argv = ["evaluate", "--checkpoint=x", "--tasks=gsm8k:test", f"--workdir={tmp_path}"]
  verbosity = logging.get_verbosity()
  try:
    harness.main(flags.FLAGS(argv))
    assert seen["lenient_extraction"] is False
    harness.main(flags.FLAGS(argv + ["--lenient_extraction"]))
    assert seen["lenient_extraction"] is True
  finally:
    flags.FLAGS.unparse_flags()
    logging.set_verbosity(verbosity)
  assert not os.path.exists(tmp_path / "report.json")
