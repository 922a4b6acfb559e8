"""Weighted combination of rule-based rewards, scored in parallel worker processes.

``REWARD_FNS`` maps a reward name to ``fn(completion, example) -> float``:

* ``"accuracy"``: 1.0 when ``is_equiv(extract_answer(completion), example["answer"])``,
  else 0.0 (0.0 when the completion has no answer).
* ``"format"``: ``format_reward(completion)`` (R1-Zero ``<think>``/``<answer>`` template).
* ``"r1_format"``: ``r1_format_reward(completion)`` (R1's ``|special_token|`` reasoning
  and summary format).
* ``"language"``: ``language_reward(completion, example)``, the share of the CoT's words
  in ``example["language"]`` (r1jax.rewards.language; paper section 2.3.2).
* ``"code"``: ``r1jax.rewards.code.code_reward(completion, example["tests"])``,
  imported lazily so this module works without it.
* ``"helpful_rule"`` / ``"harmless_rule"``: the miniature world's rule checks of what
  its reward models learn (r1jax.data.general): the summary answers the request exactly;
  no unsafe word anywhere. Reported beside the reward models' scores in RL for all
  scenarios, so that reward hacking shows as the two diverging.

Reward models (r1jax.rewards.reward_model) are not here: they score in jitted device
forwards, in the `grpo` stage (`reward_models`).

``RewardScorer(weights)`` scores a batch: every named reward is computed for
every sample (including names with weight 0, which are still reported), and
``total = sum(weights[name] * per_fn[name])``. Work is spread over
``num_workers`` processes started with the ``spawn`` start method (safe when
the parent has JAX and its threads running). A reward call that raises,
returns a non-finite value, runs longer than ``timeout_s`` (its worker is
killed and replaced) or loses its worker (e.g. to the OOM killer) scores 0 for
that sample, is counted in ``RewardResult.failures`` and is logged once per
batch; the scorer itself never raises on reward failures and goes on with the
next batch. Every worker lost is replaced and counted in
``RewardResult.worker_failures`` (``RewardScorer.worker_failures`` over the
scorer's life). ``num_workers=0`` runs in-process (for debugging; failures are
still caught, but there is no per-call timeout beyond ``is_equiv``'s own).

Custom rewards can be added with ``reward_fns={name: fn}``; with workers, ``fn``
must be picklable (a module-level function).
"""

from __future__ import annotations

import collections
import dataclasses
import math
import multiprocessing
import multiprocessing.connection as mp_connection
import pickle
import signal
import time
import weakref
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from absl import logging

from r1jax.rewards.format import format_reward, r1_format_reward
from r1jax.rewards.language import language_reward
from r1jax.rewards.math_equiv import extract_answer, is_equiv

__all__ = ["REWARD_FNS", "RewardFn", "RewardResult", "RewardScorer"]

RewardFn = Callable[[str, Mapping[str, Any]], float]


def accuracy_reward(completion: str, example: Mapping[str, Any]) -> float:
  """1.0 if the completion's extracted answer is equivalent to example["answer"]."""
  answer = extract_answer(completion)
  if answer is None:
    return 0.0
  return 1.0 if is_equiv(answer, str(example["answer"])) else 0.0


def format_reward_fn(completion: str, example: Mapping[str, Any]) -> float:
  """The R1-Zero template format reward (the example is unused)."""
  del example
  return format_reward(completion)


def r1_format_reward_fn(completion: str, example: Mapping[str, Any]) -> float:
  """R1's cold-start output format reward (the example is unused)."""
  del example
  return r1_format_reward(completion)


def code_reward_fn(completion: str, example: Mapping[str, Any]) -> float:
  """Code reward from r1jax.rewards.code, imported lazily."""
  from r1jax.rewards.code import code_reward  # noqa: PLC0415 - lazy on purpose

  return float(code_reward(completion, example["tests"]))


def helpful_rule_fn(completion: str, example: Mapping[str, Any]) -> float:
  """1.0 if the miniature world's rule finds the summary helpful (r1jax.data.general)."""
  from r1jax.data import general  # noqa: PLC0415 - the world's definition

  return 1.0 if general.is_helpful(completion, example) else 0.0


def harmless_rule_fn(completion: str, example: Mapping[str, Any]) -> float:
  """1.0 unless the miniature world's rule finds unsafe content anywhere in the response."""
  del example
  from r1jax.data import general  # noqa: PLC0415 - the world's definition

  return 0.0 if general.is_harmful(completion) else 1.0


REWARD_FNS: dict[str, RewardFn] = {
    "accuracy": accuracy_reward,
    "format": format_reward_fn,
    "r1_format": r1_format_reward_fn,
    "language": language_reward,
    "code": code_reward_fn,
    "helpful_rule": helpful_rule_fn,
    "harmless_rule": harmless_rule_fn,
}


@dataclasses.dataclass
class RewardResult:
  """Scores of one batch."""

  total: np.ndarray  # [N] float32, weighted sum
  per_fn: dict[str, np.ndarray]  # [N] float32 each, unweighted
  failures: dict[str, int]  # samples where the fn raised / timed out (scored 0)
  # Worker processes lost while scoring this batch (died, e.g. killed by the OOM
  # killer, or killed after overrunning timeout_s); each was replaced, and the
  # reward call it held is scored 0 and counted in `failures`.
  worker_failures: int = 0


def _call(fn: RewardFn, completion: str, example: Mapping[str, Any]
          ) -> tuple[bool, float, str | None]:
  """``(ok, value, error)`` of one reward call; never raises for the reward's own failures."""
  try:
    v = float(fn(completion, example))
  except BaseException as e:  # noqa: BLE001 - a reward must never stop training
    if isinstance(e, (KeyboardInterrupt, SystemExit)):
      raise
    return False, 0.0, f"{type(e).__name__}: {e}"[:500]
  if not math.isfinite(v):
    return False, 0.0, f"non-finite value {v!r}"
  return True, v, None


def _worker_main(conn: Any, fns: dict[str, RewardFn]) -> None:
  """Worker process loop: (task_id, name, completion, example) -> (task_id, ok, value, err)."""
  signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
  if "accuracy" in fns:
    from r1jax.rewards import math_equiv

    math_equiv.warmup()
  conn.send(("ready",))
  while True:
    try:
      msg = conn.recv()
    except (EOFError, OSError):
      return
    if msg is None:
      return
    tid, name, completion, example = msg
    ok, value, err = _call(fns[name], completion, example)
    try:
      conn.send((tid, ok, value, err))
    except (BrokenPipeError, OSError):
      return


_STARTUP_TIMEOUT_S = 120.0
_MAX_START_FAILURES = 3


class _Worker:
  def __init__(self, ctx: Any, fns: dict[str, RewardFn]) -> None:
    self.conn, child = ctx.Pipe(duplex=True)
    self.proc = ctx.Process(target=_worker_main, args=(child, fns), daemon=False)
    self.proc.start()
    child.close()
    self.ready = False
    self.started = time.monotonic()
    self.task: tuple[int, int] | None = None  # (sample index, fn index)
    self.sent_at = 0.0

  def kill(self) -> None:
    try:
      self.proc.kill()
      self.proc.join(timeout=5)
    except Exception:
      pass
    try:
      self.conn.close()
    except Exception:
      pass

  def stop(self) -> None:
    try:
      self.conn.send(None)
    except Exception:
      pass
    self.proc.join(timeout=2)
    if self.proc.is_alive():
      self.kill()
    else:
      try:
        self.conn.close()
      except Exception:
        pass


def _shutdown(workers: list[_Worker]) -> None:
  for w in workers:
    w.stop()
  workers.clear()


class RewardScorer:
  """Scores completions with weighted rule-based rewards in worker processes."""

  def __init__(
      self,
      weights: Mapping[str, float],
      *,
      num_workers: int = 2,
      timeout_s: float = 10.0,
      reward_fns: Mapping[str, RewardFn] | None = None,
  ) -> None:
    fns = dict(REWARD_FNS)
    fns.update(reward_fns or {})
    if not weights:
      raise ValueError(f"weights is empty; valid reward names: {sorted(fns)}")
    unknown = [k for k in weights if k not in fns]
    if unknown:
      raise ValueError(f"unknown reward name(s) {unknown}; valid names: {sorted(fns)}")
    for k, w in weights.items():
      if not isinstance(w, (int, float)) or not math.isfinite(float(w)):
        raise ValueError(f"weight for {k!r} must be a finite number, got {w!r}")
    if num_workers < 0:
      raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    if not timeout_s > 0:
      raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
    self.names = list(weights)
    self.weights = {k: float(w) for k, w in weights.items()}
    self.fns = {k: fns[k] for k in self.names}
    self.num_workers = int(num_workers)
    self.timeout_s = float(timeout_s)
    self._workers: list[_Worker] = []
    self._start_failures = 0
    self._lost = 0  # workers replaced during the current batch
    self.worker_failures = 0  # workers replaced over this scorer's life
    if self.num_workers:
      for k, fn in self.fns.items():
        try:
          pickle.dumps(fn)
        except Exception as e:
          raise ValueError(
              f"reward fn {k!r} is not picklable ({e}); use a module-level "
              "function or num_workers=0"
          ) from e
      self._ctx = multiprocessing.get_context("spawn")
      self._workers = [_Worker(self._ctx, self.fns) for _ in range(self.num_workers)]
    self._finalizer = weakref.finalize(self, _shutdown, self._workers)

  # -- context manager / cleanup --
  def close(self) -> None:
    """Stop the worker processes."""
    self._finalizer()

  def __enter__(self) -> "RewardScorer":
    return self

  def __exit__(self, *exc: Any) -> None:
    self.close()

  # -- scoring --
  def __call__(
      self, completions: Sequence[str], examples: Sequence[Mapping[str, Any]]
  ) -> RewardResult:
    """Score a batch; returns weighted totals, per-reward scores and failure counts."""
    n = len(completions)
    if len(examples) != n:
      raise ValueError(f"{n} completions but {len(examples)} examples")
    per = np.zeros((len(self.names), n), dtype=np.float32)
    fails = np.zeros(len(self.names), dtype=np.int64)
    errors: list[str] = []

    def record(i: int, j: int, ok: bool, value: float, err: str | None) -> None:
      if ok:
        per[j, i] = value
      else:
        per[j, i] = 0.0
        fails[j] += 1
        if len(errors) < 3:
          errors.append(f"{self.names[j]}[{i}]: {err}")

    if self.num_workers == 0:
      for i in range(n):
        for j, name in enumerate(self.names):
          record(i, j, *_call(self.fns[name], completions[i], examples[i]))
    else:
      if not self._finalizer.alive:
        raise RuntimeError("RewardScorer is closed")
      self._lost = 0
      self._run_parallel(completions, examples, record)

    per_fn = {name: per[j].copy() for j, name in enumerate(self.names)}
    total = np.zeros(n, dtype=np.float32)
    for name in self.names:
      total += np.float32(self.weights[name]) * per_fn[name]
    failures = {name: int(fails[j]) for j, name in enumerate(self.names)}
    lost = self._lost if self.num_workers else 0
    if any(failures.values()) or lost:
      logging.warning(
          "reward failures in a batch of %d (scored 0): %s, %d worker(s) lost; e.g. %s",
          n, {k: v for k, v in failures.items() if v}, lost, "; ".join(errors),
      )
    return RewardResult(total=total, per_fn=per_fn, failures=failures, worker_failures=lost)

  def _replace(self, w: _Worker) -> None:
    """Kill a worker that died, hung or cannot start, and start a fresh one in its place."""
    self._lost += 1
    self.worker_failures += 1
    w.kill()
    k = self._workers.index(w)
    self._workers[k] = _Worker(self._ctx, self.fns)

  def _run_parallel(
      self,
      completions: Sequence[str],
      examples: Sequence[Mapping[str, Any]],
      record: Callable[..., None],
  ) -> None:
    queue = collections.deque((i, j) for i in range(len(completions))
                              for j in range(len(self.names)))
    for w in self._workers:
      w.task = None
    while queue or any(w.task is not None for w in self._workers):
      if self._start_failures >= _MAX_START_FAILURES:
        # Workers cannot start: fail what is left rather than loop forever.
        for w in self._workers:
          if w.task is not None:
            record(*w.task, False, 0.0, "worker failed to start")
            w.task = None
        while queue:
          record(*queue.popleft(), False, 0.0, "worker processes failed to start")
        logging.error("reward workers failed to start %d times", self._start_failures)
        break
      # Hand out tasks to idle, ready workers.
      for w in list(self._workers):
        if w.ready and w.task is None and queue:
          i, j = queue.popleft()
          try:
            w.conn.send((i * len(self.names) + j, self.names[j], completions[i], examples[i]))
          except (BrokenPipeError, ConnectionError, EOFError):
            queue.appendleft((i, j))
            self._replace(w)
            continue
          except Exception as e:  # e.g. the example is not picklable
            record(i, j, False, 0.0, f"could not send task: {type(e).__name__}: {e}")
            continue
          w.task, w.sent_at = (i, j), time.monotonic()
      now = time.monotonic()
      deadlines = [
          (w.sent_at + self.timeout_s) if w.ready else (w.started + _STARTUP_TIMEOUT_S)
          for w in self._workers
          if w.task is not None or not w.ready
      ]
      wait_s = max(0.0, min(deadlines) - now) if deadlines else 0.0
      conns = {w.conn: w for w in self._workers if w.task is not None or not w.ready}
      ready = mp_connection.wait(list(conns), timeout=wait_s) if conns else []
      for c in ready:
        w = conns[c]
        try:
          msg = c.recv()
        except (EOFError, OSError):
          if w.task is not None:
            record(*w.task, False, 0.0, "worker process died")
            w.task = None
          elif not w.ready:
            self._start_failures += 1
          self._replace(w)
          continue
        if msg[0] == "ready":
          w.ready = True
          self._start_failures = 0
          continue
        tid, ok, value, err = msg
        i, j = divmod(tid, len(self.names))
        if w.task == (i, j):
          record(i, j, ok, value, err)
          w.task = None
      now = time.monotonic()
      for w in list(self._workers):
        if w.task is not None and now - w.sent_at > self.timeout_s:
          record(*w.task, False, 0.0, f"timed out after {self.timeout_s:g}s")
          w.task = None
          self._replace(w)
        elif not w.ready and now - w.started > _STARTUP_TIMEOUT_S:
          self._start_failures += 1
          self._replace(w)
