"""The one training loop behind every training stage (pretrain, SFT, GRPO).

    state = loop.train(state, shardings, step_fn, produce, ...)

`produce(step, state) -> (batch, host_metrics)` makes the batch of a step: a pure
function of (seed, step) for pretraining and SFT; rollouts, rewards and advantages
from the current policy for GRPO. `step_fn(state, batch) -> (state, metrics)` is the
jitted step (`state.make_train_step`) with its loss. The loop adds what every stage
needs: resume from the latest checkpoint (train state, data position and RNG live in
the state and the step number, so a resumed run repeats the uninterrupted
trajectory), asynchronous checkpoints, metrics fetched one step late (the host never
stalls the device waiting for them), a stop after `max_nonfinite` non-finite steps
in a row, periodic evaluation and a progress line with the time left.

A step whose loss or gradient is not finite leaves params and optimiser state as they
were (`state.make_train_step`); its row has `train/nonfinite` 1, and every row carries
`train/skipped_total`, the steps skipped so far in this stage (kept in the checkpoint
metadata, so a resumed run counts on). A row that cannot be written (a full disk) stops
training with an error naming metrics.jsonl, whose earlier rows are left whole.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Sequence

import jax

from r1jax.train import checkpoint as ckpt_lib
from r1jax.train import metrics as metrics_lib

Batch = dict[str, Any]
Produce = Callable[[int, Any], tuple[Batch, dict[str, float]]]
StepFn = Callable[[Any, Batch], tuple[Any, dict[str, Any]]]


class TrainingError(RuntimeError):
  """Training cannot continue (e.g. repeated non-finite losses)."""


def _fmt(v: Any) -> str:
  return f"{v:.4g}" if isinstance(v, float) else str(v)


def train(state: Any, shardings: Any, step_fn: StepFn, produce: Produce, *, workdir: str,
          name: str, steps: int, checkpoint_every: int, max_to_keep: int = 2,
          max_nonfinite: int = 3, eval_fn: Callable[[Any, int], dict[str, float]] | None = None,
          eval_every: int = 0, eval_at_start: bool = False, progress_every: int = 1,
          progress_keys: Sequence[str] = ("train/loss",), log: Callable[[str], None] = print,
          hint: str = "lower the learning rate or check the data",
          crash_after_step: int | None = None) -> Any:
  """Runs `steps` steps from the latest checkpoint in DIR/checkpoints (none if that one
  is final); returns the final state.

  Metrics go to DIR/metrics.jsonl (+ TensorBoard), one row per step; `eval_fn(params,
  step)` every `eval_every` steps (and at step 0 with `eval_at_start`) is merged into
  the row as eval/<key>. `crash_after_step` raises KeyboardInterrupt after that step's
  checkpoint is written (tests of the resume guarantee).
  """
  ckpt = ckpt_lib.Checkpointer(os.path.join(workdir, "checkpoints"), max_to_keep=max_to_keep)
  writer = metrics_lib.MetricWriter(workdir)
  try:
    state, meta, done = ckpt_lib.resume(ckpt, state, shardings, writer, name, log)
    if done:
      return state
    start = int(meta["step"])
    # Counts of skipped (non-finite) steps: in total and in a row (absent from the
    # metadata of checkpoints written before they were kept there).
    skipped, nonfinite = int(meta.get("skipped_total", 0)), int(meta.get("nonfinite", 0))
    if start == 0 and eval_at_start and eval_fn is not None:
      _write(writer, 0, _eval_row(eval_fn(state.params, 0)), name)
    t_start = time.time()
    pending: tuple[int, dict, dict, float] | None = None

    def flush(step: int, m: dict, host: dict, t0: float, t_end: float | None = None) -> None:
      """Logs step `step` (dispatched at t0; its successor at t_end, None = now)."""
      nonlocal nonfinite, skipped
      m = jax.device_get(m)
      elapsed = (time.time() if t_end is None else t_end) - t0
      bad = int(m["train/nonfinite"])
      nonfinite = nonfinite + 1 if bad else 0
      skipped += bad
      if nonfinite >= max_nonfinite:
        raise TrainingError(f"{name}: {nonfinite} consecutive non-finite losses at step "
                            f"{step}; {hint}.")
      row = {**m, **host, "train/skipped_total": skipped, "time/step_s": elapsed}
      if eval_fn is not None and eval_every and step % eval_every == 0:
        row.update(_eval_row(eval_fn(state.params, step)))
      row = _write(writer, step, row, name)
      if step % progress_every == 0 or step in (start + 1, steps):
        done_s = time.time() - t_start
        eta = done_s / (step - start) * (steps - step)
        shown = " ".join(f"{k.split('/')[-1]} {_fmt(row[k])}" for k in progress_keys
                         if k in row)
        log(f"{name} step {step}/{steps}: {shown} ({elapsed:.2f}s/step, "
            f"{eta / 60:.1f} min left)" + ("  [non-finite: update skipped]" if bad else ""))

    for step in range(start, steps):
      t0 = time.time()
      batch, host = produce(step, state)
      state, m = step_fn(state, batch)
      if pending is not None:  # the previous step, one step late
        flush(*pending, t_end=t0)
      pending = (step + 1, m, host, t0)
      evaluates = eval_fn is not None and eval_every and (step + 1) % eval_every == 0
      saves = (step + 1) % checkpoint_every == 0 and step + 1 < steps
      if evaluates or saves:  # the eval reads this step's params; a checkpoint its state
        flush(*pending)
        pending = None
      if saves:  # every step up to this one is flushed: the counts are this step's
        ckpt.save(step + 1, state, {"step": step + 1, "done": False, "skipped_total": skipped,
                                    "nonfinite": nonfinite})
      if crash_after_step is not None and step + 1 == crash_after_step:
        ckpt.wait()
        raise KeyboardInterrupt(f"simulated crash after step {step + 1}")
    if pending is not None:
      flush(*pending)
    ckpt.save(steps, state, {"step": steps, "done": True, "skipped_total": skipped,
                             "nonfinite": nonfinite}, force=True)
    return state
  finally:
    ckpt.close()
    writer.close()


def _write(writer: metrics_lib.MetricWriter, step: int, row: dict[str, Any], name: str
           ) -> dict[str, Any]:
  """writer.write, or TrainingError naming metrics.jsonl when it cannot be written (the
  file is cut back to its earlier rows, so no torn row is left for a resumed run)."""
  size = os.path.getsize(writer.path) if os.path.exists(writer.path) else 0
  try:
    return writer.write(step, row)
  except OSError as e:
    try:
      if os.path.exists(writer.path) and os.path.getsize(writer.path) > size:
        os.truncate(writer.path, size)
    except OSError:
      pass  # the error below still names the file
    raise TrainingError(f"{name}: cannot write step {step}'s metrics to {writer.path}: "
                        f"{e.strerror or e}. Free space and rerun: training resumes from "
                        f"the last checkpoint.") from e


def _eval_row(result: dict[str, Any]) -> dict[str, float]:
  return {f"eval/{k}": v for k, v in result.items() if isinstance(v, (int, float))
          and not isinstance(v, bool)}
