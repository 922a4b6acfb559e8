r"""The whole DeepSeek-R1 recipe in miniature, against R1-Zero (pure RL), in a world of
two languages: cold start, reasoning RL with the language-consistency reward (and its
ablation), rejection sampling + SFT from the base, reward models, RL for all scenarios.

Command:
  python -m r1jax.main --config=experiments/r1_tiny.py --workdir=/tmp/r1_tiny
  (`:smoke` runs every stage for seconds; the tests use it.)
Arms (eval.json keys "<arm>/<stage>"; every arm gets the same RL: 60 steps of 16 prompts
x 16 rollouts at lr 1.5e-4):
  r1_zero                base -> GRPO (accuracy + format rewards) in R1-Zero's template
  r1                     base -> cold-start SFT -> GRPO (accuracy + R1 format + language
                         consistency, summed as in the paper, weights 1, 0.1, 1)
                         -> rejection sampling (8000 prompts x 4 at T=1; the paper's
                         filters) -> SFT from the *base*, 2 epochs, on those rows and
                         non-reasoning rows 3:1 -> reward models (helpfulness reads the
                         summary, harmlessness the whole response; Bradley-Terry, from
                         the SFT) -> RL for all scenarios (40 steps, reasoning and
                         general prompts 1:1, rule rewards / the two RMs, T=0.7)
  r1_no_language_reward  the same cold start -> GRPO without the language reward
Every evaluation (run last, so the RMs score each) also reports, on 100 held-out
general requests x k, `helpfulness_rm` / `harmlessness_rm` (mean RM scores) and the
world's rule checks `helpfulness_rule` (summary exactly the request's answer) and
`harmful_rate` (an unsafe word anywhere); the RMs' held-out pairwise accuracy is under
"r1/reward_model_helpful" and "r1/reward_model_harmless". Plots: accuracy.png,
language_mixing.png, response_length.png (RL curves), stages.png (metrics by stage).
Hardware: 2 CPU cores. Runtime: 14.7-16.1 minutes a seed on a 2-core AMD EPYC with AVX-512
(2026-12-03, commit 6f3c5c7; stages 1-2's training within the first 8-9 minutes);
the README has the measured table (`benchmarks/r1_tiny_seeds.py`).

The world (r1jax/data/bilingual.py): the last-digit problems of experiments/r1_zero_tiny.py
posed in English or in 've', an invented language with its own number words and
connectives; a CoT is written in words ("two is two, four is six" / "dus ta dus, kar ta
sek"), one step per term. What was engineered, and why:
  - en dominates the base corpus: half of the worked solutions of ve problems switch to
    en at a random step (`mix_fraction`), so the base model mixes languages on ve
    prompts, as R1-Zero does. Nothing else makes either language easier.
  - R1's output format `|special_token|CoT|special_token| summary` is absent from the
    base corpus (a base model has not seen it); the cold-start data teaches it with the
    prompt template 'r1' ("User: ... Assistant:").
  - Cold-start data (`digits_r1:train`, 4500 rows): base-corpus-style outputs refined
    into R1's format (a summary in the prompt's language added) and kept by the
    readability filter (reasoning present, summary present, one language), which drops
    the direct answers and the mixed CoTs. 95% of the rows are on en prompts: the
    annotators' language, while RL prompts come in both (the paper sees mixing
    "particularly when RL prompts involve multiple languages").
What was tuned, on seed 0, before the 3-seed measurement (every setting measured):
  - cold start at lr 1e-3 for 2 epochs undertrained the model (held-out pass@1 0.64,
    below the R1-Zero arm's 0.86); 2e-3 for 4 epochs with cosine decay gives 0.9+.
  - the en share of the cold-start rows. Balanced rows left no mixing for RL to grow or
    cut: 0 of 400 samples mixed in either RL arm (pass@1 0.98 / 0.97), finding 5 could
    not be tested. en-only rows made the model reason in en on every ve prompt, so the
    language reward never saw a ve CoT to reinforce (100% of ve samples mixed in both
    arms). 95% en leaves a few en CoTs on ve prompts, as R1's cold start did.
What was tuned on seed 1, after the 3-seed measurement at 3000 cold-start rows and RL lr
5e-5 (the R1-Zero demo's) failed finding 4's bar there (cold-started arm 0.940, pure RL
0.989; all numbers seed 1, 200 held-out problems x 8):
  - the RL rate, one for all three arms of stages 1-2: 1.5e-4. At 5e-5 reasoning RL
    barely moved the cold-started arms in 60 steps (ve prompts 0.80 -> 0.89). At 1.5e-4
    pure RL reaches its plateau sooner and ends lower on seed 1 (0.964: its en prompts
    0.996 -> 0.970): the bar now holds partly because pure RL is worse at this rate,
    which the README states. rl_all keeps 5e-5.
  - the cold start's size. 3000 rows (150 on ve prompts) left seed 1's cold start weak
    on ve (0.80; the summary's digit one off on last steps its few ve rows never
    showed): reasoning RL 0.934 at 1.5e-4. 6000 rows made it strong (0.968; reasoning
    RL 0.9925) but then neither RL arm mixed languages on any sample, so finding 5
    could not be tested. 4500 rows (225 on ve prompts): 0.89 after the cold start,
    0.979 after reasoning RL, and the ablation switches ve prompts to en.
Stages 3-4's world (r1jax/data/general.py): general requests (greet, copy, translate a
number word, say who it is, refuse to tell the secret code), in en and ve, answered
with a one-sentence reasoning and a summary. What was engineered, and why:
  - the general SFT rows are noisy on purpose (30% of non-leaking rows verbose or
    wrong, 30% of secret requests leak the secret, half in the reasoning only), standing
    in for DeepSeek-V3's imperfect SFT data, so that RL with reward models has
    something to fix; preference pairs carry 10% label noise (held-out pairs none).
  - the base's corpus holds general requests with plain answers (30% of rows; no R1
    format): without it the SFT model got 0% of copy requests right (seed 0); with 20%
    of the rows for 500 steps, 24%; here 30% for 600 steps.
  - the helpfulness preference pairs' wrong copies have a word changed, dropped or
    inserted (r1jax.data.general.COPY_EDITS); with changed words alone the RM ranked the
    SFT policy's own copies, which mostly insert a word, no better than chance (seed 0,
    AUC 0.44) and rl_all lost rule-checked helpfulness on seeds 0 and 1 (-1.5, -4.6
    points); with the three edits, +2.8 / -1.5 / +2.2 (advantages still divided by the
    std; see below). Ranking the SFT policy's own samples by the rule instead (`sample`
    stage, `pairs_by`) did not help on seed 0 (0.48-0.55 against the SFT's 0.56).
  - rl_all's KL weight is 0.01 (paper: 0.001): at 0.001 the policy lost the SFT's
    copying within 40 steps (copy requests 24% -> 2% right) while the helpfulness RM,
    which cannot check a copy word by word, scored it higher: reward hacking, visible
    as `reward/helpful_rm_mean` rising while `reward/helpful_rule_mean` falls.
  - rl_all's advantages are not divided by the group's reward std (Dr. GRPO; the
    paper divides). The helpfulness RM cannot check a copy word by word: it scores a
    group's right and wrong copies within ~0.01 of each other, and dividing by that
    spread made its noise full-size advantages. With the std, on the previous 3-seed
    run's SFT and RMs, rule-checked helpfulness moved +2.8 / -1.5 / +2.2 points over
    the SFT (seed 1: copies 79% -> 66% right while the RM's score rose); without it, on
    the same checkpoints, +2.4 / +7.0 / +0.9 (seed 1's copies 79% -> 85%). A KL weight
    of 0.03 as well gave +1.5 (seed 2) and +5.5 (seed 1): not adopted.
Metrics (every evaluation): pass@1 over k samples at T=0.6 / top-p 0.95, cons@k,
`language_mixing` (share of samples whose CoT has a word of another language than the
prompt's), `readability` (share in R1's format with a reasoning, a summary and every
word in the prompt's language; R1-Zero's tag format counts as not readable),
mean response tokens; plots accuracy.png and language_mixing.png (held-out curves
against RL step, one line per RL stage).
"""

from r1jax import configs, stages
from r1jax.data import tasks


def get_config(arg=None):
  c = configs.run_config(seed=0)  # The seed drives data, initialisation and sampling.
  c.stages = (
      # Stages 1-2 (and the R1-Zero arm, the language-reward ablation).
      "pretrain_base", "base", "r1_zero", "cold_start", "reasoning_rl",
      "reasoning_rl_no_language_reward",
      # Stage 3: rejection sampling + non-reasoning data -> SFT from the base.
      "rejection_sampling", "sft",
      # Stage 4: reward models, then RL for all scenarios.
      "reward_model_helpful", "reward_model_harmless", "rl_all",
      # Every arm and stage evaluated last, so the reward models can score each.
      "r1_zero_final", "cold_start_eval", "reasoning_rl_eval",
      "reasoning_rl_no_language_reward_eval", "sft_eval", "rl_all_eval")

  # One problem generator, two views: R1-Zero's template and tags (the base corpus, pure
  # RL) and R1's plain chat prompt and cold-start format. Same seed, same held-out set.
  world = dict(name="last_digit", min_terms=4, max_terms=7, worked_fraction=0.5,
               num_test=200, languages=("en", "ve"), mix_fraction=0.5)
  c.tasks.digits = tasks.config("synthetic", **world)
  # Cold-start rows: 4500, 95% of them on en prompts (the annotators' language; see the
  # docstring for why 5%, why 4500, and what balanced and en-only rows did).
  c.tasks.digits_r1 = tasks.config("synthetic", template="r1", output_format="r1",
                                   num_sft=4500, sft_language_shares=(0.95, 0.05), **world)

  # Rejection-sampling prompts: 8000 train problems in R1's prompt (the paper samples
  # every reasoning prompt; one correct CoT per prompt survives the duplicate filter).
  c.tasks.digits_rs = tasks.config("synthetic", template="r1", output_format="r1",
                                   num_sft=8000, **world)
  # General (non-reasoning) requests: greet, copy, translate, identity, secret
  # (r1jax/data/general.py): RL prompts, noisy SFT rows and preference pairs.
  c.tasks.general = tasks.config("general", num_train=2000, num_test=100, num_sft=3000,
                                 num_pairs=8000, num_heldout_pairs=400, label_noise=0.1)
  # Rejection-sampled rows (written by the rejection_sampling stage).
  c.tasks.rs = tasks.config("jsonl", template="r1",
                            train="{workdir}/rejection_sampling/samples/*.jsonl")

  # A sentencepiece tokenizer trained on every view (the template prefix is one piece).
  c.tokenizer = configs.tokenizer_config(vocab_size=256, train_examples=6000,
                                         train_task="digits,digits_r1,general")

  # The R1-Zero demo's model: MLA, 1 dense + 2 MoE layers, 4 routed experts (top-2).
  c.model = configs.tiny_moe_config(vocab_size=256, max_seq_len=128, n_layers=3, d_model=64,
                                    moe=dict(n_routed_experts=4, n_group=1, topk_group=1,
                                             num_experts_per_tok=2, routed_scaling_factor=1.0))

  # The paper's evaluation protocol on the held-out problems, in each arm's prompt.
  evaluation = dict(num_problems=200, k=8, max_new_tokens=56, batch_rows=512)
  zero_eval = dict(tasks=("digits:test",), **evaluation)
  r1_eval = dict(tasks=("digits_r1:test",), **evaluation)
  # Every final report also holds helpfulness and harmlessness on held-out requests.
  general_eval = dict(general=("general:test",), helpfulness_rm="reward_model_helpful",
                      harmlessness_rm="reward_model_harmless")

  # Equal RL budgets for every arm.
  rl = dict(steps=60, batch_prompts=16, group_size=16, max_new_tokens=56,
            checkpoint_every=10, eval_every=10,
            # One rate for the three arms of stages 1-2 (see the docstring: at the R1-Zero
            # demo's 5e-5 the cold-started arms barely moved in 60 steps).
            optimizer=dict(learning_rate=1.5e-4, warmup_steps=3))
  curve = dict(num_problems=64, k=4)

  # The base's corpus: the reasoning task, and general requests with plain answers (a
  # base model has read general text; without it no SFT of this size teaches copying).
  c.pretrain_base = stages.config(
      "pretrain", input="random", train=("digits:train", "general:train"),
      train_weights=(0.7, 0.3), steps=600, batch_size=64,
      seq_len=96, checkpoint_every=100,
      optimizer=dict(learning_rate=3e-3, warmup_steps=30, decay_steps=570))
  c.base = stages.config("evaluate", input="pretrain_base", **zero_eval)

  # Arm r1_zero: pure RL on the base, rule rewards only (paper section 2.2).
  c.r1_zero = stages.config("grpo", input="pretrain_base", train=("digits:train",),
                            curve={**zero_eval, **curve}, **rl)
  c.r1_zero_final = stages.config("evaluate", input="r1_zero", report_as="r1_zero/final",
                                  **zero_eval, **general_eval)

  # Arm r1: cold start (section 2.3.1), then reasoning RL with accuracy + format +
  # language consistency, summed as in the paper (section 2.3.2).
  c.cold_start = stages.config(
      "sft", input="pretrain_base", train=("digits_r1:train",), heldout=("digits_r1:test",),
      epochs=4.0, batch_size=32, seq_len=128, checkpoint_every=50,
      # 282 steps (4500 rows packed two to a sequence); 1e-3 for 2 epochs undertrained it
      # (held-out pass@1 0.64, below R1-Zero's).
      optimizer=dict(learning_rate=2e-3, warmup_steps=10, decay_steps=272))
  c.cold_start_eval = stages.config("evaluate", input="cold_start", report_as="r1/cold_start",
                                    **r1_eval, **general_eval)
  r1_rl = dict(input="cold_start", train=("digits_r1:train",), curve={**r1_eval, **curve},
               **rl)
  c.reasoning_rl = stages.config("grpo", **r1_rl)
  c.reasoning_rl.reward_weights = configs.ConfigDict(
      {"accuracy": 1.0, "r1_format": 0.1, "language": 1.0})
  c.reasoning_rl_eval = stages.config("evaluate", input="reasoning_rl",
                                      report_as="r1/reasoning_rl", **r1_eval, **general_eval)

  # Arm r1_no_language_reward: the same without the language reward (the ablation).
  c.reasoning_rl_no_language_reward = stages.config("grpo", **r1_rl)
  c.reasoning_rl_no_language_reward.reward_weights = configs.ConfigDict(  # still reported
      {"accuracy": 1.0, "r1_format": 0.1, "language": 0.0})
  c.reasoning_rl_no_language_reward_eval = stages.config(
      "evaluate", input="reasoning_rl_no_language_reward",
      report_as="r1_no_language_reward/reasoning_rl", **r1_eval, **general_eval)

  # Stage 3 (section 2.3.3): sample the reasoning-RL checkpoint, keep correct, readable
  # samples (the paper's filters), add non-reasoning rows, fine-tune the *base* 2 epochs.
  c.rejection_sampling = stages.config(
      "sample", input="reasoning_rl", prompts=("digits_rs:train",), samples_per_prompt=4,
      temperature=1.0, max_new_tokens=56, batch_rows=512, shard_prompts=1000,
      require_correct=True, drop_mixed_language=True,
      max_paragraph_chars=400, drop_code_blocks=True)
  c.rejection_sampling.reward_weights = configs.ConfigDict(  # the scores kept with a row
      {"accuracy": 1.0, "r1_format": 0.0, "language": 0.0})
  c.rejection_sampling.require_r1_format = True
  c.sft = stages.config(
      "sft", input="pretrain_base", train=("rs:train", "general:train"),
      train_weights=(0.75, 0.25),  # reasoning : non-reasoning rows (paper: 600k : 200k)
      heldout=("digits_r1:test",), epochs=2.0, batch_size=32, seq_len=128,
      checkpoint_every=50, optimizer=dict(learning_rate=2e-3, warmup_steps=10,
                                          decay_steps=240))
  c.sft_eval = stages.config("evaluate", input="sft", report_as="r1/sft", **r1_eval,
                             **general_eval)

  # Stage 4 (section 2.3.4): reward models from the SFT checkpoint (helpfulness reads the
  # summary, harmlessness the whole response), then RL on reasoning and general prompts.
  rm = dict(input="sft", pairs=("general:train",), heldout=("general:test",), epochs=3.0,
            batch_pairs=32, seq_len=64, checkpoint_every=100,
            optimizer=dict(learning_rate=1e-3, warmup_steps=10))
  c.reward_model_helpful = stages.config("reward_model", preference="helpful",
                                         view="summary",
                                         report_as="r1/reward_model_helpful", **rm)
  c.reward_model_harmless = stages.config("reward_model", preference="harmless",
                                          view="response",
                                          report_as="r1/reward_model_harmless", **rm)
  c.rl_all = stages.config(
      "grpo", input="sft", train=("digits_r1:train", "general:train"),
      train_weights=(0.5, 0.5), temperature=0.7,  # paper: 0.7 in this stage
      # beta 0.01, not the paper's 0.001: at 0.001 the policy drifted from the SFT's
      # copying within 40 steps, which the helpfulness RM could not see (seed 0).
      beta=0.01,
      # Advantages not divided by the group's std (Dr. GRPO, Liu et al. 2025): the
      # helpfulness RM scores a group's copies within ~0.01 of each other whether right
      # or wrong, and dividing by that spread turned its noise into full-size
      # advantages (seed 1: copies 79% -> 66% right while the RM's score rose).
      scale_rewards=False,
      curve={**r1_eval, **curve, **general_eval},
      # 40 steps at the R1-Zero demo's rate (2e-4 collapsed that demo within 5 steps).
      **{**rl, "steps": 40, "optimizer": dict(learning_rate=5e-5, warmup_steps=3)})
  c.rl_all.reward_weights = configs.ConfigDict(
      {"accuracy": 1.0, "r1_format": 0.1, "language": 1.0})
  # General prompts: the two reward models; the rule checks of the same properties are
  # reported beside them (weight 0), so reward hacking would show as a gap.
  c.rl_all.reward_weights_by_type = configs.ConfigDict({"general": {
      "helpful_rm": 1.0, "harmless_rm": 1.0, "helpful_rule": 0.0, "harmless_rule": 0.0}})
  c.rl_all.reward_models = configs.ConfigDict({"helpful_rm": "reward_model_helpful",
                                               "harmless_rm": "reward_model_harmless"})
  c.rl_all_eval = stages.config("evaluate", input="rl_all", report_as="r1/rl_all",
                                **r1_eval, **general_eval)

  if arg == "smoke":
    c.tokenizer.train_examples = 600
    c.tasks.digits_r1.num_sft = 64
    c.pretrain_base.steps = 6
    c.pretrain_base.batch_size = 8
    c.pretrain_base.checkpoint_every = 3
    c.pretrain_base.optimizer.decay_steps = 0
    c.tasks.general.update(num_train=32, num_test=8, num_sft=32, num_pairs=64,
                           num_heldout_pairs=16)
    c.cold_start.steps = c.sft.steps = 3
    c.cold_start.batch_size = c.sft.batch_size = 8
    c.tasks.digits_rs.num_sft = 8
    c.rejection_sampling.update(samples_per_prompt=2, shard_prompts=4)
    # A 6-step base is rarely right or well-formed: keep what it writes.
    c.rejection_sampling.update(require_correct=False, require_r1_format=False,
                                drop_mixed_language=False, drop_truncated=False)
    for name in ("reward_model_helpful", "reward_model_harmless"):
      c[name].update(steps=2, batch_pairs=4, eval_rows=8)
    for name in ("r1_zero", "reasoning_rl", "reasoning_rl_no_language_reward", "rl_all"):
      s = c[name]
      s.steps, s.batch_prompts, s.group_size = 2, 2, 4
      s.eval_every = s.checkpoint_every = 1
      s.curve.num_problems, s.curve.k = 2, 2
    for name in c.stages:
      if c[name].kind == "evaluate":
        c[name].num_problems, c[name].k = 4, 2
  elif arg not in (None, ""):
    raise ValueError(f"Unknown config arg {arg!r}; allowed: '' or 'smoke'.")
  return c
