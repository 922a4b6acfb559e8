"""Multi-host (multi-process) JAX: start-up, host <-> global arrays, row ownership.

One process per host (or per GPU) runs the same program; `jax.devices()` spans every
process, a process addresses only its own devices. The rules r1jax follows:

- Every process computes the same host values (a step's row indices, prompts, rewards
  once gathered): data order stays a pure function of (seed, step).
- `put` turns such a value into a global array; each process transfers only the slices
  its own devices hold.
- `fetch` reads a global array back on every process (an all-gather where the array is
  sharded over other processes' devices).
- Work done on the host per row (reward scoring) is split by `owned_rows`: each row
  is scored by exactly one process (the one whose devices hold it), and
  `gather_rows` gives every process the whole result.
- Files (metrics, eval.json, plots, sample shards) are written by process 0 alone
  (`is_primary`); Orbax checkpoints are written collectively. The workdir must be on a
  file system every host sees (NFS, a GCS mount) for resume and stage hand-over.

Single-process runs take the same paths, which reduce to plain device_put/device_get.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None,
               local_device_ids: Sequence[int] | None = None) -> bool:
  """Starts jax.distributed when a multi-process run is asked for; True if it did.

  Explicit arguments (the CLI's --coordinator_address/--num_processes/--process_id)
  win. Otherwise the environment decides: R1JAX_NUM_PROCESSES > 1 or a
  COORDINATOR_ADDRESS / JAX_COORDINATOR_ADDRESS starts it, and jax fills in what is
  not given from the cluster (TPU VM metadata, SLURM variables);
  R1JAX_PROCESS_ID and JAX_LOCAL_DEVICE_IDS are read when set.
  """
  env = os.environ
  if num_processes is None and env.get("R1JAX_NUM_PROCESSES"):
    num_processes = int(env["R1JAX_NUM_PROCESSES"])
  if coordinator_address is None:
    coordinator_address = env.get("COORDINATOR_ADDRESS") or env.get("JAX_COORDINATOR_ADDRESS")
  if process_id is None and env.get("R1JAX_PROCESS_ID"):
    process_id = int(env["R1JAX_PROCESS_ID"])
  if local_device_ids is None and env.get("JAX_LOCAL_DEVICE_IDS"):
    local_device_ids = [int(i) for i in env["JAX_LOCAL_DEVICE_IDS"].split(",") if i]
  if (num_processes or 1) <= 1 and coordinator_address is None:
    return False
  if num_processes is not None and process_id is not None and not (
      0 <= process_id < num_processes):
    raise ValueError(f"process_id={process_id} must be in [0, num_processes={num_processes}).")
  kwargs = {k: v for k, v in dict(coordinator_address=coordinator_address,
                                  num_processes=num_processes, process_id=process_id,
                                  local_device_ids=local_device_ids).items() if v is not None}
  # CPU collectives (gloo): a process that reaches a collective minutes after the others
  # (still compiling on a loaded host) must find them waiting, not timed out.
  flags = os.environ.get("XLA_FLAGS", "")
  if "xla_cpu_collective_timeout_seconds" not in flags:
    os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_collective_timeout_seconds={_CPU_TIMEOUT_S}"
  jax.distributed.initialize(**kwargs)
  if jax.devices()[0].platform == "cpu":
    _warm_up_cpu_collectives()
  logging.info("jax.distributed: process %d of %d, %d local of %d devices",
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count())
  return True


_CPU_TIMEOUT_S = 3600


def _warm_up_cpu_collectives() -> None:
  """One all-device reduction right after start-up, while the processes are in step.

  Gloo builds a communicator the first time a group of devices meets, and that
  rendezvous gives up after 30 s whatever the flags say; once built, a collective waits
  up to xla_cpu_collective_timeout_seconds. Building the all-device one here keeps a
  host that compiles slowly (a loaded machine) from failing the first training step.
  """
  mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ("all",))
  ones = jax.make_array_from_callback(
      (jax.device_count(),), jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("all")),
      lambda index: np.ones((1,), np.float32))
  total = float(jax.jit(lambda x: x.sum())(ones))
  if total != jax.device_count():
    raise RuntimeError(f"CPU collectives warm-up summed {total}, expected {jax.device_count()}.")


def is_primary() -> bool:
  """Process 0: the one that writes files and prints progress."""
  return jax.process_index() == 0


def barrier(name: str) -> None:
  """Waits until every process reaches the barrier `name` (no-op for one process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def put(x: Any, sharding: jax.sharding.Sharding) -> jax.Array:
  """A host value (the same on every process) as a global array with `sharding`; each
  process transfers only the slices its devices hold."""
  if isinstance(x, jax.Array):
    return jax.device_put(x, sharding)
  x = np.asarray(x)
  if jax.process_count() == 1:
    return jax.device_put(x, sharding)
  return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def fetch(x: Any) -> Any:
  """The whole value of a (pytree of) global array(s) as numpy, on every process."""
  def one(a: Any) -> Any:
    if not isinstance(a, jax.Array):
      return a
    if a.is_fully_addressable or a.is_fully_replicated:
      return np.asarray(jax.device_get(a))
    return np.asarray(multihost_utils.process_allgather(a, tiled=True))
  return jax.tree.map(one, x)


def owned_rows(num_rows: int, sharding: jax.sharding.Sharding) -> np.ndarray:
  """Rows (dimension 0 of a [num_rows, ...] array with `sharding`) this process owns,
  sorted: each row is owned by exactly one process, one that holds it (rows held by
  several processes, i.e. replicated across hosts, are dealt round-robin)."""
  if jax.process_count() == 1:
    return np.arange(num_rows)
  holders: list[set[int]] = [set() for _ in range(num_rows)]
  for device, index in sharding.devices_indices_map((num_rows,)).items():
    for r in range(num_rows)[index[0]]:
      holders[r].add(device.process_index)
  me = jax.process_index()
  return np.asarray([r for r in range(num_rows)
                     if sorted(holders[r])[r % len(holders[r])] == me], np.int64)


def gather_rows(values: np.ndarray, rows: np.ndarray, num_rows: int) -> np.ndarray:
  """[num_rows, ...] on every process from each process's `values` for its `rows`
  (`owned_rows`: together they cover every row once)."""
  values = np.asarray(values)
  full = np.zeros((num_rows,) + values.shape[1:], values.dtype)
  full[rows] = values
  if jax.process_count() == 1:
    return full
  mine = np.zeros((num_rows,), bool)
  mine[rows] = True
  parts = np.asarray(multihost_utils.process_allgather(full))  # [P, num_rows, ...]
  owners = np.asarray(multihost_utils.process_allgather(mine))  # [P, num_rows]
  counts = owners.sum(0)
  if not np.all(counts == 1):
    raise RuntimeError(f"gather_rows: rows owned {counts.min()}-{counts.max()} times; each "
                       f"row must be owned by exactly one process (owned_rows).")
  return parts[owners.argmax(0), np.arange(num_rows)]


def sum_counts(counts: Mapping[str, float]) -> dict[str, float]:
  """Per-key sums over processes of host-side counts (same keys on every process)."""
  if jax.process_count() == 1 or not counts:
    return dict(counts)
  keys = sorted(counts)
  total = np.asarray(multihost_utils.process_allgather(
      np.asarray([counts[k] for k in keys], np.float64))).sum(0)
  return {k: float(v) for k, v in zip(keys, total)}
