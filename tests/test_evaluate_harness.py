"""`python -m r1jax.evaluate`: the paper's protocol on any checkpoint (an r1jax stage
directory or hf:DIR), on files made here (tests/fixtures_hf.py); resumable."""

import json
import math
import os

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from r1jax import configs, sharding  # noqa: E402
from r1jax import evaluate as harness  # noqa: E402
from r1jax.rewards.math_equiv import extract_answer, is_equiv  # noqa: E402
from r1jax.stages import common  # noqa: E402
from tests import cli, fixtures_hf  # noqa: E402

TASKS = "gsm8k:test,math500:test"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  data = str(tmp_path_factory.mktemp("data"))
  fixtures_hf.write_gsm8k(data)
  fixtures_hf.write_math500(data)
  ckpt = str(tmp_path_factory.mktemp("qwen"))
  fixtures_hf.write_tiny_qwen2(ckpt, corpus=fixtures_hf.corpus_for(data))
  return data, ckpt


def _evaluate(checkpoint, data, workdir, *extra, crash_after=None, check=True):
  env = {} if crash_after is None else {"R1JAX_CRASH_AFTER_CHUNKS": str(crash_after)}
  return cli.run("r1jax.evaluate", f"--checkpoint={checkpoint}", f"--tasks={TASKS}",
                 f"--data_dir={data}", f"--workdir={workdir}", "--k=3", "--max_new_tokens=8",
                 "--num_problems=5", "--batch_rows=6", *extra, env=env, check=check,
                 timeout=600)


def _records(workdir, ref):
  with open(os.path.join(workdir, ref.replace(":", "_"), "problems.jsonl")) as f:
    return [json.loads(line) for line in f]


def test_report_records_resume_and_stage_checkpoint(files, tmp_path):
  data, ckpt = files
  # Uninterrupted, from the HF checkpoint.
  full = str(tmp_path / "full")
  out = _evaluate(f"hf:{ckpt}", data, full)
  report = json.load(open(os.path.join(full, "report.json")))
  assert list(report) == TASKS.split(",")
  for ref, r in report.items():
    assert r["k"] == 3 and r["num_problems"] == 5
    assert (r["temperature"], r["top_p"], r["max_new_tokens"]) == (0.6, 0.95, 8)
    assert r["template"] == "chat"  # the checkpoint has a chat template
    for key in ("pass@1", "pass@2", "pass@3", "cons@k", "truncated_fraction"):
      assert 0 <= r[key] <= 1, key
    recs = _records(full, ref)
    assert [x["index"] for x in recs] == list(range(5))
    for x in recs:
      assert len(x["samples"]) == 3 and len(x["tokens"]) == 3
      assert x["prompt"].startswith("<|im_start|>")
      assert x["extracted"] == [extract_answer(t) for t in x["samples"]]
      assert x["correct"] == [a is not None and is_equiv(a, x["gold"]) for a in x["extracted"]]
      assert all(n <= 8 for n in x["tokens"])
    assert r["pass@1"] == pytest.approx(sum(sum(x["correct"]) / 3 for x in recs) / 5)
    assert r["mean_response_tokens"] == pytest.approx(
        sum(n for x in recs for n in x["tokens"]) / 15)
  md = open(os.path.join(full, "report.md")).read()
  assert all(f"| {ref} |" in md for ref in TASKS.split(","))
  assert "samples/s" in out.stdout
  # Killed after the first chunk (2 problems x 3 samples), then rerun: the records and
  # the report equal the uninterrupted run's, and no problem is sampled twice.
  resumed = str(tmp_path / "resumed")
  out = _evaluate(f"hf:{ckpt}", data, resumed, crash_after=1, check=False)
  assert out.returncode != 0
  assert [x["index"] for x in _records(resumed, "gsm8k:test")] == [0, 1]
  assert not os.path.exists(os.path.join(resumed, "report.json"))
  out = _evaluate(f"hf:{ckpt}", data, resumed)
  assert "resuming, 2 of 5 problems done" in out.stdout
  for ref in TASKS.split(","):
    assert _records(resumed, ref) == _records(full, ref)
  assert json.load(open(os.path.join(resumed, "report.json"))) == report
  # Other settings in the same workdir are refused, not mixed into the records.
  out = _evaluate(f"hf:{ckpt}", data, resumed, "--temperature=1.0", check=False)
  assert out.returncode == 1 and "holds an evaluation with other settings" in out.stderr
  # The same weights as an r1jax stage directory give the same samples.
  stage = tmp_path / "run" / "converted"
  os.makedirs(stage)
  from r1jax.interop import hf
  mesh = sharding.make_mesh(configs.mesh_config())
  mc = hf.config_from_hf(hf.read_hf_config(ckpt))
  mc.max_seq_len = 4096
  _, params = hf.load_checkpoint(ckpt, mesh=mesh, rules=configs.mesh_config().rules,
                                 keep_mtp=False)
  common.save_params(str(stage / "params"), params)
  common.write_json(str(stage / "output.json"), common.Output(
      name="converted", kind="sft", model=mc.to_dict(), tokenizer={"kind": "hf", "path": ckpt},
      params=str(stage / "params")).to_json())
  from_stage = str(tmp_path / "from_stage")
  _evaluate(str(stage), data, from_stage)
  for ref in TASKS.split(","):
    assert _records(from_stage, ref) == _records(full, ref)


def test_clear_errors(files, tmp_path):
  data, ckpt = files
  out = _evaluate(str(tmp_path / "nowhere"), data, str(tmp_path / "o"), check=False)
  assert out.returncode == 1 and "no " in out.stderr and "output.json" in out.stderr
  out = cli.run("r1jax.evaluate", f"--checkpoint=hf:{ckpt}", "--tasks=aime:test",
                f"--workdir={tmp_path / 'o'}", check=False)
  assert out.returncode == 1 and "the harness knows" in out.stderr


def _rec(gold, extracted, tokens=(4, 4, 4)):
  return {"gold": gold, "samples": [f"\\boxed{{{a}}}" if a else "none" for a in extracted],
          "extracted": extracted, "tokens": list(tokens), "truncated": [False] * 3,
          "correct": [a is not None and is_equiv(a, gold) for a in extracted]}


def test_report_entry_hand_computed():
  """pass@k' against the combinatorial definition; cons@k votes by equivalence class."""
  recs = [_rec("\\frac{1}{2}", ["3", "0.5", "1/2"]),  # 2 right; the class {0.5, 1/2} wins
          _rec("7", ["7", "8", "8"]),                 # 1 right; majority 8 is wrong
          _rec("4", [None, None, "5"], tokens=(2, 9, 3))]
  e = harness.report_entry(recs, 3)
  assert e["pass@1"] == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)
  comb = lambda n, c, k: 1 - math.comb(n - c, k) / math.comb(n, k)
  assert e["pass@2"] == pytest.approx((comb(3, 2, 2) + comb(3, 1, 2) + 0) / 3)
  assert e["pass@3"] == pytest.approx(2 / 3)
  assert e["cons@k"] == pytest.approx(1 / 3)
  assert e["max_response_tokens"] == 9 and e["median_response_tokens"] == 4.0


ADD_TESTS = [{"call": "add(1, 2)", "expected": "3"}, {"call": "add(-1, 1)", "expected": "0"}]


def test_code_samples_are_judged_in_the_sandbox():
  right = "Here:\n```python\ndef add(a, b):\n  return a + b\n```"
  wrong = "```python\ndef add(a, b):\n  return a - b\n```"
  verdicts = harness.judge("code", [right, wrong, "no code", right],
                           [{"tests": ADD_TESTS, "answer": ""}] * 4)
  assert [c for _, c in verdicts] == [True, False, False, True]
  assert verdicts[0][0].strip().startswith("def add") and verdicts[2][0] is None
  # cons@k over programs: the two identical right programs outvote the wrong one.
  rec = {"gold": "", "samples": [right, wrong, right], "tokens": [5, 5, 5],
         "truncated": [False] * 3,
         "extracted": [verdicts[0][0], verdicts[1][0], verdicts[0][0]],
         "correct": [True, False, True]}
  e = harness.report_entry([rec], 3, "code")
  assert e["pass@1"] == pytest.approx(2 / 3) and e["cons@k"] == 1.0


def test_code_task_through_the_cli(files, tmp_path):
  data, ckpt = files
  os.makedirs(os.path.join(data, "code"), exist_ok=True)
  with open(os.path.join(data, "code", "test.jsonl"), "w") as f:
    for name in ("add", "plus"):
      f.write(json.dumps({"prompt": f"Write {name}(a, b).", "tests": [
          {k: v.replace("add", name) for k, v in t.items()} for t in ADD_TESTS]}) + "\n")
  out = str(tmp_path / "code")
  cli.run("r1jax.evaluate", f"--checkpoint=hf:{ckpt}", "--tasks=code:test",
          f"--data_dir={data}", f"--workdir={out}", "--k=2", "--max_new_tokens=8")
  r = json.load(open(os.path.join(out, "report.json")))["code:test"]
  assert r["num_problems"] == 2 and r["k"] == 2
  recs = _records(out, "code:test")
  # A random model writes no fenced program: nothing to run, every verdict False.
  assert all(x["extracted"] == [None, None] and x["correct"] == [False, False] for x in recs)
  assert r["pass@1"] == 0.0
