"""The shell commands that start, watch, stop and delete one r1jax run on each target.

Every function returns a list of shell commands (strings run by `bash -c`, in order,
stopping at the first failure); `launch.py --dry_run` prints exactly this list. Each
command is safe to re-run: a TPU VM is created only if `describe` fails, a run is
started only if its PID file names no live process, a SLURM job is submitted only if
its job id is not queued, and stop/delete do nothing when there is nothing to stop.
Runs are stopped by the PID (or SLURM job id) recorded at start, never by name.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import string

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)  # the repository (what a TPU VM receives)
REMOTE_CODE_DIR = "r1jax"  # the copy of ROOT on each TPU worker, relative to $HOME
TPU_JAX = "'jax[tpu]' -f https://storage.googleapis.com/jax-releases/libtpu_releases.html"


class LaunchError(ValueError):
  """A flag value or combination the launcher cannot run; the message says what to change."""


@dataclasses.dataclass(frozen=True)
class Run:
  """One run of `python -m r1jax.main` and where its log and PID file live."""
  name: str  # names the log, PID file, tarball and SLURM job
  main_args: tuple[str, ...]  # --config=..., --workdir=..., --config.a.b=v overrides
  env: tuple[tuple[str, str], ...]  # extra environment of the run (KEY, VALUE)
  python: str  # interpreter on the machine that runs it
  log_dir: str  # relative: under $HOME of that machine

  @property
  def log(self) -> str:
    return os.path.join(self.log_dir, self.name + ".log")

  @property
  def pid(self) -> str:
    return os.path.join(self.log_dir, self.name + ".pid")

  def command(self, extra_env: tuple[tuple[str, str], ...] = ()) -> str:
    """`env K=V ... python -m r1jax.main ARGS`, shell-quoted."""
    env = [f"{k}={v}" for k, v in (*extra_env, *self.env)]
    argv = (["env", *env] if env else []) + [self.python, "-m", "r1jax.main", *self.main_args]
    return shlex.join(argv)


@dataclasses.dataclass(frozen=True)
class Topology:
  """What a target provides: hosts (= r1jax processes) and JAX devices in all."""
  hosts: int
  devices: int
  what: str  # e.g. 'v5p-2048: 256 hosts x 4 chips'


# -- shell pieces shared by the targets ----------------------------------------------


def _alive(pid: str) -> str:
  q = shlex.quote(pid)
  return f'[ -f {q} ] && kill -0 "$(cat {q})" 2>/dev/null'


def _start_detached(run: Run, code_dir: str, extra_env=()) -> str:
  """Starts the run under nohup unless its PID file names a live process."""
  log, pid = shlex.quote(run.log), shlex.quote(run.pid)
  return (f"mkdir -p {shlex.quote(run.log_dir)} && if {_alive(run.pid)}; then "
          f'echo "{run.name}: already running (pid $(cat {pid}))"; else '
          f"(cd {shlex.quote(code_dir)} && exec nohup {run.command(extra_env)}) "
          f"> {log} 2>&1 < /dev/null & echo $! > {pid}; "
          f'echo "{run.name}: started pid $(cat {pid}), log {run.log}"; fi')


def _stop(run: Run) -> str:
  """Kills the PID in the PID file (a no-op without one) and removes the file."""
  pid = shlex.quote(run.pid)
  return (f'if [ -f {pid} ]; then kill "$(cat {pid})" 2>/dev/null || true; rm -f {pid}; '
          f'echo "{run.name}: stopped"; else echo "{run.name}: no PID file {run.pid}; '
          f'nothing to stop"; fi')


def _status(run: Run) -> str:
  pid = shlex.quote(run.pid)
  return (f'if {_alive(run.pid)}; then echo "{run.name}: running (pid $(cat {pid}))"; '
          f'else echo "{run.name}: not running"; fi; '
          f"tail -n 3 {shlex.quote(run.log)} 2>/dev/null || true")


def _logs(run: Run) -> str:
  return f"tail -n 100 -F {shlex.quote(run.log)}"


def _home(path: str) -> str:
  """A relative log_dir lives under $HOME of the machine that runs the command."""
  return path if os.path.isabs(path) else os.path.join(os.path.expanduser("~"), path)


# -- (a) Cloud TPU VM ---------------------------------------------------------------

# generation: (TensorCores per chip counted by the name, JAX devices per chip, chips
# per host of a multi-host slice, largest single-host slice in chips, default runtime)
_TPU = {
    "v2": (2, 2, 4, 4, "tpu-ubuntu2204-base"),
    "v3": (2, 2, 4, 4, "tpu-ubuntu2204-base"),
    "v4": (2, 1, 4, 4, "tpu-ubuntu2204-base"),
    "v5p": (2, 1, 4, 4, "v2-alpha-tpuv5"),
    "v5litepod": (1, 1, 4, 8, "v2-alpha-tpuv5-lite"),
    "v6e": (1, 1, 4, 8, "v2-alpha-tpuv6e"),
}


def tpu_accelerator(accelerator_type: str) -> tuple[str, str]:
  """(generation, the name gcloud takes): 'v5e-8' is spelt 'v5litepod-8'."""
  m = re.fullmatch(r"(v2|v3|v4|v5p|v5e|v5litepod|v6e)-(\d+)", accelerator_type)
  if not m:
    raise LaunchError(f"--accelerator_type={accelerator_type!r}: expected GENERATION-SIZE "
                      f"with GENERATION one of v2, v3, v4, v5p, v5e (v5litepod), v6e, "
                      f"e.g. v5p-2048, v5litepod-8, v4-8.")
  gen = "v5litepod" if m[1] == "v5e" else m[1]
  return gen, f"{gen}-{m[2]}"


def tpu_topology(accelerator_type: str) -> Topology:
  """Hosts and JAX devices of a slice (v2-v5p names count TensorCores, v5e/v6e chips)."""
  gen, name = tpu_accelerator(accelerator_type)
  cores_per_chip, devices_per_chip, chips_per_host, single_host, _ = _TPU[gen]
  size = int(name.split("-")[1])
  if size % cores_per_chip:
    raise LaunchError(f"--accelerator_type={accelerator_type}: {gen} sizes count "
                      f"{cores_per_chip} TensorCores per chip; {size} is not a slice.")
  chips = size // cores_per_chip
  hosts = 1 if chips <= single_host else chips // chips_per_host
  if hosts > 1 and chips % chips_per_host:
    raise LaunchError(f"--accelerator_type={accelerator_type}: {chips} chips do not fill "
                      f"hosts of {chips_per_host}.")
  devices = chips * devices_per_chip
  return Topology(hosts, devices, f"{name}: {hosts} host(s) x {chips // hosts} chips, "
                                  f"{devices} JAX devices")


def tpu_vm_commands(action: str, run: Run, *, tpu_name: str, zone: str, project: str,
                    accelerator_type: str, runtime_version: str, hosts: int) -> list[str]:
  """gcloud commands for a TPU VM slice; every ssh/scp runs on all workers."""
  if not tpu_name or not zone:
    raise LaunchError("--target=tpu_vm needs --tpu_name and --zone.")
  where = [tpu_name, f"--zone={zone}"] + ([f"--project={project}"] if project else [])
  tpu = lambda verb, *a: shlex.join(["gcloud", "compute", "tpus", "tpu-vm", verb, *where, *a])
  ssh = lambda script: tpu("ssh", "--worker=all", f"--command={script}")
  exists = tpu("describe") + " > /dev/null 2>&1"
  if action == "start":
    gen, accel = tpu_accelerator(accelerator_type)
    version = runtime_version or _TPU[gen][4]
    tarball = f"/tmp/r1jax_launch_{run.name}.tgz"
    env = (("R1JAX_NUM_PROCESSES", str(hosts)),) if hosts > 1 else ()
    not_running = f'if {_alive(run.pid)}; then echo "{run.name}: running, code left as is"; else '
    return [
        f"{exists} || " + tpu("create", f"--accelerator-type={accel}", f"--version={version}"),
        # Tracked and untracked (not ignored) files: the working tree as it is here.
        f"cd {shlex.quote(ROOT)} && git ls-files -z --cached --others --exclude-standard | "
        f"tar -czf {shlex.quote(tarball)} --null --ignore-failed-read -T -",
        shlex.join(["gcloud", "compute", "tpus", "tpu-vm", "scp", tarball,
                    f"{tpu_name}:r1jax.tgz", *where[1:], "--worker=all"]),
        ssh(f"{not_running}rm -rf {REMOTE_CODE_DIR} && mkdir -p {REMOTE_CODE_DIR} && "
            f"tar -xzf r1jax.tgz -C {REMOTE_CODE_DIR} && cd {REMOTE_CODE_DIR} && "
            f"{run.python} -m pip install -q -e . {TPU_JAX}; fi"),
        ssh(_start_detached(run, REMOTE_CODE_DIR, env)),
    ]
  if action == "logs":
    return [ssh(_logs(run))]
  if action == "stop":
    return [ssh(_stop(run))]
  if action == "status":
    return [tpu("describe", "--format=value(state,health,acceleratorType)"),
            ssh(_status(run))]
  if action == "delete":
    return [f"if {exists}; then {tpu('delete', '--quiet')}; else "
            f'echo "{tpu_name}: no such TPU VM"; fi']
  raise LaunchError(f"--action={action!r} is not an action of --target=tpu_vm.")


# -- (b) SLURM GPU cluster ----------------------------------------------------------


class _Template(string.Template):
  delimiter = "@"


def sbatch_script(run: Run, *, nodes: int, gpus_per_node: int, partition: str, time: str,
                  port: int) -> str:
  """The batch script: one task per node, coordinator on the first node's hostname."""
  with open(os.path.join(HERE, "slurm.sbatch")) as f:
    template = _Template(f.read())
  return template.substitute(
      job_name=run.name, nodes=nodes, gpus_per_node=gpus_per_node, time=time,
      log=_home(run.log),
      partition_line=f"#SBATCH --partition={partition}" if partition else "",
      # Default: a port fixed by the job id (as jax's own SLURM detection picks it).
      port=port or "$(( 61440 + SLURM_JOB_ID % 4096 ))",
      local_device_ids=",".join(str(i) for i in range(gpus_per_node)),
      env_lines="\n".join(f"export {k}={shlex.quote(v)}" for k, v in run.env),
      code_dir=shlex.quote(ROOT),
      run_command=dataclasses.replace(run, env=()).command())


def slurm_commands(action: str, run: Run, *, nodes: int, gpus_per_node: int, partition: str,
                   time: str, port: int) -> list[str]:
  """Writes the batch script and submits it once; the job id file stands for the PID."""
  if nodes < 1 or gpus_per_node < 1:
    raise LaunchError(f"--target=slurm needs --nodes >= 1 and --gpus_per_node >= 1 "
                      f"(got {nodes}, {gpus_per_node}).")
  log_dir = _home(run.log_dir)
  script = os.path.join(log_dir, run.name + ".sbatch")
  jobid = shlex.quote(os.path.join(log_dir, run.name + ".jobid"))
  queued = f'[ -f {jobid} ] && squeue -h -j "$(cat {jobid})" 2>/dev/null | grep -q .'
  if action == "start":
    text = sbatch_script(run, nodes=nodes, gpus_per_node=gpus_per_node, partition=partition,
                         time=time, port=port)
    return [
        f"mkdir -p {shlex.quote(log_dir)} && cat > {shlex.quote(script)} <<'R1JAX_EOF'\n"
        f"{text}R1JAX_EOF",
        f'if {queued}; then echo "{run.name}: job $(cat {jobid}) already queued"; else '
        f"sbatch --parsable {shlex.quote(script)} | cut -d';' -f1 > {jobid} && "
        f'echo "{run.name}: submitted job $(cat {jobid}), log {_home(run.log)}"; fi',
    ]
  if action == "logs":
    return [_logs(dataclasses.replace(run, log_dir=log_dir))]
  if action == "stop":
    return [f'if [ -f {jobid} ]; then scancel "$(cat {jobid})" || true; rm -f {jobid}; '
            f'echo "{run.name}: cancelled"; else echo "{run.name}: no job id file; '
            f'nothing to stop"; fi']
  if action == "status":
    return [f'if [ -f {jobid} ]; then squeue -j "$(cat {jobid})"; else '
            f'echo "{run.name}: no job submitted"; fi']
  raise LaunchError(f"--action={action!r} is not an action of --target=slurm "
                    f"(start, logs, stop, status).")


# -- (c) this machine ---------------------------------------------------------------


def local_commands(action: str, run: Run) -> list[str]:
  """Runs in the background on this machine, from the repository root."""
  run = dataclasses.replace(run, log_dir=_home(run.log_dir))
  if action == "start":
    return [_start_detached(run, ROOT)]
  if action == "logs":
    return [_logs(run)]
  if action == "stop":
    return [_stop(run)]
  if action == "status":
    return [_status(run)]
  raise LaunchError(f"--action={action!r} is not an action of --target=local "
                    f"(start, logs, stop, status).")
