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
  """An all-``True`` bool array shaped like ``x`` that XLA must compute from it.

  ``jnp.where(cond & after(x), new, old)`` equals ``jnp.where(cond, new,
  old)`` but is ordered after ``x``. A score update that writes several
  donated state buffers in place from each other's *old* values (PLATON's
  ``Ubar`` and ``Ibar`` read the old ``Iwin``, which the same step
  overwrites) otherwise makes XLA copy those buffers first, since it only
  orders passes by data dependence: at BERT-base size the copies cost more
  than the update itself.

  On CPU it reads one entry of ``x``: XLA:CPU runs each pass as its own loop
  (it fuses no several outputs into one), so an element-wise dependence
  would read all of ``x`` once more only to order the pass. Elsewhere it is
  element-wise, ``x == x | isnan(x)`` (true for every float), which needs no
  communication under any sharding and which XLA:GPU computes inside the
  pass that writes ``x``.
  """
  if jax.default_backend() == "cpu" and x.size:
    first = x[(0,) * x.ndim]
    return jnp.broadcast_to((first == first) | jnp.isnan(first), x.shape)
  return (x == x) | jnp.isnan(x)
