"""Shared factory tail: a scorer on the cubic schedule around an optimizer."""

from __future__ import annotations

from typing import Any

import optax

from jaxprune import _checks
from jaxprune import schedules
from jaxprune import transform

#: ``warmup_steps`` default: 10% of ``total_steps`` of dense fine-tuning.
DEFAULT_WARMUP_FRACTION = 0.1
#: ``final_steps`` default: the last 30% of ``total_steps`` at the target.
DEFAULT_FINAL_FRACTION = 0.3


def cubic_prune(optimizer: optax.GradientTransformation,
                scorer: transform.Scorer, *, sparsity: float,
                total_steps: int, warmup_steps: int | None,
                final_steps: int | None, delta_t: int, where: Any,
                granularity: str, persistent_mask: bool,
                pattern: Any = None,
                stack_state: bool = True,
                default_warmup: float = DEFAULT_WARMUP_FRACTION,
                default_final: float = DEFAULT_FINAL_FRACTION,
                ) -> optax.GradientTransformationExtraArgs:
  """``prune(optimizer, scorer, cubic(...))`` with validated, defaulted steps.

  ``None`` step counts default to ``default_warmup`` and ``default_final``
  fractions of ``total_steps``.
  """
  total, t_i, t_f = _checks.check_step_counts(
      total_steps, warmup_steps, final_steps, default_warmup, default_final)
  schedule = schedules.cubic(sparsity, total, t_i, t_f, delta_t)
  return transform.prune(optimizer, scorer, schedule, where=where,
                         granularity=granularity,
                         persistent_mask=persistent_mask,
                         pattern=pattern, stack_state=stack_state)
