"""The notebooks in colabs/: stored without outputs, and each runs headless (nbclient) in
its small setting and produces what it shows.

The kernel is the venv's python3 on CPU with one device, as a user's laptop (and as the
CLI tests run; the 8 simulated devices of conftest are for in-process tests), with
R1JAX_COLAB_SMALL=1 and its own R1JAX_COLAB_WORKDIR. Nothing is timed.
"""

import glob
import json
import os
import re
import sys

import nbclient
import nbformat
import pytest

from r1jax import colab
from tests import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "colabs", "*.ipynb")))
NAMES = [os.path.basename(p)[:-len(".ipynb")] for p in NOTEBOOKS]


def _read(name):
  return nbformat.read(os.path.join(ROOT, "colabs", f"{name}.ipynb"), as_version=4)


def test_the_four_notebooks_exist():
  assert set(NAMES) >= {"quickstart", "inspect_grpo", "hf_checkpoint", "moe_router"}


@pytest.mark.parametrize("name", NAMES)
def test_stored_without_outputs(name):
  nb = _read(name)
  nbformat.validate(nb)
  for cell in nb.cells:
    if cell.cell_type == "code":
      assert cell.outputs == [] and cell.execution_count is None, (name, cell.source[:60])


@pytest.mark.parametrize("name", NAMES)
def test_first_cell_installs_in_colab_only_and_shows_devices(name):
  first = next(c for c in _read(name).cells if c.cell_type == "code").source
  assert "import google.colab" in first and "if IN_COLAB:" in first
  assert "pip" in first.split("if IN_COLAB:", 1)[1]
  assert "jax.devices()" in first


def _execute(name, workdir):
  nb = _read(name)
  path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
  env = cli.child_env(PATH=path, **{colab.SMALL_ENV: "1", colab.WORKDIR_ENV: str(workdir)})
  client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=1200,
                                   startup_timeout=300,
                                   resources={"metadata": {"path": os.path.join(ROOT, "colabs")}})
  client.execute(env=env)  # raises CellExecutionError on any cell's error
  return nb


def _text(nb):
  out = []
  for cell in nb.cells:
    for o in cell.get("outputs", []):
      if o.output_type == "stream" and o.name == "stdout":
        out.append(o.text)
      elif "data" in o and "text/plain" in o.data:
        out.append(o.data["text/plain"])
  return "".join(out)


def _images(nb):
  return sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


def _png(path):
  with open(path, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n", path


@pytest.mark.parametrize("name", NAMES)
def test_runs_headless(name, tmp_path):
  work = tmp_path / "work"
  nb = _execute(name, work)
  text = _text(nb)
  assert "devices: [CpuDevice(id=0)]" in text
  CHECKS[name](str(work), nb, text)


def _quickstart(work, nb, text):
  results = json.load(open(os.path.join(work, "eval.json")))
  assert {"base", "final"} <= set(results)
  for key in ("base", "final"):
    assert 0.0 <= results[key]["pass@1"] <= 1.0
    assert re.search(rf"^{key}\s+pass@1 \d\.\d{{3}}", text, re.M)  # the eval table
    assert f"== {key} (pass@1" in text  # the rollouts
  for png in ("accuracy.png", "response_length.png", "curves.png"):
    _png(os.path.join(work, png))
  assert _images(nb) >= 3


def _inspect_grpo(work, nb, text):
  _png(os.path.join(work, "grpo_pieces.png"))
  assert _images(nb) == 1
  before = float(re.search(r"^pieces: total (\S+) =", text, re.M).group(1))
  step_loss = float(re.search(r"train step: train/loss (\S+),", text).group(1))
  assert before == pytest.approx(step_loss, abs=1e-5)  # the pieces are the step's loss
  m = re.search(r"^total (\S+) = policy (\S+) \+ beta (\S+) x KL (\S+)  \(sum of pieces (\S+)\)",
                text, re.M)
  total, policy, beta, kl, summed = map(float, m.groups())
  assert total == pytest.approx(summed, abs=1e-5)
  assert kl > 0  # the updates moved the policy away from the reference
  assert "   total       adv  completion" in text  # the group table's header
  assert "log pi_old" in text and "ratio" in text


def _hf_checkpoint(work, nb, text):
  report = json.load(open(os.path.join(work, "eval", "report.json")))
  entry = report["gsm8k:test"]
  assert entry["num_problems"] == 4 and entry["k"] == 2
  assert 0.0 <= entry["pass@1"] <= 1.0
  assert "Qwen2ForCausalLM: 2 layers" in text
  assert "<|im_start|>assistant" in text  # the sampled prompt, in the chat template
  assert "gold '" in text  # a judged problem


def _moe_router(work, nb, text):
  for png in ("moe_metrics.png", "router.png"):
    _png(os.path.join(work, png))
  assert _images(nb) == 2
  # :smoke pretrains 6 steps and runs 2 GRPO steps, a checkpoint after each, plus init.
  assert "9 checkpoints, steps 0..8; the last one (r1_zero)" in text
  assert "selection bias [layer, expert]" in text


CHECKS = {"quickstart": _quickstart, "inspect_grpo": _inspect_grpo,
          "hf_checkpoint": _hf_checkpoint, "moe_router": _moe_router}
