"""TRL peer for benchmarks/grpo_step.py (a worker process, in .venv-trl).

Protocol (one JSON object per line): the first line on stdin sets up (model_dir, rows:
[{"prompt", "answer"}] for every step in order, completions per step, group,
new_tokens, beta, lr, temperature, seed, steps); then `trl.GRPOTrainer.train()` runs
`steps` steps, one per further line ({"step": true}), and answers each with {"s":
seconds, "cpu_s": process CPU seconds, "split": {...}} (the first answer also carries
"versions"). EOF ends it.

A step is timed from the request (read in a callback before the step begins) to the
trainer's `on_step_end`: generation, rewards, the reference model's log-probs, the loss,
backward and optimiser step, and the trainer's bookkeeping (its logging of a step runs
after `on_step_end`, so it lands in the next step's time). The split wraps the trainer's
own methods: generation (`_generate_single_turn`), rewards (`_calculate_rewards`),
reference (`_get_per_token_logps_and_entropies` on the reference model), and the rest
("update": the loss forward, backward, optimiser step, and everything else).

Settings as in the issue: one update per generated batch (steps_per_generation 1,
num_iterations 1, the whole batch in one forward/backward), loss_type 'grpo' (the
paper's per-sequence mean, as r1jax's default), beta 0.001 (so the reference model
runs), lr 1e-5 constant, AdamW (beta2 0.95, as r1jax's), grad clip 1.0, temperature 1
over the full vocabulary, float32 on the CPU. "threads" in the setup, when given, sets
torch's intra-op threads (the parent also sets OMP_NUM_THREADS): on a loaded machine
torch's OpenMP pool of one thread per core can run many times slower than one thread.
"""

import json
import sys
import time

import datasets
import torch
import transformers
import trl


def main() -> None:
  req = json.loads(sys.stdin.readline())
  n, group = req["completions"], req["group"]
  if req.get("threads"):
    torch.set_num_threads(req["threads"])
  out = sys.stdout
  sys.stdout = sys.stderr  # the trainer's prints must not reach the protocol

  def contains(completions, answer, **kw):
    return [1.0 if a in c else 0.0 for c, a in zip(completions, answer)]

  args = trl.GRPOConfig(
      output_dir=req["model_dir"] + "/trl_out", use_cpu=True, report_to="none",
      save_strategy="no", disable_tqdm=True, seed=req["seed"],
      per_device_train_batch_size=n, gradient_accumulation_steps=1, num_generations=group,
      max_completion_length=req["new_tokens"], temperature=req["temperature"], top_p=1.0,
      top_k=0, beta=req["beta"], num_iterations=1, loss_type="grpo",
      learning_rate=req["lr"], lr_scheduler_type="constant", warmup_steps=0,
      adam_beta1=0.9, adam_beta2=0.95, adam_epsilon=1e-8, weight_decay=0.0,
      max_grad_norm=1.0, max_steps=req["steps"], shuffle_dataset=False,
      dataloader_num_workers=0, bf16=False, fp16=False)
  tok = transformers.AutoTokenizer.from_pretrained(req["model_dir"])
  data = datasets.Dataset.from_list(req["rows"])
  torch.manual_seed(req["seed"])
  trainer = trl.GRPOTrainer(model=req["model_dir"], reward_funcs=contains, args=args,
                            train_dataset=data, processing_class=tok)
  split: dict = {}

  def wrap(name, fn, key=None):
    def timed(*a, **kw):
      t0 = time.perf_counter()
      r = fn(*a, **kw)
      k = key(*a, **kw) if key else name
      split[k] = split.get(k, 0.0) + time.perf_counter() - t0
      return r
    return timed

  trainer._generate_single_turn = wrap("generation", trainer._generate_single_turn)
  trainer._calculate_rewards = wrap("rewards", trainer._calculate_rewards)
  trainer._generate_and_score_completions = wrap("generate_and_score",
                                                 trainer._generate_and_score_completions)
  ref = trainer.ref_model
  trainer._get_per_token_logps_and_entropies = wrap(
      "", trainer._get_per_token_logps_and_entropies,
      key=lambda m, *a, **kw: "reference" if m is ref else "policy_logps")
  clock = {"t0": 0.0, "first": True}
  versions = {"torch": torch.__version__, "transformers": transformers.__version__,
              "trl": trl.__version__, "threads": torch.get_num_threads()}

  def wait() -> bool:
    """Blocks for the next request; False at EOF."""
    line = sys.stdin.readline()
    if not line:
      return False
    split.clear()
    clock["t0"], clock["c0"] = time.perf_counter(), time.process_time()
    return True

  class Stepper(transformers.TrainerCallback):
    def on_train_begin(self, a, state, control, **kw):
      if not wait():
        control.should_training_stop = True

    def on_step_end(self, a, state, control, **kw):
      dt = time.perf_counter() - clock["t0"]
      s = dict(split)
      s["update"] = dt - s.get("generate_and_score", 0.0)
      reply = {"s": dt, "cpu_s": time.process_time() - clock["c0"], "split": s}
      if clock["first"]:
        reply["versions"], clock["first"] = versions, False
      out.write(json.dumps(reply) + "\n")
      out.flush()
      if state.global_step < a.max_steps and not wait():
        control.should_training_stop = True

  trainer.add_callback(Stepper())
  out.write(json.dumps({"ready": True, "versions": versions}) + "\n")
  out.flush()
  trainer.train()
  sys.stdin.read()  # until EOF


if __name__ == "__main__":
  main()
