"""r1jax.distributed checked in a real multi-process run (started by tests/multihost.py).

Each process runs every check and writes what it saw to OUT/p<i>.json; the test
(tests/test_multihost.py) compares the processes with each other and with numpy.
Usage: python tests/multihost_checks.py OUT --coordinator_address=... --num_processes=2
       --process_id=I
"""

import json
import os
import sys

import jax
import numpy as np


def main(out_dir: str, flags: dict[str, str]) -> None:
  from r1jax import configs, distributed, sharding
  from r1jax.rewards import scoring
  from r1jax.train import rl

  assert distributed.initialize(flags["coordinator_address"], int(flags["num_processes"]),
                                int(flags["process_id"]))
  me = jax.process_index()
  seen: dict[str, object] = {"process": me, "processes": jax.process_count(),
                             "devices": jax.device_count(), "local": jax.local_device_count()}
  rules = configs.mesh_config().rules
  mesh = sharding.make_mesh(configs.mesh_config(data=2, fsdp=-1))
  x = np.arange(16 * 3, dtype=np.float32).reshape(16, 3)
  sh = sharding.batch_sharding(mesh, rules, 2, x.shape)
  arr = distributed.put(x, sh)
  seen["put_spec"] = str(sh.spec)
  seen["local_rows"] = sorted({int(r) for s in arr.addressable_shards
                               for r in range(16)[s.index[0]]})
  seen["fetch_equal"] = bool(np.array_equal(distributed.fetch(arr), x))
  # A jitted computation on the global array: the row sums, read back on every process.
  seen["row_sums"] = distributed.fetch(jax.jit(lambda a: a.sum(1))(arr)).tolist()
  # Row ownership: sharded rows go to their holder; replicated rows are dealt out.
  rows_sharded = distributed.owned_rows(16, sharding.batch_sharding(mesh, rules, 1, (16,)))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  rows_replicated = distributed.owned_rows(6, replicated)
  seen["owned_sharded"] = rows_sharded.tolist()
  seen["owned_replicated"] = rows_replicated.tolist()
  values = np.where(rows_replicated % 3 == 0, np.nan, rows_replicated * 1.5).astype(np.float32)
  seen["gathered"] = [None if np.isnan(v) else float(v)
                      for v in distributed.gather_rows(values, rows_replicated, 6)]
  seen["counts"] = distributed.sum_counts({"a": 1.0 + me, "b": 2.0})
  # Rule rewards scored on the rows this process owns, gathered for every process.
  scored: list[str] = []

  class Recorder(scoring.RewardScorer):
    def __call__(self, texts, examples):
      scored.extend(texts)
      return super().__call__(texts, examples)

  texts = [f"<think>t</think><answer>{i % 4}</answer>" for i in range(16)]
  examples = [{"answer": "1"} for _ in texts]
  scorer = Recorder({"accuracy": 1.0, "format": 0.5}, num_workers=0)
  result = rl.score_owned(scorer, texts, examples, mesh, rules)
  seen["scored_here"] = scored
  seen["total"] = result.total.tolist()
  seen["per_fn"] = {k: v.tolist() for k, v in sorted(result.per_fn.items())}
  seen["single_total"] = scorer(texts, examples).total.tolist()
  distributed.barrier("checks done")
  with open(os.path.join(out_dir, f"p{me}.json"), "w") as f:
    json.dump(seen, f)


if __name__ == "__main__":
  args = dict(a[2:].split("=", 1) for a in sys.argv[2:])
  main(sys.argv[1], args)
