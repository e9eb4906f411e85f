"""Argument validation shared by the factories: one clear ``ValueError`` each."""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["check_int", "check_fraction", "check_step_counts", "check_bool",
           "check_transformation"]


def check_int(name: str, value, *, minimum: int) -> int:
  """Checks that ``value`` is an integer ``>= minimum`` and returns it."""
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}")
  if value < minimum:
    raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value}")
  return int(value)


def check_fraction(name: str, value, *, upper_inclusive: bool = False) -> float:
  """Checks that ``value`` is a real number in ``[0, 1)`` (or ``[0, 1]``)."""
  bracket = "]" if upper_inclusive else ")"
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    raise ValueError(f"`{name}` must be a number in [0, 1{bracket}, got {value!r}")
  value = float(value)
  too_big = value > 1.0 if upper_inclusive else value >= 1.0
  if not value >= 0.0 or too_big:  # `not >=` also catches NaN
    raise ValueError(f"`{name}` must be in [0, 1{bracket}, got {value}")
  return value


def check_step_counts(total_steps, warmup_steps, final_steps,
                      default_warmup: float, default_final: float
                      ) -> tuple[int, int, int]:
  """Validates the step counts of a gradual schedule and fills defaults.

  ``None`` means ``round(fraction * total_steps)`` with the given default
  fractions, lowered if needed so that ``warmup + final < total``.
  """
  total = check_int("total_steps", total_steps, minimum=1)
  if warmup_steps is None:
    warmup_steps = int(round(default_warmup * total))
  if final_steps is None:
    final_steps = int(round(default_final * total))
    final_steps = max(0, min(final_steps, total - 1 - int(warmup_steps)))
  warmup = check_int("warmup_steps", warmup_steps, minimum=0)
  final = check_int("final_steps", final_steps, minimum=0)
  if warmup + final >= total:
    raise ValueError(
        "`warmup_steps + final_steps` must be < `total_steps` (the pruning "
        f"phase needs at least one step), got {warmup} + {final} >= {total}")
  return total, warmup, final


def check_bool(name: str, value) -> bool:
  """Checks that ``value`` is ``True`` or ``False`` (numpy bools included)."""
  if not isinstance(value, (bool, np.bool_)):
    raise ValueError(f"`{name}` must be True or False, got {value!r}")
  return bool(value)


def check_transformation(name: str, value) -> None:
  """Checks that ``value`` is an optax transformation (has init and update)."""
  if not (callable(getattr(value, "init", None))
          and callable(getattr(value, "update", None))):
    raise ValueError(
        f"`{name}` must be an optax GradientTransformation (with init and "
        f"update), got {value!r}")
