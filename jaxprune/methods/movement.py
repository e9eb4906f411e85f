"""First-order movement pruning, and the authors' version (re-exported).

:func:`movement` is the *first-order* variant of Sanh, Wolf & Rush (NeurIPS
2020) as an optax transformation: each prunable weight accumulates
``S <- S - theta * g`` (``theta`` the weight the gradient was taken at) in
the optimizer state: weights moving away from 0 gain score, weights
shrinking toward 0 lose it. The lowest scores are pruned, per matrix by
default or globally, on the cubic schedule with a new mask every step, and
pruned weights are set to 0.

This is what the authors' learned scores reduce to under plain SGD on the
scores (``S_T ~ -sum_t theta_t g_t``, up to the scores' learning rate). It is
*not* their method: they train the scores with Adam, which normalises each
score's gradient (a positive per-entry rescaling of ``theta * g``, constant in time,
leaves their scores unchanged up to Adam's epsilon; ours only survive a
per-matrix one), and keep the dense weight behind
the mask, so a pruned weight's score keeps moving and the weight comes back
with its value; here a pruned weight is 0 and its score stays where it was
when it was pruned. The authors' method is :func:`topk_movement` (also
``jaxprune.topk_movement``, defined in :mod:`jaxprune.methods.soft_movement`
beside soft movement, on the same learned-score machinery).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxprune import transform
from jaxprune.methods import _common
from jaxprune.methods import _gradual
from jaxprune.methods.soft_movement import topk_movement

__all__ = ["movement_scorer", "movement", "topk_movement"]

#: Defaults from the authors' SQuAD example (10 epochs, about 55k steps at
#: batch 16): pruning starts after 5400 steps (~10%), the last 10800 (~20%)
#: are at the target.
DEFAULT_WARMUP_FRACTION = 0.1
DEFAULT_FINAL_FRACTION = 0.2


def movement_scorer() -> transform.Scorer:
  """Scores ``S = -sum_t theta_t * g_t`` (float32).

  Example:
    >>> import jax.numpy as jnp, jaxprune
    >>> sc = jaxprune.movement_scorer()
    >>> st = sc.init({"w": jnp.zeros(2)})
    >>> st = sc.update(st, {"w": jnp.array([1.0, -1.0])}, None,
    ...                {"w": jnp.array([2.0, 2.0])}, 0)
    >>> sc.scores(st, None)["w"]  # growing weight scores +2, shrinking -2
    Array([-2.,  2.], dtype=float32)
  """

  def update(state, grads, new_params, params, step):
    del new_params, step
    return jax.tree.map(
        lambda s, p, g: s - p.astype(jnp.float32) * g.astype(jnp.float32),
        state, params, grads)

  return transform.Scorer(_common.zeros, update, _common.state_as_scores,
                          _common.always)


def movement(optimizer: optax.GradientTransformation, *, sparsity: float,
             total_steps: int, warmup_steps: int | None = None,
             final_steps: int | None = None, delta_t: int = 1,
             where: Any = None, granularity: str = "layer",
             pattern: Any = None,
             persistent_mask: bool = False,
             stack_state: bool = True
             ) -> optax.GradientTransformationExtraArgs:
  """First-order movement pruning (``S = -sum theta g``) around ``optimizer``.

  The first-order variant (see the module docstring): scores summed in the
  optimizer state, pruned weights set to 0. For Sanh et al.'s method
  (learned scores trained by Adam through the straight-through estimator,
  dense weights behind a top-k mask) use :func:`topk_movement`.

  Args:
    optimizer: the inner optax transformation.
    sparsity: final pruned fraction, in ``[0, 1)``.
    total_steps: number of updates ``T``.
    warmup_steps: dense steps; default ``round(0.1 * T)``.
    final_steps: steps at the target; default ``round(0.2 * T)``.
    delta_t: steps between mask events in the cubic phase (authors: 1).
    where: prunable leaves (authors: the encoder's linear weights, no
      biases: the default ``None`` selects every matrix).
    granularity: ``"layer"`` (authors: top-k per matrix) or ``"global"``.
    pattern: sparsity pattern (:mod:`jaxprune.patterns`): ``None``
      (unstructured, the default), ``"N:M"`` or a ``patterns.Pattern`` such
      as ``patterns.heads_and_neurons(12, preset="bert")``.
    persistent_mask: keep pruned weights at 0 between mask events.
    stack_state: store the masks as one array per shape (few jit buffers,
      the default); ``False`` for leaves of one shape sharded differently
      (see :func:`jaxprune.prune`).

  Returns:
    An optax ``GradientTransformationExtraArgs``.

  Example:
    >>> import jax, jax.numpy as jnp, optax, jaxprune
    >>> params = {"w": jax.random.normal(jax.random.key(0), (8, 8))}
    >>> tx = jaxprune.movement(optax.adam(1e-2), sparsity=0.5, total_steps=30)
    >>> state = tx.init(params)
    >>> @jax.jit
    ... def step(params, state):
    ...   grads = jax.grad(lambda p: jnp.sum(jnp.sin(p["w"])))(params)
    ...   updates, state = tx.update(grads, state, params)
    ...   return optax.apply_updates(params, updates), state
    >>> for _ in range(30):
    ...   params, state = step(params, state)
    >>> int(jnp.sum(params["w"] == 0))
    32
  """
  return _gradual.cubic_prune(
      optimizer, movement_scorer(), sparsity=sparsity,
      total_steps=total_steps, warmup_steps=warmup_steps,
      final_steps=final_steps, delta_t=delta_t, where=where,
      granularity=granularity, persistent_mask=persistent_mask,
      pattern=pattern, stack_state=stack_state, default_warmup=DEFAULT_WARMUP_FRACTION,
      default_final=DEFAULT_FINAL_FRACTION)
