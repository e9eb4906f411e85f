"""MGPP: the prior gradient against finite differences, the lambda annealing
and the whole method against numpy (Zhang, Sun, Liang 2024, and their code)."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxprune
from jaxprune.methods.mgpp import prior_gradient
from tests import numpy_ref

SHAPES = {"a": (4, 5), "b": (3, 6)}


def neg_log_prior(theta, lam, v0, v1):
  """-ln(lam N(theta; 0, v1) + (1 - lam) N(theta; 0, v0)), float64."""
  log_n = lambda v: -0.5 * np.log(2 * np.pi * v) - theta ** 2 / (2 * v)
  return -np.logaddexp(np.log(lam) + log_n(v1), np.log1p(-lam) + log_n(v0))


@pytest.mark.parametrize("v0,v1,lam", [(1e-10, 0.05, 0.1), (1e-9, 0.1, 1e-4),
                                       (1e-4, 1.0, 0.3)])
def test_prior_gradient_matches_finite_differences(v0, v1, lam):
  boundary = math.sqrt(math.log((1 - lam) / lam * math.sqrt(v1 / v0))
                       / (0.5 / v0 - 0.5 / v1))
  thetas = np.array([-0.3, -1e-2, -3 * boundary, -boundary * 1.05,
                     -0.5 * boundary, 0.2 * boundary, boundary * 0.95,
                     2 * boundary, 0.05, 0.5], np.float64)
  h = 1e-5 * np.maximum(np.abs(thetas), math.sqrt(v0))
  fd = (neg_log_prior(thetas + h, lam, v0, v1)
        - neg_log_prior(thetas - h, lam, v0, v1)) / (2 * h)
  got = np.asarray(jax.jit(prior_gradient, static_argnums=(2, 3))(
      jnp.asarray(thetas, jnp.float32), lam, v0, v1), np.float64)
  np.testing.assert_allclose(got, fd, rtol=2e-3)


def numpy_lambda(s, lambda0, a_i, a_f, t_i, t_f):
  if s < t_i:
    return lambda0
  return lambda0 * (a_i + (a_f - a_i) * min(1.0, (s - t_i) / (t_f - t_i)))


def numpy_prior(theta, lam, v0, v1):
  """The spec's algebra: theta (p0 / v0 + (1 - p0) / v1), float64."""
  c1 = np.log(lam) - np.log(1 - lam) + 0.5 * np.log(v0) - 0.5 * np.log(v1)
  c2 = 1 / (2 * v0) - 1 / (2 * v1)
  p0 = 1 / (1 + np.exp(np.clip(c2 * theta ** 2 + c1, -700, 700)))
  return theta * (p0 / v0 + (1 - p0) / v1)


def test_prior_transform_anneals_lambda_and_stops_after_t_f():
  v0, v1, n = 1e-6, 0.05, 50
  t_i, t_f, lambda0, a_i, a_f = 2, 7, 0.1, 1.0, 1e-3
  tx = jaxprune.mgpp_prior(n, v0=v0, v1=v1, lambda0=lambda0, alpha_i=a_i,
                           alpha_f=a_f, anneal_start=t_i, anneal_end=t_f)
  # Weights near the spike/slab boundary, where lambda matters.
  params = {"w": jnp.linspace(2e-3, 1e-2, 12, dtype=jnp.float32).reshape(3, 4),
            "bias": jnp.ones((4,), jnp.float32)}   # not selected (ndim 1)
  grads = jax.tree.map(lambda p: jnp.full_like(p, 0.25), params)
  state = tx.init(params)
  update = jax.jit(tx.update)
  seen = set()
  for s in range(10):
    u, state = update(grads, state, params)
    lam = numpy_lambda(s, lambda0, a_i, a_f, t_i, t_f)
    expect = 0.25 + (numpy_prior(np.asarray(params["w"], np.float64), lam,
                                 v0, v1) / n if s <= t_f else 0.0)
    np.testing.assert_allclose(np.asarray(u["w"]), expect, rtol=1e-4)
    np.testing.assert_array_equal(np.asarray(u["bias"]), 0.25)
    seen.add(round(float(u["w"][0, 0]), 6))
  assert len(seen) >= 6   # lambda really changes the gradient here


def test_mgpp_matches_numpy():
  total, t_i, final, dt, lr, n = 16, 3, 3, 3, 0.05, 40
  s_i, s_f, v0, v1 = 0.3, 0.7, 1e-3, 0.05
  t_f = total - final - 1
  params = numpy_ref.tree(SHAPES, scale=0.2)
  grads_seq = numpy_ref.grads_sequence(SHAPES, total)

  def schedule(s):
    if s < t_i:
      return 0.0, False, False
    if s > t_f:
      return s_f, False, True
    frac = s_f + (s_i - s_f) * (1 - (s - t_i) / (t_f - t_i)) ** 3
    return frac, s in (t_i, t_f) or s % dt == 0, False

  def prior(s, p):
    if s > t_f:
      return {k: np.zeros_like(v) for k, v in p.items()}
    lam = numpy_lambda(s, 0.1, 1.0, 1e-3, t_i, t_f)
    return {k: (numpy_prior(v.astype(np.float64), lam, v0, v1) / n
                ).astype(np.float32) for k, v in p.items()}

  p_np, keep_np, hist_np = numpy_ref.simulate(
      params, grads_seq, lr, score_update=lambda *a: None,
      scores=lambda theta: {k: np.abs(v) for k, v in theta.items()},
      schedule=schedule, target=s_f, prior=prior)
  tx = jaxprune.mgpp(optax.sgd(lr), sparsity=s_f, total_steps=total,
                     num_examples=n, warmup_steps=t_i, final_steps=final,
                     initial_sparsity=s_i, v0=v0, v1=v1, delta_t=dt)
  p, state, hist = numpy_ref.run_package(tx, params, grads_seq)
  for s in range(total):
    for k in SHAPES:
      np.testing.assert_array_equal(hist[s][k], hist_np[s][k],
                                    err_msg=f"step {s} {k}")
  # One-shot to s_i at t_i; frozen after t_f (same mask every later step).
  n_all = sum(np.prod(v) for v in SHAPES.values())
  assert sum(int((~hist[t_i][k]).sum()) for k in SHAPES) == int(n_all * s_i)
  for s in range(t_f + 1, total):
    for k in SHAPES:
      np.testing.assert_array_equal(hist[s][k], hist[t_f][k])
  for k in SHAPES:
    np.testing.assert_allclose(np.asarray(p[k]), p_np[k], rtol=1e-5, atol=1e-7)
    assert int((np.asarray(p[k]) == 0).sum()) == int((~keep_np[k]).sum())


def test_mgpp_errors():
  mk = lambda **kw: jaxprune.mgpp(optax.sgd(0.1), **{
      "sparsity": 0.9, "total_steps": 100, "num_examples": 10, **kw})
  mk()
  with pytest.raises(ValueError, match="num_examples"):
    mk(num_examples=0)
  with pytest.raises(ValueError, match="v0"):
    mk(v0=0.1, v1=0.05)
  with pytest.raises(ValueError, match="initial_sparsity"):
    mk(initial_sparsity=0.95)
  with pytest.raises(ValueError, match="warmup_steps"):
    mk(warmup_steps=99)
  with pytest.raises(ValueError, match="lambda0"):
    mk(lambda0=0.0)
  with pytest.raises(ValueError, match="alpha_f"):
    mk(alpha_f=0.0)
