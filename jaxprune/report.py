"""Reporting: measured sparsity of params, per leaf and overall."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from jaxprune import where as where_lib

__all__ = ["sparsity_report", "actual_sparsity"]


def sparsity_report(params: Any, where: Any = None) -> dict[str, float]:
  """Fraction of exact zeros in each prunable leaf, keyed by path.

  Example:
    >>> import jax.numpy as jnp, jaxprune
    >>> jaxprune.sparsity_report({"w": jnp.array([[0.0, 1.0], [0.0, 0.0]])})
    {'w': 0.75}
  """
  flags = where_lib.resolve(where, params)
  out = {}
  for (path, leaf), f in zip(jax.tree_util.tree_leaves_with_path(params),
                             flags):
    if f:
      arr = np.asarray(leaf)
      out[where_lib.path_str(path)] = float(np.mean(arr == 0)) if arr.size else 0.0
  return out


def actual_sparsity(params: Any, where: Any = None) -> float:
  """Fraction of exact zeros over all prunable scalars together.

  Example:
    >>> import jax.numpy as jnp, jaxprune
    >>> jaxprune.actual_sparsity({"w": jnp.zeros((2, 2)), "b": jnp.ones((2, 2))})
    0.5
  """
  flags = where_lib.resolve(where, params)
  zeros = total = 0
  for leaf, f in zip(jax.tree_util.tree_leaves(params), flags):
    if f:
      arr = np.asarray(leaf)
      zeros += int(np.sum(arr == 0))
      total += arr.size
  return zeros / max(total, 1)
