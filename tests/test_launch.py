"""launch/: every target's commands in dry-run mode (exact content), the SLURM script and
the local start/stop run for real in bash with stand-ins for python, srun and sbatch."""

import os
import re
import shlex
import subprocess
import sys
import time

import pytest

from launch import launch, targets
from tests import cli

ROOT = targets.ROOT
TINY = "experiments/r1_zero_tiny.py:smoke"
TPU = ["--target=tpu_vm", "--tpu_name=r1-test", "--zone=us-central2-b", "--project=proj"]
MAIN = (f"python3 -m r1jax.main --config={TINY} --workdir=gs://bucket/run "
        "--config.r1_zero.steps=3 --config.seed=7")


def _plan(*args):
  return launch.plan(["launch", *args])


def _command_arg(line):
  """The --command= script of a `gcloud ... ssh` line."""
  (script,) = [t[len("--command="):] for t in shlex.split(line) if t.startswith("--command=")]
  return script


def _main_env_vars():
  """The environment variables r1jax.main reads to start jax.distributed
  (r1jax/distributed.py's `initialize`)."""
  with open(os.path.join(ROOT, "r1jax", "distributed.py")) as f:
    src = f.read()
  return sorted(set(re.findall(r'env(?:iron)?\.get\("(\w+)"', src)) - {"XLA_FLAGS"})


def test_tpu_vm_start_commands():
  lines, cmds = _plan(*TPU, "--accelerator_type=v4-16", f"--config={TINY}",
                      "--workdir=gs://bucket/run", "--overrides=--config.r1_zero.steps=3",
                      "--config.seed=7")
  assert lines == [
      f"# experiment: {TINY}",
      "# stages: pretrain_base -> base -> r1_zero -> final",
      "# target: v4-16: 2 host(s) x 4 chips, 8 JAX devices; 2 r1jax process(es)",
      "# mesh: data=8 x fsdp=1 x expert=1 x tensor=1 (config {'data': -1, 'fsdp': 1, "
      "'expert': 1, 'tensor': 1}: needs any number of devices)"]
  where = "r1-test --zone=us-central2-b --project=proj"
  # Created only if describe fails; the runtime is the generation's default.
  assert cmds[0] == (f"gcloud compute tpus tpu-vm describe {where} > /dev/null 2>&1 || "
                     f"gcloud compute tpus tpu-vm create {where} --accelerator-type=v4-16 "
                     "--version=tpu-ubuntu2204-base")
  assert cmds[1].startswith(f"cd {ROOT} && git ls-files -z --cached --others")
  assert cmds[2] == ("gcloud compute tpus tpu-vm scp /tmp/r1jax_launch_r1_zero_tiny_smoke.tgz "
                     "r1-test:r1jax.tgz --zone=us-central2-b --project=proj --worker=all")
  gcloud = [c for c in cmds if c.startswith("gcloud compute tpus tpu-vm ")]
  remote = [c for c in gcloud if " ssh " in c or " scp " in c]
  assert len(remote) == 3 and all("--worker=all" in shlex.split(c) for c in remote)
  install = _command_arg(cmds[3])
  assert install.startswith('if [ -f r1jax_launch/r1_zero_tiny_smoke.pid ] && kill -0 ')
  assert ("tar -xzf r1jax.tgz -C r1jax && cd r1jax && python3 -m pip install -q -e . "
          "'jax[tpu]' -f https://storage.googleapis.com/jax-releases/libtpu_releases.html; fi"
          in install)
  run = _command_arg(cmds[4])
  pid, log = "r1jax_launch/r1_zero_tiny_smoke.pid", "r1jax_launch/r1_zero_tiny_smoke.log"
  assert run == (
      f'mkdir -p r1jax_launch && if [ -f {pid} ] && kill -0 "$(cat {pid})" 2>/dev/null; then '
      f'echo "r1_zero_tiny_smoke: already running (pid $(cat {pid}))"; else '
      f"(cd r1jax && exec nohup env R1JAX_NUM_PROCESSES=2 {MAIN}) > {log} 2>&1 < /dev/null "
      f"& echo $! > {pid}; echo \"r1_zero_tiny_smoke: started pid $(cat {pid}), log {log}\"; fi")
  assert len(cmds) == 5


def test_tpu_vm_single_host_sets_no_distributed_env():
  _, cmds = _plan(*TPU, "--accelerator_type=v5e-8", f"--config={TINY}", "--workdir=/tmp/w")
  assert "--accelerator-type=v5litepod-8 --version=v2-alpha-tpuv5-lite" in cmds[0]
  assert "R1JAX_NUM_PROCESSES" not in cmds[4] and "exec nohup python3 -m r1jax.main" in cmds[4]


def test_tpu_vm_other_actions():
  base = [*TPU, f"--config={TINY}"]
  pid = "r1jax_launch/r1_zero_tiny_smoke.pid"
  _, (stop,) = _plan(*base, "--action=stop")
  assert "--worker=all" in shlex.split(stop)
  assert _command_arg(stop) == (
      f'if [ -f {pid} ]; then kill "$(cat {pid})" 2>/dev/null || true; rm -f {pid}; echo '
      f'"r1_zero_tiny_smoke: stopped"; else echo "r1_zero_tiny_smoke: no PID file {pid}; '
      'nothing to stop"; fi')
  _, (logs,) = _plan(*base, "--action=logs")
  assert "--worker=all" in shlex.split(logs)
  assert _command_arg(logs) == "tail -n 100 -F r1jax_launch/r1_zero_tiny_smoke.log"
  _, (describe, status) = _plan(*base, "--action=status")
  assert describe.startswith("gcloud compute tpus tpu-vm describe r1-test")
  assert "--worker=all" in shlex.split(status) and "kill -0" in _command_arg(status)
  _, (delete,) = _plan(*base, "--action=delete")
  where = "r1-test --zone=us-central2-b --project=proj"
  assert delete == (f"if gcloud compute tpus tpu-vm describe {where} > /dev/null 2>&1; then "
                    f"gcloud compute tpus tpu-vm delete {where} --quiet; else "
                    'echo "r1-test: no such TPU VM"; fi')


def test_deepseek_v3_fits_v5p_2048_only():
  cfg = "--config=experiments/r1_deepseek_v3.py"
  lines, cmds = _plan(*TPU, "--accelerator_type=v5p-2048", cfg, "--workdir=gs://b/v3")
  assert lines[2] == ("# target: v5p-2048: 256 host(s) x 4 chips, 1024 JAX devices; "
                      "256 r1jax process(es)")
  assert lines[3].startswith("# mesh: data=1 x fsdp=8 x expert=16 x tensor=8 ")
  assert "exec nohup env R1JAX_NUM_PROCESSES=256 python3 -m r1jax.main" in cmds[4]
  with pytest.raises(launch.LaunchError, match=r"does not fit the target \(v5p-8: 1 host\(s\) "
                     r"x 4 chips, 4 JAX devices\): mesh: .* multiplies to 1024 but there are 4 "
                     r"devices.*\(the config's mesh .* needs exactly 1024 devices\)"):
    _plan(*TPU, "--accelerator_type=v5p-8", cfg, "--workdir=gs://b/v3")


@pytest.mark.parametrize("accel,hosts,devices", [
    ("v4-8", 1, 4), ("v4-32", 4, 16), ("v5p-2048", 256, 1024), ("v5litepod-8", 1, 8),
    ("v5e-16", 4, 16), ("v3-32", 4, 32), ("v6e-8", 1, 8), ("v6e-256", 64, 256)])
def test_tpu_topology(accel, hosts, devices):
  t = targets.tpu_topology(accel)
  assert (t.hosts, t.devices) == (hosts, devices)


def test_slurm_script_and_commands(tmp_path):
  log_dir = str(tmp_path / "logs")
  lines, (write, submit) = _plan(
      "--target=slurm", "--nodes=2", "--gpus_per_node=4", "--partition=gpu",
      "--time=01:00:00", f"--config={TINY}", "--workdir=/shared/run",
      "--config.r1_zero.steps=3", "--env=XLA_FLAGS=--xla_gpu_enable_latency_hiding_scheduler=true",
      f"--log_dir={log_dir}", "--python=/shared/venv/bin/python")
  assert lines[2] == "# target: SLURM: 2 node(s) x 4 GPUs; 2 r1jax process(es)"
  script = targets.sbatch_script(
      targets.Run("r1_zero_tiny_smoke", (f"--config={TINY}", "--workdir=/shared/run",
                                         "--config.r1_zero.steps=3"),
                  (("XLA_FLAGS", "--xla_gpu_enable_latency_hiding_scheduler=true"),),
                  "/shared/venv/bin/python", log_dir),
      nodes=2, gpus_per_node=4, partition="gpu", time="01:00:00", port=0)
  sbatch = os.path.join(log_dir, "r1_zero_tiny_smoke.sbatch")
  assert write == f"mkdir -p {log_dir} && cat > {sbatch} <<'R1JAX_EOF'\n{script}R1JAX_EOF"
  for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1", "#SBATCH --gpus-per-node=4",
               "#SBATCH --partition=gpu", "#SBATCH --time=01:00:00",
               f"#SBATCH --output={log_dir}/r1_zero_tiny_smoke.log",
               'COORDINATOR_HOST="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)"',
               'export COORDINATOR_ADDRESS="$COORDINATOR_HOST:$PORT"',
               'export JAX_COORDINATOR_ADDRESS="$COORDINATOR_ADDRESS"',
               'export R1JAX_NUM_PROCESSES="$SLURM_NTASKS"',
               "export JAX_LOCAL_DEVICE_IDS=0,1,2,3",
               "export XLA_FLAGS=--xla_gpu_enable_latency_hiding_scheduler=true",
               f"cd {ROOT}",
               "srun --ntasks-per-node=1 --kill-on-bad-exit=1 --label /shared/venv/bin/python "
               f"-m r1jax.main --config={TINY} --workdir=/shared/run --config.r1_zero.steps=3"):
    assert line in script.splitlines(), line
  # Every variable main.py reads to start jax.distributed is exported.
  assert _main_env_vars() == ["COORDINATOR_ADDRESS", "JAX_COORDINATOR_ADDRESS",
                              "JAX_LOCAL_DEVICE_IDS", "R1JAX_NUM_PROCESSES", "R1JAX_PROCESS_ID"]
  for var in _main_env_vars():
    if var != "R1JAX_PROCESS_ID":  # on SLURM jax reads the process id from SLURM_PROCID
      assert re.search(rf"^export {var}=", script, re.M), var
  assert submit.startswith(f"if [ -f {log_dir}/r1_zero_tiny_smoke.jobid ] && squeue -h -j ")


def _fake_bin(tmp_path, **scripts):
  d = tmp_path / "bin"
  d.mkdir(exist_ok=True)
  for name, body in scripts.items():
    (d / name).write_text("#!/bin/bash\n" + body + "\n")
    (d / name).chmod(0o755)
  return {**os.environ, "PATH": f"{d}:{os.environ['PATH']}"}


def _bash(cmd, env):
  out = subprocess.run(["bash", "-c", cmd], env=env, capture_output=True, text=True, timeout=60)
  assert out.returncode == 0, out.stderr
  return out.stdout


def test_slurm_script_finds_coordinator_on_first_host(tmp_path):
  """The batch script in bash with stand-ins: the address is the first node's, on the
  job's port; one srun task per node sees the variables main.py and jax read."""
  calls = tmp_path / "srun.txt"
  env = _fake_bin(  # a long host list: taking its first line must not kill scontrol
      tmp_path,      # with SIGPIPE (fatal under pipefail)
      scontrol='[ "$*" = "show hostnames gpu-[07-08]" ] && printf "gpu-07\\ngpu-08\\n" && '
               'seq -f "gpu-x%g" 100000',
      srun=f'echo "$COORDINATOR_ADDRESS $JAX_COORDINATOR_ADDRESS $R1JAX_NUM_PROCESSES '
           f'$JAX_LOCAL_DEVICE_IDS $*" > {calls}')
  env.update(SLURM_JOB_NODELIST="gpu-[07-08]", SLURM_NTASKS="2", SLURM_JOB_ID="100")
  _, (write, _) = _plan("--target=slurm", "--nodes=2", "--gpus_per_node=2",
                        f"--config={TINY}", "--workdir=/w", f"--log_dir={tmp_path}")
  _bash(write, env)
  _bash(f"bash {tmp_path}/r1_zero_tiny_smoke.sbatch", env)
  assert calls.read_text() == (
      "gpu-07:61540 gpu-07:61540 2 0,1 --ntasks-per-node=1 --kill-on-bad-exit=1 --label "
      f"python3 -m r1jax.main --config={TINY} --workdir=/w\n")
  _, (write, _) = _plan("--target=slurm", "--nodes=2", "--gpus_per_node=4", "--port=1234",
                        f"--config={TINY}",
                        "--workdir=/w", f"--log_dir={tmp_path}")
  _bash(write, env)
  _bash(f"bash {tmp_path}/r1_zero_tiny_smoke.sbatch", env)
  assert calls.read_text().startswith("gpu-07:1234 gpu-07:1234 2 0,1,2,3 ")


def test_slurm_submit_once_and_cancel_by_job_id(tmp_path):
  queue, cancelled, submitted = (tmp_path / n for n in ("queue", "cancelled", "submitted"))
  queue.write_text("")
  env = _fake_bin(tmp_path, sbatch=f'echo "$*" >> {submitted}; echo "4242;cluster"',
                  squeue=f'grep -x "$3" {queue} || true', scancel=f'echo "$1" >> {cancelled}')
  args = ["--target=slurm", f"--config={TINY}", "--workdir=/w", f"--log_dir={tmp_path}"]
  _, cmds = _plan(*args)
  _bash(cmds[0], env)
  assert "submitted job 4242" in _bash(cmds[1], env)
  assert (tmp_path / "r1_zero_tiny_smoke.jobid").read_text() == "4242\n"
  queue.write_text("4242\n")  # queued: a re-run submits nothing
  assert "job 4242 already queued" in _bash(cmds[1], env)
  assert submitted.read_text() == f"--parsable {tmp_path}/r1_zero_tiny_smoke.sbatch\n"
  _, (stop,) = _plan(*args, "--action=stop")
  assert "cancelled" in _bash(stop, env) and cancelled.read_text() == "4242\n"
  assert "nothing to stop" in _bash(stop, env) and cancelled.read_text() == "4242\n"


def _gone(pid):
  try:
    with open(f"/proc/{pid}/status") as f:
      return "\nState:\tZ" in f.read()
  except FileNotFoundError:
    return True


def test_local_start_is_idempotent_and_stop_kills_the_pid(tmp_path, capfd):
  """A real start/status/stop in bash; the interpreter is a stand-in that sleeps."""
  env = _fake_bin(tmp_path, fakepy='echo "args: $*"; exec sleep 120')
  args = ["launch", "--target=local", f"--config={TINY}", f"--workdir={tmp_path}/w",
          "--config.seed=3", f"--log_dir={tmp_path}", "--python=fakepy"]
  old_path = os.environ["PATH"]
  os.environ["PATH"] = env["PATH"]
  try:
    assert launch.main(args) == 0
    pid_file = tmp_path / "r1_zero_tiny_smoke.pid"
    pid = int(pid_file.read_text())
    assert launch.main(args) == 0  # a second start finds it alive and starts nothing
    assert int(pid_file.read_text()) == pid
    assert launch.main([*args, "--action=status"]) == 0
    out = capfd.readouterr().out
    assert "# mesh: data=8 x fsdp=1" in out  # conftest's 8 CPU devices
    assert f"r1_zero_tiny_smoke: already running (pid {pid})" in out
    assert f"r1_zero_tiny_smoke: running (pid {pid})" in out
    log = (tmp_path / "r1_zero_tiny_smoke.log").read_text()
    assert log == (f"args: -m r1jax.main --config={TINY} --workdir={tmp_path}/w "
                   "--config.seed=3\n")
    assert launch.main([*args, "--action=stop"]) == 0
    for _ in range(50):
      if _gone(pid):
        break
      time.sleep(0.1)
    assert _gone(pid) and not pid_file.exists()
    assert launch.main([*args, "--action=stop"]) == 0
    assert "nothing to stop" in capfd.readouterr().out
  finally:
    os.environ["PATH"] = old_path
    if (tmp_path / "r1_zero_tiny_smoke.pid").exists():  # a failed test leaves no sleeper
      subprocess.run(["kill", (tmp_path / "r1_zero_tiny_smoke.pid").read_text().strip()])


def test_overrides_spellings_are_one_command():
  run = lambda *o: _plan("--target=slurm", f"--config={TINY}", "--workdir=/w", *o)[1][0]
  one = run("--config.r1_zero.steps=3")
  assert run("--overrides=--config.r1_zero.steps=3") == one
  assert run("--overrides=r1_zero.steps=3") == one
  assert "--workdir=/w --config.r1_zero.steps=3\n" in one


@pytest.mark.parametrize("args,message", [
    (["--target=gke"], "--target='gke': choose one of tpu_vm, slurm, local."),
    (["--target=tpu_vm", "--zone=z"], "--target=tpu_vm needs --tpu_name and --zone."),
    ([*TPU, "--accelerator_type=tpu-8"], "--accelerator_type='tpu-8': expected GENERATION-SIZE"),
    (["--target=local", "--action=delete"], "--action='delete' is not an action of "
                                            "--target=local"),
    (["--target=local", "--action=restart"], "--action='restart': choose one of start, logs"),
    (["--target=local", "--config.r1_zero.stepz=3"],
     "--config.r1_zero.stepz=3: 'stepz' is not a key of r1_zero; valid keys there: "
     "['aggregation',"),
    (["--target=slurm", "--nodes=1", "--gpus_per_node=3"],
     "does not fit the target (SLURM: 1 node(s) x 3 GPUs)"),
    (["--target=local", "--env=NOEQUALS"], "--env='NOEQUALS': write it as KEY=VALUE."),
    (["--target=local", "--no_such_flag"], "Unknown command line flag 'no_such_flag'"),
])
def test_bad_command_lines_are_clear_errors(args, message, capsys):
  argv = ["launch", f"--config={TINY}", "--workdir=/w", *args]
  with pytest.raises(launch.LaunchError) as e:
    launch.plan(argv)
  assert message in str(e.value)
  assert launch.main(argv) == 1
  assert capsys.readouterr().err == f"FATAL launch: {e.value}\n"


def test_missing_config_file_is_named():
  with pytest.raises(launch.LaunchError, match="--config=experiments/nope.py: no file "):
    _plan("--target=local", "--config=experiments/nope.py", "--workdir=/w")


def test_cli_dry_run_prints_the_plan():
  argv = [*TPU, "--accelerator_type=v4-16", f"--config={TINY}", "--workdir=gs://bucket/run",
          "--config.r1_zero.steps=3", "--config.seed=7", "--dry_run"]
  out = subprocess.run([sys.executable, "-m", "launch.launch", *argv], cwd=ROOT,
                       env=cli.child_env(), capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  lines, cmds = _plan(*argv)
  assert out.stdout == "\n".join(lines + cmds) + "\n"
