"""Pipeline data plumbing: length checks, held-out problems never trained on."""

import importlib.util
import pathlib

import pytest

from r1jax import configs, pipeline
from r1jax.data import arithmetic

_EXP = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "r1_zero_tiny.py"


def _config(arg="smoke"):
  spec = importlib.util.spec_from_file_location("r1_zero_tiny", _EXP)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config(arg)


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
  # The demo's tokenizer (same corpus and size as the README command trains).
  return pipeline.run_tokenizer(_config(None), str(tmp_path_factory.mktemp("tok")))


def test_seq_len_too_short_is_a_config_error(tok):
  c = _config(None)
  longest = pipeline.check_lengths(c, tok)
  # Independent count: the longest problem has max_terms digits; its worked solution
  # is the longest completion; both encodings are measured directly.
  prob = arithmetic.LastDigitProblem(tuple(range(c.task.max_terms)))
  prompt, comp = pipeline.task_example(prob, "worked")
  assert longest == len(tok.encode(prompt, bos=True)) + len(tok.encode(comp, eos=True))
  c.pretrain.seq_len = longest - 2
  with pytest.raises(configs.ConfigError, match=rf"seq_len >= {longest - 1}"):
    pipeline.check_lengths(c, tok)
  c.pretrain.seq_len = longest - 1
  assert pipeline.check_lengths(c, tok) == longest


def test_pretraining_rows_are_never_cut(tok):
  c = _config(None)  # the demo's own settings
  for step in range(3):
    b = pipeline.lm_batch(c, tok, step)
    # Every row keeps its EOS: nothing was cut off.
    assert ((b["tokens"] == tok.eos_id).sum(axis=1) == 1).all()


def test_heldout_problems_never_in_training(tmp_path, tok):
  c = _config(None)
  held = pipeline.heldout_problems(c, str(tmp_path))
  assert len(held) == c.eval.num_problems
  digits = lambda q: frozenset(q.split("of ")[1].rstrip("?").split("+"))
  held_sets = {digits(e["question"]) for e in held}
  seen = set()
  for step in range(20):
    b = pipeline.lm_batch(c, tok, step)
    for row in b["tokens"]:
      text = tok.decode([int(t) for t in row if t != tok.pad_id])
      q = text.split("User: ")[1].split("?")[0] + "?"
      seen.add(digits(q))
    prompts, _ = pipeline.rl_prompts_fn(c)(step)
    seen |= {digits(p.split("User: ")[1].split("?")[0] + "?") for p in prompts}
  assert len(seen) > 200 and not seen & held_sets


def test_rl_and_eval_config_defaults_and_misspelt_keys():
  rl = configs.rl_config(steps=3, optimizer=dict(learning_rate=2e-5))
  # The paper's GRPO defaults (section 2.2) unless overridden.
  assert (rl.group_size, rl.beta, rl.epsilon, rl.temperature) == (16, 0.001, 0.2, 1.0)
  assert rl.steps == 3 and rl.optimizer.learning_rate == 2e-5
  ev = configs.eval_config()
  assert (ev.temperature, ev.top_p) == (0.6, 0.95)
  with pytest.raises(configs.ConfigError, match="'steps'"):
    configs.rl_config(stpes=3)
  with pytest.raises(configs.ConfigError, match="'top_p'"):
    configs.eval_config(top_pp=0.9)
