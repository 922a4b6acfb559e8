"""`sample` stages: generate N completions per prompt, score them by rule, filter, and
write the kept ones as sharded JSONL — rejection sampling (paper section 2.3.3) and
teacher data for distillation (section 2.4).

Prompts come from the `prompts` sources ({question, answer} problems), `shard_prompts`
at a time; each shard's completions are scored with `reward_weights` (r1jax.rewards)
and filtered. The filters, in the order they are tried (a dropped sample is counted
under the first one it fails, by the name in brackets):

  require_correct      [incorrect]       accuracy reward < 1.
  require_format       [unformatted]     R1-Zero tag format reward < 1.
  require_r1_format    [unformatted]     R1 format (|special_token|...) reward < 1.
  drop_truncated       [truncated]       the completion hit max_new_tokens.
  drop_mixed_language  [mixed_language]  the CoT has a word outside the problem's
                                         `language` (r1jax.rewards.language, with the
                                         problem's `language_identifier`); problems
                                         without a language are never dropped.
  max_paragraph_chars  [long_paragraph]  a CoT paragraph (text between blank lines)
                                         longer than this many characters (0 = off).
  drop_code_blocks     [code_block]      a fenced code block (``` or ~~~ opening a
                                         line) in the CoT; one in the answer is fine.
  drop_duplicates      [duplicate]       same completion text for the same prompt.

The CoT is R1 format's reasoning (between the separators), R1-Zero's <think> content,
else the whole completion (r1jax.rewards.language.reasoning). Only enabled filters
appear in the counts. Kept rows go to DIR/<stage>/samples/part-NNNNN.jsonl as
{"prompt": question, "completion", "answer", "truncated", "rewards": {...}} plus the
problem's "language" and "language_identifier" when it names a language, ready for an
`sft` stage through a `jsonl` task (`train='{workdir}/<stage>/samples/*.jsonl'`). A
shard is written whole or not at all (temporary file, then rename) and its counts
beside it, so a killed run resumes at the first missing shard with nothing duplicated
or lost.

Preference pairs from the policy's own samples (`pairs_by`, a reward name): the kept
completions of each prompt are ranked by that reward, standing in for annotators who
compare a model's responses, and every (higher, lower) pair, at most
`pairs_per_prompt` of them, goes to DIR/<stage>/pairs/part-NNNNN.jsonl as {"prompt",
"chosen", "rejected", "preference": `pairs_preference`} (a `jsonl` task serves them to
a `reward_model` stage). A share `pairs_label_noise` of the pairs is swapped (an
annotator's error rate); which ones is drawn from the seed and the shard, so a resumed
run writes the same pairs.
"""
from __future__ import annotations

import glob
import json
import os
import re
import time
from typing import Any

import jax
import numpy as np

from r1jax import configs, distributed, sampling
from r1jax import tokenizer as tokenizer_lib
from r1jax.rewards import language, scoring
from r1jax.stages import common
from r1jax.train import rl as rl_lib

FILTERS = ("incorrect", "unformatted", "truncated", "mixed_language", "long_paragraph",
           "code_block", "duplicate")

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
# An opening code fence: ``` or ~~~ (3 or more) at the start of a line, after indentation.
_CODE_FENCE = re.compile(r"^[ \t]*(?:`{3,}|~{3,})", re.MULTILINE)


def default_config() -> configs.ConfigDict:
  c = configs.ConfigDict()
  c.kind = "sample"
  c.input = "init"  # The sampling policy: a stage name, 'init', 'random' or 'hf:DIR'.
  c.prompts = ()  # 'task:split' problem sources.
  c.num_prompts = 0  # Prompts taken from the sources, in order (0 = all).
  c.samples_per_prompt = 4  # N completions per prompt.
  c.temperature = 0.6  # Sampling temperature (paper's evaluation setting).
  c.top_p = 0.95  # Nucleus sampling.
  c.max_new_tokens = 1024  # Completion cap.
  c.batch_rows = 256  # Sequences per sampler call.
  c.shard_prompts = 64  # Prompts per output shard (the unit of resumption).
  c.reward_weights = configs.ConfigDict({"accuracy": 1.0, "format": 0.0})  # Scores kept.
  c.reward_workers = 2  # Reward scoring processes.
  c.reward_timeout_s = 10.0  # Per-sample reward time limit.
  c.require_correct = True  # Keep only completions whose answer is right.
  c.require_format = False  # Keep only completions in the R1-Zero tag format.
  c.require_r1_format = False  # Keep only completions in R1's |special_token| format.
  c.drop_truncated = True  # Drop completions cut at max_new_tokens.
  c.drop_mixed_language = False  # Drop CoTs with a word outside the problem's language.
  c.max_paragraph_chars = 0  # Drop CoTs with a longer paragraph (0 = no limit).
  c.drop_code_blocks = False  # Drop CoTs containing a fenced (``` or ~~~) code block.
  c.drop_duplicates = True  # Drop repeated completions of the same prompt.
  c.pairs_by = ""  # A reward of reward_weights: also write preference pairs by it.
  c.pairs_preference = "helpful"  # The "preference" field of those pairs.
  c.pairs_per_prompt = 4  # At most this many pairs per prompt.
  c.pairs_label_noise = 0.0  # Share of the pairs swapped (annotators' errors).
  return c


def validate(section: Any, where: str, mesh_sizes: dict[str, int]) -> None:
  del mesh_sizes  # the sampler pads its rows to the mesh
  s = section
  if not s.prompts:
    raise configs.ConfigError(f"{where}.prompts is empty; name problem sources, e.g. "
                              f"('gsm8k:train',).")
  if min(s.samples_per_prompt, s.max_new_tokens, s.batch_rows, s.shard_prompts) < 1:
    raise configs.ConfigError(f"{where}: samples_per_prompt, max_new_tokens, batch_rows and "
                              f"shard_prompts must be >= 1.")
  needs = {"require_correct": "accuracy", "require_format": "format",
           "require_r1_format": "r1_format"}
  for flag, reward in needs.items():
    if s[flag] and reward not in s.reward_weights:
      raise configs.ConfigError(f"{where}.{flag} needs '{reward}' in reward_weights.")
  if s.require_format and s.require_r1_format:
    raise configs.ConfigError(f"{where}: require_format (R1-Zero's tags) and "
                              f"require_r1_format (R1's separators) exclude each other; "
                              f"set at most one.")
  if s.pairs_by and s.pairs_by not in s.reward_weights:
    raise configs.ConfigError(f"{where}.pairs_by={s.pairs_by!r} must be one of "
                              f"reward_weights: {tuple(s.reward_weights)}.")
  if s.pairs_per_prompt < 1 or not 0 <= s.pairs_label_noise <= 0.5:
    raise configs.ConfigError(f"{where}: pairs_per_prompt must be >= 1 and "
                              f"pairs_label_noise in [0, 0.5] (above, labels would be "
                              f"mostly wrong).")
  limit = s.max_paragraph_chars
  if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
    raise configs.ConfigError(f"{where}.max_paragraph_chars={limit!r}; allowed: 0 (no "
                              f"limit) or a positive number of characters.")


def active_filters(s: Any) -> tuple[str, ...]:
  """The names (FILTERS order) of the filters `s` enables: the keys of the counts."""
  on = {"incorrect": s.require_correct,
        "unformatted": s.require_format or s.require_r1_format,
        "truncated": s.drop_truncated, "mixed_language": s.drop_mixed_language,
        "long_paragraph": s.max_paragraph_chars > 0, "code_block": s.drop_code_blocks,
        "duplicate": s.drop_duplicates}
  return tuple(f for f in FILTERS if on[f])


def longest_paragraph(text: str) -> int:
  """Characters in the longest paragraph of `text` (paragraphs split at blank lines)."""
  return max(len(p.strip()) for p in _PARAGRAPH_BREAK.split(text))


def has_code_block(text: str) -> bool:
  """Whether `text` opens a fenced code block (``` or ~~~ at the start of a line)."""
  return _CODE_FENCE.search(text) is not None


def _mixes_languages(row: dict[str, Any], cot: str) -> bool:
  lang = language.target(row)
  return lang is not None and language.mixes_languages(cot, *lang)


def _first_failing(r: dict[str, Any], s: Any, seen: set[tuple[str, str]]) -> str | None:
  """The first filter (FILTERS order) that drops row `r`, or None to keep it."""
  cot = language.reasoning(r["completion"])
  if s.require_correct and r["rewards"]["accuracy"] < 1:
    return "incorrect"
  if ((s.require_format and r["rewards"]["format"] < 1)
      or (s.require_r1_format and r["rewards"]["r1_format"] < 1)):
    return "unformatted"
  if s.drop_truncated and r["truncated"]:
    return "truncated"
  if s.drop_mixed_language and _mixes_languages(r, cot):
    return "mixed_language"
  if s.max_paragraph_chars and longest_paragraph(cot) > s.max_paragraph_chars:
    return "long_paragraph"
  if s.drop_code_blocks and has_code_block(cot):
    return "code_block"
  if s.drop_duplicates and (r["prompt"], r["completion"]) in seen:
    return "duplicate"
  return None


def filter_samples(rows: list[dict[str, Any]], s: Any) -> tuple[list[dict[str, Any]],
                                                                dict[str, int]]:
  """The rows the filters keep, and how many each enabled filter dropped (a row counts
  under the first filter it fails)."""
  kept, dropped, seen = [], {f: 0 for f in active_filters(s)}, set()
  for r in rows:
    reason = _first_failing(r, s, seen)
    seen.add((r["prompt"], r["completion"]))
    if reason:
      dropped[reason] += 1
    else:
      kept.append(r)
  return kept, dropped


def preference_pairs(rows: list[dict[str, Any]], by: str, *, preference: str,
                     per_prompt: int, label_noise: float, rng: np.random.Generator
                     ) -> list[dict[str, Any]]:
  """{prompt, chosen, rejected, preference} pairs of `rows` (the samples of several
  prompts): within each prompt, completions with a higher `by` reward over ones with a
  lower, best against worst first, at most `per_prompt` per prompt, each completion in
  one pair at most; a share `label_noise` swapped."""
  by_prompt: dict[str, list[dict[str, Any]]] = {}
  for r in rows:
    by_prompt.setdefault(r["prompt"], []).append(r)
  out = []
  for prompt, group in by_prompt.items():
    ranked = sorted(group, key=lambda r: -r["rewards"][by])  # stable: sampling order
    hi, lo = 0, len(ranked) - 1
    made = 0
    while hi < lo and made < per_prompt:
      a, b = ranked[hi], ranked[lo]
      if a["rewards"][by] <= b["rewards"][by]:
        break  # the rest tie
      pair = [a["completion"], b["completion"]]
      if label_noise and rng.random() < label_noise:
        pair.reverse()
      out.append({"prompt": prompt, "chosen": pair[0], "rejected": pair[1],
                  "preference": preference})
      hi, lo, made = hi + 1, lo - 1, made + 1
  return out


def _language_fields(problem: dict[str, Any]) -> dict[str, str]:
  """The problem's language and identifier, kept in its rows (when it names a language)."""
  lang = language.target(problem)
  return {} if lang is None else {"language": lang[0], "language_identifier": lang[1]}


def _check_languages(name: str, problems: list[dict[str, Any]]) -> None:
  """StageError before any sampling when drop_mixed_language cannot judge a problem's
  language (an unknown language or identifier)."""
  for lang in sorted({language.target(p) for p in problems} - {None}):
    try:
      language.consistency("", *lang)
    except ValueError as e:
      raise common.StageError(f"{name}.drop_mixed_language: {e}") from None


def _write_whole(path: str, text: str) -> None:
  """Writes `text` to `path` whole or not at all (a temporary file, then a rename); an
  OSError (a full disk) removes the temporary file and is a StageError naming `path`."""
  tmp = path + ".tmp"
  try:
    with open(tmp, "w") as f:
      f.write(text)
    os.replace(tmp, path)
  except OSError as e:
    try:
      os.remove(tmp)
    except OSError:
      pass  # never created, or the disk refuses even that; it is not a shard either way
    raise common.StageError(f"cannot write {path}: {e.strerror or e}. Nothing of it was "
                            f"kept; free space and rerun: the stage resumes at this shard."
                            ) from e


def write_shard(out_dir: str, i: int, kept: list[dict[str, Any]], stats: dict[str, Any],
                pairs: list[dict[str, Any]] | None = None) -> None:
  """Shard i: its rows (part-i.jsonl) and pairs (../pairs/part-i.jsonl, if any), then its
  counts (part-i.stats.json), which mark it done; process 0 alone writes. A shard whose
  write fails or is killed has no counts and is redone on resume (its rows and pairs, if
  complete, are rewritten identically)."""
  if not distributed.is_primary():
    return
  _write_whole(os.path.join(out_dir, f"part-{i:05d}.jsonl"),
               "".join(json.dumps(r) + "\n" for r in kept))
  if pairs is not None:
    _write_whole(os.path.join(os.path.dirname(out_dir), "pairs", f"part-{i:05d}.jsonl"),
                 "".join(json.dumps(r) + "\n" for r in pairs))
  _write_whole(os.path.join(out_dir, f"part-{i:05d}.stats.json"), json.dumps(stats, indent=1))


def run(run: common.Run, name: str, section: Any, source: common.Source) -> common.Output:
  s = section
  tok = run.tokenizer(source.tokenizer)
  mc = source.model_config
  problems = []
  for ref in s.prompts:
    task, split = run.tasks.resolve(ref)
    problems += [(task, p) for p in task.problems(split)]
  problems = problems[:s.num_prompts] if s.num_prompts else problems
  if s.drop_mixed_language:
    _check_languages(name, [p for _, p in problems])
  out_dir = os.path.join(run.stage_dir(name), "samples")
  os.makedirs(out_dir, exist_ok=True)
  if s.pairs_by:
    os.makedirs(os.path.join(run.stage_dir(name), "pairs"), exist_ok=True)
  n_shards = -(-len(problems) // s.shard_prompts)
  todo = [i for i in range(n_shards)
          if not os.path.exists(os.path.join(out_dir, f"part-{i:05d}.stats.json"))]
  if len(todo) < n_shards:
    common.log(f"{name}: {n_shards - len(todo)} of {n_shards} shards already written; "
               f"resuming.")
  params = sampling.prepare(run.params_for_sampling(source)) if todo else None
  scorer = scoring.RewardScorer(dict(s.reward_weights), num_workers=s.reward_workers,
                                timeout_s=s.reward_timeout_s) if todo else None
  t0, done_samples = time.time(), 0
  try:
    for i in todo:
      shard = problems[i * s.shard_prompts:(i + 1) * s.shard_prompts]
      rows_idx = [j for j in range(len(shard)) for _ in range(s.samples_per_prompt)]
      prompts = [tokenizer_lib.encode_prompt(tok, t.prompt(p["question"], tok))
                 for t, p in shard]
      texts, truncated = [], []
      for c, start in enumerate(range(0, len(rows_idx), s.batch_rows)):
        chunk = rows_idx[start:start + s.batch_rows]
        rng = jax.random.fold_in(jax.random.fold_in(jax.random.key(run.config.seed + 5), i), c)
        out = sampling.generate(params, mc, [prompts[j] for j in chunk], rng=rng,
                                max_new_tokens=s.max_new_tokens, temperature=s.temperature,
                                top_p=s.top_p, stop_ids=tokenizer_lib.stop_ids(tok),
                                pad_id=tok.pad_id, mesh=run.mesh, rules=run.rules)
        texts += [tok.decode(t) for t in out.tokens]
        truncated += out.truncated
      examples = [{k: v for k, v in shard[j][1].items() if k != "question"} for j in rows_idx]
      scores = rl_lib.score_owned(scorer, texts, examples, run.mesh, run.rules)
      rows = [{"prompt": shard[j][1]["question"], "completion": texts[n],
               "answer": shard[j][1]["answer"], "truncated": bool(truncated[n]),
               "rewards": {k: float(v[n]) for k, v in scores.per_fn.items()},
               **_language_fields(shard[j][1])}
              for n, j in enumerate(rows_idx)]
      kept, dropped = filter_samples(rows, s)
      stats, pairs = {"prompts": len(shard), "samples": len(rows), "kept": len(kept),
                      "dropped": dropped}, None
      if s.pairs_by:
        pairs = preference_pairs(
            kept, s.pairs_by, preference=s.pairs_preference, per_prompt=s.pairs_per_prompt,
            label_noise=s.pairs_label_noise,
            rng=np.random.default_rng([run.config.seed, 6, i]))
        stats["pairs"] = len(pairs)
      write_shard(out_dir, i, kept, stats, pairs)
      done_samples += len(rows)
      rate = done_samples / max(time.time() - t0, 1e-9)
      common.log(f"{name}: shard {i + 1}/{n_shards}: kept {len(kept)}/{len(rows)} "
                 f"({rate:.1f} samples/s)")
  finally:
    if scorer is not None:
      scorer.close()
  distributed.barrier(f"{name}: shards written")
  totals: dict[str, Any] = {"prompts": 0, "samples": 0, "kept": 0,
                            "dropped": {f: 0 for f in active_filters(s)}}
  for path in sorted(glob.glob(os.path.join(out_dir, "part-*.stats.json"))):
    with open(path) as f:
      st = json.load(f)
    for k in ("prompts", "samples", "kept") + (("pairs",) if s.pairs_by else ()):
      totals[k] = totals.get(k, 0) + st.get(k, 0)
    for f_name, v in st["dropped"].items():
      totals["dropped"][f_name] = totals["dropped"].get(f_name, 0) + v
  totals["dropped"] = {f: totals["dropped"][f] for f in FILTERS if f in totals["dropped"]}
  common.write_json(os.path.join(run.stage_dir(name), "stats.json"), totals)
  common.log(f"{name}: kept {totals['kept']} of {totals['samples']} samples; dropped "
             f"{totals['dropped']}" + (f"; {totals['pairs']} '{s.pairs_preference}' pairs "
                                       f"by {s.pairs_by}" if s.pairs_by else ""))
  return run.finish(common.Output(name=name, kind="sample", model=mc.to_dict(),
                                  tokenizer=source.tokenizer, samples=out_dir,
                                  summary=totals))
