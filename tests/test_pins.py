"""PINS against an independent numpy computation (Ren & Zhu 2023, and their code)."""
import numpy as np
import optax
import pytest

import jaxprune
from tests import numpy_ref

SHAPES = {"a": (4, 5), "b": (3, 6)}
T, T_I, T_F, DT, B1, B2, SPARSITY = 24, 3, 6, 4, 0.85, 0.7, 0.75


def lr_schedule(s):
  return 0.08 * (1.0 - s / (T + 1))


def numpy_pins(params, grads_seq, eta_of_step, signed=False):
  st, smooth = numpy_ref.window_smoother(SHAPES, B1, B2, DT)

  def score_update(s, theta, g, p_old, keep):
    eta = np.float32(eta_of_step(s))
    sens = {n: -g[n] * (theta[n] - eta * g[n]) for n in SHAPES}
    smooth(s, sens if signed else {n: np.abs(v) for n, v in sens.items()})

  out = numpy_ref.simulate(
      params, grads_seq, lr_schedule, score_update=score_update,
      scores=lambda theta: {n: st["ibar"][n] * st["ubar"][n] for n in SHAPES},
      schedule=numpy_ref.cubic_schedule(SPARSITY, T, T_I, T_F, DT),
      target=SPARSITY)
  return out, st


@pytest.mark.parametrize("variant", ["schedule", "inject", "signed"])
def test_pins_matches_numpy(variant):
  params = numpy_ref.tree(SHAPES)
  grads_seq = numpy_ref.grads_sequence(SHAPES, T)
  common = dict(sparsity=SPARSITY, total_steps=T, warmup_steps=T_I,
                final_steps=T_F, beta1=B1, beta2=B2, delta_t=DT)
  if variant == "inject":
    # eta read from the inject_hyperparams state: the LR used at this step.
    opt = optax.inject_hyperparams(optax.sgd)(learning_rate=lr_schedule)
    tx = jaxprune.pins(opt, **common)
    eta = lr_schedule
  else:
    # eta from the schedule: the next step's LR, as the reference reads it.
    tx = jaxprune.pins(optax.sgd(lr_schedule), learning_rate=lr_schedule,
                       signed=variant == "signed", **common)
    eta = lambda s: lr_schedule(s + 1)
  (p_np, keep_np, hist_np), st = numpy_pins(params, grads_seq, eta,
                                            signed=variant == "signed")
  p, state, hist = numpy_ref.run_package(tx, params, grads_seq)
  for s in range(T):
    for n in SHAPES:
      np.testing.assert_array_equal(hist[s][n], hist_np[s][n],
                                    err_msg=f"step {s} {n}")
  sc = numpy_ref.find_prune_state(state).scorer_state
  for n in SHAPES:
    np.testing.assert_allclose(np.asarray(p[n]), p_np[n], rtol=1e-5, atol=1e-7)
    for field in ("iwin", "ibar", "ubar"):
      np.testing.assert_allclose(np.asarray(getattr(sc, field)[n]),
                                 st[field][n], rtol=2e-5, atol=1e-7)
  n_all = sum(np.prod(s) for s in SHAPES.values())
  assert sum(int((np.asarray(p[n]) == 0).sum()) for n in SHAPES) == int(
      n_all * SPARSITY)


def test_pins_needs_a_learning_rate():
  tx = jaxprune.pins(optax.adam(1e-3), sparsity=0.5, total_steps=100)
  with pytest.raises(ValueError, match="inject_hyperparams"):
    tx.init({"w": np.ones((4, 4), np.float32)})
  with pytest.raises(ValueError, match="learning_rate"):
    jaxprune.pins(optax.adam(1e-3), sparsity=0.5, total_steps=100,
                  learning_rate=-1.0)
  with pytest.raises(ValueError, match="beta2"):
    jaxprune.pins(optax.adam(1e-3), sparsity=0.5, total_steps=100,
                  learning_rate=1e-3, beta2=1.0)
