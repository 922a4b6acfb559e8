"""`python -m r1jax.main` with a kill switch (tests/test_multihost.py):
R1JAX_TEST_KILL=PROCESS:STAGE:STEP makes process PROCESS SIGKILL itself right after its
checkpoint of STEP in STAGE's checkpoint directory is written (a kill -9, no clean-up)."""

import os
import signal

import jax

from r1jax import main
from r1jax.train import checkpoint

process, stage, step = os.environ["R1JAX_TEST_KILL"].split(":")
_save = checkpoint.Checkpointer.save


def save(self, at, *args, **kwargs):
  _save(self, at, *args, **kwargs)
  if (jax.process_index() == int(process) and at == int(step)
      and os.sep + stage + os.sep in self.directory):
    self.wait()
    os.kill(os.getpid(), signal.SIGKILL)


checkpoint.Checkpointer.save = save

if __name__ == "__main__":
  main.app.run(main.main, flags_parser=main.parse_flags)
