"""Sharded equals unsharded: forward logits and one optimiser step, on 8 CPU devices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from r1jax import configs, model, sharding
from r1jax.train import state as state_lib

MESHES = [(8, 1, 1, 1), (2, 2, 2, 1), (1, 2, 2, 2), (1, 1, 4, 2)]


def _model_cfg():
  # Divisible by every mesh above: 8 experts (expert<=4), 4 heads (tensor<=2), width 64.
  return configs.tiny_moe_config(moe=dict(bias_update_rate=1e-2, aux_loss_alpha=1e-3))


def _mesh(shape):
  cfg = configs.mesh_config(**dict(zip(configs.MESH_AXES, shape)))
  return sharding.make_mesh(cfg), cfg.rules


def _batch(cfg, b=8, t=12):
  toks = jax.random.randint(jax.random.key(3), (b, t + 1), 0, cfg.vocab_size)
  mask = jnp.ones((b, t), jnp.float32).at[:, : t // 2].set(0.0)
  return {"tokens": toks, "loss_mask": mask}


def _run(shape):
  cfg = _model_cfg()
  mesh, rules = _mesh(shape)
  opt = configs.optimizer_config(learning_rate=1e-2, warmup_steps=1)
  tx = state_lib.make_optimizer(opt)
  st, shard = state_lib.create_train_state(cfg, tx, mesh, rules, jax.random.key(0))
  batch = _batch(cfg)
  with sharding.use_mesh(mesh, rules):
    logits = jax.jit(lambda p, t: model.forward(p, t, cfg))(st.params, batch["tokens"])
  per_device = sharding.bytes_per_device(st.params)
  step = state_lib.make_train_step(state_lib.lm_loss(cfg), cfg, tx, shard, mesh, rules,
                                   state_lib.learning_rate_schedule(opt))
  st, metrics = step(st, batch)
  return (np.asarray(logits), jax.tree.map(np.asarray, jax.device_get(st.params)),
          float(metrics["train/loss"]), max(per_device.values()))


@pytest.fixture(scope="module")
def reference():
  return _run((1, 1, 1, 1)) if False else _single_device()


def _single_device():
  cfg = _model_cfg()
  mesh_cfg = configs.mesh_config(data=1)
  mesh = sharding.make_mesh(mesh_cfg, devices=jax.devices()[:1])
  opt = configs.optimizer_config(learning_rate=1e-2, warmup_steps=1)
  tx = state_lib.make_optimizer(opt)
  st, shard = state_lib.create_train_state(cfg, tx, mesh, mesh_cfg.rules, jax.random.key(0))
  batch = _batch(cfg)
  logits = model.forward(st.params, batch["tokens"], cfg)
  per_device = sharding.bytes_per_device(st.params)
  step = state_lib.make_train_step(state_lib.lm_loss(cfg), cfg, tx, shard, mesh, mesh_cfg.rules,
                                   state_lib.learning_rate_schedule(opt))
  st, metrics = step(st, batch)
  return (np.asarray(logits), jax.tree.map(np.asarray, jax.device_get(st.params)),
          float(metrics["train/loss"]), max(per_device.values()))


def _rel(a, b):
  return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


@pytest.mark.slow
def test_sharded_equals_unsharded(reference, capsys):
  assert len(jax.devices()) == 8
  ref_logits, ref_params, ref_loss, ref_bytes = reference
  rows = [("1x1x1x1 (one device)", ref_bytes, 0.0, 0.0)]
  bytes_by_mesh = {}
  for shape in MESHES:
    logits, params, loss, max_bytes = _run(shape)
    assert _rel(logits, ref_logits) < 1e-5, shape
    assert abs(loss - ref_loss) <= 1e-5 * abs(ref_loss), shape
    worst = max(_rel(a, b) for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ref_params)))
    assert worst < 1e-5, (shape, worst)
    # The step really changed the params (else equality would be trivial).
    moved = max(_rel(a, b) for a, b in zip(jax.tree.leaves(params),
                                            jax.tree.leaves(_initial_params())))
    assert moved > 1e-3
    bytes_by_mesh[shape] = max_bytes
    rows.append(("x".join(map(str, shape)), max_bytes, _rel(logits, ref_logits), worst))
  with capsys.disabled():
    print("\nmesh (data x fsdp x expert x tensor) | param bytes on busiest device | "
          "logits rel err | params rel err after 1 step")
    for name, b, e1, e2 in rows:
      print(f"  {name:22s} {b:10d}   {e1:.2e}   {e2:.2e}")
  # Pure data parallelism replicates; fsdp/expert/tensor shrink the per-device share.
  assert bytes_by_mesh[(8, 1, 1, 1)] == ref_bytes
  assert bytes_by_mesh[(2, 2, 2, 1)] < bytes_by_mesh[(8, 1, 1, 1)]
  assert bytes_by_mesh[(1, 2, 2, 2)] < bytes_by_mesh[(2, 2, 2, 1)]
  assert bytes_by_mesh[(1, 1, 4, 2)] < bytes_by_mesh[(8, 1, 1, 1)]


def _initial_params():
  return jax.tree.map(np.asarray, model.init_params(
      _model_cfg(), jax.random.split(jax.random.key(0))[0]))


def test_train_step_with_moe_settings_but_only_dense_layers():
  """first_k_dense_replace >= n_layers leaves no MoE layer: no router bias to move and
  no load metric (this used to fail reducing an empty load array)."""
  cfg = configs.tiny_moe_config(n_layers=2, moe=dict(first_k_dense_replace=2))
  mesh_cfg = configs.mesh_config(data=1)
  mesh = sharding.make_mesh(mesh_cfg, devices=jax.devices()[:1])
  opt = configs.optimizer_config(learning_rate=1e-2, warmup_steps=1)
  tx = state_lib.make_optimizer(opt)
  st, shard = state_lib.create_train_state(cfg, tx, mesh, mesh_cfg.rules, jax.random.key(0))
  assert "moe_layers" not in st.params
  step = state_lib.make_train_step(state_lib.lm_loss(cfg), cfg, tx, shard, mesh,
                                   mesh_cfg.rules, state_lib.learning_rate_schedule(opt))
  batch = _batch(cfg)
  losses = []
  for _ in range(3):  # the first step has learning rate 0 (warmup)
    st, m = step(st, batch)
    losses.append(float(m["train/loss"]))
  assert "moe/load/max_over_mean" not in m
  assert np.isfinite(losses[0]) and losses[2] < losses[0]
