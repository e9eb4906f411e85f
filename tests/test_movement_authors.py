"""Movement pruning as Sanh, Wolf & Rush (2020) define it (``topk_movement``):
the STE gradient and the Adam score update against numpy on a 2-layer MLP,
Adam's invariance to rescaled gradients, exact top-k per matrix, the dense
weight behind the mask, the default ``where`` on our BERT, and a jitted run."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxprune
from jaxprune import selection
from jaxprune import train
from jaxprune import where as where_lib
from jaxprune.methods import soft_movement as sm_lib
from tests import helpers

T, T_I, T_F, P = 20, 2, 5, 0.5


def numpy_sparsity(s):
  """The cubic schedule in numpy (the authors' ``schedule_threshold`` with
  ``initial_threshold 1``, ``final_threshold 1 - P``, as a pruned fraction)."""
  if s <= T_I:
    return 0.0
  if s > T - T_F:
    return P
  return P * (1 - (1 - (s - T_I) / (T - T_I - T_F)) ** 3)


def numpy_topk(scores, p, at_target):
  """Keep-mask: the ``floor(N p)`` lowest scores pruned, ties by position."""
  n = scores.size
  k = int(n * P) if at_target else int(np.floor(n * np.float64(np.float32(p))))
  order = np.argsort(scores.ravel(), kind="stable")
  keep = np.ones(n, bool)
  keep[order[:k]] = False
  return keep.reshape(scores.shape)


def mlp_setup(seed=0):
  rng = np.random.default_rng(seed)
  params = {"w1": rng.standard_normal((3, 4)).astype(np.float32),
            "b1": rng.standard_normal(4).astype(np.float32) * 0.1,
            "w2": rng.standard_normal((4, 2)).astype(np.float32)}
  scores = {"w1": rng.standard_normal((3, 4)).astype(np.float32) * 0.1,
            "w2": rng.standard_normal((4, 2)).astype(np.float32) * 0.1}
  x = rng.standard_normal((5, 3)).astype(np.float32)
  y = rng.standard_normal((5, 2)).astype(np.float32)
  return params, scores, x, y


def mlp_loss(p, batch, rng):
  del rng
  h = jax.nn.relu(batch["x"] @ p["w1"] + p["b1"])
  return jnp.mean((h @ p["w2"] - batch["y"]) ** 2), {}


def numpy_grads(params, masks, x, y):
  """dL/dW', by hand; returns (loss, dL/dW1', dL/dW2', dL/db1)."""
  w1m, w2m = params["w1"] * masks["w1"], params["w2"] * masks["w2"]
  pre = x @ w1m + params["b1"]
  h = np.maximum(pre, 0)
  r = h @ w2m - y
  loss = np.mean(r ** 2)
  dout = 2 * r / r.size
  dw2 = h.T @ dout
  dpre = (dout @ w2m.T) * (pre > 0)
  return loss, x.T @ dpre, dw2, dpre.sum(0)


def test_ste_gradient_and_adam_score_update_match_numpy():
  params, scores, x, y = mlp_setup()
  tm = jaxprune.topk_movement(sparsity=P, total_steps=T, warmup_steps=T_I,
                              final_steps=T_F, where=None)
  start = tm.init(params)
  assert isinstance(start["b1"], optax.MaskedNode)      # ndim 1: not scored
  lr_w, lr_s, b1, b2, eps = 0.05, 1e-2, 0.9, 0.999, 1e-8
  tx = sm_lib.optimizer(optax.sgd(lr_w), optax.adam(lr_s, b1, b2, eps))
  trainable = {"params": jax.tree.map(jnp.asarray, params),
               "scores": {**start, **jax.tree.map(jnp.asarray, scores)}}
  loss_fn = tm.wrap_loss(mlp_loss)
  # The STE gradient itself, at a step in the ramp.
  s0 = 9
  batch = {"x": x, "y": y, "step": s0}
  g = jax.jit(jax.grad(lambda t: loss_fn(t, batch, None)[0]))(trainable)
  p0 = numpy_sparsity(s0)
  masks = {k: numpy_topk(scores[k], p0, False) for k in ("w1", "w2")}
  assert all(0 < (~m).sum() < m.size for m in masks.values())
  _, d1, d2, db = numpy_grads(params, masks, x, y)
  np.testing.assert_allclose(g["scores"]["w1"], d1 * params["w1"], rtol=1e-5,
                             atol=1e-7)       # dL/dS = dL/dW' * W (STE)
  np.testing.assert_allclose(g["scores"]["w2"], d2 * params["w2"], rtol=1e-5,
                             atol=1e-7)
  np.testing.assert_allclose(g["params"]["w1"], d1 * masks["w1"], rtol=1e-5,
                             atol=1e-7)       # dL/dW = dL/dW' * M
  np.testing.assert_allclose(g["params"]["b1"], db, rtol=1e-5, atol=1e-7)
  # Three jitted train steps against numpy SGD (weights) and Adam (scores).
  step = train.make_train_step(loss_fn, tx)
  state = tx.init(trainable)
  w = {k: v.astype(np.float64) for k, v in params.items()}
  sc = {k: v.astype(np.float64) for k, v in scores.items()}
  m = {k: np.zeros_like(v) for k, v in sc.items()}
  v = {k: np.zeros_like(v) for k, v in sc.items()}
  for i, s in enumerate(range(s0, s0 + 3)):
    masks = {k: numpy_topk(sc[k].astype(np.float32), numpy_sparsity(s), False)
             for k in sc}
    loss, d1, d2, db = numpy_grads(w, masks, x, y)
    trainable, state, metrics = step(trainable, state,
                                     {"x": x, "y": y, "step": s},
                                     jax.random.key(0), s)
    np.testing.assert_allclose(float(metrics["loss"]), loss, rtol=1e-5)
    dw = {"w1": d1, "w2": d2}
    for k in sc:
      gs = dw[k] * w[k]
      m[k] = b1 * m[k] + (1 - b1) * gs
      v[k] = b2 * v[k] + (1 - b2) * gs ** 2
      mh, vh = m[k] / (1 - b1 ** (i + 1)), v[k] / (1 - b2 ** (i + 1))
      sc[k] = sc[k] - lr_s * mh / (np.sqrt(vh) + eps)
      w[k] = w[k] - lr_w * dw[k] * masks[k]
    w["b1"] = w["b1"] - lr_w * db
  for k in sc:
    np.testing.assert_allclose(trainable["scores"][k], sc[k], rtol=1e-5,
                               atol=1e-6)
  for k in w:
    np.testing.assert_allclose(trainable["params"][k], w[k], rtol=1e-5,
                               atol=1e-6)


_LIN_TM = jaxprune.topk_movement(sparsity=0.6, total_steps=4, warmup_steps=0,
                                 final_steps=2, where=None)


def _lin_params():
  rng = np.random.default_rng(3)
  return {"a": rng.standard_normal((6, 5)).astype(np.float32),
          "b": rng.standard_normal((4, 4)).astype(np.float32)}


@jax.jit
def _adam_scores(coef, eps):
  """Scores after ``len(coef)`` Adam updates (lr 0.1, ``eps`` traced) of
  ``loss = sum(coef_t * W')`` with the weights frozen: ``dL/dS = coef_t * W``
  through ``wrap_loss`` and the STE. Returns ``(scores, top-k masks)``."""
  tx = sm_lib.optimizer(optax.sgd(0.0), optax.inject_hyperparams(
      optax.adam)(learning_rate=0.1, eps=eps))
  loss = _LIN_TM.wrap_loss(lambda p, batch, r: (
      sum(jnp.sum(batch["c"][k] * p[k]) for k in p), {}))
  params = jax.tree.map(jnp.asarray, _lin_params())
  trainable = {"params": params, "scores": _LIN_TM.init(params)}

  def body(carry, c):
    trainable, state = carry
    grads, _ = jax.grad(loss, has_aux=True)(trainable, {"c": c, "step": 4},
                                            None)
    updates, state = tx.update(grads, state, trainable)
    return (optax.apply_updates(trainable, updates), state), None

  (trainable, _), _ = jax.lax.scan(body, (trainable, tx.init(trainable)),
                                   coef)
  return trainable["scores"], _LIN_TM.masks(trainable["scores"], 4)


def test_adam_scores_invariant_to_positive_gradient_rescaling():
  """With Adam, a score depends on its gradients ``g_t = dL/dW' * W`` only
  through ``g_t / sqrt(mean g^2)``: multiplying a matrix's gradients (and in
  fact each entry's) by a positive constant, the same at every step, leaves
  the scores unchanged (bitwise with ``eps = 0`` and powers of two; to
  rounding with ``eps = 1e-8``), hence the top-k masks. This does not hold
  when global-norm clipping sees the rescaled gradients (the authors clip
  over all parameters, scores included) and, for the first-order scores
  ``-sum theta g`` of ``jaxprune.movement``, only for a per-matrix
  rescaling (checked at the end)."""
  rng = np.random.default_rng(4)
  coef = {"a": rng.standard_normal((6, 6, 5)).astype(np.float32),
          "b": rng.standard_normal((6, 4, 4)).astype(np.float32)}
  per_tensor = {"a": np.float32(8.0), "b": np.float32(0.25)}
  per_entry = {k: (2.0 ** rng.integers(-6, 7, v.shape[1:])).astype(np.float32)
               for k, v in coef.items()}
  for eps, exact in ((0.0, True), (1e-8, False)):
    ref_s, ref_m = _adam_scores(coef, eps)
    for scale in (per_tensor, per_entry):
      s, m = _adam_scores({k: coef[k] * scale[k] for k in coef}, eps)
      for k in coef:
        if exact:
          np.testing.assert_array_equal(s[k], ref_s[k])
        else:
          np.testing.assert_allclose(s[k], ref_s[k], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(m[k], ref_m[k])
  # The first-order score -sum_t theta g_t = -sum_t coef_t * W: a per-matrix
  # rescaling keeps the per-matrix top-k, a per-entry one does not.
  w = _lin_params()
  first = lambda scale: {k: numpy_topk(-(coef[k] * scale[k]).sum(0) * w[k],
                                       0.6, True) for k in coef}
  ones = {k: np.float32(1.0) for k in coef}
  assert all(np.array_equal(first(per_tensor)[k], first(ones)[k])
             for k in coef)
  assert not all(np.array_equal(first(per_entry)[k], first(ones)[k])
                 for k in coef)
  # ... and the Adam scores above are not the first-order ones.
  assert not all(np.array_equal(np.asarray(ref_m[k]), first(ones)[k])
                 for k in coef)


@pytest.mark.parametrize("search", ["adaptive", "fixed"])
def test_topk_masks_exactly_k_per_matrix_jitted(search):
  # The search is chosen when masks_at is traced (its first use, in here).
  with selection.search_mode(search):
    _check_topk_masks(search)


def _check_topk_masks(search):
  rng = np.random.default_rng(5)
  scores = {"a": rng.standard_normal((7, 9)).astype(np.float32),
            "b": np.round(rng.standard_normal((5, 5)), 1).astype(np.float32),
            "c": np.zeros((3, 11), np.float32),              # all tied
            "d": optax.MaskedNode()}
  tm = jaxprune.topk_movement(sparsity=P, total_steps=T, warmup_steps=T_I,
                              final_steps=T_F, where=None)
  masks_at = jax.jit(lambda sc, s: tm.masks(sc, s))
  text = helpers.compiled_text(masks_at.lower(scores, jnp.int32(0)))
  if search == "fixed":  # the GPU/TPU search: no host sync in the forward
    assert " conditional(" not in text and " while(" not in text
  sched = jaxprune.schedules.cubic(P, T, T_I, T_F, delta_t=1)
  for s in range(T + 2):
    masks = masks_at(scores, jnp.int32(s))
    assert isinstance(masks["d"], optax.MaskedNode)
    p32 = float(sched.sparsity(jnp.int32(s)))
    np.testing.assert_allclose(p32, numpy_sparsity(s), rtol=1e-6)
    at_target = s > T - T_F
    for k in ("a", "b", "c"):
      want = numpy_topk(scores[k], p32, at_target)
      np.testing.assert_array_equal(np.asarray(masks[k]), want)
      assert int((~np.asarray(masks[k])).sum()) == int((~want).sum())
    np.testing.assert_allclose(float(tm.threshold(s)), 1 - p32, rtol=1e-6)
  assert int((~np.asarray(masks_at(scores, T)["a"])).sum()) == int(63 * P)


def test_pruned_weight_keeps_its_value_and_comes_back():
  """The dense W stays behind the mask: a masked weight gets no gradient,
  its score keeps moving (STE) and it returns with its old value."""
  tm = jaxprune.topk_movement(sparsity=0.5, total_steps=10, warmup_steps=0,
                              final_steps=8, where=None)
  coef = jnp.array([[1.0, 1.0], [-1.0, -1.0]])  # top row shrinks, bottom grows
  loss = lambda p, b, r: (jnp.sum(coef * p["w"]), {})
  tx = sm_lib.optimizer(optax.sgd(0.1), optax.sgd(0.3))
  trainable = {"params": {"w": jnp.ones((2, 2))},
               "scores": {"w": jnp.array([[1.0, 1.0], [0.0, 0.0]])}}
  state = tx.init(trainable)
  step = train.make_train_step(tm.wrap_loss(loss), tx, donate=False)
  effs = []
  for s in range(3, 5):     # at the target (2 of 4 masked) from step 3 on
    trainable, state, _ = step(trainable, state, {"step": s},
                               jax.random.key(0), s)
    effs.append(np.asarray(tm.apply(trainable["params"], trainable["scores"],
                                    s + 1)["w"]))
  # Scores after 1 update: top 0.7, bottom 0.3: the bottom row is masked,
  # its W untouched while the top row trained (1 - 0.1).
  np.testing.assert_allclose(effs[0], [[0.9, 0.9], [0.0, 0.0]], rtol=1e-6)
  # After 2: top 0.4, bottom 0.6: the bottom row is back with its value 1.
  np.testing.assert_array_equal(effs[1][1], [1.0, 1.0])
  np.testing.assert_array_equal(effs[1][0], [0.0, 0.0])
  # The top row, now masked, keeps its value (0.8) behind the mask.
  np.testing.assert_allclose(np.asarray(trainable["params"]["w"])[0],
                             [0.8, 0.8], rtol=1e-6)


def _tiny_bert(layers=2):
  from jaxprune import models
  cfg = models.BertConfig(vocab_size=40, hidden_size=8,
                          heads_per_layer=(2,) * layers, head_dim=4,
                          intermediate_sizes=(16,) * layers,
                          max_position_embeddings=8, num_labels=2,
                          hidden_dropout_prob=0.0,
                          attention_probs_dropout_prob=0.0)
  return models.FunctionalModel(models.build(cfg, "sequence_classification"))


def test_default_where_is_the_encoder_kernels_of_bert():
  model = _tiny_bert()
  tm = jaxprune.topk_movement(sparsity=0.5, total_steps=10)
  scores = tm.init(model.params)
  flat = jax.tree_util.tree_flatten_with_path(
      scores, is_leaf=lambda x: isinstance(x, optax.MaskedNode))[0]
  chosen = {where_lib.path_str(p) for p, x in flat
            if not isinstance(x, optax.MaskedNode)}
  modules = ("attention/self/query", "attention/self/key",
             "attention/self/value", "attention/output/dense",
             "intermediate/dense", "output/dense")
  assert chosen == {f"bert/encoder/layer/{i}/{m}/kernel"
                    for i in range(2) for m in modules}
  for path in chosen:
    for word in ("bias", "embeddings", "LayerNorm", "pooler", "classifier"):
      assert word not in path
  assert where_lib.PRESETS["bert_kernels"] is where_lib.bert_kernels


def test_topk_movement_trains_our_bert_jitted():
  """A jitted run on our BERT: exactly the target per matrix at the end."""
  model = _tiny_bert(layers=1)
  steps = 4
  tm = jaxprune.topk_movement(sparsity=0.75, total_steps=steps,
                              warmup_steps=1, final_steps=2)
  lr = optax.linear_schedule(1e-3, 0.0, steps)
  tx = optax.chain(optax.clip_by_global_norm(1.0), sm_lib.optimizer(
      optax.adamw(lr, weight_decay=0.0),
      sm_lib.scores_optimizer(weights_schedule=lr, weights_lr=1e-3)))
  trainable = {"params": jax.tree.map(jnp.array, model.params),
               "scores": tm.init(model.params)}
  state = tx.init(trainable)
  step = train.make_train_step(tm.wrap_loss(train.hf.classification_loss(
      model)), tx)
  rng = np.random.default_rng(0)
  for s in range(steps):
    ids = jnp.asarray(rng.integers(1, 40, (4, 6)), jnp.int32)
    batch = {"input_ids": ids, "labels": (ids[:, 0] > 20).astype(jnp.int32),
             "step": np.full((4,), s, np.int32)}
    trainable, state, metrics = step(trainable, state, batch,
                                     jax.random.key(0), s)
    assert np.isfinite(float(metrics["loss"]))
    assert "regularizer" not in metrics
  # Scores moved away from their constant init (rank from movement only).
  assert float(jnp.std(trainable["scores"]["bert"]["encoder"]["layer"]["0"][
      "intermediate"]["dense"]["kernel"])) > 0
  final = tm.apply(trainable["params"], trainable["scores"], steps)
  report = jaxprune.actual_sparsity(final, "bert_kernels")
  np.testing.assert_allclose(report, 0.75, atol=1e-6)
  for (path, x), f in zip(jax.tree_util.tree_leaves_with_path(final),
                          where_lib.resolve("bert_kernels", final)):
    if f:
      assert int((np.asarray(x) == 0).sum()) == int(x.size * 0.75), path
    elif where_lib.path_str(path).endswith("bias"):
      assert np.any(np.asarray(x) != 0)                 # biases untouched


@pytest.mark.parametrize("bad", [dict(sparsity=1.0), dict(granularity="row"),
                                 dict(score_init=float("nan"))])
def test_bad_arguments(bad):
  kwargs = {**dict(sparsity=0.5, total_steps=10, where=None), **bad}
  with pytest.raises(ValueError):
    jaxprune.topk_movement(**kwargs).init({"w": jnp.ones((2, 2))})
