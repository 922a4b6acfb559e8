"""SFT: packing layout, packed == unpacked loss, completion-only loss against a numpy
reference, SFTData determinism and resume, exact gradient accumulation, lr warmup 0."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from r1jax import configs, model, sharding
from r1jax.train import sft
from r1jax.train import state as state_lib

SEQ_LEN = 24
PAD = 0


def _cfg():
  return configs.model_config(vocab_size=64, d_model=32, n_layers=2, n_heads=2, n_kv_heads=1,
                              head_dim=16, mlp_dim=64)


def _examples(n=13, seed=0, vocab=64):
  """Prompts start with BOS=1, completions end with EOS=2; lengths vary (one is empty
  of prompt, one exactly seq_len + 1 long, two too long)."""
  rng = np.random.default_rng(seed)
  out = []
  for i in range(n):
    p = [1] + rng.integers(3, vocab, rng.integers(0, 8)).tolist()
    c = rng.integers(3, vocab, rng.integers(1, 9)).tolist() + [2]
    out.append((p, c))
  out.append(([], [5, 6, 7, 2]))  # no prompt: its first token is not a target
  out.append(([1] + [9] * 10, [8] * 13 + [2]))  # seq_len + 1 tokens: fits a row alone
  out.append(([1] + [9] * 10, [8] * 14 + [2]))  # seq_len + 2: dropped
  out.append(([1] * 30, [8, 2]))  # dropped
  return out


@pytest.fixture(scope="module")
def setup():
  cfg = _cfg()
  params = model.init_params(cfg, jax.random.key(0))
  nll_fn = jax.jit(lambda p, b: state_lib.token_nll(p, cfg, b)[:2])
  loss_fn = jax.jit(sft.sft_loss(cfg))
  return cfg, params, nll_fn, loss_fn


def _segments(packed):
  """(example index, row, segment id) of every packed example."""
  return [(i, r, s) for r, row in enumerate(packed.row_examples) for s, i in enumerate(row, 1)]


@pytest.mark.parametrize("packed", [True, False])
def test_pack_layout_and_dropped_count(packed):
  ex = _examples()
  p = sft.pack(ex, SEQ_LEN, PAD, packed=packed)
  rows = p.rows
  assert p.dropped == 2
  assert sorted(i for i, _, _ in _segments(p)) == list(range(len(ex) - 2))
  assert rows["tokens"].shape == (len(p.row_examples), SEQ_LEN + 1)
  for k in ("loss_mask", "segment_ids", "positions"):
    assert rows[k].shape == (len(p.row_examples), SEQ_LEN)
  if packed:
    assert len(p.row_examples) < len(ex) - 2
  else:
    assert all(len(r) == 1 for r in p.row_examples)
  targets = rows["tokens"][:, 1:]
  for i, r, s in _segments(p):
    prompt, completion = ex[i]
    here = rows["segment_ids"][r] == s
    start = int(np.argmax(here))
    n = len(prompt) + len(completion)
    np.testing.assert_array_equal(rows["tokens"][r, start:start + n], prompt + completion)
    np.testing.assert_array_equal(rows["positions"][r][here], np.arange(here.sum()))
    # Loss exactly on the completion tokens this example predicts from its own tokens.
    trained = targets[r][here & (rows["loss_mask"][r] == 1)]
    np.testing.assert_array_equal(trained, completion if prompt else completion[1:])
  want_tokens = sum(len(c) - (not p_) for j, (p_, c) in enumerate(ex) if j < len(ex) - 2)
  assert rows["loss_mask"].sum() == want_tokens
  assert set(np.unique(rows["loss_mask"])) <= {0.0, 1.0}
  # Padding: segment 0, no loss.
  assert not rows["loss_mask"][rows["segment_ids"] == 0].any()


def _per_example_nll(packed, nll):
  out = {}
  for i, r, s in _segments(packed):
    keep = (packed.rows["segment_ids"][r] == s) & (packed.rows["loss_mask"][r] == 1)
    out[i] = nll[r][keep]
  return out


def _nll_of(nll_fn, params, rows):
  parts = [np.asarray(nll_fn(params, {k: b[k] for k in sft.ROW_KEYS})[0])
           for b in sft.fixed_batches(rows, 8)]
  return np.concatenate(parts)[:len(rows["tokens"])]


def test_packed_loss_equals_unpacked(setup):
  cfg, params, nll_fn, _ = setup
  ex = _examples()
  packed = sft.pack(ex, SEQ_LEN, PAD)
  unpacked = sft.pack(ex, SEQ_LEN, PAD, packed=False)
  a = _per_example_nll(packed, _nll_of(nll_fn, params, packed.rows))
  b = _per_example_nll(unpacked, _nll_of(nll_fn, params, unpacked.rows))
  assert a.keys() == b.keys()
  for i in a:
    np.testing.assert_allclose(a[i], b[i], rtol=1e-5, atol=1e-5)
  total_a, total_b = sum(v.sum() for v in a.values()), sum(v.sum() for v in b.values())
  np.testing.assert_allclose(total_a, total_b, rtol=1e-5)
  # heldout_loss: the same mean from either layout, and it is that mean.
  ha = sft.heldout_loss(params, cfg, sft.fixed_batches(packed.rows, 8))
  hb = sft.heldout_loss(params, cfg, sft.fixed_batches(unpacked.rows, 8))
  n = sum(len(v) for v in a.values())
  assert ha["heldout/tokens"] == hb["heldout/tokens"] == n
  np.testing.assert_allclose(ha["heldout/ce"], total_a / n, rtol=1e-5)
  np.testing.assert_allclose(ha["heldout/ce"], hb["heldout/ce"], rtol=1e-5)
  np.testing.assert_allclose(ha["heldout/token_accuracy"], hb["heldout/token_accuracy"])


def _log_softmax(x):
  x = x.astype(np.float64)
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_loss_is_completion_nll_of_a_numpy_reference(setup):
  # Each example alone through the plain forward, its completion tokens scored in
  # numpy: the packed loss equals that mean, and differs from the mean that also
  # scores the prompt's tokens.
  cfg, params, _, loss_fn = setup
  ex = _examples()
  packed = sft.pack(ex, SEQ_LEN, PAD)
  batch = sft.fixed_batches(packed.rows, len(packed.row_examples))[0]
  loss, (metrics, _) = loss_fn(params, batch, jax.random.key(0))
  fwd = jax.jit(lambda p, t: model.forward(p, t, cfg))
  comp, full, hits = [], [], []
  for i in sorted(i for i, _, _ in _segments(packed)):
    prompt, completion = ex[i]
    seq = np.asarray(prompt + completion)
    # Right-padded to one length (one compile); causal, so the padding changes nothing.
    inputs = np.pad(seq[:-1], (0, SEQ_LEN - len(seq) + 1))
    logits = np.asarray(fwd(params, jnp.asarray(inputs[None])))[0, :len(seq) - 1]
    logp = _log_softmax(logits)
    nll = -logp[np.arange(len(seq) - 1), seq[1:]]
    first = max(len(prompt) - 1, 0)  # the target index of the first scored completion token
    comp.append(nll[first:])
    full.append(nll)
    hits.append(logits.argmax(-1)[first:] == seq[1:][first:])
  comp, full, hits = map(np.concatenate, (comp, full, hits))
  np.testing.assert_allclose(float(metrics["train/ce"]), comp.mean(), rtol=1e-5)
  np.testing.assert_allclose(float(loss), comp.mean(), rtol=1e-5)
  np.testing.assert_allclose(float(metrics["train/token_accuracy"]), hits.mean(), atol=1e-6)
  assert abs(full.mean() - comp.mean()) > 1e-3
  # The gradient reaches no logit of a prompt or padding target.
  targets = batch["tokens"][:, 1:]

  def ce_of_logits(logits):
    nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), targets[..., None], -1)[..., 0]
    return (nll * batch["loss_mask"]).sum() / batch["loss_denominator"]

  logits = jax.jit(lambda p, b: model.apply(
      p, b["tokens"][:, :-1], cfg, positions=b["positions"], segment_ids=b["segment_ids"])[0])(
          params, {k: batch[k] for k in sft.ROW_KEYS})
  np.testing.assert_allclose(ce_of_logits(logits), comp.mean(), rtol=1e-5)
  g = np.asarray(jax.grad(ce_of_logits)(logits))
  scored = batch["loss_mask"] == 1
  assert not g[~scored].any() and np.abs(g[scored]).sum(-1).min() > 0


def _data(**kw):
  args = dict(seq_len=SEQ_LEN, pad_id=PAD, batch_size=3, seed=7)
  args.update(kw)
  return sft.SFTData(_examples(n=40), **args)


def test_sftdata_deterministic_epochs_and_resume():
  a, b = _data(), _data()
  r, bs = a.num_rows, a.batch_size
  assert a.dropped == 2 and r % bs  # epochs end mid-batch
  steps = a.steps_for(3)
  assert steps == -(-3 * r // bs) and a.steps_per_epoch == r / bs
  assert a.epoch_at(steps) >= 3 > a.epoch_at(steps - 1)
  for s in range(steps):
    x, y = a.batch(s), b.batch(s)
    assert x.keys() == y.keys() == {*sft.ROW_KEYS, "loss_denominator"}
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])
    assert x["loss_denominator"] == x["loss_mask"].sum() > 0
  # Every kept example exactly once per epoch; the row order differs between epochs.
  stream = np.concatenate([a.rows_at(s) for s in range(steps)])
  epochs = [stream[e * r:(e + 1) * r] for e in range(3)]
  kept = sorted(set(range(44)) - {42, 43})
  for rows in epochs:
    np.testing.assert_array_equal(np.sort(rows), np.arange(r))
    assert sorted(i for row in rows for i in a.row_examples[row]) == kept
  assert not np.array_equal(epochs[0], epochs[1])
  assert not np.array_equal(epochs[1], epochs[2])
  # Batch contents are the rows named by rows_at.
  np.testing.assert_array_equal(a.batch(5)["tokens"], a.rows["tokens"][a.rows_at(5)])
  # Resume mid-epoch: a fresh instance, asked from a mid-epoch step on (in any order),
  # serves the uninterrupted run's batches.
  mid = int(a.steps_per_epoch) + 1
  assert a.epoch_at(mid) % 1
  c = _data()
  for s in reversed(range(mid, steps)):
    np.testing.assert_array_equal(c.batch(s)["tokens"], a.batch(s)["tokens"])
  # Another seed: other batches.
  assert not np.array_equal(_data(seed=8).batch(0)["tokens"], a.batch(0)["tokens"])


def test_sftdata_unpacked_and_nothing_fits():
  d = _data(packed=False)
  assert d.num_rows == 42 and all(len(r) == 1 for r in d.row_examples)
  with pytest.raises(ValueError, match="no example fits"):
    _data(seq_len=1)


def _accum_batch(vocab):
  # Eight rows, one example each: micro-batch 0 of two (rows 0, 2, 4, 6) has long
  # completions, micro-batch 1 short ones, so a mean of per-micro-batch means is off.
  rng = np.random.default_rng(3)
  ex = []
  for r in range(8):
    c = rng.integers(3, vocab, 14 if r % 2 == 0 else 2).tolist() + [2]
    ex.append(([1] + rng.integers(3, vocab, 4).tolist(), c))
  return sft.with_denominator(sft.pack(ex, SEQ_LEN, PAD, packed=False).rows)


def test_gradient_accumulation_is_exact():
  cfg = configs.tiny_moe_config(
      n_layers=2, vocab_size=64, d_model=32, moe=dict(bias_update_rate=1e-2,
                                                      aux_loss_alpha=1e-2))
  mesh_cfg = configs.mesh_config()
  mesh = sharding.make_mesh(mesh_cfg)
  tx = optax.sgd(1.0)  # the update is the gradient itself (Adam would hide its scale)
  batch = _accum_batch(cfg.vocab_size)
  mask = batch["loss_mask"]
  # Without `loss_denominator` the micro-batch means would weigh a short completion's
  # token 4x a long one's (a failure this test has been seen to catch).
  assert mask[0::2].sum() > 3 * mask[1::2].sum()

  state, shard = state_lib.create_train_state(cfg, tx, mesh, mesh_cfg.rules,
                                              jax.random.key(0))
  before = jax.tree.map(np.asarray, state.params)

  def run(accum_steps):
    step = state_lib.make_train_step(sft.sft_loss(cfg), cfg, tx, shard, mesh, mesh_cfg.rules,
                                     optax.constant_schedule(1.0), accum_steps=accum_steps)
    st, metrics = step(jax.tree.map(jnp.copy, state), batch)  # the step donates its state
    delta = jax.tree.map(lambda a, b: np.asarray(a) - b, st.params, before)
    return delta, jax.tree.map(float, metrics)

  full, m_full = run(1)
  acc, m_acc = run(2)
  for path, d in jax.tree_util.tree_flatten_with_path(full)[0]:
    got = acc
    for k in path:
      got = got[k.key]
    assert np.abs(d).max() > 0, path  # every leaf moved (router biases: by the loads)
    np.testing.assert_allclose(got, d, rtol=1e-4, atol=1e-5 * np.abs(d).max(),
                               err_msg=str(path))
  for k in ("train/loss", "train/ce", "train/token_accuracy", "moe/balance_loss",
            "grads/all/norm", "moe/load/max_over_mean"):
    np.testing.assert_allclose(m_acc[k], m_full[k], rtol=1e-5, err_msg=k)


def test_learning_rate_warmup():
  peak = 3e-4
  sched = state_lib.learning_rate_schedule(configs.optimizer_config(learning_rate=peak,
                                                                    warmup_steps=0))
  assert float(sched(0)) == pytest.approx(peak) and float(sched(100)) == pytest.approx(peak)
  sched = state_lib.learning_rate_schedule(configs.optimizer_config(
      learning_rate=peak, warmup_steps=0, decay_steps=10, end_lr_ratio=0.1))
  assert float(sched(0)) == pytest.approx(peak)
  assert float(sched(10)) == pytest.approx(0.1 * peak)
  sched = state_lib.learning_rate_schedule(configs.optimizer_config(learning_rate=peak,
                                                                    warmup_steps=4))
  assert [float(sched(s)) for s in range(6)] == pytest.approx(
      [0.0, peak / 4, peak / 2, 3 * peak / 4, peak, peak])
