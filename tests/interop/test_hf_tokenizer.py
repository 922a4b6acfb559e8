"""HFTokenizer against `transformers` on a tiny byte-level BPE tokenizer built here.

The tokenizer is trained in-process with the `tokenizers` package (nothing is
downloaded), given R1-style added tokens (<think>, </think>), a BOS post-processor
(as Llama 3 has) and a DeepSeek-R1-style chat template written for this test.
"""

import json

import jinja2
import pytest

tokenizers = pytest.importorskip("tokenizers")

from r1jax.interop.hf_tokenizer import HFTokenizer  # noqa: E402

SPECIAL = ["<|bos|>", "<|eos|>", "<|pad|>", "<|User|>", "<|Assistant|>"]
TEMPLATE = (
    "{% set ns = namespace(system='') %}"
    "{% for m in messages if m['role'] == 'system' %}{% set ns.system = m['content'] %}"
    "{% endfor %}"
    "{{ bos_token }}{{ ns.system }}"
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}<|User|>{{ m['content'] }}"
    "{% elif m['role'] == 'assistant' %}<|Assistant|>"
    "{{ m['content'].split('</think>')[-1] | trim }}{{ eos_token }}"
    "{% elif m['role'] != 'system' %}{{ raise_exception('unknown role: ' + m['role']) }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|Assistant|><think>\n{% endif %}")
TEXTS = [
    "What is 12 + 30? Answer: 42.",
    "  leading spaces,\ttabs\nand newlines\n\n",
    "<think>7 * 6 = 42</think> <answer>42</answer>",
    "unicode: é ∑ 😀 中文",
    "<|User|>special tokens inside text<|eos|>",
    "",
]
MESSAGES = [
    {"role": "system", "content": "You are a careful solver."},
    {"role": "user", "content": "What is 2 + 2?"},
    {"role": "assistant", "content": "<think>2 + 2 = 4</think> The answer is 4."},
    {"role": "user", "content": "And 3 + 3?"},
]


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
  from tokenizers import decoders, models, pre_tokenizers, processors, trainers
  tok = tokenizers.Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  corpus = [f"Question: what is {a} + {b}? <think>{a} + {b} = {a + b}</think> answer {a + b}."
            for a in range(30) for b in range(0, 30, 7)] + ["The quick brown fox jumps."] * 5
  tok.train_from_iterator(corpus, trainers.BpeTrainer(
      vocab_size=400, special_tokens=SPECIAL,
      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
  tok.add_tokens(["<think>", "</think>"])  # plain added tokens, as in DeepSeek-R1
  tok.post_processor = processors.TemplateProcessing(
      single="<|bos|> $A", special_tokens=[("<|bos|>", tok.token_to_id("<|bos|>"))])
  path = tmp_path_factory.mktemp("tok")
  tok.save(str(path / "tokenizer.json"))
  (path / "tokenizer_config.json").write_text(json.dumps({
      "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|bos|>",
      "eos_token": {"__type": "AddedToken", "content": "<|eos|>", "lstrip": False, "rstrip": False,
                    "normalized": False, "single_word": False},
      "pad_token": "<|pad|>", "chat_template": TEMPLATE,
      "clean_up_tokenization_spaces": False}))
  return path


def test_interface_matches_the_sentencepiece_tokenizer(tok_dir):
  tok = HFTokenizer.load(str(tok_dir))
  assert tok.bos_id == SPECIAL.index("<|bos|>") and tok.eos_id == 1 and tok.pad_id == 2
  assert tok.vocab_size == tok.tokenizer.get_vocab_size(with_added_tokens=True)
  think = tok.token_to_id("<think>")
  with pytest.raises(KeyError, match="not in the vocabulary"):
    tok.token_to_id("<never-added>")
  for text in TEXTS:
    ids = tok.encode(text)
    assert tok.decode(ids) == text.replace("<|eos|>", "")  # EOS is dropped, like sentencepiece
    assert tok.encode(text, bos=True, eos=True) == [tok.bos_id] + ids + [tok.eos_id]
  assert think in tok.encode("<think>x</think>")
  assert tok.decode([tok.bos_id, *tok.encode("hi"), tok.eos_id, tok.pad_id]) == "hi"


def test_matches_transformers(tok_dir, tmp_path):
  transformers = pytest.importorskip("transformers")
  ref = transformers.AutoTokenizer.from_pretrained(str(tok_dir))
  assert isinstance(ref, transformers.PreTrainedTokenizerFast)
  ref.save_pretrained(str(tmp_path))  # transformers' own layout (chat_template.jinja)
  for tok in (HFTokenizer.load(str(tok_dir)), HFTokenizer.load(str(tmp_path))):
    assert tok.vocab_size == len(ref)
    assert (tok.bos_id, tok.eos_id, tok.pad_id) == (ref.bos_token_id, ref.eos_token_id,
                                                    ref.pad_token_id)
    for text in TEXTS:
      ids = tok.encode(text)
      assert ids == ref.encode(text, add_special_tokens=False)
      assert tok.encode(text, bos=True) == ref.encode(text)  # the BOS post-processor
      kept = [i for i in ids if i not in (tok.bos_id, tok.eos_id, tok.pad_id)]
      assert tok.decode(ids) == ref.decode(kept)
    for gen in (True, False):
      for msgs in (MESSAGES, MESSAGES[1:2]):
        text = tok.apply_chat_template(msgs, add_generation_prompt=gen)
        assert text == ref.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)
        assert tok.encode(text) == ref.encode(text, add_special_tokens=False)
  prompt = HFTokenizer.load(str(tok_dir)).apply_chat_template(MESSAGES[1:2])
  assert prompt == "<|bos|><|User|>What is 2 + 2?<|Assistant|><think>\n"


def test_template_errors_are_clear(tok_dir, tmp_path):
  tok = HFTokenizer.load(str(tok_dir))
  with pytest.raises(jinja2.exceptions.TemplateError, match="unknown role: tool"):
    tok.apply_chat_template([{"role": "tool", "content": "x"}])
  bare = HFTokenizer(tok.tokenizer, tok.special_tokens)
  with pytest.raises(ValueError, match="no chat template"):
    bare.apply_chat_template(MESSAGES)
  with pytest.raises(ValueError, match="eos_token='<missing>', which is not in the vocabulary"):
    HFTokenizer(tok.tokenizer, dict(tok.special_tokens, eos_token="<missing>"))
  no_bos = HFTokenizer(tok.tokenizer, dict(tok.special_tokens, bos_token=None, pad_token=None))
  assert no_bos.bos_id == -1 and no_bos.pad_id == no_bos.eos_id
  with pytest.raises(ValueError, match="bos_token requested but the tokenizer has none"):
    no_bos.encode("x", bos=True)
  with pytest.raises(FileNotFoundError, match="No tokenizer.json"):
    HFTokenizer.load(str(tmp_path))
