"""Multi-process runs on this CPU: 2 processes x 4 simulated devices over localhost
(jax.distributed, gloo collectives), against 1 process x 8 devices.

- r1jax.distributed's pieces in a real 2-process run (tests/multihost_checks.py);
- the tiny R1-Zero demo (smoke) in 2 processes gives the same eval.json and metrics
  as in 1 process, each file written once, progress printed by process 0 alone;
- one process killed (SIGKILL) mid-pretraining, the other killed with it, then both
  rerun: the run resumes from its checkpoint and ends where the uninterrupted one did.
"""

import json
import os
import signal

import numpy as np
import pytest

from tests import cli, multihost

SMOKE = ["-m", "r1jax.main", "--config=experiments/r1_zero_tiny.py:smoke"]


def _json(path):
  with open(path) as f:
    return json.load(f)


def _rows(path):
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def _assert_rows_close(a, b):
  """Same steps and keys; values equal up to the order of float reductions (the
  all-reduce over gloo sums in another order than in one process)."""
  assert [r["step"] for r in a] == [r["step"] for r in b]
  for x, y in zip(a, b):
    assert sorted(x) == sorted(y)
    for k in x:
      if not k.startswith("time/"):
        np.testing.assert_allclose(np.asarray(x[k], float), np.asarray(y[k], float),
                                   rtol=1e-4, atol=1e-6, err_msg=f"step {x['step']} {k}")


def test_distributed_pieces_in_two_processes(tmp_path):
  prefix = str(tmp_path / "checks")
  procs = multihost.start(["tests/multihost_checks.py", str(tmp_path)], log_prefix=prefix)
  multihost.wait(procs, prefix, timeout=600)
  seen = [_json(tmp_path / f"p{i}.json") for i in range(2)]
  x = np.arange(48, dtype=np.float32).reshape(16, 3)
  for i, s in enumerate(seen):
    assert (s["process"], s["processes"], s["devices"], s["local"]) == (i, 2, 8, 4)
    assert s["fetch_equal"]
    assert s["row_sums"] == x.sum(1).tolist()
    # Gathered results are the whole answer on every process.
    assert s["gathered"] == [None, 1.5, 3.0, None, 6.0, 7.5]
    assert s["counts"] == {"a": 3.0, "b": 4.0}
    assert s["total"] == s["single_total"]
  # Each process holds (and owns) its half of a batch-sharded array.
  assert seen[0]["local_rows"] == seen[0]["owned_sharded"] == list(range(8))
  assert seen[1]["local_rows"] == seen[1]["owned_sharded"] == list(range(8, 16))
  # Replicated rows are dealt out: each row owned exactly once.
  assert sorted(seen[0]["owned_replicated"] + seen[1]["owned_replicated"]) == list(range(6))
  assert not set(seen[0]["owned_replicated"]) & set(seen[1]["owned_replicated"])
  # No process scored another's rows; together they scored each row once.
  texts = [f"<think>t</think><answer>{i % 4}</answer>" for i in range(16)]
  assert seen[0]["scored_here"][:8] == texts[:8] and seen[1]["scored_here"][:8] == texts[8:]
  per_fn = seen[0]["per_fn"]
  assert per_fn["accuracy"] == [float(i % 4 == 1) for i in range(16)]
  assert per_fn == seen[1]["per_fn"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """The smoke demo in 1 process x 8 devices and in 2 processes x 4 devices."""
  base = tmp_path_factory.mktemp("multihost")
  one, two = str(base / "one"), str(base / "two")
  cli.run("r1jax.main", "--config=experiments/r1_zero_tiny.py:smoke", f"--workdir={one}",
          env=cli.child_env(devices=8))
  prefix = str(base / "two")
  multihost.wait(multihost.start([*SMOKE, f"--workdir={two}"], log_prefix=prefix), prefix)
  return one, two, prefix


@pytest.mark.slow
def test_two_processes_give_the_one_process_results(runs):
  one, two, prefix = runs
  assert _json(os.path.join(two, "eval.json")) == _json(os.path.join(one, "eval.json"))
  for stage in ("pretrain_base", "r1_zero"):
    _assert_rows_close(_rows(os.path.join(two, stage, "metrics.jsonl")),
                       _rows(os.path.join(one, stage, "metrics.jsonl")))
  assert [r["step"] for r in _rows(os.path.join(two, "r1_zero", "metrics.jsonl"))] == [0, 1, 2]
  for f in ("accuracy.png", "response_length.png", "summary.json", "config.json"):
    assert os.path.exists(os.path.join(two, f)), f
  # Progress from process 0 alone: process 1 prints no stage lines.
  out0, out1 = multihost.read_log(prefix, 0), multihost.read_log(prefix, 1)
  assert "r1_zero step 2/2" in out0 and "8 cpu device(s) in 2 process(es)" in out0
  assert "r1_zero step" not in out1 and "pretrain_base:" not in out1


@pytest.mark.slow
def test_kill_one_process_then_rerun_both_resumes(runs, tmp_path):
  _, two, _ = runs
  wd = str(tmp_path / "killed")
  args = [*SMOKE, f"--workdir={wd}", "--only=pretrain_base",
          "--config.pretrain_base.checkpoint_every=1", "--config.pretrain_base.export_hf=true"]
  prefix = str(tmp_path / "killed")
  # Process 1 SIGKILLs itself once its step-4 checkpoint is written
  # (tests/multihost_kill.py); process 0 is killed after it, as a scheduler would.
  procs = multihost.start(["tests/multihost_kill.py", *args[2:]], log_prefix=prefix,
                          env={"R1JAX_TEST_KILL": "1:pretrain_base:4"})
  try:
    procs[1].wait(timeout=900)
  finally:
    procs[0].send_signal(signal.SIGKILL)
    procs[0].wait()
  assert procs[1].returncode == -signal.SIGKILL, multihost.read_log(prefix, 1)[-3000:]
  assert not os.path.exists(os.path.join(wd, "pretrain_base", "output.json"))
  prefix2 = str(tmp_path / "rerun")
  multihost.wait(multihost.start(args, log_prefix=prefix2), prefix2)
  assert "pretrain_base: resuming from step" in multihost.read_log(prefix2, 0)
  # The resumed run's rows are the uninterrupted run's, each step once.
  _assert_rows_close(_rows(os.path.join(wd, "pretrain_base", "metrics.jsonl")),
                     _rows(os.path.join(two, "pretrain_base", "metrics.jsonl")))
  out = _json(os.path.join(wd, "pretrain_base", "output.json"))
  assert out["summary"] == pytest.approx(
      _json(os.path.join(two, "pretrain_base", "output.json"))["summary"])
  # export_hf in 2 processes: params gathered, written once by process 0, and they are
  # the stage's Orbax params.
  import jax
  from r1jax import configs, sharding
  from r1jax.interop import hf
  from r1jax.stages import common
  mesh = sharding.make_mesh(configs.mesh_config(), jax.devices()[:1])
  rules = configs.mesh_config().rules
  ours = common.load_params(out["params"], configs.ConfigDict(out["model"]), mesh, rules)
  _, theirs = hf.load_checkpoint(out["hf_dir"])
  for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(ours)[0],
                          jax.tree.leaves(theirs)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=str(path))


@pytest.mark.parametrize("env, args, expected", [
    ({}, (None, None, None), None),  # one process: nothing to start
    ({"R1JAX_NUM_PROCESSES": "1"}, (None, None, None), None),
    ({"R1JAX_NUM_PROCESSES": "4"}, (None, None, None), {"num_processes": 4}),  # TPU VM
    ({"COORDINATOR_ADDRESS": "h:1", "R1JAX_NUM_PROCESSES": "2",  # SLURM, from the sbatch
      "JAX_LOCAL_DEVICE_IDS": "0,1"}, (None, None, None),
     {"coordinator_address": "h:1", "num_processes": 2, "local_device_ids": [0, 1]}),
    ({"JAX_COORDINATOR_ADDRESS": "h:2", "R1JAX_PROCESS_ID": "1"}, (None, None, None),
     {"coordinator_address": "h:2", "process_id": 1}),
    ({"COORDINATOR_ADDRESS": "env:1", "R1JAX_NUM_PROCESSES": "8"}, ("flag:2", 2, 1),
     {"coordinator_address": "flag:2", "num_processes": 2, "process_id": 1}),  # flags win
])
def test_initialize_from_flags_or_environment(monkeypatch, env, args, expected):
  import jax
  from r1jax import distributed

  for k in ("R1JAX_NUM_PROCESSES", "R1JAX_PROCESS_ID", "COORDINATOR_ADDRESS",
            "JAX_COORDINATOR_ADDRESS", "JAX_LOCAL_DEVICE_IDS"):
    monkeypatch.delenv(k, raising=False)
  for k, v in env.items():
    monkeypatch.setenv(k, v)
  calls = []
  monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
  started = distributed.initialize(*args)
  assert started == (expected is not None)
  assert calls == ([] if expected is None else [expected])


def test_initialize_rejects_a_process_id_out_of_range():
  from r1jax import distributed

  with pytest.raises(ValueError, match=r"process_id=2 must be in \[0, num_processes=2\)"):
    distributed.initialize("h:1", 2, 2)
