"""What the notebooks in colabs/ call, so that they hold no logic of their own.

Their setting (`small_setting`, `workdir`), experiments loaded by name
(`load_experiment`), a run's results as text and plots (`eval_table`, `examples_text`,
`plot_curves`), and stand-ins for downloads: a tiny random Hugging Face checkpoint
(`write_tiny_hf_checkpoint`) and last-digit problems in GSM8K's JSONL format
(`write_gsm8k_style`), or the real GSM8K (`fetch_gsm8k`) where a network is.

A notebook runs in its real setting unless R1JAX_COLAB_SMALL=1 (the tests set it, and
R1JAX_COLAB_WORKDIR, to run every notebook for seconds on a CPU).
"""

from __future__ import annotations

import importlib.util
import json
import os
import urllib.request
from typing import Any, Sequence

SMALL_ENV = "R1JAX_COLAB_SMALL"  # "1": the notebooks' small setting (CI)
WORKDIR_ENV = "R1JAX_COLAB_WORKDIR"  # where a notebook writes (default under /tmp)
GSM8K_URL = ("https://raw.githubusercontent.com/openai/grade-school-math/master/"
             "grade_school_math/data")  # GSM8K's original JSONL files


def small_setting() -> bool:
  """True when R1JAX_COLAB_SMALL=1: the notebooks shrink to seconds on a CPU."""
  return os.environ.get(SMALL_ENV, "") == "1"


def workdir(name: str, small: bool) -> str:
  """R1JAX_COLAB_WORKDIR, else /tmp/r1jax_colab/<name> (`_small` appended when small:
  a finished stage is skipped on rerun, so the two settings never share a directory)."""
  default = os.path.join("/tmp/r1jax_colab", name + ("_small" if small else ""))
  return os.path.expanduser(os.environ.get(WORKDIR_ENV) or default)


def repo_root(start: str | None = None) -> str:
  """The r1jax checkout holding `start` (default: the working directory)."""
  d = os.path.abspath(start or os.getcwd())
  while True:
    if os.path.isdir(os.path.join(d, "experiments")) and os.path.isdir(os.path.join(d, "r1jax")):
      return d
    parent = os.path.dirname(d)
    if parent == d:
      raise FileNotFoundError(f"No r1jax checkout (experiments/ and r1jax/) at or above "
                              f"{start or os.getcwd()}; run the notebook from the repository "
                              f"(colabs/ or its root).")
    d = parent


def load_experiment(name: str, arg: str | None = None) -> Any:
  """`get_config(arg)` of experiments/<name>.py, as `--config=experiments/<name>.py:arg`."""
  path = os.path.join(repo_root(), "experiments", f"{name}.py")
  spec = importlib.util.spec_from_file_location(f"experiments_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


# -- a run's results -------------------------------------------------------------------


def read_json(path: str) -> dict[str, Any]:
  with open(path) as f:
    return json.load(f)


def eval_table(workdir_: str) -> str:
  """DIR/eval.json as the pipeline prints it: one row per entry (base, final, ...)."""
  from r1jax import pipeline
  results = read_json(os.path.join(workdir_, "eval.json"))
  width = max(len(k) for k in results)
  return "\n".join(f"{k:{width}s}  {pipeline.eval_row(r)}" for k, r in results.items())


def examples_text(workdir_: str, entries: Sequence[str] = ("base", "final")) -> str:
  """The example completions an evaluation kept, per entry, with the extracted answer
  and its verdict (r1jax.rewards.math_equiv)."""
  from r1jax.rewards import math_equiv
  results = read_json(os.path.join(workdir_, "eval.json"))
  lines = []
  for key in entries:
    lines.append(f"== {key} (pass@1 {results[key]['pass@1']:.3f})")
    for ex in results[key].get("examples", []):
      pred = math_equiv.extract_answer(ex["completion"])
      ok = pred is not None and math_equiv.is_equiv(pred, ex["gold"])
      lines.append(f"  ...{ex['prompt_tail']}\n    -> {ex['completion']!r}\n"
                   f"    answer {pred!r}, gold {ex['gold']!r}: {'correct' if ok else 'wrong'}")
  return "\n".join(lines)


def problems_text(eval_dir: str, task: str, n: int = 2, *, width: int = 300) -> str:
  """The first `n` problems an `r1jax.evaluate` run judged: gold, each sample's extracted
  answer and verdict, and the first sample's text."""
  lines = []
  with open(os.path.join(eval_dir, task.replace(":", "_"), "problems.jsonl")) as f:
    records = [json.loads(line) for line in f if line.strip()][:n]
  for r in records:
    lines.append(f"gold {r['gold']!r}; answers {r['extracted']}; verdicts {r['correct']}")
    lines.append(f"  first sample: {r['samples'][0][:width]!r}")
  return "\n".join(lines)


def read_metrics(workdir_: str, stage: str) -> list[dict[str, Any]]:
  """The rows of DIR/<stage>/metrics.jsonl."""
  from r1jax.train import metrics
  return metrics.read_metrics(os.path.join(workdir_, stage, "metrics.jsonl"))


def plot_curves(rows: dict[str, list[dict[str, Any]]], keys: Sequence[tuple[str, str]],
                path: str, *, title: str = "", step_offsets: dict[str, int] | None = None
                ) -> str:
  """One panel per (metric key, label) against step, a line per name of `rows`
  ({name: metrics rows}, each name's steps shifted by `step_offsets[name]`, e.g. a later
  stage's after an earlier one's); rows without a key are skipped. PNG at `path`."""
  from matplotlib.figure import Figure  # no pyplot: leaves the notebook's backend alone

  fig = Figure(figsize=(4.2 * len(keys), 3.3))
  axes = fig.subplots(1, len(keys), squeeze=False)[0]
  for ax, (key, label) in zip(axes, keys):
    for name, rs in rows.items():
      shift = (step_offsets or {}).get(name, 0)
      pts = [(r["step"] + shift, r[key]) for r in rs if isinstance(r.get(key), (int, float))]
      if pts:
        ax.plot(*zip(*pts), marker="o" if len(pts) <= 100 else None, markersize=3, label=name)
    ax.set_xlabel("step")
    ax.set_title(label, fontsize=10)
    ax.grid(alpha=0.3)
    if len(rows) > 1 and ax.lines:
      ax.legend(fontsize=8)
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=90)
  return path


# -- stand-ins for downloads -----------------------------------------------------------

ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
# Qwen2.5's ChatML template, without its system-prompt and tool branches.
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")


def gsm8k_style_rows(n: int, seed: int, split: str) -> list[dict[str, str]]:
  """Last-digit problems (r1jax.data.arithmetic) as GSM8K rows: {"question", "answer":
  "...#### N"}."""
  from r1jax.data import arithmetic
  problems = arithmetic.sample_last_digit_problems(
      seed, n, 3, 5, split="eval" if split == "test" else "train")
  return [{"question": p.question,
           "answer": f"{'+'.join(map(str, p.terms))} = {sum(p.terms)}\n#### {p.answer}"}
          for p in problems]


def write_gsm8k_style(data_dir: str, *, n_train: int = 16, n_test: int = 16,
                      seed: int = 0) -> str:
  """DATA/gsm8k/{train,test}.jsonl of `gsm8k_style_rows` (an offline GSM8K stand-in)."""
  d = os.path.join(data_dir, "gsm8k")
  os.makedirs(d, exist_ok=True)
  for split, n in (("train", n_train), ("test", n_test)):
    with open(os.path.join(d, f"{split}.jsonl"), "w") as f:
      for r in gsm8k_style_rows(n, seed, split):
        f.write(json.dumps(r) + "\n")
  return d


def fetch_gsm8k(data_dir: str, *, base_url: str = GSM8K_URL) -> str:
  """Downloads GSM8K's original train/test JSONL into DATA/gsm8k (kept if present)."""
  d = os.path.join(data_dir, "gsm8k")
  os.makedirs(d, exist_ok=True)
  for split in ("train", "test"):
    path = os.path.join(d, f"{split}.jsonl")
    if not os.path.exists(path):
      with urllib.request.urlopen(f"{base_url}/{split}.jsonl") as r:
        data = r.read()
      with open(path + ".tmp", "wb") as f:
        f.write(data)
      os.replace(path + ".tmp", path)
  return d


def write_tiny_hf_checkpoint(path: str, *, seed: int = 0, vocab_size: int = 384) -> str:
  """A random Qwen2-shaped HF checkpoint at `path` (config.json, model.safetensors via
  `interop.hf.save_checkpoint`) with a byte-level BPE tokenizer.json trained on
  GSM8K-style rows, ChatML special tokens and chat template. Nothing is downloaded."""
  import jax
  from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

  from r1jax import configs, model
  from r1jax.data import templates
  from r1jax.interop import hf

  os.makedirs(path, exist_ok=True)
  corpus = [templates.R1_ZERO_TEMPLATE, templates.BOXED_INSTRUCTION,
            "<think> </think> <answer> </answer> \\boxed{}", "user\nassistant\n"]
  corpus += [r["question"] + "\n" + r["answer"] for r in gsm8k_style_rows(200, seed, "train")]
  tok = Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  tok.train_from_iterator(corpus, trainers.BpeTrainer(
      vocab_size=vocab_size, show_progress=False,
      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
  tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                          for t in (ENDOFTEXT, IM_START, IM_END)])
  n_tokens = tok.get_vocab_size(with_added_tokens=True)
  mc = configs.model_config(vocab_size=-(-n_tokens // 64) * 64, d_model=64, n_layers=2,
                            n_heads=4, n_kv_heads=2, head_dim=16, mlp_dim=128,
                            max_seq_len=2048, qkv_bias=True, tie_embeddings=True)
  params = jax.jit(lambda k: model.init_params(mc, k))(jax.random.key(seed))
  eos = tok.token_to_id(ENDOFTEXT)
  hf.save_checkpoint(params, mc, path, extra_config={"bos_token_id": eos, "eos_token_id": eos})
  tok.save(os.path.join(path, "tokenizer.json"))
  with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
    json.dump({"bos_token": None, "eos_token": ENDOFTEXT, "pad_token": ENDOFTEXT,
               "chat_template": CHATML_TEMPLATE}, f, indent=1)
  return path


def download_hf_model(repo_id: str, local_dir: str) -> str:
  """A Hugging Face model's config, weights and tokenizer files (huggingface_hub)."""
  from huggingface_hub import snapshot_download
  return snapshot_download(repo_id, local_dir=local_dir,
                           allow_patterns=["*.json", "*.safetensors", "*.jinja", "*.txt"])
