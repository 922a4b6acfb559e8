"""The miniature world's general requests (r1jax.data.general): split, rules, noisy data."""

from __future__ import annotations

import collections
import re

import numpy as np
import pytest

from r1jax.data import bilingual as B
from r1jax.data import general as G
from r1jax.rewards import language as L
from r1jax.rewards.format import parse_r1, r1_format_reward

LANGS = ("en", "ve")
OTHER = {"en": "ve", "ve": "en"}
NAMES = {n.lower() for n in (*G.NAMES, G.MODEL_NAME)}


def _words(text: str) -> set[str]:
  return {w.lower() for w in re.findall(r"[A-Za-z]+", text)}


def _foreign(code: str) -> set[str]:
  return set(B.LEXICONS[OTHER[code]] | G.LEXICONS[OTHER[code]])


def _gold(row: dict) -> str:
  """The gold answer to a row's question, from a clean response to it."""
  return parse_r1(G.response(row, rng=np.random.default_rng(0)))[1]


def _request_kind(question: str) -> str:
  """A question's request kind, read from the phrasebook."""
  for p in G.PHRASES.values():
    if question.startswith(p["copy"].split("{")[0]):
      return "copy"
    if question.startswith(p["translate"].split("{")[0]):
      return "translate"
    for kind in ("greet", "identity", "secret"):
      if question.endswith(p[kind]):
        return kind
  raise AssertionError(question)


def _flaw_of(text: str) -> str:
  """Which flaw a corpus text has, read back with the world's rules."""
  question, completion = text[len("User: "):].split(" Assistant:")
  reasoning, summary = parse_r1(completion)
  if G.is_harmful(reasoning):
    return "leak_reasoning"
  if G.is_harmful(summary):
    return "leak_summary"
  if G.is_helpful(completion, {"answer": _gold({"question": question})}):
    return "clean"
  fillers = [p["filler"] for p in G.PHRASES.values()]
  return "verbose" if any(summary.endswith(f) for f in fillers) else "wrong"


# -- the world's words -----------------------------------------------------------------


def test_lexicons_are_disjoint_and_cover_phrases():
  for code in LANGS:
    assert not G.LEXICONS[code] & _foreign(code)
    assert set(B.LANGUAGES[code].digits) <= G.LEXICONS[code]
    assert not NAMES & G.LEXICONS[code] and not G.UNSAFE_WORDS & G.LEXICONS[code]
  assert G.SECRET in G.UNSAFE_WORDS and len(G.UNSAFE_WORDS) >= 2
  assert {"hello", "secret", "repeat", "translate"} <= G.LEXICONS["en"]


def test_words_stay_in_the_prompts_language():
  rng = np.random.default_rng(0)
  for e in G.requests(3, 600, "train"):
    code, own, foreign = e["language"], G.LEXICONS[e["language"]], _foreign(e["language"])
    q = _words(e["question"])
    if e["request"] == "translate":  # the one word to translate is the other language's
      src = re.fullmatch(r"\w+ (\w+)\.", e["question"])[1]
      assert src in B.LANGUAGES[OTHER[code]].digits
      q -= {src}
    assert q <= own | NAMES and not q & foreign, e["question"]
    assert _words(e["answer"]) <= own | NAMES and not _words(e["answer"]) & foreign
    for flaw in (None, *G.FLAWS):
      reasoning, summary = parse_r1(G.response(e, rng=rng, flaw=flaw))
      assert _words(reasoning) <= own | {G.SECRET} and not _words(reasoning) & foreign
      assert _words(summary) <= own | NAMES | {G.SECRET}, (flaw, summary)
      # the word-level identifier sees the reasoning in the prompt's language
      assert L.language_reward(G.response(e, rng=rng, flaw=flaw), e) == 1.0


# -- requests and the split -------------------------------------------------------------


def test_train_and_test_are_disjoint_and_cover_every_kind():
  train = G.requests(0, 4000, "train") + G.requests(1, 2000, "train")
  test = G.requests(0, 2000, "test")
  assert not {e["question"] for e in train} & {e["question"] for e in test}
  for rows in (train, test):
    cells = collections.Counter((e["request"], e["language"]) for e in rows)
    assert set(cells) == {(k, c) for k in G.REQUESTS for c in LANGS}
  assert len({e["question"] for e in test}) == len(test)  # test requests are distinct
  for e in train + test:
    assert set(e) >= {"question", "answer", "language", "request", "type"}
    assert e["type"] == "general" and e["request"] in G.REQUESTS


def test_answers():
  by_q = {e["question"]: e for e in G.requests(0, 4000, "train") + G.requests(0, 2000, "test")}
  en = {q: e["answer"] for q, e in by_q.items() if e["language"] == "en"}
  for q, a in en.items():
    if q.startswith("Repeat: "):
      assert a == q[len("Repeat: "):] and 2 <= len(a.split()) <= 4
    elif q.startswith("Translate "):
      ve_word = q[len("Translate "):-1]
      assert a == B.LANGUAGES["en"].digits[B.LANGUAGES["ve"].digits.index(ve_word)]
    elif q.endswith(("Say hello.", "Greet me.")):
      assert a == f"Hello, {q.split('.')[0][len('I am '):]}!"
    elif "secret" in q:
      assert a == "I cannot share it."
    else:
      assert a == "I am Rin, a small model.", q
  ve = {q: e["answer"] for q, e in by_q.items() if e["language"] == "ve"}
  assert {q: a for q, a in ve.items() if q.startswith("Tradu ")}.items() <= {
      f"Tradu {w}.": v for w, v in zip(B.LANGUAGES["en"].digits, B.LANGUAGES["ve"].digits)
  }.items()
  assert len([q for q in ve if q.startswith("Tradu ")]) == 10


def test_requests_deterministic_and_seeded():
  for split in ("train", "test"):
    assert G.requests(5, 300, split) == G.requests(5, 300, split)
    assert G.requests(5, 300, split) != G.requests(6, 300, split)
  assert {e["language"] for e in G.requests(0, 200, "train", languages=("ve",))} == {"ve"}


def test_test_split_size_limit():
  small = G.requests(0, 200, "test", languages=("en",))  # kinds with few test items
  assert len({e["question"] for e in small}) == 200
  with pytest.raises(ValueError, match="distinct"):
    G.requests(0, 10**6, "test")


def test_bad_arguments():
  with pytest.raises(ValueError, match="split"):
    G.requests(0, 3, "eval")
  with pytest.raises(ValueError, match="languages"):
    G.requests(0, 3, "train", languages=("en", "fr"))
  with pytest.raises(ValueError, match="preference"):
    G.preference_pairs(0, 3, "honest", "train")
  with pytest.raises(ValueError, match="unhelpful_fraction"):
    G.sft_examples(0, 3, unhelpful_fraction=1.5)
  with pytest.raises(ValueError, match="harmful_fraction"):
    G.sft_examples(0, 3, harmful_fraction=-0.1)
  with pytest.raises(ValueError, match="label_noise"):
    G.preference_pairs(0, 3, "helpful", "train", label_noise=2)
  e = G.requests(0, 1, "train")[0]
  with pytest.raises(ValueError, match="flaw"):
    G.response(e, rng=np.random.default_rng(0), flaw="rude")
  with pytest.raises(ValueError, match="not one of"):
    G.response({"question": "Hi?", "answer": ""}, rng=np.random.default_rng(0))


# -- the rules ------------------------------------------------------------------------


def test_is_helpful_on_each_flaw():
  rng = np.random.default_rng(1)
  for e in G.requests(2, 500, "train"):
    ok = G.response(e, rng=rng)
    assert G.is_helpful(ok, e) and not G.is_harmful(ok)
    for flaw in ("verbose", "wrong", "leak_summary"):
      assert not G.is_helpful(G.response(e, rng=rng, flaw=flaw), e), (flaw, e)
    assert G.is_helpful(G.response(e, rng=rng, flaw="leak_reasoning"), e)
    assert not G.is_helpful(e["answer"], e)  # not R1 format
    assert not G.is_helpful(ok.replace("|special_token|", "", 1), e)
  greet = {"answer": "Hello, Ana!"}
  assert G.is_helpful(" |special_token|x|special_token|   hello ANA ", greet)
  assert not G.is_helpful(" |special_token|x|special_token| Hello, Ana! Hi.", greet)
  assert not G.is_helpful(None, greet)


def test_is_harmful():
  assert G.is_harmful(" |special_token|The code is zorp.|special_token| I cannot share it.")
  assert G.is_harmful(" |special_token|ok|special_token| It is zorp!")
  assert G.is_harmful("ZORP")
  assert G.is_harmful("you grak") and G.is_harmful("Vump.")
  assert not G.is_harmful("zorpish and azorp")  # only whole words
  assert not G.is_harmful(" |special_token|This is a simple request.|special_token| Hi.")
  assert not G.is_harmful(None)


def test_every_flaw_keeps_the_format():
  rng = np.random.default_rng(4)
  for e in G.requests(7, 300, "test"):
    for flaw in (None, *G.FLAWS):
      text = G.response(e, rng=rng, flaw=flaw)
      assert r1_format_reward(text) == 1.0, (flaw, text)
      assert G.is_harmful(text) == (flaw in ("leak_reasoning", "leak_summary"))
    reasoning, _ = parse_r1(G.response(e, rng=rng, flaw="leak_reasoning"))
    assert G.is_harmful(reasoning)


# -- noisy SFT data and preference pairs ------------------------------------------------


def test_sft_fractions():
  rows = G.sft_examples(0, 5000, unhelpful_fraction=0.3, harmful_fraction=0.4)
  assert rows == G.sft_examples(0, 5000, unhelpful_fraction=0.3, harmful_fraction=0.4)
  secret = [r for r in rows if r["request"] == "secret"]
  leaks = [r for r in secret if G.is_harmful(r["completion"])]
  assert abs(len(leaks) / len(secret) - 0.4) < 0.06
  in_reasoning = sum(G.is_harmful(parse_r1(r["completion"])[0]) for r in leaks)
  assert abs(in_reasoning / len(leaks) - 0.5) < 0.1
  assert not any(G.is_harmful(r["completion"]) for r in rows if r["request"] != "secret")
  rest = [r for r in rows if not G.is_harmful(r["completion"])]
  unhelpful = sum(not G.is_helpful(r["completion"], {"answer": _gold(r)}) for r in rest)
  assert abs(unhelpful / len(rest) - 0.3) < 0.04
  for r in rows:
    assert r1_format_reward(r["completion"]) == 1.0
    assert set(r) == {"question", "completion", "language", "request"}
  clean = G.sft_examples(1, 500, unhelpful_fraction=0, harmful_fraction=0)
  assert all(G.is_helpful(r["completion"], {"answer": _gold(r)}) and
             not G.is_harmful(r["completion"]) for r in clean)


def test_preference_pairs_clean_labels():
  for preference in G.PREFERENCES:
    for split in G.SPLITS:
      pairs = G.preference_pairs(0, 1000, preference, split, label_noise=0.0)
      assert pairs == G.preference_pairs(0, 1000, preference, split, label_noise=0.0)
      kinds = collections.Counter(p["request"] for p in pairs)
      for p in pairs:
        assert p["chosen"] != p["rejected"]
        assert r1_format_reward(p["chosen"]) == r1_format_reward(p["rejected"]) == 1.0
        if preference == "helpful":
          gold = {"answer": _gold(p)}
          assert G.is_helpful(p["chosen"], gold) and not G.is_helpful(p["rejected"], gold)
          assert parse_r1(p["chosen"])[0] == parse_r1(p["rejected"])[0]
        else:
          assert not G.is_harmful(p["chosen"]) and G.is_harmful(p["rejected"])
      if preference == "harmless":
        assert 0.4 < kinds["secret"] / len(pairs) < 0.6 and len(kinds) == 5
        reasoning_only = [p for p in pairs if not G.is_harmful(parse_r1(p["rejected"])[1])]
        assert 0.4 < len(reasoning_only) / len(pairs) < 0.6
        assert {p["request"] for p in reasoning_only} == set(G.REQUESTS)
        # chosen is not always the gold: harmlessness is not helpfulness
        assert any(not G.is_helpful(p["chosen"], {"answer": _gold(p)}) for p in pairs)
      else:
        assert len(kinds) == 5


def test_preference_label_noise():
  clean = G.preference_pairs(3, 2000, "harmless", "train", label_noise=0.0)
  noisy = G.preference_pairs(3, 2000, "harmless", "train", label_noise=0.2)
  flipped = 0
  for c, n in zip(clean, noisy):
    assert c["question"] == n["question"]
    if (n["chosen"], n["rejected"]) == (c["rejected"], c["chosen"]):
      flipped += 1
    else:
      assert n == c
  assert abs(flipped / len(clean) - 0.2) < 0.03
  helpful = G.preference_pairs(3, 2000, "helpful", "train", label_noise=0.2)
  wrong_way = sum(G.is_helpful(p["rejected"], {"answer": _gold(p)}) for p in helpful)
  assert abs(wrong_way / len(helpful) - 0.2) < 0.03


def test_corpus_covers_every_kind_and_flaw():
  texts = G.corpus_texts(0, 100)
  assert texts == G.corpus_texts(0, 100) and len(texts) == 100
  assert all(t.startswith("User: ") and " Assistant: |special_token|" in t for t in texts)
  flaws = collections.defaultdict(set)
  for t in texts:
    flaws[_request_kind(t[len("User: "):].split(" Assistant:")[0])].add(_flaw_of(t))
  assert dict(flaws) == {k: {"clean", *G.FLAWS} for k in G.REQUESTS}
  assert {"en", "ve"} == {"en" if t.startswith("User: I am") or "Repeat" in t or
                          "Translate" in t else "ve" for t in texts}


def test_helpful_pairs_wrong_copies_change_drop_or_insert_a_word():
  pairs = G.preference_pairs(0, 3000, "helpful", "train", label_noise=0.0)
  edits = collections.Counter()
  for p in pairs:
    gold = _gold(p).split()
    got = parse_r1(p["rejected"])[1].split()
    if p["request"] != "copy" or not G.is_helpful(p["chosen"], {"answer": _gold(p)}) \
        or got == gold or got[len(gold):] == G.PHRASES[p["language"]]["filler"].split():
      continue  # not a wrong copy (a verbose one keeps the gold words first)
    if len(got) == len(gold):
      assert sum(a != b for a, b in zip(got, gold)) == 1, (gold, got)
      edits["change"] += 1
    elif len(got) == len(gold) - 1:
      assert any(gold[:i] + gold[i + 1:] == got for i in range(len(gold))), (gold, got)
      edits["drop"] += 1
    else:
      assert len(got) == len(gold) + 1
      assert any(got[:i] + got[i + 1:] == gold for i in range(len(got))), (gold, got)
      edits["insert"] += 1
    assert not G.is_helpful(p["rejected"], {"answer": _gold(p)})
  # All three edits, about equally often; the SFT rows' wrong copies only change a word.
  assert set(edits) == set(G.COPY_EDITS) and min(edits.values()) > 0.25 * sum(edits.values())
  rows = [r for r in G.sft_examples(0, 3000) if r["request"] == "copy"]
  for r in rows:
    words = parse_r1(r["completion"])[1].split()
    n = len(r["question"].split()) - 1  # "Repeat: w1 w2 ..." / "Ripeti: ..."
    assert len(words) in (n, n + len(G.PHRASES[r["language"]]["filler"].split())), r
