r"""Runs an experiment: `python -m r1jax.main --config=experiments/X.py[:arg] --workdir=DIR`.

Overrides: `--config.section.key=value` (a misspelt key is an error listing valid keys).
Multi-process (one per host): every process runs the same command; jax.distributed starts
from --coordinator_address/--num_processes/--process_id or the environment
(r1jax.distributed.initialize: R1JAX_NUM_PROCESSES, COORDINATOR_ADDRESS, TPU VM, SLURM).
Writes DIR/config.json, then runs the config's stages (see r1jax.pipeline);
`--only=NAME` runs one stage whose inputs have finished. Compiled programs are kept in
JAX's persistent compilation cache (`--compilation_cache`, default ~/.cache/r1jax/xla).
"""

import json
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

import r1jax

config_flags.DEFINE_config_file("config", None, "Experiment config file (get_config).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics, plots.")
flags.DEFINE_string("only", None, "Run this one stage (its inputs must have finished).")
flags.DEFINE_string("compilation_cache", r1jax.COMPILATION_CACHE,
                    "JAX's persistent compilation cache: identical programs (a rerun, a "
                    "second RL arm of the same shapes) load instead of compiling; '' = off.")
flags.DEFINE_string("coordinator_address", None,
                    "Multi-process runs: host:port of process 0's coordinator (default: "
                    "COORDINATOR_ADDRESS / JAX_COORDINATOR_ADDRESS, or the cluster's).")
flags.DEFINE_integer("num_processes", None,
                     "Multi-process runs: how many processes (default: R1JAX_NUM_PROCESSES, "
                     "or the cluster's).")
flags.DEFINE_integer("process_id", None,
                     "Multi-process runs: this process's index (default: R1JAX_PROCESS_ID, "
                     "or the cluster's).")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # Orbax is chatty at INFO; progress is printed.
  import jax  # after flag parsing, so --xla flags in the env take effect first

  r1jax.use_compilation_cache(FLAGS.compilation_cache)
  from r1jax import configs, distributed, pipeline
  from r1jax.train import checkpoint, loop

  distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)

  config = FLAGS.config
  workdir = FLAGS.workdir
  os.makedirs(workdir, exist_ok=True)
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=1) + "\n")
  if distributed.is_primary():
    print(f"r1jax: {len(jax.devices())} {jax.devices()[0].platform} device(s) in "
          f"{jax.process_count()} process(es); workdir {workdir}", flush=True)
  try:  # validates the config (configs.validate) before anything compiles
    summary = pipeline.train_and_evaluate(config, workdir, only=FLAGS.only)
  except (configs.ConfigError, pipeline.StageError, FileNotFoundError, loop.TrainingError,
          checkpoint.CheckpointError) as e:
    # What to change is in the message; a traceback would only bury it.
    print(f"FATAL {type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(1)
  if distributed.is_primary():
    print(json.dumps(summary, indent=1))
  # Process 0 writes plots and the summary after the last stage: the others wait here
  # rather than in jax's shutdown barrier, whose timeout a loaded host can exceed.
  distributed.barrier("run finished")


def _override_paths(argv: list[str]) -> list[str]:
  return [a[len("--config."):].split("=", 1)[0] for a in argv if a.startswith("--config.")]


def check_overrides(config, paths: list[str]) -> None:
  """Raises ConfigError for an override path the config lacks, listing the valid keys."""
  from r1jax import configs

  for path in paths:
    node, done = config, []
    for key in path.split("."):
      if not hasattr(node, "keys") or key not in node:
        valid = sorted(node.keys()) if hasattr(node, "keys") else []
        where = ".".join(done) or "<top level>"
        raise configs.ConfigError(f"--config.{path}: '{key}' is not a key of {where}; valid "
                                  f"keys there: {valid}.")
      node, done = node[key], done + [key]


def parse_flags(argv: list[str]) -> list[str]:
  """absl parsing, with misspelt --config.* overrides reported with the valid keys."""
  try:
    return FLAGS(argv)
  except (flags.Error, AttributeError, KeyError) as e:
    paths = _override_paths(argv)
    cfg_arg = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
    if paths and cfg_arg:
      from ml_collections.config_flags import config_flags as cf
      path, _, arg = cfg_arg.partition(":")
      module = cf._LoadConfigModule(path.split("/")[-1], path)  # pylint: disable=protected-access
      check_overrides(module.get_config(*([arg] if arg else [])), paths)
    print(f"FATAL Flags parsing error: {e}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
