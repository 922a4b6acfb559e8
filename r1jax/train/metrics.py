"""Metrics to `metrics.jsonl` (one JSON object per logged step) and TensorBoard.

In a multi-process run every process computes the same rows; process 0 alone writes.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

import numpy as np


class MetricWriter:
  """Appends metrics to DIR/metrics.jsonl and TensorBoard event files in DIR."""

  def __init__(self, workdir: str, *, tensorboard: bool = True):
    import jax  # lazily: this module is imported by tools that never start a backend

    self.primary = jax.process_index() == 0
    os.makedirs(workdir, exist_ok=True)
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb = None
    if tensorboard and self.primary:
      from tensorboardX import SummaryWriter  # lazily: optional at import time
      self._tb = SummaryWriter(workdir)

  def write(self, step: int, metrics: Mapping[str, Any]) -> dict[str, float]:
    row = {"step": int(step)}
    for k, v in metrics.items():
      v = np.asarray(v)
      row[k] = v.item() if v.size == 1 else v.tolist()
    if not self.primary:
      return row
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")
    if self._tb is not None:
      for k, v in row.items():
        if k != "step" and isinstance(v, (int, float)):
          self._tb.add_scalar(k, v, step)
      self._tb.flush()
    return row

  def truncate_after(self, step: int) -> None:
    """Drops rows logged after `step` (a resumed run re-logs them) and a half-written
    last row (a kill mid-write); the file is replaced atomically."""
    if not self.primary or not os.path.exists(self.path):
      return
    rows = []
    with open(self.path) as f:
      for line in f:
        try:
          if line.strip() and json.loads(line)["step"] <= step:
            rows.append(line if line.endswith("\n") else line + "\n")
        except json.JSONDecodeError:  # only the last line can be cut short
          continue
    tmp = self.path + ".tmp"
    with open(tmp, "w") as f:
      f.writelines(rows)
    os.replace(tmp, self.path)

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def read_metrics(path: str) -> list[dict[str, Any]]:
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]
