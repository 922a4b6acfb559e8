"""Orbax checkpoints: train state + JSON metadata (data position, stage status).

Saves are asynchronous and atomic (Orbax writes to a temporary directory and renames
it when complete), so a kill at any moment leaves the last complete checkpoint intact;
`max_to_keep` only deletes older checkpoints after a newer one is finalised. Restores
place every array directly with the shardings of the target state.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import jax
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
  """A checkpoint that cannot be restored into this run; the message names the directory."""


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
    """Starts an async save of `state` and `meta` at `step`."""
    self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                     meta=ocp.args.JsonSave(meta)), force=force)

  def restore(self, target: Any, shardings: Any, step: int | None = None
              ) -> tuple[Any, dict[str, Any]]:
    """Restores into the structure/shardings of `target`; CheckpointError if impossible."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise CheckpointError(f"No checkpoint in {self.directory}.")
    abstract = jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), target, shardings)
    try:
      out = self.manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    except Exception as e:  # Orbax raises many types; re-raise with the directory named.
      raise CheckpointError(
          f"Checkpoint step {step} in {self.directory} cannot be restored into this run "
          f"(corrupt, or written by an incompatible config): {type(e).__name__}: {e}. "
          f"Delete that step directory to fall back to an earlier one, or use a fresh "
          f"--workdir.") from e
    return out["state"], out["meta"]

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
           log: Callable[[str], None]) -> tuple[Any, int, bool]:
  """(state, start step, finished) from the latest checkpoint, or (state, 0, False).

  A resumed run drops metric rows logged after the checkpoint (they are re-logged).
  """
  if ckpt.latest_step() is None:
    return state, 0, False
  state, meta = ckpt.restore(state, shardings)
  start = int(meta["step"])
  if meta.get("done"):
    log(f"{stage}: finished checkpoint in {os.path.dirname(ckpt.directory)}, skipping.")
    return state, start, True
  log(f"{stage}: resuming from step {start}.")
  writer.truncate_after(start)
  return state, start, False
