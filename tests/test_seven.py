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
