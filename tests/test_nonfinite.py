"""Non-finite gradients never reach the scores, masks or threshold.

Policy (``jaxprune.prune``): where ``g * theta'`` is not finite the weight's
score state is kept; ``optax.apply_if_finite`` skips the inner update (inner
wrap) or the whole step (outer wrap)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxprune
from tests import helpers
from tests import numpy_ref

T = 40
FACTORIES = {  # window boundaries at multiples of 5; cubic events likewise
    "platon": lambda opt: jaxprune.platon(opt, sparsity=0.8, total_steps=T,
                                          delta_t=5),
    "pins": lambda opt: jaxprune.pins(opt, sparsity=0.8, total_steps=T,
                                      learning_rate=1e-2, delta_t=5),
    "seven": lambda opt: jaxprune.seven(opt, sparsity=0.8, total_steps=T),
    "movement": lambda opt: jaxprune.movement(opt, sparsity=0.8,
                                              total_steps=T),
    "mgpp": lambda opt: jaxprune.mgpp(opt, sparsity=0.8, total_steps=T,
                                      num_examples=256, delta_t=5),
}


def tree_equal(a, b):
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  return len(la) == len(lb) and all(
      np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True)
      for x, y in zip(la, lb))


# Step 20: a window boundary and cubic-phase mask event (PLATON, PINS,
# MGPP), inside SEVEN's window; step 35: the final phase / frozen mask.
CASES = ([(name, 20, np.nan) for name in sorted(FACTORIES)]
         + [("platon", 35, np.inf), ("pins", 35, -np.inf),
            ("mgpp", 35, np.inf)])


@pytest.mark.parametrize("ema_cond", [True, False])
@pytest.mark.parametrize("name,where_step,bad", CASES)
def test_nonfinite_step_keeps_scores_masks_threshold(name, where_step, bad,
                                                     ema_cond, monkeypatch):
  if not ema_cond and name not in ("platon", "pins"):
    pytest.skip("only the window scorer has two code paths")
  from jaxprune.methods import platon as platon_mod
  monkeypatch.setattr(platon_mod, "skip_ema_with_cond", lambda: ema_cond)
  params = helpers.mlp_params()
  x, y = helpers.mlp_data()
  # apply_if_finite on the inner optimizer: its update is skipped too.
  tx = FACTORIES[name](optax.apply_if_finite(optax.adam(1e-2), 10))
  state = tx.init(params)

  @jax.jit
  def step(params, state, poison):
    g = jax.grad(helpers.mlp_loss)(params, x, y)
    g = jax.tree.map(lambda a: a, g)
    g["dense2"]["kernel"] = jnp.where(poison, g["dense2"]["kernel"].at[3, 4]
                                      .set(bad), g["dense2"]["kernel"])
    u, state = tx.update(g, state, params)
    return optax.apply_updates(params, u), state

  for s in range(T):
    before = state
    params, state = step(params, state, jnp.asarray(s == where_step))
    if s == where_step:
      # The poisoned weight's score state is exactly as before the step.
      for new, old in zip(jax.tree.leaves(state.scorer_state),
                          jax.tree.leaves(before.scorer_state)):
        if new.shape == (32, 32):   # the dense2 kernel's state
          assert np.asarray(new)[3, 4] == np.asarray(old)[3, 4]
      helpers.assert_finite_scores(state)
      # -inf is legitimate for SEVEN (only earlier-pruned weights, which rank
      # at -inf, were pruned at the last selection); NaN never is.
      assert not np.any(np.isnan(np.asarray(state.threshold)))
      assert int(state.count) == where_step + 1
  for leaf in jax.tree.leaves(params):
    assert np.all(np.isfinite(np.asarray(leaf, np.float32)))
  helpers.assert_finite_scores(state)
  leaves = helpers.prunable(params)
  expect = (sum(int(v.size * 0.8) for v in leaves) if name == "movement"
            else int(sum(v.size for v in leaves) * 0.8))   # per layer / global
  assert sum(int((v == 0).sum()) for v in leaves) == expect


def test_outer_apply_if_finite_skips_the_whole_step():
  params = helpers.mlp_params()
  tx = optax.apply_if_finite(
      jaxprune.platon(optax.adam(1e-2), sparsity=0.5, total_steps=T), 3)
  state = tx.init(params)
  g = jax.tree.map(lambda p: jnp.full_like(p, jnp.nan), params)
  u, state2 = jax.jit(tx.update)(g, state, params)
  assert all(np.all(np.asarray(v) == 0) for v in jax.tree.leaves(u))
  inner = numpy_ref.find_prune_state(state2)
  assert int(inner.count) == 0
  assert int(state2.notfinite_count) == 1
