"""Tokenizers of imported Hugging Face models, behind `r1jax.tokenizer.Tokenizer`'s interface.

`HFTokenizer.load(path)` reads a model directory's `tokenizer.json` (the `tokenizers`
package does the work), the special tokens named in `tokenizer_config.json` (or
`special_tokens_map.json`) and the chat template (`chat_template.jinja`, else
`tokenizer_config.json`'s `chat_template`). Like the sentencepiece tokenizer,
`encode` adds no special tokens unless asked (`bos=True`, `eos=True`) and `decode`
drops BOS/EOS/PAD. A template rendered by `apply_chat_template` already holds its
special tokens as text; encode it with the defaults and they map to their ids.

Differences from `transformers` worth knowing: `vocab_size` counts the tokenizer's
tokens (base + added), which may be fewer than the model's embedding rows;
`pad_id` falls back to `eos_id` when the tokenizer names no pad token (the usual
choice for Llama 3), and a missing BOS/EOS is -1, as in sentencepiece;
`clean_up_tokenization_spaces` is never applied, so decode is lossless (transformers 5
also skips it for BPE tokenizers, which all three supported families use).
"""

from __future__ import annotations

import datetime
import json
import os
from typing import Any, Mapping, Sequence

import jinja2
import jinja2.sandbox
import tokenizers

_SPECIAL = ("bos_token", "eos_token", "pad_token", "unk_token")


def _content(token: Any) -> str | None:
  """A special token as text: config files store a string or {'content': ...}."""
  if token is None or isinstance(token, str):
    return token
  if isinstance(token, Mapping) and "content" in token:
    return token["content"]
  raise ValueError(f"Cannot read a special token from {token!r}; expected a string or a dict "
                   f"with 'content'.")


def _read_json(path: str) -> dict[str, Any]:
  if not os.path.exists(path):
    return {}
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _template_from_config(value: Any) -> str | None:
  """tokenizer_config's chat_template: a string, or a list of named templates."""
  if value is None or isinstance(value, str):
    return value
  named = {t["name"]: t["template"] for t in value}
  if "default" not in named:
    raise ValueError(f"chat_template lists templates {sorted(named)} but none is 'default'.")
  return named["default"]


def _compile(template: str) -> jinja2.Template:
  """A sandboxed Jinja environment with the helpers HF chat templates use."""

  def raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)

  def tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None,
             separators: Any = None, sort_keys: bool = False) -> str:
    # Unlike Jinja's own tojson, no HTML escaping: the output is model input, not markup.
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)

  env = jinja2.sandbox.ImmutableSandboxedEnvironment(
      trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
  env.filters["tojson"] = tojson
  env.globals["raise_exception"] = raise_exception
  env.globals["strftime_now"] = lambda fmt: datetime.datetime.now().strftime(fmt)
  return env.from_string(template)


class HFTokenizer:
  """A `tokenizer.json` tokenizer with BOS/EOS/PAD ids and the model's chat template."""

  def __init__(self, tokenizer: tokenizers.Tokenizer, special_tokens: Mapping[str, str | None],
               chat_template: str | None = None):
    self.tokenizer = tokenizer
    self.special_tokens = {k: special_tokens.get(k) for k in _SPECIAL}
    self.chat_template = chat_template
    self._template = _compile(chat_template) if chat_template else None
    for key, tok in self.special_tokens.items():
      if tok is not None and tokenizer.token_to_id(tok) is None:
        raise ValueError(f"The tokenizer config names {key}={tok!r}, which is not in the "
                         f"vocabulary.")

  @classmethod
  def load(cls, path: str) -> "HFTokenizer":
    """Reads a model directory (tokenizer.json, tokenizer_config.json, chat template)."""
    file = os.path.join(path, "tokenizer.json")
    if not os.path.exists(file):
      raise FileNotFoundError(f"No tokenizer.json in {path}; HFTokenizer reads the fast "
                              f"(`tokenizers`) format only.")
    config = _read_json(os.path.join(path, "tokenizer_config.json"))
    mapping = _read_json(os.path.join(path, "special_tokens_map.json"))
    special = {k: _content(config.get(k, mapping.get(k))) for k in _SPECIAL}
    jinja_file = os.path.join(path, "chat_template.jinja")
    if os.path.exists(jinja_file):
      with open(jinja_file, encoding="utf-8") as f:
        template = f.read()
    else:
      template = _template_from_config(config.get("chat_template"))
    return cls(tokenizers.Tokenizer.from_file(file), special, template)

  def _id(self, key: str) -> int:
    tok = self.special_tokens[key]
    return -1 if tok is None else self.tokenizer.token_to_id(tok)

  @property
  def vocab_size(self) -> int:
    return self.tokenizer.get_vocab_size(with_added_tokens=True)

  @property
  def bos_id(self) -> int:
    return self._id("bos_token")

  @property
  def eos_id(self) -> int:
    return self._id("eos_token")

  @property
  def pad_id(self) -> int:
    return self._id("pad_token") if self.special_tokens["pad_token"] else self.eos_id

  def token_to_id(self, token: str) -> int:
    """Id of a token; KeyError if the vocabulary lacks it."""
    i = self.tokenizer.token_to_id(token)
    if i is None:
      raise KeyError(f"{token!r} is not in the vocabulary.")
    return i

  def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
    """Token ids of `text` (optionally with BOS/EOS); special-token text maps to its id."""
    ids = self.tokenizer.encode(text, add_special_tokens=False).ids
    for flag, key in ((bos, "bos_token"), (eos, "eos_token")):
      if flag and self._id(key) < 0:
        raise ValueError(f"{key} requested but the tokenizer has none.")
    return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

  def decode(self, ids: Sequence[int]) -> str:
    """Text of `ids`; BOS/EOS/PAD are dropped, other special tokens are kept as text."""
    skip = {self.bos_id, self.eos_id, self.pad_id}
    return self.tokenizer.decode([int(i) for i in ids if int(i) not in skip],
                                 skip_special_tokens=False)

  def apply_chat_template(self, messages: Sequence[Mapping[str, Any]],
                          add_generation_prompt: bool = True, **kwargs: Any) -> str:
    """The conversation rendered by the model's Jinja chat template (text, not ids).

    `messages` are {'role': ..., 'content': ...} dicts; extra keyword arguments reach
    the template (e.g. `tools`). The special tokens are passed as text, as HF does.
    """
    if self._template is None:
      raise ValueError("This tokenizer has no chat template (no chat_template.jinja and no "
                       "chat_template in tokenizer_config.json).")
    context: dict[str, Any] = {"tools": None, "documents": None}  # defined, as in HF
    context.update({k: v for k, v in self.special_tokens.items() if v is not None})
    context.update(kwargs)
    return self._template.render(messages=[dict(m) for m in messages],
                                 add_generation_prompt=add_generation_prompt, **context)
