"""Metric rows and JSON outputs survive kills and full disks; in a multi-process run
only process 0 writes."""

import errno
import json
import os

import jax
import pytest

from r1jax import pipeline
from r1jax.stages import common
from r1jax.train import metrics


def test_truncate_after_drops_later_rows_and_a_half_written_last_row(tmp_path):
  w = metrics.MetricWriter(str(tmp_path), tensorboard=False)
  for step in (1, 2, 3):
    w.write(step, {"loss": float(step)})
  with open(w.path, "a") as f:
    f.write('{"step": 4, "lo')  # a kill in the middle of a write
  w.truncate_after(2)
  assert [r["step"] for r in metrics.read_metrics(w.path)] == [1, 2]
  assert not os.path.exists(w.path + ".tmp")


def test_only_process_zero_writes_metrics(tmp_path, monkeypatch):
  monkeypatch.setattr(jax, "process_index", lambda: 1)
  w = metrics.MetricWriter(str(tmp_path), tensorboard=False)
  row = w.write(1, {"loss": 2.0})
  assert row == {"step": 1, "loss": 2.0}  # computed on every process ...
  assert not os.path.exists(w.path)  # ... written by process 0 alone
  monkeypatch.setattr(jax, "process_index", lambda: 0)
  common.write_json(str(tmp_path / "a.json"), {"x": 1})
  monkeypatch.setattr(jax, "process_index", lambda: 1)
  common.write_json(str(tmp_path / "b.json"), {"x": 1})
  assert os.path.exists(tmp_path / "a.json") and not os.path.exists(tmp_path / "b.json")


def test_write_json_on_a_full_disk_names_the_file_and_leaves_nothing(tmp_path, monkeypatch):
  path = str(tmp_path / "eval.json")
  common.write_json(path, {"old": 1})

  def full(obj, f, **kw):
    f.write('{"half')
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(json, "dump", full)
  with pytest.raises(OSError, match="cannot write .*eval.json: No space left"):
    common.write_json(path, {"new": 2})
  monkeypatch.undo()
  assert json.load(open(path)) == {"old": 1}  # the previous file whole
  assert not os.path.exists(path + ".tmp")


def test_eval_table_when_a_reward_model_entry_comes_first():
  results = {"rm": {"pairwise_accuracy": 0.9, "pairs": 10, "preference": "helpful",
                    "view": "summary"},
             "final": {"pass@1": 0.5, "cons@k": 0.6, "k": 4, "temperature": 0.6,
                       "top_p": 0.95, "format_rate": 1.0, "mean_response_tokens": 12.0,
                       "think_rate": 1.0, "accuracy_thinking": 0.5,
                       "accuracy_not_thinking": None}}
  table = pipeline._eval_table(results)
  assert "T=0.6, top-p 0.95" in table and "pairwise accuracy 0.900" in table
  assert "pass@1 0.500" in table
