"""Tokenizer: special tokens are single pieces; encode/decode round-trips."""

import pytest

from r1jax import tokenizer

CORPUS = [f"Question: what is {a} + {b}? <think>{a}+{b}={a + b}</think> <answer>{a + b}</answer>"
          for a in range(0, 200, 7) for b in range(3, 90, 11)]
CORPUS += ["|special_token|a short reasoning|special_token|the summary", "A conversation."] * 5


@pytest.fixture(scope="module")
def tok():
  return tokenizer.train(CORPUS, vocab_size=400)


def test_special_tokens_are_single_pieces(tok):
  for s in tokenizer.SPECIAL_TOKENS:
    ids = tok.encode(s)
    assert len(ids) == 1 and ids[0] == tok.token_to_id(s), s
  assert len({tok.pad_id, tok.bos_id, tok.eos_id}) == 3


@pytest.mark.parametrize("text", [
    "Question: what is 123 + 4567? <think>7+3=10</think> <answer>4690</answer>",
    "|special_token|reasoning here|special_token|summary",
    "  two  spaces and a trailing space ",
    "digits 0123456789 split",
    "unseen: ∑ é 漢字 \t tab",
])
def test_round_trip(tok, text):
  ids = tok.encode(text, bos=True, eos=True)
  assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id
  assert tok.decode(ids) == text


def test_digits_are_split(tok):
  ids = tok.encode("4567")
  assert len(ids) == 4


def test_save_load(tok, tmp_path):
  p = str(tmp_path / "t.model")
  tok.save(p)
  again = tokenizer.Tokenizer.load(p)
  assert again.encode("what is 12 + 34?") == tok.encode("what is 12 + 34?")
  with pytest.raises(FileNotFoundError, match="tokenizer stage"):
    tokenizer.Tokenizer.load(str(tmp_path / "missing.model"))
