"""Train steps and loop on tiny Hugging Face Flax BERT and ViT models."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxprune
from jaxprune import train
from tests import train_helpers as th
from tests.helpers import run_scenario

STEPS = 12


def test_jitted_steps_reach_scheduled_sparsity():
  # BERT only: ViT trains under the same step in test_nnx_optimizer, the
  # runner's image tests and test_patterns.
  kind = "bert"
  model = th.tiny_bert()
  batches = th.text_batches(STEPS)
  tx = th.platon_tx(STEPS, where=kind)
  params = model.params
  state = tx.init(params)
  step = train.make_train_step(train.hf.classification_loss(model), tx)
  for s in range(STEPS):
    params, state, m = step(params, state, batches[s], jax.random.PRNGKey(0), s)
    assert np.isfinite(float(m["loss"]))
  assert train.mask_sparsity(state) == pytest.approx(0.8, abs=1e-3)
  flags = jaxprune.where.resolve(kind, params)
  n = sum(x.size for x, f in zip(jax.tree.leaves(params), flags) if f)
  zeros = sum(int((x == 0).sum()) for x, f in zip(jax.tree.leaves(params), flags)
              if f)
  assert zeros == int(0.8 * n)
  logits = train.hf.classification_logits(model)(params, batches[0])
  assert np.isfinite(np.asarray(logits)).all()


def test_dropout_rng_changes_with_step():
  model = th.tiny_bert(dropout=0.5)
  loss_fn = train.hf.classification_loss(model)
  b = th.text_batches(1)[0]
  k = jax.random.PRNGKey(0)
  l1 = loss_fn(model.params, b, jax.random.fold_in(k, 1))[0]
  l2 = loss_fn(model.params, b, jax.random.fold_in(k, 2))[0]
  l1b = loss_fn(model.params, b, jax.random.fold_in(k, 1))[0]
  assert float(l1) != float(l2) and float(l1) == float(l1b)


def test_pmap_step_matches_single_device_on_8_devices():
  run_scenario("tests.train_scenarios", "pmap")


def test_sharded_step_keeps_pruning_state_sharded_like_params():
  run_scenario("tests.train_scenarios", "sharded")


def test_stop_and_resume_is_bitwise_identical(tmp_path):
  model = th.tiny_bert()
  batches = th.text_batches(STEPS)
  tx = th.platon_tx(STEPS)
  # One traced program (the per-kind programs equal it, tests/test_step_kinds.py;
  # the hinted path's resume is killed and resumed in tests/test_resume_kill.py).
  step = train.make_train_step(train.hf.classification_loss(model), tx,
                               step_kinds=False)
  rng = jax.random.PRNGKey(3)

  def fresh():
    p = jax.tree.map(jnp.array, model.params)
    return p, tx.init(p)

  p, s = fresh()
  p_ref, s_ref, _ = train.fit(step, p, s, lambda i: batches[i], STEPS, rng=rng,
                              progress=False)
  ckpt = str(tmp_path / "ckpt")
  log = str(tmp_path / "log.jsonl")
  for stop in (3, 4):  # killed after step 3, then after step 7
    p, s = fresh()
    train.fit(step, p, s, lambda i: batches[i], STEPS, rng=rng, ckpt_dir=ckpt,
              ckpt_every=1, log_path=log, progress=False, stop_after=stop)
  p, s = fresh()
  p_res, s_res, _ = train.fit(step, p, s, lambda i: batches[i], STEPS, rng=rng,
                              ckpt_dir=ckpt, ckpt_every=1, log_path=log,
                              progress=False)
  for a, b in zip(jax.tree.leaves((p_ref, s_ref)), jax.tree.leaves((p_res, s_res))):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  lines = open(log).read().splitlines()
  assert lines  # the log was appended across the three calls


def test_fit_logs_jsonl_and_tensorboard(tmp_path):
  import glob
  import json
  model = th.tiny_bert()
  batches = th.text_batches(4)
  tx = th.platon_tx(4 * 3)
  step = train.make_train_step(train.hf.classification_loss(model), tx)
  params = jax.tree.map(jnp.array, model.params)
  log = tmp_path / "log.jsonl"
  train.fit(step, params, tx.init(params), lambda i: batches[i], 4,
            rng=jax.random.PRNGKey(0), log_every=2, log_path=str(log),
            eval_fn=lambda p: {"n": 1.0}, tensorboard_dir=str(tmp_path / "tb"),
            progress=False)
  records = [json.loads(l) for l in log.read_text().splitlines()]
  assert [r["step"] for r in records if "loss" in r] == [2, 4]
  assert records[-1]["eval"]["n"] == 1.0 and "mask_sparsity" in records[-1]["eval"]
  assert glob.glob(str(tmp_path / "tb" / "events.out.tfevents.*"))
