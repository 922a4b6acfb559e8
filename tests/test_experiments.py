"""The real experiment configs: full-size shapes and meshes check out; the scaled-down
variants (':aot_test') AOT-compile their train step and sampler on 8 CPU devices."""

import importlib.util
import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from r1jax import configs, model, sampling, sharding
from r1jax.train import rl
from r1jax.train import sft as sft_lib
from r1jax.train import state as state_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> (intended device counts, published parameters, step kind)
EXPERIMENTS = {
    "r1_zero_qwen2_5_math_1_5b": ((8, 1), 1.54e9, "grpo"),
    "distill_qwen2_5_1_5b": ((8,), 1.54e9, "sft"),
    "r1_deepseek_v3": ((1024,), 671e9, "grpo"),
}


def load(name):
  spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "experiments",
                                                                   name + ".py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


PROMPT_TOKENS = 16  # the AOT-compiled prompt bucket


def train_stage(c, kind):
  """The (first) training stage of `kind` in the experiment."""
  return next(c[s] for s in c.stages if c[s].kind == kind)


def batch_rows(c, kind):
  s = train_stage(c, kind)
  return s.batch_prompts * s.group_size if kind == "grpo" else s.batch_size


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_full_size_config(name):
  devices, published, kind = EXPERIMENTS[name]
  c = load(name).get_config()
  for n in devices:
    configs.validate(c, n)  # every stage's checks, batch vs mesh among them
    sizes = configs.mesh_shape(c.mesh, n)
    configs.validate_mesh_for_model(sizes, c.model, batch_rows(c, kind) if n > 1 else None)
  shapes = jax.eval_shape(lambda: model.init_params(c.model, jax.random.key(0)))
  n_params = sum(math.prod(x.shape) for x in jax.tree.leaves(shapes))
  assert abs(n_params / published - 1) < 0.02, n_params


def test_v3_memory_fits_v5p():
  mod = load("r1_deepseek_v3")
  mem = mod.memory_per_chip_gb(mod.get_config())
  assert 20 < mem["total"] < mod.HBM_GB, mem
  assert math.isclose(mem["total"], 47.72, abs_tol=0.01)  # the docstring's table


def test_unknown_arg_is_an_error():
  for name in EXPERIMENTS:
    with pytest.raises(ValueError, match="aot_test"):  # the error lists the valid args
      load(name).get_config("nope")


def abstract(tree, shardings):
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                      tree, shardings)


def grpo_batch(c):
  r = train_stage(c, "grpo")
  n = r.batch_prompts * r.group_size
  length = PROMPT_TOKENS + r.max_new_tokens
  f = lambda *s: jax.ShapeDtypeStruct(s, jnp.float32)
  return {"tokens": jax.ShapeDtypeStruct((n, length), jnp.int32),
          "prompt_pad": jax.ShapeDtypeStruct((n,), jnp.int32),
          "loss_mask": f(n, length - 1), "advantages": f(n),
          "old_logp": f(n, length - 1), "ref_logp": f(n, length - 1)}


def sft_batch(c):
  s = train_stage(c, "sft")
  b, t = s.batch_size, s.seq_len
  i32 = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.int32)
  return {"tokens": i32(b, t + 1), "loss_mask": jax.ShapeDtypeStruct((b, t), jnp.float32),
          "segment_ids": i32(b, t), "positions": i32(b, t),
          "loss_denominator": jax.ShapeDtypeStruct((), jnp.float32)}


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_aot_compiles(name):
  _, _, kind = EXPERIMENTS[name]
  c = load(name).get_config("aot_test")
  configs.validate(c, 8)
  mesh = sharding.make_mesh(c.mesh)
  assert mesh.devices.size == 8
  configs.validate_mesh_for_model(mesh.devices.shape, c.model, batch_rows(c, kind))
  rules = c.mesh.rules
  stage = train_stage(c, kind)
  opt = stage.optimizer
  tx = state_lib.make_optimizer(opt)
  state, shardings = state_lib.create_train_state(c.model, tx, mesh, rules, jax.random.key(0))
  abs_state = abstract(state, shardings)
  if kind == "grpo":
    loss_fn, batch = rl.grpo_loss_fn(c.model, stage), grpo_batch(c)
  else:
    loss_fn, batch = sft_lib.sft_loss(c.model), sft_batch(c)
  step = state_lib.make_train_step(loss_fn, c.model, tx, shardings, mesh, rules,
                                   state_lib.learning_rate_schedule(opt))
  compiled = step.lower(abs_state, batch).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  assert cost and cost.get("flops", 0) > 0, cost

  # The sampler core on the same mesh, params sharded like the train state.
  evaluation = next(c[s] for s in c.stages if c[s].kind == "evaluate")
  rows = batch_rows(c, kind) if kind == "grpo" else evaluation.batch_rows
  prompt = PROMPT_TOKENS
  i32 = lambda *s: jax.ShapeDtypeStruct(s, jnp.int32)
  in2 = sharding.batch_sharding(mesh, rules, 2, (rows, prompt))
  in1 = sharding.batch_sharding(mesh, rules, 1, (rows,))
  with sharding.use_mesh(mesh, rules):
    lowered = sampling.sample_padded.lower(
        abs_state.params, jax.ShapeDtypeStruct((rows, prompt), jnp.int32, sharding=in2),
        jax.ShapeDtypeStruct((rows,), jnp.int32, sharding=in1), jax.random.key(1),
        i32(), jax.ShapeDtypeStruct((), jnp.float32), jax.ShapeDtypeStruct((), jnp.float32),
        i32(), i32(1), config=ml_collections.FrozenConfigDict(c.model),
        gen_bucket=sampling.bucket(evaluation.max_new_tokens))
  sampler = lowered.compile()
  cost = sampler.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  assert cost and cost.get("flops", 0) > 0, cost
  del state
  np.testing.assert_equal(mesh.devices.shape, configs.mesh_shape(c.mesh, 8))


def test_aot_compiles_reward_model_step():
  """R1's reward models at full size: the scaled-down v3 config's Bradley-Terry step
  (value head on the MoE body) compiles on the 8-device mesh."""
  from r1jax.train import reward_model as rm_lib
  c = load("r1_deepseek_v3").get_config("aot_test")
  mesh = sharding.make_mesh(c.mesh)
  rules = c.mesh.rules
  s = c.reward_model_helpful
  tx = state_lib.make_optimizer(s.optimizer)
  params = rm_lib.with_head(model.init_params(c.model, jax.random.key(0)), c.model)
  state, shardings = state_lib.create_train_state(c.model, tx, mesh, rules, jax.random.key(1),
                                                  params)
  step = state_lib.make_train_step(rm_lib.bradley_terry_loss(c.model), c.model, tx, shardings,
                                   mesh, rules, state_lib.learning_rate_schedule(s.optimizer))
  rows = 2 * s.batch_pairs
  batch = {"tokens": jax.ShapeDtypeStruct((rows, s.seq_len), jnp.int32),
           "lengths": jax.ShapeDtypeStruct((rows,), jnp.int32)}
  compiled = step.lower(abstract(state, shardings), batch).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  assert cost and cost.get("flops", 0) > 0, cost
  # The value head is replicated; the body keeps the policy's shardings.
  assert shardings.params[rm_lib.HEAD]["w"].spec == jax.sharding.PartitionSpec()
