"""Cam-Cut / Smooth-Cut scores and captures against numpy; the single-shot
pipeline's rewind and fixed mask on a tiny Flax BERT."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxprune
from jaxprune import train
from jaxprune.methods import deepcuts
from jaxprune.train import capture
from tests import train_helpers


class MLP(nn.Module):
  @nn.compact
  def __call__(self, x):
    h = nn.Dense(5, name="d1")(x)
    return nn.Dense(3, name="d2")(jnp.tanh(h))


def mlp_setup():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((4, 6, 2)).astype(np.float32)   # batch, tokens, in
  y = rng.integers(0, 3, (4, 6))
  model = MLP()
  params = model.init(jax.random.key(0), x)["params"]

  def loss_fn(p, batch, rng):
    logits = model.apply({"params": p}, batch["x"])
    return optax.softmax_cross_entropy_with_integer_labels(
        logits, batch["y"]).mean(), {}

  return model, params, {"x": x, "y": y}, loss_fn


def test_capture_matches_manual_forward():
  model, params, batch, loss_fn = mlp_setup()
  grads, acts = jax.jit(capture.grads_and_activations(loss_fn))(
      params, batch, None)
  w1, b1 = (np.asarray(params["d1"][k]) for k in ("kernel", "bias"))
  h1 = batch["x"] @ w1 + b1
  np.testing.assert_allclose(np.asarray(acts[("d1",)]), h1.mean(axis=(0, 1)),
                             rtol=1e-5, atol=1e-6)
  h2 = np.tanh(h1) @ np.asarray(params["d2"]["kernel"]) + np.asarray(
      params["d2"]["bias"])
  np.testing.assert_allclose(np.asarray(acts[("d2",)]), h2.mean(axis=(0, 1)),
                             rtol=1e-5, atol=1e-6)
  ref = jax.grad(lambda p: loss_fn(p, batch, None)[0])(params)
  for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(ref)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5,
                               atol=1e-8)


def test_noisy_grads_average_noisy_passes():
  model, params, batch, loss_fn = mlp_setup()
  exact = jax.grad(lambda p: loss_fn(p, batch, None)[0])(params)
  zero = capture.noisy_mean_grads(loss_fn, sigma=0.0, passes=3)(
      params, batch, jax.random.key(0))
  # atol: float32 rounding of gradients summed from terms of about 0.1 (a
  # -2e-4 entry differed by 2e-9 once the tests compiled without FMA).
  for a, b in zip(jax.tree.leaves(zero), jax.tree.leaves(exact)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=2e-8)
  # sigma > 0: equals the mean of single noisy passes with the same keys.
  fn = jax.jit(capture.noisy_mean_grads(loss_fn, sigma=0.5, passes=3))
  got = fn(params, batch, jax.random.key(1))
  one = capture.noisy_grads(loss_fn, sigma=0.5)
  singles = [one(params, batch, jax.random.fold_in(jax.random.key(1), i))
             for i in range(3)]
  for leaf, *parts in zip(jax.tree.leaves(got),
                          *[jax.tree.leaves(s) for s in singles]):
    np.testing.assert_allclose(np.asarray(leaf), np.mean(parts, axis=0),
                               rtol=1e-5, atol=1e-7)
  assert not np.allclose(np.asarray(got["d1"]["kernel"]),
                         np.asarray(exact["d1"]["kernel"]), rtol=1e-4)


@pytest.mark.parametrize("shift", [None, 10.0])
def test_cam_cut_scores_match_numpy(shift):
  model, params, batch, loss_fn = mlp_setup()
  grads, acts = capture.grads_and_activations(loss_fn)(params, batch, None)
  where = lambda path, leaf: "d1" in jaxprune.where.path_str(path)
  sc = jax.jit(lambda p, g, a: deepcuts.cam_cut_scores(
      p, g, a, where=where, shift=shift))(params, grads, acts)
  a = np.asarray(acts[("d1",)]) + (shift or 0.0)
  for k in ("kernel", "bias"):
    np.testing.assert_allclose(
        np.asarray(sc["d1"][k]),
        np.abs(np.asarray(params["d1"][k]) * np.asarray(grads["d1"][k]) * a),
        rtol=1e-6)
  assert isinstance(sc["d2"]["kernel"], optax.MaskedNode)
  sm = deepcuts.smooth_cut_scores(params, grads, where=where)
  np.testing.assert_allclose(
      np.asarray(sm["d1"]["kernel"]),
      np.abs(np.asarray(params["d1"]["kernel"] * grads["d1"]["kernel"])),
      rtol=1e-6)


def test_single_shot_pipeline_rewinds_exactly():
  model = train_helpers.tiny_bert(dropout=0.0)
  params0 = jax.tree.map(jnp.array, model.params)
  loss_fn = train.hf.classification_loss(model)
  batches = train_helpers.text_batches(6)
  # 1. (a stand-in for) dense fine-tuning
  step = train.make_train_step(loss_fn, optax.adam(1e-2))
  tuned, state = jax.tree.map(jnp.array, params0), optax.adam(1e-2).init(params0)
  for s in range(3):
    tuned, state, _ = step(tuned, state, batches[s], jax.random.key(0), s)
  # 2. Cam-Cut scores summed over batches
  ga = jax.jit(capture.grads_and_activations(loss_fn))
  total = None
  for b in batches[3:]:
    g, acts = ga(tuned, b, jax.random.key(1))
    sc = deepcuts.cam_cut_scores(tuned, g, acts, where="bert")
    total = sc if total is None else jax.tree.map(jnp.add, total, sc)
  # 3. masks, 4. rewind
  masks = deepcuts.masks_from_scores(total, 0.6)
  start = deepcuts.rewind(params0, masks)
  flags = jaxprune.where.resolve("bert", params0)
  for p0, p, f, m in zip(jax.tree.leaves(params0), jax.tree.leaves(start),
                         flags, [None] * len(flags)):
    if not f:
      np.testing.assert_array_equal(np.asarray(p), np.asarray(p0))
  for p0, p, m in zip([x for x, f in zip(jax.tree.leaves(params0), flags) if f],
                      [x for x, f in zip(jax.tree.leaves(start), flags) if f],
                      jax.tree.leaves(masks)):
    m = np.asarray(m)
    np.testing.assert_array_equal(np.asarray(p)[m], np.asarray(p0)[m])
    assert np.all(np.asarray(p)[~m] == 0)
    assert int((~m).sum()) == int(m.size * 0.6)
  # 5. fine-tune with the mask fixed: the same masks, kept at 0
  tx = deepcuts.fixed_mask(optax.adam(1e-2), total, sparsity=0.6, where="bert")
  step = train.make_train_step(loss_fn, tx)
  p, st = start, tx.init(start)
  for s in range(3):
    p, st, _ = step(p, st, batches[s], jax.random.key(2), s)
  for m_state, m in zip(jax.tree.leaves(st.masks), jax.tree.leaves(masks)):
    np.testing.assert_array_equal(np.asarray(m_state), np.asarray(m))
  sel = [x for x, f in zip(jax.tree.leaves(p), flags) if f]
  for x, m in zip(sel, jax.tree.leaves(masks)):
    assert np.all(np.asarray(x)[~np.asarray(m)] == 0)
