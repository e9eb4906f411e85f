"""SEVEN against an independent numpy computation (Xiao et al. 2024, and their code)."""
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxprune
from tests import numpy_ref

SHAPES = {"a": (4, 5), "b": (3, 6)}


def numpy_seven(params, grads_seq, lr, t_i, length, sparsity, a1, a2,
                signed=False):
  state = {k: {n: np.zeros(s, np.float32) for n, s in SHAPES.items()}
           for k in ("imp", "m", "v")}

  def score_update(s, theta, g, p_old, keep):
    k = s - t_i
    if not 0 <= k < length:
      return
    for n in SHAPES:
      gm = np.where(keep[n], g[n], 0)          # masked forward pass
      a = np.abs(gm)
      state["m"][n] = a1 * state["m"][n] + (1 - a1) * (gm if signed else a)
      state["v"][n] = a2 * state["v"][n] + (1 - a2) * a * a
      m_hat = state["m"][n] / (1 - a1 ** (k + 1))
      v_til = np.sqrt(state["v"][n] / (1 - a2 ** (k + 1))) + 1e-9
      state["imp"][n] = state["imp"][n] + np.abs(
          theta[n] * a * np.abs(m_hat) / v_til)
      state["imp"][n][~keep[n]] = 0.0           # monotone, in place

  def schedule(s):
    k = s - t_i
    if 0 <= k < length:
      return sparsity * (1 - (1 - (k + 1) / length) ** 3), True, False
    return (sparsity if k >= length else 0.0), False, k >= length

  out = numpy_ref.simulate(params, grads_seq, lr, score_update=score_update,
                           scores=lambda theta: state["imp"],
                           schedule=schedule, target=sparsity,
                           persistent=True, monotone=True)
  return out, state


@pytest.mark.parametrize("signed", [False, True])
def test_seven_matches_numpy(signed):
  t_i, length, total, sparsity, lr = 3, 8, 14, 0.6, 0.05
  params = numpy_ref.tree(SHAPES)
  grads_seq = numpy_ref.grads_sequence(SHAPES, total)
  (p_np, keep_np, hist_np), st_np = numpy_seven(
      params, grads_seq, lr, t_i, length, sparsity, 0.8, 0.9, signed)
  tx = jaxprune.seven(optax.sgd(lr), sparsity=sparsity, total_steps=total,
                      warmup_steps=t_i, pruning_steps=length, signed=signed)
  p, state, hist = numpy_ref.run_package(tx, params, grads_seq)
  for s, (h, h_np) in enumerate(zip(hist, hist_np)):
    for n in SHAPES:
      np.testing.assert_array_equal(h[n], h_np[n], err_msg=f"step {s} {n}")
  # Monotone: once pruned, pruned at every later step; frozen after the window.
  for s in range(1, total):
    for n in SHAPES:
      assert not np.any(hist[s][n] & ~hist[s - 1][n])
  n_all = sum(np.prod(s) for s in SHAPES.values())
  assert sum(int((~keep_np[n]).sum()) for n in SHAPES) == int(n_all * sparsity)
  sc = numpy_ref.find_prune_state(state).scorer_state
  for n in SHAPES:
    np.testing.assert_allclose(np.asarray(p[n]), p_np[n], rtol=1e-5, atol=1e-7)
    kept = keep_np[n]
    for field, key in (("importance", "imp"), ("m", "m"), ("v", "v")):
      np.testing.assert_allclose(np.asarray(getattr(sc, field)[n])[kept],
                                 st_np[key][n][kept], rtol=2e-5)


def test_seven_state_frozen_outside_window():
  sc = jaxprune.seven_scorer(start=2, pruning_steps=2)
  st = sc.init({"w": jnp.zeros(3)})
  g, p = {"w": jnp.array([1.0, -2.0, 3.0])}, {"w": jnp.ones(3)}
  imps = []
  for s in range(6):
    st = sc.update(st, g, p, None, s)
    imps.append(np.asarray(st.importance["w"]).copy())
  np.testing.assert_array_equal(imps[0], 0)
  np.testing.assert_array_equal(imps[1], 0)
  # k = 0: factor m_hat / v_tilde = |g| / |g| = 1 -> increment |theta g|.
  np.testing.assert_allclose(imps[2], [1, 2, 3], rtol=1e-6)
  # k = 1, constant |g|: factor still 1 -> cumulative 2 |theta g|.
  np.testing.assert_allclose(imps[3], [2, 4, 6], rtol=1e-6)
  np.testing.assert_array_equal(imps[4], imps[3])
  np.testing.assert_array_equal(imps[5], imps[3])


def test_seven_factor_penalises_noisy_gradients():
  # Same mean |g| (2) and theta: steady gradient beats an alternating 0/4 one.
  sc = jaxprune.seven_scorer(start=0, pruning_steps=10)
  st = sc.init({"w": jnp.zeros(2)})
  for s in range(6):
    g = {"w": jnp.array([2.0, 4.0 * (s % 2)])}
    st = sc.update(st, g, {"w": jnp.ones(2)}, None, s)
  imp = np.asarray(st.importance["w"])
  assert imp[0] > imp[1] * 1.2


def test_seven_defaults_and_errors():
  tx = jaxprune.seven(optax.sgd(0.1), sparsity=0.5, total_steps=100)
  assert isinstance(tx, optax.GradientTransformationExtraArgs)
  with pytest.raises(ValueError, match="warmup_steps \\+ pruning_steps"):
    jaxprune.seven(optax.sgd(0.1), sparsity=0.5, total_steps=10,
                   warmup_steps=5, pruning_steps=6)
  with pytest.raises(ValueError, match="alpha1"):
    jaxprune.seven(optax.sgd(0.1), sparsity=0.5, total_steps=10, alpha1=1.0)
  with pytest.raises(ValueError, match="pruning_steps"):
    jaxprune.seven(optax.sgd(0.1), sparsity=0.5, total_steps=10,
                   pruning_steps=0)


def test_steps_outside_the_window_make_no_pass_over_the_score_state():
  """With the host's step kind, a step outside SEVEN's scoring window returns
  its three score-state trees as they came in (no element-wise pass, which
  is 24 of its bytes per weight on a GPU); inside the window it updates them."""
  import jax
  params = {n: jnp.asarray(v) for n, v in numpy_ref.tree(SHAPES).items()}
  grads = jax.tree.map(jnp.ones_like, params)
  tx = jaxprune.seven(optax.sgd(0.1), sparsity=0.5, total_steps=20,
                      warmup_steps=4, pruning_steps=6)
  state = tx.init(params)
  # make_jaxpr's inputs are the leaves of `state` in order; the score state
  # follows the step count and the inner optimizer's state.
  first = len(jax.tree.leaves((state.count, state.inner_state)))
  n = len(jax.tree.leaves(state.scorer_state))
  kinds = {}
  for step in range(20):
    kind = jaxprune.step_kind(tx, step)
    assert kind.scorer is (4 <= step < 10), (step, kind)
    kinds.setdefault(kind, step)
  assert len(kinds) == 3  # first event (before the window), window, after
  for kind in kinds:
    jaxpr = jax.make_jaxpr(
        lambda st, kind=kind: tx.update(grads, st, params,
                                        step_kind=kind)[1].scorer_state)(state)
    score_in = jaxpr.jaxpr.invars[first:first + n]
    same = [o is i for o, i in zip(jaxpr.jaxpr.outvars, score_in)]
    assert len(same) == n == 6
    assert same == [not kind.scorer] * n, kind


@pytest.mark.parametrize("hinted", [False, True])
def test_pruned_importance_becomes_neg_inf_at_the_next_window_step(hinted):
  """Through jaxprune.seven, the importance of a weight pruned at one step of
  the window is -inf after the next (the authors reset it to 0), so the state
  holds the scores the monotone selection reads; after the window the state
  is left alone. The scorer called directly does it when given masks."""
  import jax
  params = {n: jnp.asarray(v) for n, v in numpy_ref.tree(SHAPES).items()}
  grads_seq = numpy_ref.grads_sequence(SHAPES, 12)
  tx = jaxprune.seven(optax.sgd(0.05), sparsity=0.6, total_steps=12,
                      warmup_steps=2, pruning_steps=6)
  state = tx.init(params)
  step = jax.jit(lambda g, st, p, kind: tx.update(g, st, p, step_kind=kind),
                 static_argnums=3)
  keep = {n: np.ones(v.shape, bool) for n, v in params.items()}
  for s, g in enumerate(grads_seq):
    g = {n: jnp.asarray(v) for n, v in g.items()}
    kind = jaxprune.step_kind(tx, s) if hinted else None
    updates, state = step(g, state, params, kind)
    params = optax.apply_updates(params, updates)
    imp = {n: np.asarray(v) for n, v in
           numpy_ref.find_prune_state(state).scorer_state.importance.items()}
    for n in SHAPES:
      if s < 8:  # warm-up (0, 1) and window (2-7): -inf where pruned before
        np.testing.assert_array_equal(np.isneginf(imp[n]), ~keep[n],
                                      err_msg=f"step {s} {n}")
      else:  # after the window: as the window left it
        np.testing.assert_array_equal(imp[n], last[n])
    if s < 8:
      keep = {n: np.asarray(state.masks[n]) for n in SHAPES}
      last = imp
  assert 0 < sum(int((~keep[n]).sum()) for n in SHAPES)
  sc = jaxprune.seven_scorer(start=0, pruning_steps=4)
  st = sc.init({"w": jnp.zeros(2)})
  st = sc.update(st, {"w": jnp.ones(2)}, {"w": jnp.ones(2)}, None, 0)
  st = sc.update(st, {"w": jnp.ones(2)}, {"w": jnp.ones(2)}, None, 1,
                 masks={"w": jnp.array([True, False])})
  np.testing.assert_allclose(np.asarray(st.importance["w"]), [2.0, -np.inf],
                             rtol=1e-6)


def test_a_scorer_ranking_pruned_last_is_trusted_on_hinted_steps_only():
  """`Scorer.ranks_pruned_last`: on a selection step the host decided with
  ``scorer=True``, prune(monotone=True) selects on the scores as they are;
  traced, it ranks the pruned weights last itself. A scorer that claims it
  but scores a pruned weight highest shows the difference: the weight comes
  back on the hinted step only. Without a step_hint the claim is refused."""
  from jaxprune import schedules
  base = jaxprune.magnitude_scorer()

  def make(claim, step_hint=lambda s: s >= 0):
    scorer = jaxprune.Scorer(
        base.init, lambda st, *a, hint=None, masks=None: st,
        lambda st, p: {"w": jnp.abs(p["w"])}, base.changes_at,
        uses_params=True, step_hint=step_hint, ranks_pruned_last=claim)
    return jaxprune.prune(optax.sgd(0.0), scorer, schedules.constant(0.25),
                          monotone=True)

  grads = {"w": jnp.zeros((2, 2))}
  for claim, hinted, keep in ((False, True, [[False, True], [True, True]]),
                              (True, False, [[False, True], [True, True]]),
                              (True, True, [[True, False], [True, True]])):
    tx = make(claim)
    params = {"w": jnp.arange(1.0, 5.0).reshape(2, 2)}
    state = tx.init(params)
    second = {"w": jnp.array([[9.0, 2.0], [3.0, 4.0]])}
    for s, p in enumerate([params, second]):
      kind = jaxprune.step_kind(tx, s)
      assert kind.select and kind.scorer
      _, state = tx.update(grads, state, p,
                           step_kind=kind if hinted else None)
      if s == 0:  # the lowest, w[0, 0], is pruned
        np.testing.assert_array_equal(np.asarray(state.masks["w"]),
                                      [[False, True], [True, True]])
    np.testing.assert_array_equal(np.asarray(state.masks["w"]), keep,
                                  err_msg=f"claim {claim}, hinted {hinted}")
  with pytest.raises(ValueError, match="ranks_pruned_last.*step_hint"):
    make(True, step_hint=None)
