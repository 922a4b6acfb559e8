"""Pipeline data plumbing: length checks, held-out problems never trained on."""

import importlib.util
import pathlib

import jax
import pytest

from r1jax import configs, sharding, stages
from r1jax import tokenizer as tokenizer_lib
from r1jax.data import arithmetic, tasks
from r1jax.stages import common, grpo, pretrain

_EXP = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "r1_zero_tiny.py"


def _config(arg="smoke"):
  spec = importlib.util.spec_from_file_location("r1_zero_tiny", _EXP)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config(arg)


def _run(c, workdir):
  mesh = sharding.make_mesh(c.mesh, devices=jax.devices()[:1])
  return common.Run(c, str(workdir), mesh)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
  # The demo's tokenizer (same corpus and size as the README command trains).
  c = _config(None)
  run = _run(c, tmp_path_factory.mktemp("demo"))
  tok = run.tokenizer(run.run_tokenizer_spec())
  return c, run, tok


def test_seq_len_too_short_is_a_config_error(demo):
  c, run, tok = demo
  task = run.tasks.get("digits")
  longest = pretrain.check_lengths(c.pretrain_base, task, tok, "pretrain_base")
  # Independent count: the longest problem has max_terms digits; its worked solution
  # is the longest completion; both encodings are measured directly.
  prob = arithmetic.LastDigitProblem(tuple(range(c.tasks.digits.max_terms)))
  prompt = task.prompt(prob.question)
  comp = arithmetic.completion(prob, "worked")
  assert longest == len(tok.encode(prompt, bos=True)) + len(tok.encode(comp, eos=True))
  c.pretrain_base.seq_len = longest - 2
  with pytest.raises(configs.ConfigError, match=rf"seq_len >= {longest - 1}"):
    pretrain.check_lengths(c.pretrain_base, task, tok, "pretrain_base")
  c.pretrain_base.seq_len = longest - 1
  assert pretrain.check_lengths(c.pretrain_base, task, tok, "pretrain_base") == longest


def test_pretraining_rows_are_never_cut(demo):
  c, run, tok = demo
  task = run.tasks.get("digits")
  for step in range(3):
    b = pretrain.lm_batch(c.pretrain_base, task, tok, c.seed, step)
    # Every row keeps its EOS: nothing was cut off.
    assert ((b["tokens"] == tok.eos_id).sum(axis=1) == 1).all()


def test_heldout_problems_never_in_training(demo):
  c, run, tok = demo
  held = run.tasks.get("digits").problems("test")[:c.base.num_problems]
  assert len(held) == c.base.num_problems
  digits = lambda q: frozenset(q.split("of ")[1].rstrip("?").split("+"))
  held_sets = {digits(e["question"]) for e in held}
  seen = set()
  task = run.tasks.get("digits")
  stream = tasks.Stream(run.tasks, c.r1_zero.train, c.seed, salt=grpo.PROMPT_SALT)
  for step in range(20):
    b = pretrain.lm_batch(c.pretrain_base, task, tok, c.seed, step)
    for row in b["tokens"]:
      text = tok.decode([int(t) for t in row if t != tok.pad_id])
      q = text.split("User: ")[1].split("?")[0] + "?"
      seen.add(digits(q))
    seen |= {digits(x["question"]) for _, x in stream.batch(step, c.r1_zero.batch_prompts)}
  assert len(seen) > 200 and not seen & held_sets


def test_synthetic_heldout_sft_rows_are_worked_solutions(demo):
  c, run, _ = demo
  task = run.tasks.get("digits")
  rows = task.sft_examples("test")
  assert len(rows) == c.tasks.digits.num_test
  for row in rows[:20]:  # the same text the training rows have, from the question alone
    terms = tuple(int(t) for t in row["question"].split("of ")[1].rstrip("?").split("+"))
    worked = arithmetic.completion(arithmetic.LastDigitProblem(terms), "worked")
    assert row["completion"] == worked and "<think>" in worked


def test_stage_and_protocol_defaults_and_misspelt_keys():
  rl = stages.config("grpo", steps=3, optimizer=dict(learning_rate=2e-5))
  # The paper's GRPO defaults (section 2.2) unless overridden.
  assert (rl.group_size, rl.beta, rl.epsilon, rl.temperature) == (16, 0.001, 0.2, 1.0)
  assert rl.steps == 3 and rl.optimizer.learning_rate == 2e-5
  ev = stages.config("evaluate")
  assert (ev.temperature, ev.top_p) == (0.6, 0.95)
  with pytest.raises(configs.ConfigError, match="'steps'"):
    stages.config("grpo", stpes=3)
  with pytest.raises(configs.ConfigError, match="'top_p'"):
    stages.config("evaluate", top_pp=0.9)
  with pytest.raises(configs.ConfigError, match="allowed: .*'sft'"):
    stages.config("dpo")
  with pytest.raises(configs.ConfigError, match="allowed"):
    tasks.config("mmlu")


def test_encode_prompt_without_bos(demo):
  _, _, tok = demo

  class NoBos:  # the interface of a tokenizer with no BOS token (Qwen2.5)
    bos_id, eos_id = -1, tok.eos_id
    encode = staticmethod(lambda text, bos=False, eos=False: tok.encode(text, eos=eos))

  assert tokenizer_lib.encode_prompt(NoBos, "What?") == tok.encode("What?")
  assert tokenizer_lib.encode_prompt(tok, "What?") == [tok.bos_id] + tok.encode("What?")
