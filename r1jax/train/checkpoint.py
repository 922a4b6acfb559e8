"""Orbax checkpoints: train state + JSON metadata (data position, stage status).

Saves are asynchronous and atomic (Orbax writes to a temporary directory and renames
it when complete), so a kill at any moment leaves the last complete checkpoint intact;
`max_to_keep` only deletes older checkpoints after a newer one is finalised. Restores
place every array directly with the shardings of the target state.

Every save records a fingerprint of the state (`fingerprint`: exact integer arithmetic,
computed in-graph) in its metadata; a restore recomputes it. A step that cannot be read,
or reads back different from what was saved (a truncated file, flipped bits, a lost
file), is skipped with a warning and the previous one restored; the skipped step is
moved to DIR/corrupt_checkpoints/ so that the resumed run can save that step again.
Only when no step is restorable is it an error.
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Callable

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from absl import logging

from r1jax import distributed


class CheckpointError(RuntimeError):
  """A checkpoint that cannot be restored into this run; the message names the directory."""


def _words(x: jax.Array) -> jax.Array:
  """The bits of `x` as uint32 words (one per element, or several for 64-bit types)."""
  if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    x = jax.random.key_data(x)
  size = jnp.dtype(x.dtype).itemsize
  if x.dtype == jnp.bool_:
    return x.astype(jnp.uint32)
  if size < 4:
    return jax.lax.bitcast_convert_type(x, jnp.dtype(f"uint{8 * size}")).astype(jnp.uint32)
  return jax.lax.bitcast_convert_type(x, jnp.uint32)


@jax.jit
def _fingerprint(tree: Any) -> jax.Array:
  total = jnp.zeros((), jnp.uint32)
  for i, x in enumerate(jax.tree.leaves(tree)):
    w = _words(jnp.asarray(x))
    odd = 2 * jnp.arange(w.size, dtype=jnp.uint32).reshape(w.shape) + 1
    total = total + jnp.sum(w * odd, dtype=jnp.uint32) * jnp.uint32(2 * i + 1)
  return total


def fingerprint(tree: Any) -> int:
  """A uint32 hash of every bit of every leaf (leaf order and element positions
  included), as an int.

  Sums of words times odd position weights, modulo 2**32: integer sums do not depend on
  the order of reduction, so the same values give the same fingerprint whatever the
  sharding, and any single changed word changes it.
  """
  return int(distributed.fetch(_fingerprint(tree)))


class Checkpointer:
  """A CheckpointManager over `directory` for (state, metadata) pairs."""

  def __init__(self, directory: str, *, max_to_keep: int = 2, async_save: bool = True):
    self.directory = os.path.abspath(directory)
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                             enable_async_checkpointing=async_save))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state: Any, meta: dict[str, Any], *, force: bool = False) -> None:
    """Starts an async save of `state` and `meta` (plus the state's fingerprint) at `step`."""
    meta = {**meta, "fingerprint": fingerprint(state)}
    self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                     meta=ocp.args.JsonSave(meta)), force=force)

  def _restore_step(self, step: int, abstract: Any) -> tuple[Any, dict[str, Any]]:
    out = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    state, meta = out["state"], out["meta"]
    if not isinstance(meta, dict) or meta.get("step") != step:
      raise ValueError(f"metadata {meta!r} is not that of step {step}")
    if "fingerprint" in meta and fingerprint(state) != meta["fingerprint"]:
      raise ValueError("the state read back differs from the state saved (fingerprint "
                       "mismatch)")
    return state, meta

  def restore(self, target: Any, shardings: Any, step: int | None = None,
              log: Callable[[str], None] | None = None) -> tuple[Any, dict[str, Any]]:
    """Restores into the structure/shardings of `target`.

    Without `step`, the latest restorable step: a newer one that fails is skipped with a
    warning (absl and `log`) and moved to DIR/corrupt_checkpoints/. CheckpointError when
    no step (or the given one) can be restored.
    """
    steps = sorted(self.manager.all_steps(), reverse=True) if step is None else [step]
    if not steps:
      raise CheckpointError(f"No checkpoint in {self.directory}.")
    abstract = jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), target, shardings)
    failed: list[tuple[int, str]] = []
    for s in steps:
      try:
        state, meta = self._restore_step(s, abstract)
      except Exception as e:  # Orbax raises many types; each one means "not this step".
        why = f"{type(e).__name__}: {e}"
        failed.append((s, why))
        if step is None and s != steps[-1]:
          msg = (f"Checkpoint step {s} in {self.directory} cannot be restored ({why}); "
                 f"falling back to the previous checkpoint.")
          logging.warning("%s", msg)
          if log is not None:
            log(f"WARNING: {msg}")
        continue
      if failed:
        self._set_aside([f for f, _ in failed], log)
      return state, meta
    tried = "; ".join(f"step {s}: {why}" for s, why in failed)
    raise CheckpointError(
        f"No restorable checkpoint in {self.directory} (tried {tried}). Either every step "
        f"is corrupt or they were written by an incompatible config; use a fresh --workdir "
        f"(or the config that wrote them).")

  def _set_aside(self, steps: list[int], log: Callable[[str], None] | None) -> None:
    """Moves unrestorable step directories out of the manager's sight (newer steps than
    the one restored, which the resumed run will write again)."""
    aside = os.path.join(os.path.dirname(self.directory), "corrupt_checkpoints")
    if distributed.is_primary():
      os.makedirs(aside, exist_ok=True)
      for s in steps:
        dest, n = os.path.join(aside, str(s)), 1
        while os.path.exists(dest):
          dest, n = os.path.join(aside, f"{s}.{n}"), n + 1
        shutil.move(os.path.join(self.directory, str(s)), dest)
        msg = f"Moved unrestorable checkpoint step {s} to {dest}."
        logging.warning("%s", msg)
        if log is not None:
          log(f"WARNING: {msg}")
    distributed.barrier(f"checkpoints set aside in {self.directory}")
    self.manager.reload()

  def restore_meta(self, step: int | None = None) -> dict[str, Any]:
    step = self.latest_step() if step is None else step
    return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))[
        "meta"]

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


def resume(ckpt: Checkpointer, state: Any, shardings: Any, writer: Any, stage: str,
           log: Callable[[str], None]) -> tuple[Any, dict[str, Any], bool]:
  """(state, metadata, finished) from the latest restorable checkpoint, or (state,
  {"step": 0}, False) when there is none.

  A resumed run drops metric rows logged after the checkpoint (they are re-logged); a
  run that starts afresh drops every row (those of a run killed before its first
  checkpoint was complete).
  """
  if ckpt.latest_step() is None:
    writer.truncate_after(-1)
    return state, {"step": 0}, False
  state, meta = ckpt.restore(state, shardings, log=log)
  start = int(meta["step"])
  if meta["done"]:
    log(f"{stage}: finished checkpoint in {os.path.dirname(ckpt.directory)}, skipping.")
    return state, meta, True
  log(f"{stage}: resuming from step {start}.")
  writer.truncate_after(start)
  return state, meta, False
