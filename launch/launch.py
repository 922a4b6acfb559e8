r"""Starts, watches, stops and deletes an r1jax run on a TPU VM slice, a SLURM GPU
cluster or this machine; launch/README.md has examples for each.

  python -m launch.launch --target=tpu_vm --config=experiments/r1_deepseek_v3.py \
      --workdir=gs://BUCKET/r1_v3 --tpu_name=r1 --zone=us-east5-a \
      --accelerator_type=v5p-2048 --config.data_dir=gs://BUCKET/data --dry_run

`--config.a.b=v` (or `--overrides=--config.a.b=v`) is passed to r1jax.main as given.
Before anything runs, the experiment is loaded as r1jax.main loads it (overrides
applied) and checked against the target's device count (configs.validate: the mesh,
and every stage's batch against it); a config that does not fit is an error.
`--dry_run` prints the summary and every command, one shell command per entry, and
runs nothing; without it the same commands run in order via `bash -c`.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

from absl import flags
from ml_collections import config_flags

from launch import targets

LaunchError = targets.LaunchError
TARGETS = ("tpu_vm", "slurm", "local")
ACTIONS = ("start", "logs", "stop", "delete", "status")

# Flags of their own FlagValues: the tests import this module next to r1jax's CLIs,
# whose --config/--workdir live in absl's global FLAGS.
FLAGS = flags.FlagValues()
_D = dict(flag_values=FLAGS)
flags.DEFINE_string("target", None, f"Where to run: {', '.join(TARGETS)}.", **_D)
flags.DEFINE_string("action", "start", f"What to do: {', '.join(ACTIONS)}.", **_D)
flags.DEFINE_string("config", None, "Experiment, relative to the repository root: "
                    "experiments/X.py[:arg] (as r1jax.main takes it).", **_D)
flags.DEFINE_string("workdir", None, "r1jax.main's --workdir (gs://... on multi-host "
                    "TPU slices).", **_D)
flags.DEFINE_multi_string("overrides", [], "A --config.a.b=v override passed to r1jax.main "
                          "(repeatable; bare --config.a.b=v arguments are taken too).", **_D)
flags.DEFINE_string("only", None, "r1jax.main's --only (run this one stage).", **_D)
flags.DEFINE_multi_string("env", [], "KEY=VALUE set in the run's environment (repeatable).",
                          **_D)
flags.DEFINE_string("run_name", "", "Names the log, PID file and job; default: the config "
                    "file's name.", **_D)
flags.DEFINE_string("log_dir", "r1jax_launch", "Where logs and PID files go (relative: under "
                    "$HOME of the machine that runs the run).", **_D)
flags.DEFINE_string("python", "", "Interpreter that runs r1jax (default: this one locally, "
                    "python3 on TPU VMs and SLURM nodes).", **_D)
flags.DEFINE_bool("dry_run", False, "Print the config summary and the commands; run nothing.",
                  **_D)
# tpu_vm
flags.DEFINE_string("tpu_name", "", "TPU VM name (created if `describe` finds none).", **_D)
flags.DEFINE_string("zone", "", "TPU zone, e.g. us-east5-a.", **_D)
flags.DEFINE_string("project", "", "GCP project; '' = gcloud's default.", **_D)
flags.DEFINE_string("accelerator_type", "v5litepod-8", "Slice, e.g. v5p-2048, v5litepod-8, "
                    "v4-8.", **_D)
flags.DEFINE_string("runtime_version", "", "TPU software version; '' = the generation's "
                    "default (launch/targets.py).", **_D)
# slurm
flags.DEFINE_integer("nodes", 1, "SLURM nodes (one r1jax process on each).", **_D)
flags.DEFINE_integer("gpus_per_node", 8, "GPUs per node (all driven by its one process).",
                     **_D)
flags.DEFINE_string("partition", "", "SLURM partition; '' = the cluster's default.", **_D)
flags.DEFINE_string("time", "24:00:00", "SLURM time limit.", **_D)
flags.DEFINE_integer("port", 0, "Coordinator port on the first node; 0 = one fixed by the "
                     "job id.", **_D)
# local
flags.DEFINE_integer("local_devices", 0, "Devices of this machine; 0 = ask jax here.", **_D)


def load_config(config: str, overrides: list[str]):
  """The experiment as r1jax.main loads it: `path[:arg]` relative to the repository root,
  then the --config.a.b=v overrides; an unknown key is an error listing the valid ones."""
  path, _, arg = config.partition(":")
  full = path if os.path.isabs(path) else os.path.join(targets.ROOT, path)
  if not os.path.isfile(full):
    raise LaunchError(f"--config={config}: no file {full} (paths are relative to the "
                      f"repository root, e.g. experiments/r1_zero_tiny.py).")
  spec = full + (":" + arg if arg else "")

  def parse(extra):
    fv = flags.FlagValues()
    argv = ["launch", f"--config={spec}", *extra]
    config_flags.DEFINE_config_file("config", None, "", flag_values=fv, lock_config=True,
                                    sys_argv=argv)
    fv(argv)
    return fv.config

  try:
    return parse(overrides)
  except (flags.Error, AttributeError, KeyError, ValueError) as e:
    base = parse([])
    for o in overrides:
      node, done = base, []
      for key in o[len("--config."):].split("=", 1)[0].split("."):
        if not hasattr(node, "keys") or key not in node:
          valid = sorted(node.keys()) if hasattr(node, "keys") else []
          raise LaunchError(f"{o}: '{key}' is not a key of {'.'.join(done) or '<top level>'}"
                            f"; valid keys there: {valid}.") from None
        node, done = node[key], done + [key]
    raise LaunchError(f"overrides {overrides}: {e}") from None


def summary(config, topology: targets.Topology, name: str) -> list[str]:
  """Stages, mesh and devices; LaunchError if the config does not fit the target."""
  from r1jax import configs

  axes = {a: int(config.mesh[a]) for a in configs.MESH_AXES}
  fixed = 1
  for size in axes.values():
    fixed *= size if size != -1 else 1
  if -1 not in axes.values():
    needs = f"exactly {fixed}"
  else:
    needs = f"a multiple of {fixed}" if fixed > 1 else "any number of"
  try:
    configs.validate(config, topology.devices)
  except configs.ConfigError as e:
    raise LaunchError(f"{name} does not fit the target ({topology.what}): {e} (the "
                      f"config's mesh {axes} needs {needs} devices)") from None
  shape = dict(zip(configs.MESH_AXES, configs.mesh_shape(config.mesh, topology.devices)))
  return [f"# experiment: {name}",
          f"# stages: {' -> '.join(config.stages)}",
          f"# target: {topology.what}; {topology.hosts} r1jax process(es)",
          f"# mesh: {' x '.join(f'{a}={s}' for a, s in shape.items())} "
          f"(config {axes}: needs {needs} devices)"]


def _target(f, run: targets.Run) -> tuple[targets.Topology, list[str]]:
  """What the target provides and its commands for --action."""
  if f.target == "tpu_vm":
    topology = targets.tpu_topology(f.accelerator_type)
    commands = targets.tpu_vm_commands(
        f.action, run, tpu_name=f.tpu_name, zone=f.zone, project=f.project,
        accelerator_type=f.accelerator_type, runtime_version=f.runtime_version,
        hosts=topology.hosts)
  elif f.target == "slurm":
    commands = targets.slurm_commands(f.action, run, nodes=f.nodes,
                                      gpus_per_node=f.gpus_per_node, partition=f.partition,
                                      time=f.time, port=f.port)
    topology = targets.Topology(f.nodes, f.nodes * f.gpus_per_node,
                                f"SLURM: {f.nodes} node(s) x {f.gpus_per_node} GPUs")
  else:
    commands = targets.local_commands(f.action, run)
    devices = f.local_devices
    if f.action == "start" and not devices:
      import jax
      devices = jax.device_count()
    topology = targets.Topology(1, devices, f"this machine: {devices} device(s)")
  return topology, commands


def plan(argv: list[str]) -> tuple[list[str], list[str]]:
  """(summary lines, commands) for a command line; parses FLAGS; LaunchError if bad."""
  config_args = [a for a in argv[1:] if a.startswith("--config.")]
  FLAGS.unparse_flags()
  try:
    FLAGS([a for a in argv if not a.startswith("--config.")])
  except flags.Error as e:
    raise LaunchError(str(e)) from None
  f = FLAGS
  if f.target not in TARGETS:
    raise LaunchError(f"--target={f.target!r}: choose one of {', '.join(TARGETS)}.")
  if f.action not in ACTIONS:
    raise LaunchError(f"--action={f.action!r}: choose one of {', '.join(ACTIONS)}.")
  overrides = [o if o.startswith("--config.") else "--config." + o.removeprefix("config.")
               for o in [*f.overrides, *config_args]]
  bad = [o for o in overrides if "=" not in o]
  if bad:
    raise LaunchError(f"overrides {bad}: write each as --config.a.b=VALUE.")
  env = []
  for kv in f.env:
    key, eq, value = kv.partition("=")
    if not eq or not key.isidentifier():
      raise LaunchError(f"--env={kv!r}: write it as KEY=VALUE.")
    env.append((key, value))
  if not f.run_name and not f.config:
    raise LaunchError("give --config (its file names the run) or --run_name.")
  name = f.run_name
  if not name:  # experiments/r1_zero_tiny.py:smoke -> r1_zero_tiny_smoke
    path, _, arg = f.config.partition(":")
    name = "_".join([os.path.basename(path).removesuffix(".py")] + ([arg] if arg else []))
  if f.target == "local":
    python = f.python or sys.executable
  else:
    python = f.python or "python3"
  main_args = [f"--config={f.config}", f"--workdir={f.workdir}", *overrides]
  main_args += [f"--only={f.only}"] if f.only else []
  run = targets.Run(name, tuple(main_args), tuple(env), python, f.log_dir)

  topology, commands = _target(f, run)
  if f.action != "start":
    return [f"# run: {name} ({f.target}, {f.action})"], commands

  if not f.config or not f.workdir:
    raise LaunchError("--action=start needs --config and --workdir.")
  if f.target == "tpu_vm" and os.path.isabs(f.config.partition(":")[0]):
    raise LaunchError(f"--config={f.config}: give the path relative to the repository root; "
                      f"the TPU VM receives the repository, not this path.")
  lines = summary(load_config(f.config, overrides), topology, f.config)
  if topology.hosts > 1 and f.target == "tpu_vm" and not f.workdir.startswith("gs://"):
    lines.append(f"# warning: {topology.hosts} hosts share the workdir; --workdir="
                 f"{f.workdir} must be on a filesystem every worker sees (use gs://).")
  return lines, commands


def main(argv: list[str]) -> int:
  """Prints (dry run) or runs the plan; 1 with a FATAL line on a bad command line."""
  if {"--help", "-h", "--helpfull"} & set(argv):
    print(__doc__ + "\nFlags:\n" + FLAGS.get_help())
    return 0
  try:
    lines, commands = plan(argv)
  except LaunchError as e:
    print(f"FATAL launch: {e}", file=sys.stderr)
    return 1
  print("\n".join(lines), flush=True)
  for command in commands:
    print(command, flush=True)
    if not FLAGS.dry_run:
      done = subprocess.run(["bash", "-c", command], check=False)
      if done.returncode:
        print(f"FATAL launch: exit {done.returncode}: {shlex.quote(command)[:200]}",
              file=sys.stderr)
        return done.returncode
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
