"""Soft movement: forward masks, straight-through gradients, regulariser and
threshold schedule against numpy; end to end on a tiny Flax BERT."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxprune
from jaxprune import train
from jaxprune.methods import soft_movement as sm_lib
from tests import helpers
from tests import train_helpers

T, T_I, T_F, TAU, LAM = 50, 5, 10, 0.1, 400.0


def numpy_tau(s):
  if s <= T_I:
    return 0.0
  if s > T - T_F:
    return TAU
  return TAU * (1 - (1 - (s - T_I) / (T - T_I - T_F)) ** 3)


def make(**kw):
  return jaxprune.soft_movement(total_steps=T, warmup_steps=T_I, final_steps=T_F,
                                final_threshold=TAU, final_lambda=LAM, **kw)


def test_threshold_schedule_matches_numpy():
  sm = make()
  got = np.asarray(jax.vmap(sm.threshold)(jnp.arange(T + 3)))
  np.testing.assert_allclose(got, [numpy_tau(s) for s in range(T + 3)],
                             rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("step", [3, 20, 45])
def test_forward_and_straight_through_gradients(step):
  rng = np.random.default_rng(0)
  params = {"w": rng.standard_normal((6, 7)).astype(np.float32),
            "b": rng.standard_normal(7).astype(np.float32)}   # not prunable
  scores = {"w": rng.standard_normal((6, 7)).astype(np.float32) * 3,
            "b": optax.MaskedNode()}
  c = {"w": rng.standard_normal((6, 7)).astype(np.float32),
       "b": rng.standard_normal(7).astype(np.float32)}
  sm = make(min_keep=0.0)

  def loss(p, s):   # linear in the effective weights: dL/dW' = c
    eff = sm.apply(p, s, step)
    return sum(jnp.sum(ci * e) for ci, e in zip(jax.tree.leaves(c),
                                                 jax.tree.leaves(eff)))

  eff = jax.jit(sm.apply, static_argnums=2)(params, scores, step)
  m = 1 / (1 + np.exp(-scores["w"])) > numpy_tau(step)
  np.testing.assert_array_equal(np.asarray(eff["w"]), params["w"] * m)
  np.testing.assert_array_equal(np.asarray(eff["b"]), params["b"])
  gp, gs = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, scores)
  np.testing.assert_allclose(np.asarray(gs["w"]), c["w"] * params["w"],
                             rtol=1e-6)           # STE: dL/dS = dL/dW' * W
  np.testing.assert_allclose(np.asarray(gp["w"]), c["w"] * m, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(gp["b"]), c["b"], rtol=1e-6)


def test_regularizer_matches_numpy():
  rng = np.random.default_rng(1)
  scores = {"a": rng.standard_normal((3, 4)).astype(np.float32),
            "b": rng.standard_normal((5, 2)).astype(np.float32)}
  sig = lambda x: 1 / (1 + np.exp(-x))
  sm = make()
  for s in (0, 20, 49):
    expect = LAM * numpy_tau(s) / TAU * np.mean(
        [sig(v).sum() / v.size for v in scores.values()])
    np.testing.assert_allclose(float(sm.regularizer(scores, s)), expect,
                               rtol=1e-5, atol=1e-9)


def test_min_keep_keeps_the_top_scores():
  scores = {"w": -10.0 - jnp.arange(1000.0).reshape(10, 100)}  # all below tau
  m = make(min_keep=0.005).masks(scores, T)["w"]
  assert int(m.sum()) == 5
  np.testing.assert_array_equal(np.asarray(m).ravel()[:5], True)


def test_soft_movement_trains_a_flax_bert():
  model = train_helpers.tiny_bert()
  sm = jaxprune.soft_movement(total_steps=12, warmup_steps=2, final_steps=3,
                              final_threshold=0.3, final_lambda=50.0,
                              where="bert")
  trainable = {"params": model.params, "scores": sm.init(model.params)}
  tx = sm_lib.optimizer(optax.adamw(1e-3), optax.adam(0.1))
  loss_fn = sm.wrap_loss(train.hf.classification_loss(model))
  step = train.make_train_step(loss_fn, tx)
  state = tx.init(trainable)
  batches = train_helpers.text_batches(12)
  for s, b in enumerate(batches):
    trainable, state, metrics = step(trainable, state, {**b, "step": s},
                                     jax.random.key(0), s)
  masks = sm.masks(trainable["scores"], 11)
  frac = 1 - np.mean(np.concatenate(
      [np.asarray(m).ravel() for m in jax.tree.leaves(masks)]))
  assert 0.05 < frac < 1.0          # the regulariser pruned something
  eff = sm.apply(trainable["params"], trainable["scores"], 11)
  zeros = jaxprune.actual_sparsity(eff, "bert")
  np.testing.assert_allclose(zeros, frac, atol=1e-6)
  logits = train.hf.classification_logits(model)(eff, batches[0])
  assert np.all(np.isfinite(np.asarray(logits)))


def test_min_keep_per_leaf_matches_numpy_with_one_conditional():
  """Leaves below ``min_keep`` keep their top ``int(min_keep N)`` scores
  (of tied scores the first ones are pruned, as in every exact selection),
  the others their hard mask; one ``cond`` for all."""
  rng = np.random.default_rng(3)
  scores = {"a": -10.0 - rng.integers(0, 5, (20, 30)).astype(np.float32),
            "b": rng.standard_normal((40, 10)).astype(np.float32) * 4,
            "c": -10.0 - rng.integers(0, 3, (8, 50)).astype(np.float32),
            "d": np.full((3,), -10.0, np.float32)}   # int(0.02 * 3) == 0
  sm = make(min_keep=0.02)
  got = sm.masks(scores, T)
  for name, x in scores.items():
    hard = 1 / (1 + np.exp(-x.astype(np.float64))) > TAU
    n_min = int(0.02 * x.size)
    want = hard
    if hard.sum() < n_min:   # prune the N - n_min lowest, ties first come
      pruned = np.argsort(x.ravel(), kind="stable")[:x.size - n_min]
      want = np.ones(x.size, bool)
      want[pruned] = False
      want = want.reshape(x.shape)
    np.testing.assert_array_equal(np.asarray(got[name]), want, err_msg=name)
  assert int(np.asarray(got["a"]).sum()) == 12
  assert int(np.asarray(got["b"]).sum()) > 8
  # The accelerators' search (fixed passes): the outer cond alone, no while
  # (the selection has none; a cond per leaf before).
  from jaxprune import selection
  with selection.search_mode("fixed"):
    fixed = sm_lib.soft_movement(total_steps=T, warmup_steps=T_I,
                                 final_steps=T_F, final_threshold=TAU,
                                 min_keep=0.02)
    text = helpers.compiled_text(
        jax.jit(fixed.masks, static_argnums=1).lower(scores, T))
    got = fixed.masks(scores, T)
  assert text.count(" conditional(") == 1 and " while(" not in text
  for name in scores:
    np.testing.assert_array_equal(np.asarray(got[name]),
                                  np.asarray(sm.masks(scores, T)[name]))
