"""Movement pruning against an independent numpy computation."""
import numpy as np
import optax
import pytest

import jaxprune
from tests import numpy_ref

SHAPES = {"a": (4, 5), "b": (3, 6)}
T, T_I, T_F, SPARSITY, LR = 20, 2, 5, 0.7, 0.05


@pytest.mark.parametrize("granularity", ["layer", "global"])
def test_movement_matches_numpy(granularity):
  params = numpy_ref.tree(SHAPES)
  grads_seq = numpy_ref.grads_sequence(SHAPES, T)
  score = {n: np.zeros(s, np.float32) for n, s in SHAPES.items()}

  def score_update(s, theta, g, p_old, keep):
    for n in SHAPES:   # movement: -theta * g at the weights g was taken at
      score[n] = score[n] - p_old[n] * g[n]

  p_np, keep_np, hist_np = numpy_ref.simulate(
      params, grads_seq, LR, score_update=score_update,
      scores=lambda theta: score,
      schedule=numpy_ref.cubic_schedule(SPARSITY, T, T_I, T_F, 1),
      target=SPARSITY, per_leaf=granularity == "layer")
  tx = jaxprune.movement(optax.sgd(LR), sparsity=SPARSITY, total_steps=T,
                         warmup_steps=T_I, final_steps=T_F,
                         granularity=granularity)
  p, state, hist = numpy_ref.run_package(tx, params, grads_seq)
  for s in range(T):
    for n in SHAPES:
      np.testing.assert_array_equal(hist[s][n], hist_np[s][n],
                                    err_msg=f"step {s} {n}")
  sc = numpy_ref.find_prune_state(state).scorer_state
  for n in SHAPES:
    np.testing.assert_allclose(np.asarray(p[n]), p_np[n], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.asarray(sc[n]), score[n], rtol=1e-5,
                               atol=1e-6)
    if granularity == "layer":
      assert int((np.asarray(p[n]) == 0).sum()) == int(
          np.prod(SHAPES[n]) * SPARSITY)


def test_movement_keeps_weights_moving_away_from_zero():
  # w grows (g opposes its sign), v shrinks toward 0: v is pruned first even
  # though |v| > |w|.
  sc = jaxprune.movement_scorer()
  st = sc.init({"x": np.zeros(2, np.float32)})
  p = {"x": np.array([0.1, 1.0], np.float32)}
  st = sc.update(st, {"x": np.array([-1.0, 1.0], np.float32)}, None, p, 0)
  scores = np.asarray(sc.scores(st, None)["x"])
  assert scores[0] > 0 > scores[1]
