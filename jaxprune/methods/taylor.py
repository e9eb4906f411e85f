"""First-order (Taylor) sensitivity: score ``|theta' * g|``, optionally EMA-smoothed.

With ``beta = 0`` the score is this step's sensitivity (Molchanov et al.,
2019, element-wise); with ``0 < beta < 1`` it is the EMA
``E <- beta E + (1 - beta) |theta' g|`` (PLATON without the uncertainty and
without the window).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxprune import _checks
from jaxprune import transform
from jaxprune.methods import _common
from jaxprune.methods import _gradual

__all__ = ["taylor_scorer", "taylor"]


def taylor_scorer(beta: float = 0.0) -> transform.Scorer:
  """Scores the (EMA of the) sensitivity ``|theta' * g|`` in float32.

  Example:
    >>> import jax.numpy as jnp, jaxprune
    >>> sc = jaxprune.taylor_scorer(beta=0.5)
    >>> st = sc.init({"w": jnp.zeros(1)})
    >>> st = sc.update(st, {"w": jnp.array([2.0])}, {"w": jnp.array([3.0])}, None, 0)
    >>> sc.scores(st, None)["w"]
    Array([3.], dtype=float32)
  """
  beta = _checks.check_fraction("beta", beta)

  def update(state, grads, new_params, params, step):
    del params, step
    return jax.tree.map(
        lambda e, p, g: beta * e + (1.0 - beta) * jnp.abs(
            p.astype(jnp.float32) * g.astype(jnp.float32)),
        state, new_params, grads)

  return transform.Scorer(_common.zeros, update, _common.state_as_scores,
                          _common.always)


def taylor(optimizer: optax.GradientTransformation, *, sparsity: float,
           total_steps: int, warmup_steps: int | None = None,
           final_steps: int | None = None, beta: float = 0.0,
           delta_t: int = 10, where: Any = None, granularity: str = "global",
           pattern: Any = None,
           persistent_mask: bool = False,
           stack_state: bool = True
           ) -> optax.GradientTransformationExtraArgs:
  """First-order sensitivity pruning on PLATON's cubic schedule.

  Args:
    optimizer: the inner optax transformation.
    sparsity: final pruned fraction in ``[0, 1)``.
    total_steps: number of updates ``T``.
    warmup_steps: dense steps first; default ``round(0.1 * T)``.
    final_steps: steps held at ``sparsity``; default ``round(0.3 * T)``.
    beta: EMA factor in ``[0, 1)``; 0 scores each step's sensitivity alone.
    delta_t: mask events every ``delta_t`` steps in the cubic phase.
    where: prunable leaves (see :func:`jaxprune.platon`).
    granularity: ``"global"`` or ``"layer"``.
    pattern: sparsity pattern (:mod:`jaxprune.patterns`): ``None``
      (unstructured, the default), ``"N:M"`` or a ``patterns.Pattern`` such
      as ``patterns.heads_and_neurons(12, preset="bert")``.
    persistent_mask: keep pruned weights at 0 between mask events.
    stack_state: store the masks as one array per shape (few jit buffers,
      the default); ``False`` for leaves of one shape sharded differently
      (see :func:`jaxprune.prune`).

  Example:
    >>> import jax, jax.numpy as jnp, optax, jaxprune
    >>> tx = jaxprune.taylor(optax.sgd(0.1), sparsity=0.5, total_steps=20, beta=0.9)
    >>> params = {"w": jnp.ones((4, 4))}
    >>> state = tx.init(params)
    >>> type(state).__name__
    'PruneState'
  """
  return _gradual.cubic_prune(
      optimizer, taylor_scorer(beta), sparsity=sparsity,
      total_steps=total_steps, warmup_steps=warmup_steps,
      final_steps=final_steps, delta_t=delta_t, where=where,
      granularity=granularity, persistent_mask=persistent_mask,
      pattern=pattern, stack_state=stack_state)
