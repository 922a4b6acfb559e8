"""Tokenizers: sentencepiece models trained in-process for the project's own models.

One interface for every tokenizer (`encode`, `decode`, `bos_id`, `eos_id`, `pad_id`,
`vocab_size`): this module's sentencepiece `Tokenizer` and
`r1jax.interop.hf_tokenizer.HFTokenizer` (a model directory's tokenizer.json).
`load(spec)` opens either from a spec dict ({"kind": "sentencepiece" | "hf", "path"}),
which is how stage outputs name their tokenizer. A tokenizer may have no BOS token
(Qwen2.5 has none): `encode_prompt` adds BOS only when there is one.

Special tokens the R1 templates need are single pieces that never split:
`<think>`, `</think>`, `<answer>`, `</answer>` and the R1 cold-start separator
`|special_token|`, plus BOS/EOS/PAD. Tokenizers of imported Hugging Face models live in
`r1jax.interop.hf_tokenizer` behind the same interface (encode, decode, ids).
"""

from __future__ import annotations

import io
import os
from typing import Any, Iterable, Iterator, Sequence

import sentencepiece as spm

SPECIAL_TOKENS = ("<think>", "</think>", "<answer>", "</answer>", "|special_token|")


class Tokenizer:
  """A sentencepiece model with BOS/EOS/PAD ids and the R1 special tokens."""

  def __init__(self, model_proto: bytes):
    self.proto = model_proto
    self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
    for tok in SPECIAL_TOKENS:
      if self.sp.piece_to_id(tok) == self.sp.unk_id():
        raise ValueError(f"Tokenizer lacks the special token {tok!r}; retrain it with "
                         f"r1jax.tokenizer.train(...).")

  @property
  def vocab_size(self) -> int:
    return self.sp.get_piece_size()

  @property
  def bos_id(self) -> int:
    return self.sp.bos_id()

  @property
  def eos_id(self) -> int:
    return self.sp.eos_id()

  @property
  def pad_id(self) -> int:
    return self.sp.pad_id()

  def token_to_id(self, token: str) -> int:
    """Id of a piece; KeyError if the vocabulary lacks it."""
    i = self.sp.piece_to_id(token)
    if i == self.sp.unk_id() and token != self.sp.id_to_piece(self.sp.unk_id()):
      raise KeyError(f"{token!r} is not in the vocabulary.")
    return i

  def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
    """Token ids of `text` (optionally with BOS/EOS)."""
    ids = self.sp.encode(text)
    return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

  def decode(self, ids: Sequence[int]) -> str:
    """Text of `ids`; BOS/EOS/PAD are dropped."""
    skip = {self.bos_id, self.eos_id, self.pad_id}
    return self.sp.decode([int(i) for i in ids if int(i) not in skip])

  def save(self, path: str) -> None:
    """Writes the sentencepiece model file (atomically)."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
      f.write(self.proto)
    os.replace(tmp, path)

  @classmethod
  def load(cls, path: str) -> "Tokenizer":
    if not os.path.exists(path):
      raise FileNotFoundError(f"No tokenizer model at {path}; the tokenizer stage writes it.")
    with open(path, "rb") as f:
      return cls(f.read())


def train(texts: Iterable[str], vocab_size: int, *, model_type: str = "bpe",
          extra_symbols: Sequence[str] = (), byte_fallback: bool = True) -> Tokenizer:
  """Trains a sentencepiece model from an in-memory iterator of texts.

  Digits are split into single pieces (arithmetic needs per-digit tokens); the R1
  special tokens are user-defined symbols; ids: PAD 0, UNK 1, BOS 2, EOS 3. With
  `byte_fallback` (256 byte pieces) any text round-trips, even characters unseen in
  training; without it they decode as UNK. `extra_symbols` become single pieces (e.g. a
  constant prompt prefix, which shortens every sequence without changing its text).
  """
  if model_type not in ("bpe", "unigram", "char"):
    raise ValueError(f"model_type={model_type!r}; allowed: 'bpe', 'unigram', 'char'.")
  model = io.BytesIO()
  iterator: Iterator[str] = iter(texts)
  spm.SentencePieceTrainer.train(
      sentence_iterator=iterator, model_writer=model, vocab_size=vocab_size,
      model_type=model_type, character_coverage=1.0, split_digits=True,
      # Pieces never contain raw spaces (sentencepiece writes them as U+2581).
      user_defined_symbols=list(SPECIAL_TOKENS) + [x.replace(" ", "\u2581")
                                                   for x in extra_symbols],
      pad_id=0, unk_id=1, bos_id=2, eos_id=3, hard_vocab_limit=False,
      byte_fallback=byte_fallback, add_dummy_prefix=False, remove_extra_whitespaces=False,
      normalization_rule_name="identity", minloglevel=2, num_threads=1,
      max_sentence_length=16384)
  return Tokenizer(model.getvalue())


KINDS = ("sentencepiece", "hf")


def load(spec: dict[str, str]) -> "Tokenizer | Any":
  """The tokenizer a spec names: {"kind": "sentencepiece", "path": FILE.model} or
  {"kind": "hf", "path": DIR with tokenizer.json}."""
  kind, path = spec["kind"], os.path.expanduser(spec["path"])
  if kind == "sentencepiece":
    return Tokenizer.load(path)
  if kind == "hf":
    from r1jax.interop import hf_tokenizer
    return hf_tokenizer.HFTokenizer.load(path)
  raise ValueError(f"tokenizer kind {kind!r}; allowed: {KINDS}.")


def encode_prompt(tok: Any, text: str) -> list[int]:
  """Prompt ids: BOS (when the tokenizer has one) + the text's tokens."""
  return tok.encode(text, bos=tok.bos_id >= 0)


# End-of-turn tokens of chat templates: generation stops at them as at EOS.
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<\uff5cend\u2581of\u2581sentence\uff5c>")


def stop_ids(tok: Any) -> list[int]:
  """EOS and whichever end-of-turn tokens the vocabulary has."""
  ids = [tok.eos_id] if tok.eos_id >= 0 else []
  for t in END_OF_TURN:
    try:
      ids.append(tok.token_to_id(t))
    except KeyError:
      pass
  return sorted(set(ids))
