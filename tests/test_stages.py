"""Stage chains: SFT resume = uninterrupted, --only and inputs, sample stage filters and
resume, config validation, task plug-ins."""

import glob
import importlib.util
import json
import os
import pytest

from r1jax import configs, pipeline, stages
from r1jax.data import tasks
from r1jax.stages import common, sample

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _demo(arg="smoke"):
  spec = importlib.util.spec_from_file_location(
      "r1_zero_tiny", os.path.join(ROOT, "experiments", "r1_zero_tiny.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config(arg)


def _chain():
  """pretrain -> sft (cold start on worked solutions) -> sample -> sft on the samples
  -> evaluate, tiny, on one simulated device."""
  c = _demo()
  c.model = configs.model_config(vocab_size=64, max_seq_len=128, n_layers=1)
  c.mesh = configs.mesh_config(data=1, fsdp=-1)
  c.tasks.digits.num_sft = 40
  c.tasks.samples = tasks.config("jsonl", train="{workdir}/rs/samples/*.jsonl",
                                 template="r1_zero")
  c.pretrain_base.steps = 8
  c.pretrain_base.optimizer.warmup_steps = 0
  c.cold = stages.config("sft", input="pretrain_base", train=("digits:train",),
                         heldout=("digits:test",), steps=4, batch_size=8, seq_len=72,
                         checkpoint_every=1, eval_every=2,
                         optimizer=dict(learning_rate=1e-3, warmup_steps=0))
  c.rs = stages.config("sample", input="cold", prompts=("digits:test",), num_prompts=6,
                       samples_per_prompt=4, temperature=1.0, max_new_tokens=24,
                       shard_prompts=2, reward_workers=0, require_correct=False,
                       reward_weights=dict(accuracy=1.0, format=0.0), pairs_by="accuracy",
                       pairs_preference="correct")
  c.sft_rs = stages.config("sft", input="pretrain_base", train=("samples:train",), steps=2,
                           batch_size=8, seq_len=72, checkpoint_every=1)
  c.check = stages.config("evaluate", input="sft_rs", tasks=("digits:test",),
                          num_problems=2, k=2, max_new_tokens=8)
  c.stages = ("pretrain_base", "cold", "rs", "sft_rs", "check")
  return c


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
  c = _chain()
  wd = str(tmp_path_factory.mktemp("chain"))
  summary = pipeline.train_and_evaluate(c, wd)
  return c, wd, summary


def _rows(path):
  return [json.loads(l) for l in open(path)]


def test_chain(chain, tmp_path):
  """One test for the shared chain run (a module fixture would run once per xdist worker)."""
  _check_outputs(*chain)
  _check_rerun_skips_and_only(chain, tmp_path)
  _check_sample_stage_resumes_a_lost_shard(chain)


def _check_outputs(c, wd, summary):
  for name in c.stages:
    out = json.load(open(os.path.join(wd, name, "output.json")))
    assert out["kind"] == c[name].kind
  cold = _rows(os.path.join(wd, "cold", "metrics.jsonl"))
  assert [r["step"] for r in cold] == [1, 2, 3, 4]
  assert "eval/heldout/ce" in cold[1] and "eval/heldout/ce" in cold[3]
  assert cold[-1]["train/loss"] < cold[0]["train/loss"]
  # The cold start began from pretrain_base's weights, not random ones: its first loss
  # is the pretrained model's on these rows, far below a random model's ln(64) = 4.16.
  pre = _rows(os.path.join(wd, "pretrain_base", "metrics.jsonl"))
  assert cold[0]["train/loss"] < pre[0]["train/loss"] - 0.1
  # The sample stage: shards of 2 prompts x 4 samples, counts add up.
  stats = json.load(open(os.path.join(wd, "rs", "stats.json")))
  assert stats["prompts"] == 6 and stats["samples"] == 24
  assert stats["kept"] + sum(stats["dropped"].values()) == 24
  kept = [r for p in sorted(glob.glob(os.path.join(wd, "rs", "samples", "part-*.jsonl")))
          for r in _rows(p)]
  assert len(kept) == stats["kept"] > 0
  assert all(not r["truncated"] for r in kept)
  assert len({(r["prompt"], r["completion"]) for r in kept}) == len(kept)
  # Preference pairs by accuracy: within each prompt, right over wrong, as many as the
  # smaller side (each sample in one pair at most), every one accounted for.
  pairs = [r for p in sorted(glob.glob(os.path.join(wd, "rs", "pairs", "part-*.jsonl")))
           for r in _rows(p)]
  acc = {(r["prompt"], r["completion"]): r["rewards"]["accuracy"] for r in kept}
  by_prompt = {}
  for (prompt, _), a in acc.items():
    by_prompt.setdefault(prompt, []).append(a)
  expected = sum(min(sum(a == 1 for a in v), sum(a == 0 for a in v), 4)
                 for v in by_prompt.values())
  assert len(pairs) == stats["pairs"] == expected
  for p in pairs:
    assert acc[(p["prompt"], p["chosen"])] > acc[(p["prompt"], p["rejected"])], p
    assert p["preference"] == "correct"
  # The SFT on the samples read them (one row per kept sample).
  assert summary["stages"]["sft_rs"]["examples"] == stats["kept"]
  assert json.load(open(os.path.join(wd, "eval.json")))["check"]["k"] == 2


def _check_rerun_skips_and_only(chain, tmp_path):
  c, wd, _ = chain
  before = {n: os.path.getmtime(os.path.join(wd, n, "output.json")) for n in c.stages}
  pipeline.train_and_evaluate(c, wd)
  assert before == {n: os.path.getmtime(os.path.join(wd, n, "output.json")) for n in c.stages}
  # --only on a fresh workdir: the input must exist first, and the error says so.
  fresh = str(tmp_path / "fresh")
  with pytest.raises(common.StageError, match="'pretrain_base' has not finished"):
    pipeline.train_and_evaluate(c, fresh, only="cold")
  pipeline.train_and_evaluate(c, fresh, only="pretrain_base")
  assert not os.path.exists(os.path.join(fresh, "cold"))
  with pytest.raises(configs.ConfigError, match="not a stage"):
    pipeline.train_and_evaluate(c, fresh, only="nope")


def _check_sample_stage_resumes_a_lost_shard(chain):
  c, wd, _ = chain
  d = os.path.join(wd, "rs", "samples")
  shard = open(os.path.join(d, "part-00001.jsonl")).read()
  pairs = os.path.join(wd, "rs", "pairs", "part-00001.jsonl")
  shard_pairs = open(pairs).read()
  stats = json.load(open(os.path.join(wd, "rs", "stats.json")))
  # A kill before shard 1 was complete: its files are missing, the stage unfinished.
  os.remove(os.path.join(d, "part-00001.jsonl"))
  os.remove(pairs)
  os.remove(os.path.join(d, "part-00001.stats.json"))
  os.remove(os.path.join(wd, "rs", "output.json"))
  pipeline.train_and_evaluate(c, wd, only="rs")
  assert open(os.path.join(d, "part-00001.jsonl")).read() == shard  # same samples again
  assert open(pairs).read() == shard_pairs  # and the same pairs
  assert json.load(open(os.path.join(wd, "rs", "stats.json"))) == stats  # none twice


def test_sft_resume_equals_uninterrupted(tmp_path):
  c = _chain()
  c.stages = ("cold",)
  c.cold.input = "random"
  full, crashed = str(tmp_path / "full"), str(tmp_path / "crashed")
  pipeline.train_and_evaluate(c, full)
  with pytest.raises(KeyboardInterrupt):
    pipeline.train_and_evaluate(c, crashed, crash_after_step=3)  # mid-epoch (5 rows/step)
  pipeline.train_and_evaluate(c, crashed)
  a = _rows(os.path.join(full, "cold", "metrics.jsonl"))
  b = _rows(os.path.join(crashed, "cold", "metrics.jsonl"))
  assert [r["step"] for r in a] == [r["step"] for r in b] == [1, 2, 3, 4]
  for ra, rb in zip(a, b):
    for key in ("train/loss", "grads/all/norm", "train/epoch"):
      assert ra[key] == pytest.approx(rb[key], rel=1e-6), (ra["step"], key)


def test_filter_samples_each_filter():
  s = stages.config("sample", require_format=True, reward_weights=dict(accuracy=1.0,
                                                                        format=1.0))
  row = lambda comp, acc=1.0, fmt=1.0, trunc=False: {
      "prompt": "q", "completion": comp, "truncated": trunc,
      "rewards": {"accuracy": acc, "format": fmt}}
  rows = [row("a"), row("b", acc=0.0), row("c", fmt=0.0), row("d", trunc=True), row("a"),
          row("e")]
  kept, dropped = sample.filter_samples(rows, s)
  assert [r["completion"] for r in kept] == ["a", "e"]
  assert dropped == {"incorrect": 1, "unformatted": 1, "truncated": 1, "duplicate": 1}
  s.require_correct = s.require_format = s.drop_truncated = s.drop_duplicates = False
  assert len(sample.filter_samples(rows, s)[0]) == len(rows)


@pytest.mark.parametrize("change, message", [
    (lambda c: setattr(c.r1_zero, "kind", "dpo"), "stage kind 'dpo'"),
    (lambda c: setattr(c.r1_zero, "input", "final"), "earlier stage"),
    (lambda c: setattr(c.r1_zero, "input", "base"), "evaluate stage, which makes no weights"),
    (lambda c: setattr(c.r1_zero, "train", ("gsm8k:train",)), "names no task"),
    (lambda c: setattr(c.r1_zero, "train", ("digits:dev",)), "has no split 'dev'"),
    (lambda c: setattr(c.r1_zero, "batch_prompts", 3), "multiple of 8"),
    (lambda c: setattr(c.base, "tasks", ()), "base.tasks is empty"),
    (lambda c: setattr(c, "stages", ("base", "pretrain_base")), "earlier stage"),
    (lambda c: setattr(c, "init", "ckpt:/x"), "init='ckpt:/x'"),
    (lambda c: setattr(c.tasks.digits, "template", "alpaca"), "template='alpaca'"),
    (lambda c: setattr(c.r1_zero, "reward_weights", configs.ConfigDict({"fun": 1.0})),
     "unknown reward"),
])
def test_validate_says_what_is_wrong(change, message):
  c = _demo()
  configs.validate(c, 8)
  change(c)
  with pytest.raises(configs.ConfigError, match=message):
    configs.validate(c, 8)


def test_tasks_missing_files_and_bad_rows(tmp_path):
  c = configs.run_config(data_dir=str(tmp_path))
  c.tasks.gsm8k = tasks.config("gsm8k")
  c.tasks.mine = tasks.config("jsonl", train="{data_dir}/mine/*.jsonl")
  reg = tasks.Registry(c, str(tmp_path / "w"))
  with pytest.raises(tasks.TaskError, match=r"gsm8k/train.jsonl not found; expected GSM8K"):
    reg.get("gsm8k").problems("test")
  with pytest.raises(tasks.TaskError, match=r"no file matches .*mine/\*.jsonl"):
    reg.get("mine").sft_examples("train")
  os.makedirs(tmp_path / "mine")
  with open(tmp_path / "mine" / "a.jsonl", "w") as f:
    f.write(json.dumps({"prompt": "p", "completion": "c"}) + "\n{oops\n")
  with pytest.raises(tasks.TaskError, match=r"a.jsonl:2: not valid JSON"):
    tasks.Registry(c, str(tmp_path / "w")).get("mine").sft_examples("train")
  with pytest.raises(tasks.TaskError, match="no files for split 'test'"):
    reg.get("mine").problems("test")


def test_stream_epochs_are_permutations(tmp_path):
  c = configs.run_config(data_dir=str(tmp_path))
  os.makedirs(tmp_path / "rl")
  with open(tmp_path / "rl" / "a.jsonl", "w") as f:
    for i in range(10):
      f.write(json.dumps({"prompt": f"q{i}", "answer": str(i)}) + "\n")
  c.tasks.rl = tasks.config("jsonl", train="{data_dir}/rl/a.jsonl")
  reg = tasks.Registry(c, str(tmp_path))
  s1 = tasks.Stream(reg, ("rl:train",), seed=3, salt=1)
  s2 = tasks.Stream(tasks.Registry(c, str(tmp_path)), ("rl:train",), seed=3, salt=1)
  seen = [x["question"] for step in range(5) for _, x in s1.batch(step, 4)]
  assert seen == [x["question"] for step in range(5) for _, x in s2.batch(step, 4)]
  assert sorted(seen[:10]) == sorted(seen[10:20]) == sorted(f"q{i}" for i in range(10))
  assert seen[:10] != seen[10:20]  # each epoch in its own order
