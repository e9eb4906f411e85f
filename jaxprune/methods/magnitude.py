"""Gradual magnitude pruning (Zhu & Gupta, 2017): score ``|theta'|``.

The score needs no state: at each mask event the weights with the smallest
magnitude after the optimizer's update are pruned, on the cubic schedule.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxprune import transform
from jaxprune.methods import _common
from jaxprune.methods import _gradual

__all__ = ["magnitude_scorer", "magnitude"]


def magnitude_scorer() -> transform.Scorer:
  """Scores ``|theta'|`` (float32); stateless.

  Example:
    >>> import jax.numpy as jnp, jaxprune
    >>> sc = jaxprune.magnitude_scorer()
    >>> sc.scores(sc.init({"w": jnp.zeros(2)}), {"w": jnp.array([-3.0, 2.0])})
    {'w': Array([3., 2.], dtype=float32)}
  """

  def init(params):
    del params
    return ()

  def update(state, grads, new_params, params, step):
    del grads, new_params, params, step
    return state

  def scores(state, new_params):
    del state
    return jax.tree.map(lambda p: jnp.abs(p.astype(jnp.float32)), new_params)

  return transform.Scorer(init, update, scores, _common.always,
                          uses_params=True)


def magnitude(optimizer: optax.GradientTransformation, *, sparsity: float,
              total_steps: int, warmup_steps: int | None = None,
              final_steps: int | None = None, delta_t: int = 10,
              where: Any = None, granularity: str = "global",
              pattern: Any = None,
              persistent_mask: bool = True,
              stack_state: bool = True
              ) -> optax.GradientTransformationExtraArgs:
  """Gradual magnitude pruning on PLATON's cubic schedule.

  Args:
    optimizer: the inner optax transformation.
    sparsity: final pruned fraction in ``[0, 1)``.
    total_steps: number of updates ``T``.
    warmup_steps: dense steps first; default ``round(0.1 * T)``.
    final_steps: steps held at ``sparsity``; default ``round(0.3 * T)``.
    delta_t: mask events every ``delta_t`` steps in the cubic phase.
    where: prunable leaves (see :func:`jaxprune.platon`).
    granularity: ``"global"`` or ``"layer"``.
    pattern: sparsity pattern (:mod:`jaxprune.patterns`): ``None``
      (unstructured, the default), ``"N:M"`` or a ``patterns.Pattern`` such
      as ``patterns.heads_and_neurons(12, preset="bert")``.
    persistent_mask: default ``True`` (Zhu & Gupta keep pruned weights at 0).
    stack_state: store the masks as one array per shape (few jit buffers,
      the default); ``False`` for leaves of one shape sharded differently
      (see :func:`jaxprune.prune`).

  Example:
    >>> import jax.numpy as jnp, optax, jaxprune
    >>> params = {"w": jnp.arange(16.0).reshape(4, 4)}
    >>> tx = jaxprune.magnitude(optax.sgd(0.0), sparsity=0.5, total_steps=10)
    >>> state = tx.init(params)
    >>> for _ in range(10):
    ...   u, state = tx.update(jax.tree.map(jnp.zeros_like, params), state, params)
    ...   params = optax.apply_updates(params, u)
    >>> int((params["w"] == 0).sum())
    8
  """
  return _gradual.cubic_prune(
      optimizer, magnitude_scorer(), sparsity=sparsity,
      total_steps=total_steps, warmup_steps=warmup_steps,
      final_steps=final_steps, delta_t=delta_t, where=where,
      granularity=granularity, persistent_mask=persistent_mask,
      pattern=pattern, stack_state=stack_state)
