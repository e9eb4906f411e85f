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
