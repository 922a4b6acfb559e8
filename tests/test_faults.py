"""Faults survived, by injection (issue 18): SIGKILL at seeded random points of every stage
kind (inside asynchronous checkpoint saves too), corrupt or truncated checkpoints, a NaN
gradient, a full disk. Each faulted run, rerun, must end where an uninterrupted run
does.

The kills and full disks are real: `python tests/fault_driver.py` (the CLI with one
injected fault) on the tiny chain tests/fault_chain.py, one subprocess per fault, the
process SIGKILLing itself at the chosen point. What "the same result" means here
(`_assert_same_results`): every training stage's exported params bit for bit and its
metrics.jsonl rows (every key but time/*) exactly; the sample stage's shard files byte
for byte and its stats.json; DIR/eval.json and every evaluate stage's eval.json; every
stage's output.json (workdir paths aside); no temporary file of ours left behind.
R1JAX_FAULT_SEED=N picks another kill plan (seeds 1-8 and 18 were run; seed 4 found
that a rerun kept the rows of a run killed before its first checkpoint was complete).

In-process: the Checkpointer's fallback past each kind of corruption (Orbax reads a
flipped bit of array data back without complaint; the state's fingerprint does not
match), a NaN step against the state before it, a run stopped before its first
checkpoint, and a sample shard whose write fails half-way.
"""

import glob
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from r1jax import configs, sharding
from r1jax.stages import common, sample
from r1jax.train import checkpoint as ckpt_lib
from r1jax.train import loop
from r1jax.train import metrics as metrics_lib
from r1jax.train import state as state_lib
from tests import cli, fault_chain

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAULT_SEED = int(os.environ.get("R1JAX_FAULT_SEED", "18"))  # picks the kill points
TRAINING = ("pretrain", "sft", "reward_model", "grpo")


def _launch(workdir, fault=None, *extra):
  """The CLI on tests/fault_chain.py through the fault driver (one device, the shared
  persistent compilation cache)."""
  env = cli.child_env()
  env.pop("R1JAX_FAULT", None)
  if fault is not None:
    env["R1JAX_FAULT"] = json.dumps(fault)
  return subprocess.run([sys.executable, "tests/fault_driver.py",
                         "--config=tests/fault_chain.py", f"--workdir={workdir}", *extra],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def _tail(out):
  return f"\n--- stdout\n{out.stdout[-3000:]}\n--- stderr\n{out.stderr[-3000:]}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """An uninterrupted run of the chain."""
  wd = str(tmp_path_factory.mktemp("faults") / "reference")
  out = _launch(wd)
  assert out.returncode == 0, _tail(out)
  return wd


def _read(path, mode="r"):
  with open(path, mode) as f:
    return f.read()


def _write(path, data):
  with open(path, "wb" if isinstance(data, bytes) else "w") as f:
    f.write(data)


def _json(path):
  return json.loads(_read(path))


def _rows(path):
  return [json.loads(line) for line in _read(path).splitlines()]


def _load(path):
  ckptr = ocp.StandardCheckpointer()
  try:
    return jax.tree.map(np.asarray, ckptr.restore(os.path.abspath(path)))
  finally:
    ckptr.close()


def _assert_same_results(ref, wd, names=None):
  c = fault_chain.get_config()
  for name in names or c.stages:
    kind = c[name].kind
    if kind in TRAINING:
      a, b = (_rows(os.path.join(d, name, "metrics.jsonl")) for d in (ref, wd))
      assert [r["step"] for r in a] == [r["step"] for r in b], name
      for ra, rb in zip(a, b):
        drop = lambda r: {k: v for k, v in r.items() if not k.startswith("time/")}
        assert drop(ra) == drop(rb), (name, ra["step"])
      pa, pb = (_load(os.path.join(d, name, "params")) for d in (ref, wd))
      assert jax.tree.structure(pa) == jax.tree.structure(pb), name
      for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(pb)):
        np.testing.assert_array_equal(x, y, err_msg=name)
    elif kind == "sample":
      files = lambda d: sorted(os.listdir(os.path.join(d, name, "samples")))
      assert files(ref) == files(wd), name
      for f in files(ref):
        assert (_read(os.path.join(ref, name, "samples", f))
                == _read(os.path.join(wd, name, "samples", f))), (name, f)
      assert (_json(os.path.join(ref, name, "stats.json"))
              == _json(os.path.join(wd, name, "stats.json")))
    elif kind == "evaluate":
      assert (_json(os.path.join(ref, name, "eval.json"))
              == _json(os.path.join(wd, name, "eval.json"))), name
    out = lambda d: _read(os.path.join(d, name, "output.json")).replace(d, "DIR")
    assert out(ref) == out(wd), name
  assert _json(os.path.join(ref, "eval.json")) == _json(os.path.join(wd, "eval.json"))
  assert not glob.glob(os.path.join(wd, "**", "*.tmp"), recursive=True)


def _copy_run(ref, wd):
  """A copy of a finished run whose stage outputs point into the copy."""
  shutil.copytree(ref, wd)
  for path in glob.glob(os.path.join(wd, "*", "output.json")):
    _write(path, _read(path).replace(ref, wd))


def _sites(c, name, wd):
  """The kill points of a stage: (fault without n, how many such events it has)."""
  s = c[name]
  if s.kind in TRAINING:
    saves = len(range(s.checkpoint_every, s.steps, s.checkpoint_every)) + 2  # + final, params
    return [({"site": "step"}, s.steps), ({"site": "produce"}, s.steps),
            ({"site": "save"}, saves), ({"site": "commit"}, saves)]
  if s.kind == "sample":
    shards = math.ceil(s.num_prompts / s.shard_prompts)
    out = [({"site": "generate"}, shards)]
    for i in range(shards):
      for f in (f"part-{i:05d}.jsonl", f"part-{i:05d}.stats.json"):
        out += [({"site": "replace", "path": f, "after": after}, 1) for after in (False, True)]
    return out
  assert s.kind == "evaluate", s.kind
  files = (os.path.join(wd, name, "eval.json"), os.path.join(wd, "eval.json"))
  return [({"site": "generate"}, 1)] + [({"site": "replace", "path": f, "after": after}, 1)
                                        for f in files for after in (False, True)]


def kill_plan(seed, wd):
  """One kill per stage, in the chain's order, at a point a seeded RNG picks; at least
  one inside an asynchronous checkpoint save."""
  rng, c = random.Random(seed), fault_chain.get_config()
  plan = []
  for name in c.stages:
    fault, count = rng.choice(_sites(c, name, wd))
    plan.append({"stage": name, **fault, "n": rng.randint(1, count)})
  if not any(f["site"] in ("save", "commit") for f in plan):
    i = rng.choice([i for i, f in enumerate(plan) if c[f["stage"]].kind in TRAINING])
    fault, count = _sites(c, plan[i]["stage"], wd)[2]
    plan[i] = {"stage": plan[i]["stage"], **fault, "n": rng.randint(1, count)}
  return plan


@pytest.mark.slow
def test_sigkill_at_random_points_of_every_stage_then_rerun_equals_uninterrupted(
    reference, tmp_path):
  wd = str(tmp_path / "killed")
  plan = kill_plan(FAULT_SEED, wd)
  kinds = {fault_chain.get_config()[f["stage"]].kind for f in plan}
  assert kinds == set(TRAINING) | {"sample", "evaluate"}
  for fault in plan:
    out = _launch(wd, fault)
    # The kill happened, where it was meant to (a run that finishes tests nothing).
    assert out.returncode == -signal.SIGKILL, (plan, fault, _tail(out))
    assert "FAULT: SIGKILL" in out.stdout, (plan, fault, _tail(out))
  out = _launch(wd)
  assert out.returncode == 0, (plan, _tail(out))
  _assert_same_results(reference, wd)


def test_corrupt_latest_checkpoint_falls_back_with_a_warning(reference, tmp_path):
  wd = str(tmp_path / "corrupt")
  _copy_run(reference, wd)
  os.remove(os.path.join(wd, "cold", "output.json"))  # cold is unfinished again
  ckpts = os.path.join(wd, "cold", "checkpoints")
  assert sorted(os.listdir(ckpts)) == ["3", "4"]  # max_to_keep 2; 4 is the final one
  for f in glob.glob(os.path.join(ckpts, "4", "state", "**"), recursive=True):
    if os.path.isfile(f):  # every file of the state truncated to half
      data = _read(f, "rb")
      _write(f, data[:len(data) // 2])
  out = _launch(wd, None, "--only=cold")
  assert out.returncode == 0, _tail(out)
  assert f"WARNING: Checkpoint step 4 in {ckpts} cannot be restored" in out.stdout
  assert "falling back to the previous checkpoint" in out.stdout
  assert "cold: resuming from step 3." in out.stdout
  assert os.listdir(os.path.join(wd, "cold", "corrupt_checkpoints")) == ["4"]
  _assert_same_results(reference, wd, names=["cold"])


def test_full_disk_names_the_file_and_a_rerun_equals_uninterrupted(reference, tmp_path):
  wd = str(tmp_path / "full_disk")
  _copy_run(reference, wd)
  # rm trains again from scratch; rs lost its last two shards (as if killed after one).
  shutil.rmtree(os.path.join(wd, "rm"))
  samples = os.path.join(wd, "rs", "samples")
  for f in ("output.json", "stats.json", *(f"samples/part-0000{i}.{ext}" for i in (1, 2)
                                           for ext in ("jsonl", "stats.json"))):
    os.remove(os.path.join(wd, "rs", f))
  metrics = os.path.join(wd, "rm", "metrics.jsonl")
  out = _launch(wd, {"stage": "rm", "site": "enospc", "path": metrics, "n": 3})
  assert out.returncode == 1 and "FAULT: ENOSPC" in out.stdout, _tail(out)
  assert f"rm: cannot write step 3's metrics to {metrics}: No space left" in out.stderr
  assert [r["step"] for r in _rows(metrics)] == [1, 2]  # whole rows only, none torn
  shard = os.path.join(samples, "part-00001.jsonl")
  out = _launch(wd, {"stage": "rs", "site": "enospc", "path": shard, "n": 1})
  assert out.returncode == 1 and "FAULT: ENOSPC" in out.stdout, _tail(out)
  assert f"FATAL StageError: cannot write {shard}: No space left on device" in out.stderr
  # Nothing of the failed shard left, so nothing for a rerun to count as done.
  assert sorted(os.listdir(samples)) == ["part-00000.jsonl", "part-00000.stats.json"]
  out = _launch(wd)
  assert out.returncode == 0, _tail(out)
  assert "rs: 1 of 3 shards already written; resuming." in out.stdout
  _assert_same_results(reference, wd)


# -- in-process: checkpoint fallback, NaN steps, sample shard writes --


def _state(scale):
  rng = np.random.default_rng(0)
  return {"w": jnp.asarray(rng.normal(size=(64, 64)).astype(np.float32) * scale),
          "count": jnp.asarray(scale, jnp.int32), "rng": jnp.arange(4, dtype=jnp.uint32)}


def _saved(d):
  ck = ckpt_lib.Checkpointer(d, max_to_keep=3)
  for step in (1, 2, 3):
    ck.save(step, _state(step), {"step": step, "done": False})
  ck.wait()
  return ck


def _corrupt(step_dir, how):
  files = [f for f in glob.glob(os.path.join(step_dir, "**"), recursive=True)
           if os.path.isfile(f)]
  data_files = [f for f in files if "/d/" in f]
  if how == "truncate":
    for f in files:
      data = _read(f, "rb")
      _write(f, data[:len(data) // 2])
  elif how == "flip":  # one bit of the array data: Orbax reads it back without complaint
    f = max(data_files, key=os.path.getsize)
    data = bytearray(_read(f, "rb"))
    data[len(data) // 2] ^= 0x10
    _write(f, bytes(data))
  elif how == "lost_file":
    os.remove(max(data_files, key=os.path.getsize))
  elif how == "meta":
    _write(os.path.join(step_dir, "meta", "metadata"), '{"step": 3, "do')


@pytest.mark.parametrize("how", ["truncate", "flip", "lost_file", "meta"])
def test_checkpointer_falls_back_past_a_corrupt_latest_step(tmp_path, how, caplog):
  d = str(tmp_path / "checkpoints")
  _saved(d).close()
  _corrupt(os.path.join(d, "3"), how)
  ck = ckpt_lib.Checkpointer(d, max_to_keep=3)
  target = _state(0)
  shardings = jax.tree.map(lambda x: x.sharding, target)
  lines = []
  with caplog.at_level("WARNING"):
    state, meta = ck.restore(target, shardings, log=lines.append)
  assert meta["step"] == 2
  for k, v in _state(2).items():
    np.testing.assert_array_equal(state[k], v)
  assert any("Checkpoint step 3" in r.getMessage() and "falling back" in r.getMessage()
             for r in caplog.records if r.levelname == "WARNING")
  assert lines[0].startswith(f"WARNING: Checkpoint step 3 in {d} cannot be restored")
  # The corrupt step is set aside, so the resumed run writes step 3 again.
  assert os.listdir(str(tmp_path / "corrupt_checkpoints")) == ["3"]
  assert ck.latest_step() == 2
  ck.save(3, _state(3), {"step": 3, "done": False})
  ck.wait()
  assert ck.restore(target, shardings)[1]["step"] == 3
  ck.close()


def test_checkpointer_without_a_restorable_step_is_a_clear_error(tmp_path):
  d = str(tmp_path / "checkpoints")
  _saved(d).close()
  for step in ("1", "2", "3"):
    _corrupt(os.path.join(d, step), "truncate")
  ck = ckpt_lib.Checkpointer(d)
  target = _state(0)
  with pytest.raises(ckpt_lib.CheckpointError,
                     match=re.escape(f"No restorable checkpoint in {d} (tried step 3: ")
                     + ".*step 1: .*fresh --workdir"):
    ck.restore(target, jax.tree.map(lambda x: x.sharding, target))
  assert sorted(os.listdir(d)) == ["1", "2", "3"]  # nothing moved or deleted
  ck.close()


def test_fingerprint_is_exact_and_sees_one_changed_word():
  x = _state(1)
  assert ckpt_lib.fingerprint(x) == ckpt_lib.fingerprint(jax.tree.map(jnp.copy, x))
  w = np.asarray(x["w"]).copy()
  w[5, 7] = np.nextafter(w[5, 7], np.float32(np.inf))
  assert ckpt_lib.fingerprint({**x, "w": jnp.asarray(w)}) != ckpt_lib.fingerprint(x)
  # Two words swapped: the same sum of words, a different fingerprint (positions count).
  w = np.asarray(x["w"]).copy()
  w[0, 0], w[0, 1] = w[0, 1], w[0, 0]
  assert ckpt_lib.fingerprint({**x, "w": jnp.asarray(w)}) != ckpt_lib.fingerprint(x)
  # Sharded over 8 devices: the same fingerprint as on one.
  mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ("d",))
  spec = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("d"))
  assert ckpt_lib.fingerprint({**x, "w": jax.device_put(x["w"], spec)}) == (
      ckpt_lib.fingerprint(x))


NAN_STEP = 2  # the batch of this step (0-based; metrics row 3) has a NaN loss weight


@pytest.fixture(scope="module")
def nan_setup():
  """A tiny MoE LM's train state and jitted step (compiled once for the module)."""
  mc = configs.tiny_moe_config(vocab_size=32, n_layers=2, d_model=32, max_seq_len=16)
  mesh = sharding.make_mesh(configs.mesh_config(data=1), devices=jax.devices()[:1])
  rules = configs.mesh_config().rules
  opt = configs.optimizer_config(learning_rate=1e-2, warmup_steps=0)
  tx = state_lib.make_optimizer(opt)
  state, shardings = state_lib.create_train_state(mc, tx, mesh, rules, jax.random.key(0))
  step_fn = state_lib.make_train_step(state_lib.lm_loss(mc), mc, tx, shardings, mesh, rules,
                                      state_lib.learning_rate_schedule(opt))
  return state, shardings, step_fn


def _nan_run(setup, workdir, steps=5, crash_after_step=None, checkpoint_every=1,
             nan_step=NAN_STEP, stop_at=None):
  """loop.train whose batch at `nan_step` makes the loss NaN (and which raises
  KeyboardInterrupt before the batch of `stop_at`); (host copies of the state before
  each step, the final state)."""
  state, shardings, step_fn = setup
  state = jax.tree.map(jnp.copy, state)  # the step donates its input
  before = {}

  def produce(step, st):
    if step == stop_at:
      raise KeyboardInterrupt(f"stopped before step {step + 1}")
    before[step] = jax.device_get(st)
    rng = np.random.default_rng(step)
    mask = np.ones((4, 12), np.float32)
    if step == nan_step:
      mask[1, 3] = np.nan
    return {"tokens": rng.integers(1, 32, (4, 13)).astype(np.int32), "loss_mask": mask}, {}

  final = loop.train(state, shardings, step_fn, produce, workdir=workdir, name="nan",
                     steps=steps, checkpoint_every=checkpoint_every, log=lambda _: None,
                     crash_after_step=crash_after_step)
  return before, jax.device_get(final)


def test_nan_step_is_skipped_and_counted(nan_setup, tmp_path):
  full = str(tmp_path / "full")
  before, final = _nan_run(nan_setup, full)
  skipped, after = before[NAN_STEP], before[NAN_STEP + 1]
  # Params and optimiser state after the NaN step are those before it, bit for bit; the
  # update counter did not move; the rng did (the next batch's dropout etc. differ).
  for a, b in zip(jax.tree.leaves((skipped.params, skipped.opt_state, skipped.step)),
                  jax.tree.leaves((after.params, after.opt_state, after.step))):
    np.testing.assert_array_equal(a, b)
  assert int(after.nonfinite) == 1 and not np.array_equal(skipped.rng, after.rng)
  # The steps around it did update.
  for s in (NAN_STEP - 1, NAN_STEP + 1):
    nxt = before[s + 1] if s + 1 in before else final
    assert not np.array_equal(before[s].params["embed"], nxt.params["embed"])
  assert int(final.step) == 4  # 5 steps, 1 skipped
  rows = metrics_lib.read_metrics(os.path.join(full, "metrics.jsonl"))
  assert [r["train/nonfinite"] for r in rows] == [0, 0, 1, 0, 0]
  assert [r["train/skipped_total"] for r in rows] == [0, 0, 1, 1, 1]
  assert not math.isfinite(rows[NAN_STEP]["train/loss"])
  # A run stopped after the NaN step and resumed keeps the count (checkpoint metadata).
  crashed = str(tmp_path / "crashed")
  with pytest.raises(KeyboardInterrupt):
    _nan_run(nan_setup, crashed, crash_after_step=NAN_STEP + 1)
  _nan_run(nan_setup, crashed)
  again = metrics_lib.read_metrics(os.path.join(crashed, "metrics.jsonl"))
  assert [r["train/skipped_total"] for r in again] == [0, 0, 1, 1, 1]
  assert [r["train/loss"] for r in again[NAN_STEP + 1:]] == [
      r["train/loss"] for r in rows[NAN_STEP + 1:]]


def test_rerun_of_a_run_stopped_before_its_first_checkpoint_logs_each_step_once(
    nan_setup, tmp_path):
  # Rows 1-2 are logged, no checkpoint is complete (the first is due at step 4): the
  # rerun starts afresh and must not keep the first run's rows beside its own. (Found
  # by the SIGKILL test with seed 4: a kill while the first save was in flight.)
  d = str(tmp_path / "run")
  with pytest.raises(KeyboardInterrupt):
    _nan_run(nan_setup, d, checkpoint_every=4, nan_step=None, stop_at=3)
  assert [r["step"] for r in metrics_lib.read_metrics(os.path.join(d, "metrics.jsonl"))] == [
      1, 2]
  _nan_run(nan_setup, d, checkpoint_every=4, nan_step=None)
  rows = metrics_lib.read_metrics(os.path.join(d, "metrics.jsonl"))
  assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
  assert [r["train/skipped_total"] for r in rows] == [0] * 5


@pytest.mark.parametrize("fail", ["part-00004.jsonl.tmp", "part-00004.stats.json.tmp"])
def test_sample_shard_on_a_full_disk(tmp_path, monkeypatch, fail):
  real_open = open

  class Full:
    def __init__(self, f):
      self.f = f

    def __enter__(self):
      return self

    def __exit__(self, *exc):
      self.f.close()

    def write(self, text):
      self.f.write(text[:len(text) // 2])
      raise OSError(28, "No space left on device")

  def fake_open(path, mode="r", *a, **k):
    f = real_open(path, mode, *a, **k)
    return Full(f) if path.endswith(fail) else f

  monkeypatch.setattr(sample, "open", fake_open, raising=False)
  out = str(tmp_path)
  with pytest.raises(common.StageError,
                     match=re.escape(f"cannot write {out}/{fail[:-4]}: No space")):
    sample.write_shard(out, 4, [{"prompt": "p", "completion": "c" * 100}], {"kept": 1})
  # No shard counted as done (no stats file), no temporary file left.
  assert not os.path.exists(os.path.join(out, "part-00004.stats.json"))
  assert not glob.glob(os.path.join(out, "*.tmp"))
  monkeypatch.undo()
  sample.write_shard(out, 4, [{"prompt": "p", "completion": "c"}], {"kept": 1})
  assert _json(os.path.join(out, "part-00004.stats.json")) == {"kept": 1}
