"""The real-data experiments end to end through `r1jax.main`, on files made here: a tiny
random Qwen2.5-style checkpoint with its tokenizer.json (no BOS token), GSM8K / MATH /
MATH-500 in their original formats and teacher samples (tests/fixtures_hf.py)."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from r1jax import configs, model, sharding  # noqa: E402
from r1jax.stages import common  # noqa: E402
from tests import cli, fixtures_hf  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  data = str(tmp_path_factory.mktemp("data"))
  fixtures_hf.write_gsm8k(data)
  fixtures_hf.write_math500(data)
  fixtures_hf.write_math_train(data)
  fixtures_hf.write_teacher(data)
  ckpt = str(tmp_path_factory.mktemp("qwen"))
  fixtures_hf.write_tiny_qwen2(ckpt, corpus=fixtures_hf.corpus_for(data))
  return data, ckpt


def _main(experiment, workdir, *extra, check=True):
  cmd = [sys.executable, "-m", "r1jax.main", f"--config=experiments/{experiment}.py:cpu",
         f"--workdir={workdir}", *extra]
  out = subprocess.run(cmd, cwd=ROOT, env=cli.child_env(), capture_output=True, text=True,
                       timeout=900)
  if check:
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
  return out


def _check_eval(entry, k):
  assert set(entry["tasks"]) == {"gsm8k:test", "math500:test"}
  for task, r in entry["tasks"].items():
    assert r["k"] == k and r["num_problems"] == 4, task
    for key in ("pass@1", "cons@k", "mean_response_tokens", "truncated_fraction"):
      assert 0 <= r[key] <= (16 if key == "mean_response_tokens" else 1), (task, key)
  assert entry["pass@1"] == entry["tasks"]["gsm8k:test"]["pass@1"]  # first task on top


def _check_hf_export(stage_dir, ckpt):
  """The exported HF checkpoint loads in transformers with the stage's logits."""
  hf_dir = os.path.join(stage_dir, "hf")
  assert os.path.exists(os.path.join(hf_dir, "tokenizer.json"))  # copied from the input
  out = json.load(open(os.path.join(stage_dir, "output.json")))
  mc = configs.ConfigDict(out["model"])
  mesh = sharding.make_mesh(configs.mesh_config(), devices=jax.devices()[:1])
  params = common.load_params(out["params"], mc, mesh, configs.mesh_config().rules)
  tokens = np.random.RandomState(0).randint(0, mc.vocab_size, (2, 12)).astype(np.int32)
  ours = np.asarray(model.forward(params, tokens, mc))
  m = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
  with torch.no_grad():
    theirs = m(torch.tensor(tokens, dtype=torch.long)).logits.float().numpy()
  assert np.linalg.norm(ours - theirs) / np.linalg.norm(theirs) < 1e-3
  # ... and differs from the input checkpoint's (the stage trained or at least re-saved).
  return params


@pytest.mark.slow
def test_r1_zero_from_hf_checkpoint(files, tmp_path):
  data, ckpt = files
  wd = str(tmp_path / "r1_zero")
  out = _main("r1_zero_qwen2_5_math_1_5b", wd, f"--config.init=hf:{ckpt}",
              f"--config.data_dir={data}")
  ev = json.load(open(os.path.join(wd, "eval.json")))
  assert set(ev) == {"base", "final"}
  for key in ("base", "final"):
    _check_eval(ev[key], k=2)
  rows = [json.loads(l) for l in open(os.path.join(wd, "r1_zero", "metrics.jsonl"))]
  assert [r["step"] for r in rows] == [0, 1, 2]
  for key in ("reward/accuracy_mean", "rl/kl", "completion/length_mean", "train/loss"):
    assert key in rows[-1], key
  # The first step ran at the peak learning rate (warmup_steps=0 in :cpu).
  assert rows[1]["train/learning_rate"] == pytest.approx(1e-6)
  assert os.listdir(os.path.join(wd, "r1_zero", "checkpoints"))
  _check_hf_export(os.path.join(wd, "r1_zero"), ckpt)
  assert "final" in out.stdout and "math500:test" in out.stdout
  # --only of a finished stage skips it; a rerun skips every stage.
  again = _main("r1_zero_qwen2_5_math_1_5b", wd, f"--config.init=hf:{ckpt}",
                f"--config.data_dir={data}")
  for stage in ("base", "r1_zero", "final"):
    assert f"{stage}: finished" in again.stdout


def test_distill_from_hf_checkpoint(files, tmp_path):
  data, ckpt = files
  wd = str(tmp_path / "distill")
  _main("distill_qwen2_5_1_5b", wd, f"--config.init=hf:{ckpt}", f"--config.data_dir={data}")
  ev = json.load(open(os.path.join(wd, "eval.json")))
  _check_eval(ev["final"], k=2)
  rows = [json.loads(l) for l in open(os.path.join(wd, "distill", "metrics.jsonl"))]
  assert [r["step"] for r in rows] == [1, 2]  # 2 epochs of 16 teacher rows, 8 per step
  assert rows[-1]["train/epoch"] == pytest.approx(2.0)
  assert rows[-1]["train/loss"] < rows[0]["train/loss"]
  params = _check_hf_export(os.path.join(wd, "distill"), ckpt)
  from r1jax.interop import hf
  _, before = hf.load_checkpoint(ckpt)
  moved = [float(np.abs(np.asarray(a) - np.asarray(b)).max())
           for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(before))]
  assert max(moved) > 0  # the exported weights are the trained ones, not the input's


def test_missing_file_is_a_clear_error(files, tmp_path):
  _, ckpt = files
  out = _main("r1_zero_qwen2_5_math_1_5b", str(tmp_path / "w"), f"--config.init=hf:{ckpt}",
              f"--config.data_dir={tmp_path / 'empty'}", check=False)
  assert out.returncode != 0
  assert "gsm8k/train.jsonl not found" in out.stderr and '"question"' in out.stderr
  out = _main("distill_qwen2_5_1_5b", str(tmp_path / "w2"), f"--config.init=hf:{tmp_path}",
              f"--config.data_dir={tmp_path}", check=False)
  assert out.returncode != 0 and "no config.json" in out.stderr
