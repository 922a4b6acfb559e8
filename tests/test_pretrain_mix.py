"""Pretraining on several generated corpora: each batch holds the weighted count of each
source, is a pure function of (seed, step), and the general corpus is plain answers
(no R1 format in a base model's corpus)."""

import numpy as np
import pytest

from r1jax import configs, stages
from r1jax.data import tasks
from r1jax.rewards.format import SEPARATOR
from r1jax.stages import pretrain

MESH = {"data": 1, "fsdp": 1, "expert": 1, "tensor": 1}


class _CharTok:
  """One id per character (decodable by chr), BOS 1, EOS 2, pad 0."""
  pad_id, bos_id, eos_id = 0, 1, 2

  def encode(self, text, bos=False, eos=False):
    return [1] * bos + [ord(ch) for ch in text] + [2] * eos


def _decode(row):
  return "".join(chr(i) for i in row if i > 2)


@pytest.fixture
def sources(tmp_path):
  c = configs.run_config(seed=0)
  c.tasks.digits = tasks.config("synthetic", name="last_digit")
  c.tasks.general = tasks.config("general")
  reg = tasks.Registry(c, str(tmp_path))
  return [reg.get("digits"), reg.get("general")]


def test_batches_mix_sources_by_weight(sources):
  s = stages.config("pretrain", train=("digits:train", "general:train"),
                    train_weights=(3, 1), batch_size=8, seq_len=600)
  pretrain.validate(s, "pre", MESH)
  tok = _CharTok()
  texts = [_decode(r) for r in pretrain.lm_batch(s, sources, tok, seed=0, step=5)["tokens"]]
  general_rows = [t for t in texts if t.startswith("User:")]
  assert len(general_rows) == 2 and len(texts) == 8
  assert all("last digit" in t for t in texts[:6])
  assert not any(SEPARATOR in t for t in general_rows)  # plain answers only
  again = pretrain.lm_batch(s, sources, tok, seed=0, step=5)["tokens"]
  np.testing.assert_array_equal(again, pretrain.lm_batch(s, sources, tok, 0, 5)["tokens"])
  assert not np.array_equal(again, pretrain.lm_batch(s, sources, tok, 0, 6)["tokens"])
  assert pretrain.check_lengths(s, sources, tok, "pre") > 0


def test_several_sources_need_weights():
  s = stages.config("pretrain", train=("digits:train", "general:train"), batch_size=8)
  with pytest.raises(configs.ConfigError, match="several with train_weights"):
    pretrain.validate(s, "pre", MESH)
  s.train_weights = (1, 1, 1)
  with pytest.raises(configs.ConfigError, match="one non-negative weight per source"):
    pretrain.validate(s, "pre", MESH)
