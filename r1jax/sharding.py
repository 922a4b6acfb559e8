"""Device mesh and logical-axis sharding.

Parameters and activations name *logical* axes ('batch', 'embed', 'heads', 'experts',
...). One rule table in the config (`config.mesh.rules`) maps each logical axis to mesh
axes (`data`, `fsdp`, `expert`, `tensor`) or to None (replicated). A dimension that a
mesh axis does not divide is replicated instead (and a mesh axis is used at most once
per array), so any rule table yields a valid sharding.

Activation constraints (`constrain`) are no-ops unless code runs under `use_mesh`, so
the model runs unchanged on one device.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from r1jax import configs

Rules = Sequence[tuple[str, Any]]
_state = threading.local()


def make_mesh(mesh_cfg: configs.ConfigDict, devices: Sequence[jax.Device] | None = None) -> Mesh:
  """Builds the 4-axis mesh from the config (-1 fills the remaining devices)."""
  devices = list(jax.devices() if devices is None else devices)
  shape = configs.mesh_shape(mesh_cfg, len(devices))
  dev_array = np.asarray(devices).reshape(shape)
  return Mesh(dev_array, configs.MESH_AXES,
              axis_types=(jax.sharding.AxisType.Auto,) * len(configs.MESH_AXES))


def logical_to_spec(logical: Sequence[str | None], rules: Rules,
                    shape: Sequence[int] | None = None, mesh: Mesh | None = None) -> P:
  """Maps logical axis names to a PartitionSpec (dropping axes that do not divide)."""
  table = dict(rules)
  used: set[str] = set()
  out = []
  for i, name in enumerate(logical):
    if name is None:
      out.append(None)
      continue
    if name not in table:
      raise KeyError(f"Logical axis '{name}' has no rule; rules cover {sorted(table)}.")
    target = table[name]
    axes = () if target is None else ((target,) if isinstance(target, str) else tuple(target))
    keep = []
    size = 1
    for ax in axes:
      if ax in used:
        continue
      n = mesh.shape[ax] if mesh is not None else 1
      if shape is not None and mesh is not None and shape[i] % (size * n) != 0:
        continue
      if mesh is not None and n == 1:
        continue
      keep.append(ax)
      size *= n
    used.update(keep)
    out.append(None if not keep else (keep[0] if len(keep) == 1 else tuple(keep)))
  return P(*out)


def tree_shardings(mesh: Mesh, rules: Rules, axes_tree: Any, shapes_tree: Any) -> Any:
  """NamedShardings for a pytree, from its logical axes and (abstract) shapes."""
  return jax.tree.map(
      lambda ax, s: NamedSharding(mesh, logical_to_spec(ax, rules, s.shape, mesh)),
      axes_tree, shapes_tree, is_leaf=lambda x: isinstance(x, tuple))


@contextlib.contextmanager
def use_mesh(mesh: Mesh, rules: Rules) -> Iterator[None]:
  """Activates `mesh` and its rule table for `constrain` in this thread.

  Functions traced under it carry the activation constraints; trace them inside it.
  """
  prev = getattr(_state, "ctx", None)
  _state.ctx = (mesh, tuple(rules))
  try:
    yield
  finally:
    _state.ctx = prev


def constrain(x: jax.Array, logical: Sequence[str | None]) -> jax.Array:
  """with_sharding_constraint by logical names; a no-op outside `use_mesh`."""
  ctx = getattr(_state, "ctx", None)
  if ctx is None:
    return x
  mesh, rules = ctx
  spec = logical_to_spec(logical, rules, x.shape, mesh)
  return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))


def batch_sharding(mesh: Mesh, rules: Rules, ndim: int, shape: Sequence[int] | None = None
                   ) -> NamedSharding:
  """Sharding of a [batch, ...] array: batch split by the 'batch' rule."""
  return NamedSharding(mesh, logical_to_spec(("batch",) + (None,) * (ndim - 1), rules, shape,
                                             mesh))


def bytes_per_device(tree: Any) -> dict[int, int]:
  """Bytes of a sharded pytree held by each device id."""
  out: dict[int, int] = {}
  for leaf in jax.tree.leaves(tree):
    for shard in leaf.addressable_shards:
      out[shard.device.id] = out.get(shard.device.id, 0) + shard.data.nbytes
  return out
