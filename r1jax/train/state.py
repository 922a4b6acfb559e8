"""Train state, optimiser, sharded initialisation and the one jitted train step.

The train state is one pytree. It is created already sharded: `jax.eval_shape` of the
init gives abstract shapes, logical axes give shardings, and `jit(init,
out_shardings=...)` materialises each shard where it lives. The step is
`step(state, batch) -> (state, metrics)`, jitted with explicit shardings and the state
donated. Every loss (LM pretraining, SFT, GRPO) plugs into the same step.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from r1jax import distributed, model, sharding
from r1jax.model import moe

Array = jax.Array
Params = dict[str, Any]
# loss_fn(params, batch, rng) -> (loss, (metrics dict, expert_load [L_moe, E]))
LossFn = Callable[[Params, dict[str, Array], Array], tuple[Array, tuple[dict[str, Array], Array]]]


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class TrainState:
  step: Array  # int32 scalar: optimiser updates applied
  params: Params
  opt_state: Any
  rng: Array  # uint32 raw key data (checkpointable), advanced every step
  nonfinite: Array  # int32 scalar: consecutive steps skipped for a non-finite loss


def learning_rate_schedule(opt: Any) -> optax.Schedule:
  """Linear warmup to the peak, then constant or cosine decay to end_lr_ratio * peak.

  With `warmup_steps` 0 the peak applies from step 0.
  """
  if opt.decay_steps:
    after = optax.cosine_decay_schedule(opt.learning_rate, opt.decay_steps, opt.end_lr_ratio)
  else:
    after = optax.constant_schedule(opt.learning_rate)
  if not opt.warmup_steps:
    return after
  warm = optax.linear_schedule(0.0, opt.learning_rate, opt.warmup_steps)
  return optax.join_schedules([warm, after], [opt.warmup_steps])


def _label(path: tuple[Any, ...], leaf: Any) -> str:
  name = getattr(path[-1], "key", "")
  if name == "router_bias":
    return "frozen"  # moved by the balancing rule, not by gradients
  return "decay" if getattr(leaf, "ndim", 0) >= 2 and name != "embed" else "no_decay"


def make_optimizer(opt: Any) -> optax.GradientTransformation:
  """AdamW (decay on matrices only), global-norm clipping; router biases frozen."""
  lr = learning_rate_schedule(opt)
  adam = lambda wd: optax.adamw(lr, opt.b1, opt.b2, opt.eps, weight_decay=wd)
  tx = optax.multi_transform(
      {"decay": adam(opt.weight_decay), "no_decay": adam(0.0), "frozen": optax.set_to_zero()},
      lambda params: jax.tree_util.tree_map_with_path(_label, params))
  if opt.grad_clip:
    tx = optax.chain(optax.clip_by_global_norm(opt.grad_clip), tx)
  return tx


def _path_keys(path: tuple[Any, ...]) -> tuple[str, ...]:
  return tuple(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def state_shardings(abstract: TrainState, model_cfg: Any, mesh: Mesh, rules: Any) -> TrainState:
  """Shardings for every leaf: params by logical axes; optimiser moments like their params."""
  axes = model.param_axes(model_cfg)
  by_path = {_path_keys(p): a for p, a in
             jax.tree_util.tree_flatten_with_path(axes, is_leaf=lambda x: isinstance(x, tuple))[0]}
  replicated = NamedSharding(mesh, P())

  def for_leaf(path: tuple[Any, ...], leaf: Any) -> NamedSharding:
    keys = _path_keys(path)
    for start in range(len(keys)):
      ax = by_path.get(keys[start:])
      if ax is not None and len(ax) == len(leaf.shape):
        return NamedSharding(mesh, sharding.logical_to_spec(ax, rules, leaf.shape, mesh))
    return replicated

  return jax.tree_util.tree_map_with_path(for_leaf, abstract)


def create_train_state(model_cfg: Any, tx: optax.GradientTransformation, mesh: Mesh, rules: Any,
                       rng: Array, params: Params | None = None
                       ) -> tuple[TrainState, TrainState]:
  """A sharded train state (fresh params, or `params` resharded) and its shardings."""
  def init(rng: Array, params: Params | None) -> TrainState:
    init_rng, rng = jax.random.split(rng)
    rng = jax.random.key_data(rng)
    if params is None:
      params = model.init_params(model_cfg, init_rng)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                      rng=rng, nonfinite=jnp.zeros((), jnp.int32))

  if not jax.dtypes.issubdtype(rng.dtype, jax.dtypes.prng_key):
    rng = jax.random.wrap_key_data(rng)
  abstract = jax.eval_shape(init, rng, params)
  shardings = state_shardings(abstract, model_cfg, mesh, rules)
  with sharding.use_mesh(mesh, rules):
    state = jax.jit(init, out_shardings=shardings)(rng, params)
  return state, shardings


def global_norm(tree: Any) -> Array:
  return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in jax.tree.leaves(tree)))


def _micro_batches(batch: dict[str, Array], accum_steps: int) -> dict[str, Array]:
  """[B, ...] leaves as [A, B/A, ...]: micro-batch i holds rows i, i+A, i+2A, ... (so
  each device's rows feed every micro-batch). Scalars are repeated, `loss_denominator`
  divided by A (see `make_train_step`)."""
  out = {}
  for k, x in batch.items():
    if x.ndim == 0:
      x = x / accum_steps if k == "loss_denominator" else x
      out[k] = jnp.broadcast_to(x, (accum_steps,))
      continue
    if x.shape[0] % accum_steps:
      raise ValueError(f"batch[{k!r}] has {x.shape[0]} rows, not divisible by "
                       f"accum_steps={accum_steps}")
    out[k] = x.reshape((x.shape[0] // accum_steps, accum_steps) + x.shape[1:]).swapaxes(0, 1)
  return out


def make_train_step(loss_fn: LossFn, model_cfg: Any, tx: optax.GradientTransformation,
                    shardings: TrainState, mesh: Mesh, rules: Any, lr_schedule: optax.Schedule,
                    accum_steps: int = 1
                    ) -> Callable[[TrainState, dict[str, Array]], tuple[TrainState, dict]]:
  """The jitted `step(state, batch) -> (state, metrics)` (state donated).

  A non-finite loss or gradient skips the update (state unchanged but rng and the
  `nonfinite` counter); the caller stops after several in a row.

  With `accum_steps` A > 1 the batch's rows are split into A micro-batches (rows i,
  i+A, ...), their gradients summed in float32 in a `lax.scan` and averaged, and one
  update applied; the loss and metrics are micro-batch means, the MoE loads their sum.
  A loss that is a mean over its own micro-batch's tokens then gives the mean of
  micro-batch means. A batch carrying a scalar `loss_denominator` (its full token count,
  e.g. `sft.SFTData`) hands each micro-batch `loss_denominator / A`, so a loss divided by
  it (`lm_loss`) gives exactly the full batch's loss and gradient.
  """
  if accum_steps < 1:
    raise ValueError(f"accum_steps must be >= 1, got {accum_steps}")
  _, n_moe_layers = model.layer_counts(model_cfg)
  rate = model_cfg.moe.bias_update_rate if n_moe_layers else 0.0
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

  def loss_and_grads(params: Params, batch: dict[str, Array], rng: Array
                     ) -> tuple[Array, dict[str, Array], Array, Params]:
    """(loss, metrics, expert load, grads) of the batch, accumulated over micro-batches."""
    if accum_steps == 1:
      (loss, (metrics, load)), grads = grad_fn(params, batch, rng)
      return loss, metrics, load, grads

    def micro(acc: Params, xs: tuple[dict[str, Array], Array]):
      mb, i = xs
      (loss, (metrics, load)), grads = grad_fn(params, mb, jax.random.fold_in(rng, i))
      acc = jax.tree.map(lambda a, g: a + g.astype(jnp.float32), acc, grads)
      return acc, (loss, metrics, load)

    zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), params)
    acc, (loss, metrics, load) = jax.lax.scan(
        micro, zeros, (_micro_batches(batch, accum_steps), jnp.arange(accum_steps)))
    grads = jax.tree.map(lambda a, p: (a / accum_steps).astype(p.dtype), acc, params)
    mean = lambda x: jnp.mean(x, axis=0)
    return mean(loss), jax.tree.map(mean, metrics), load.sum(0), grads

  def step(state: TrainState, batch: dict[str, Array]) -> tuple[TrainState, dict[str, Array]]:
    rng, step_rng = jax.random.split(jax.random.wrap_key_data(state.rng))
    loss, metrics, load, grads = loss_and_grads(state.params, batch, step_rng)
    gnorm = global_norm(grads)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    if rate and "moe_layers" in params:
      layers_p = dict(params["moe_layers"])
      layers_p["moe"] = dict(layers_p["moe"])
      layers_p["moe"]["router_bias"] = moe.update_router_bias(
          layers_p["moe"]["router_bias"], load, rate)
      params = {**params, "moe_layers": layers_p}
    ok = jnp.isfinite(loss) & jnp.isfinite(gnorm)
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)
    new_state = TrainState(
        step=state.step + ok.astype(jnp.int32),
        params=keep(params, state.params),
        opt_state=keep(opt_state, state.opt_state),
        rng=jax.random.key_data(rng),
        nonfinite=jnp.where(ok, 0, state.nonfinite + 1))
    metrics = dict(metrics)
    metrics.update({"train/loss": loss, "grads/all/norm": gnorm,
                    "params/all/norm": global_norm(state.params),
                    "train/learning_rate": lr_schedule(state.step),
                    "train/nonfinite": (~ok).astype(jnp.int32)})
    if rate:
      frac = load.astype(jnp.float32) / jnp.maximum(load.sum(-1, keepdims=True), 1)
      metrics["moe/load/max_over_mean"] = jnp.max(frac) * frac.shape[-1]
    return new_state, metrics

  def batch_spec(x: Any) -> NamedSharding:
    if not x.ndim:  # a scalar such as `loss_denominator`
      return NamedSharding(mesh, P())
    return sharding.batch_sharding(mesh, rules, x.ndim, x.shape)

  cache: dict[Any, Callable] = {}

  def run(state: TrainState, batch: dict[str, Array]) -> tuple[TrainState, dict[str, Array]]:
    key = tuple(sorted((k, v.shape) for k, v in batch.items()))
    if key not in cache:
      in_batch = {k: batch_spec(v) for k, v in batch.items()}
      with sharding.use_mesh(mesh, rules):
        cache[key] = jax.jit(step, in_shardings=(shardings, in_batch),
                             out_shardings=(shardings, None), donate_argnums=(0,))
    batch = {k: distributed.put(v, batch_spec(v)) for k, v in batch.items()}
    with sharding.use_mesh(mesh, rules):
      return cache[key](state, batch)

  def lower(state: Any, batch: Any) -> Any:
    """AOT lowering on (abstract) state and batch, e.g. jax.ShapeDtypeStruct leaves."""
    in_batch = {k: batch_spec(v) for k, v in batch.items()}
    with sharding.use_mesh(mesh, rules):
      return jax.jit(step, in_shardings=(shardings, in_batch), out_shardings=(shardings, None),
                     donate_argnums=(0,)).lower(state, batch)

  run.lower = lower  # type: ignore[attr-defined]
  return run


def token_nll(params: Params, model_cfg: Any, batch: dict[str, Array]
              ) -> tuple[Array, Array, model.Aux]:
  """NLL [B, T] and argmax hits [B, T] of targets tokens[:, 1:] given tokens[:, :-1].

  batch: tokens int32 [B, T+1]; optional segment_ids and positions int32 [B, T] (packed
  rows, `sft.pack`); optional token_mask [B, T] for the MoE statistics (default: the
  non-padding tokens, segment_ids > 0, when packed).
  """
  inputs, targets = batch["tokens"][:, :-1], batch["tokens"][:, 1:]
  segment_ids = batch["segment_ids"] if "segment_ids" in batch else None
  positions = batch["positions"] if "positions" in batch else None
  if "token_mask" in batch:
    token_mask = batch["token_mask"]
  else:
    token_mask = None if segment_ids is None else segment_ids > 0
  logits, _, aux = model.apply(params, inputs, model_cfg, positions=positions,
                               segment_ids=segment_ids, token_mask=token_mask)
  logp = jax.nn.log_softmax(logits, axis=-1)
  nll = -jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
  hit = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
  return nll, hit, aux


def lm_loss(model_cfg: Any) -> LossFn:
  """Next-token cross-entropy over `loss_mask` (+ MoE balance loss): pretraining and SFT.

  batch: `token_nll`'s keys, loss_mask float [B, T] (weights on targets tokens[:, 1:]),
  and optionally a scalar loss_denominator, the count the masked NLL sum is divided by
  (default loss_mask.sum() of this batch; with it, gradient accumulation is exact:
  `make_train_step`).
  """
  def loss_fn(params: Params, batch: dict[str, Array], rng: Array):
    del rng
    nll, hit, aux = token_nll(params, model_cfg, batch)
    mask = batch["loss_mask"].astype(jnp.float32)
    if "loss_denominator" in batch:
      denom = batch["loss_denominator"].astype(jnp.float32)
    else:
      denom = jnp.maximum(mask.sum(), 1.0)
    ce = (nll * mask).sum() / denom
    acc = (hit * mask).sum() / denom
    loss = ce + aux.balance_loss
    return loss, ({"train/ce": ce, "train/token_accuracy": acc,
                   "moe/balance_loss": aux.balance_loss}, aux.expert_load)

  return loss_fn
