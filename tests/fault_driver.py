r"""`python -m r1jax.main` with one injected fault: the process SIGKILLs itself at a chosen
point, or a chosen file write fails with ENOSPC.

  R1JAX_FAULT='{"stage": "cold", "site": "save", "n": 2}' \
      python tests/fault_driver.py --config=tests/fault_chain.py --workdir=DIR

The fault is counted only while its `stage` runs (each stage module's `run` is wrapped
to know which one does), from 1 at the n-th event of its `site`:

  step        after the n-th train step is dispatched (the jitted step returned)
  produce     inside the n-th batch production (GRPO: before the rollouts)
  save        inside an asynchronous Orbax save, on its background thread: every file
              of the n-th save (train-state checkpoint or exported params) is written,
              nothing is committed yet
  commit      the same, later: the commit marker is written, the rename not done
  generate    before the n-th sampler call (sampling.generate)
  replace     before the n-th os.replace onto a path containing `path` (a temporary
              file written whole, not yet in place); `after: true` right after it
  enospc      the n-th open for writing of a path containing `path` returns a file
              whose first write stores half its data and raises OSError(ENOSPC)

A kill exits with -SIGKILL after printing "FAULT: ..." (flushed) to stdout, so a test
can tell the fault fired; with no R1JAX_FAULT the driver is the plain CLI.
"""

import builtins
import errno
import json
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # noqa: E402


class Fault:
  """The injected fault and what it has counted so far."""

  def __init__(self, spec: dict):
    self.spec, self.count, self.stage = spec, 0, None

  def hit(self, site: str, path: str = "") -> bool:
    """Counts an event of `site`; True when it is the chosen one."""
    s = self.spec
    if site != s["site"] or self.stage != s["stage"] or s.get("path", "") not in path:
      return False
    self.count += 1
    return self.count == s["n"]

  def kill(self, where: str) -> None:
    print(f"FAULT: SIGKILL {where} ({json.dumps(self.spec)})", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def install(fault: Fault) -> None:
  """Wraps the functions the fault sites sit in."""
  from orbax.checkpoint._src.path import atomicity

  from r1jax import sampling, stages
  from r1jax.train import loop

  for kind in stages.KINDS:
    mod = stages.get(kind)

    def run(run_, name, section, source, _orig=mod.run):
      fault.stage = name
      try:
        return _orig(run_, name, section, source)
      finally:
        fault.stage = None
    mod.run = run

  orig_train = loop.train

  def train(state, shardings, step_fn, produce, **kw):
    def step(state, batch):
      out = step_fn(state, batch)
      if fault.hit("step"):
        fault.kill(f"after train step {fault.count} of {fault.stage}")
      return out

    def make(step_, state):
      if fault.hit("produce"):
        fault.kill(f"in batch {step_} of {fault.stage}")
      return produce(step_, state)
    return orig_train(state, shardings, step, make, **kw)
  loop.train = train

  cls = atomicity.AtomicRenameTemporaryPath
  orig_finalize = cls.finalize

  def top(path) -> bool:  # a step (or params) directory, not an item inside one
    return atomicity.TMP_DIR_SUFFIX not in str(path)

  async def finalize(self):
    if top(self.get_final()) and fault.hit("save", str(self.get_final())):
      fault.kill(f"inside the save of {self.get_final()} (not committed)")
    return await orig_finalize(self)
  cls.finalize = finalize

  orig_rename = atomicity.async_path.rename

  async def rename(src, dst, *a, **k):
    if top(dst) and fault.hit("commit", str(dst)):
      fault.kill(f"inside the save of {dst} (committed, not renamed)")
    return await orig_rename(src, dst, *a, **k)
  atomicity.async_path.rename = rename

  orig_generate = sampling.generate

  def generate(*a, **k):
    if fault.hit("generate"):
      fault.kill(f"before sampler call {fault.count} of {fault.stage}")
    return orig_generate(*a, **k)
  sampling.generate = generate

  orig_replace = os.replace

  def replace(src, dst, *a, **k):
    after = fault.spec.get("after", False)
    if fault.hit("replace", str(dst)):
      if not after:
        fault.kill(f"before {src} -> {dst}")
      orig_replace(src, dst, *a, **k)
      fault.kill(f"after {src} -> {dst}")
    return orig_replace(src, dst, *a, **k)
  os.replace = replace

  orig_open = builtins.open

  class FullDisk:
    """A file whose first write keeps half the data, then fails as a full disk does."""

    def __init__(self, f):
      self._f = f

    def write(self, data):
      self._f.write(data[:len(data) // 2])
      self._f.flush()
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __enter__(self):
      return self

    def __exit__(self, *exc):
      self._f.close()

    def __getattr__(self, name):
      return getattr(self._f, name)

  def open_(file, mode="r", *a, **k):
    f = orig_open(file, mode, *a, **k)
    if any(c in mode for c in "wax") and fault.hit("enospc", str(file)):
      print(f"FAULT: ENOSPC writing {file} ({json.dumps(fault.spec)})", flush=True)
      return FullDisk(f)
    return f
  builtins.open = open_


def main() -> None:
  from r1jax import main as cli

  spec = os.environ.get("R1JAX_FAULT")
  if spec:
    install(Fault(json.loads(spec)))
  app.run(cli.main, flags_parser=cli.parse_flags)


if __name__ == "__main__":
  main()
