"""Small pieces that several scorers share."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def zeros(params: Any) -> Any:
  """A float32 zero tree shaped like ``params`` (score state starts at 0)."""
  return jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), params)


def state_as_scores(state: Any, new_params: Any) -> Any:
  """``Scorer.scores`` for scorers whose state is the score tree itself."""
  del new_params
  return state


def always(step: Any) -> jax.Array:
  """``Scorer.changes_at`` for scores that may change at every step."""
  del step
  return jnp.asarray(True)


def never(step: Any) -> jax.Array:
  """``Scorer.changes_at`` for fixed scores."""
  del step
  return jnp.asarray(False)


def after(x: jax.Array) -> jax.Array:
  """An all-``True`` bool array that XLA must compute from ``x``.

  ``jnp.where(cond & after(x), new, old)`` equals ``jnp.where(cond, new,
  old)`` but is ordered after ``x``. A score update that writes several
  donated state buffers in place from each other's *old* values (PLATON's
  ``Ubar`` and ``Ibar`` read the old ``Iwin``, which the same step
  overwrites) otherwise makes XLA copy those buffers first, since it only
  orders passes by data dependence: at BERT-base size the copies cost more
  than the update itself. ``x == x | isnan(x)`` is true for every float and
  element-wise, so the dependence needs no communication under any sharding.
  """
  return (x == x) | jnp.isnan(x)
