"""Sparsity schedules: the pruned fraction and the mask events per step.

A schedule maps the step index ``s`` (the number of earlier updates; the
first update has ``s = 0``) to the fraction of selected weights that must be
zero, and says whether ``s`` is a mask event (a step at which the mask is
selected again from the scores).
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from jaxprune import _checks

__all__ = ["Schedule", "cubic", "cubic_window", "constant"]


class Schedule(NamedTuple):
  """A sparsity schedule.

  Attributes:
    sparsity: ``step -> float32`` pruned fraction in ``[0, 1)``.
    is_event: ``step -> bool`` whether masks are (re)selected at ``step``.
    target: the final sparsity (a Python float). Wherever ``sparsity(step)``
      equals ``float32(target)`` the number of pruned weights is computed in
      float64 as ``int(N * target)``, as the reference code does, so that 90%
      of 1000 weights is 900 and not 899.
    frozen: optional ``step -> bool``: where it holds, the last selected mask
      is kept (no selection) and applied at every step, e.g. after the last
      mask event of MGPP and SEVEN. ``None``: never.
  """
  sparsity: Callable[[jax.Array], jax.Array]
  is_event: Callable[[jax.Array], jax.Array]
  target: float
  frozen: Optional[Callable[[jax.Array], jax.Array]] = None


def cubic(sparsity: float, total_steps: int, warmup_steps: int,
          final_steps: int, delta_t: int = 10,
          initial_sparsity: float = 0.0) -> Schedule:
  """The cubic schedule of Zhu & Gupta (2017) as used by PLATON.

  With ``t_i = warmup_steps``, ``T = total_steps``, ``t_f = final_steps``,
  ``p0 = initial_sparsity`` and ``p = sparsity``:

  * ``s <= t_i``: sparsity ``p0`` and no mask events (dense fine-tuning);
  * ``t_i < s <= T - t_f``: ``p + (p0 - p) * (1 - (s - t_i) / (T - t_i - t_f))**3``,
    mask events where ``s % delta_t == 0``;
  * ``s > T - t_f``: sparsity ``p``, a mask event at every step.

  Args:
    sparsity: final pruned fraction, in ``[0, 1)``.
    total_steps: ``T``, number of optimizer updates in the run.
    warmup_steps: ``t_i``.
    final_steps: ``t_f``.
    delta_t: spacing of mask events in the cubic phase.
    initial_sparsity: ``p0``, the pruned fraction at the start of the cubic
      phase (0 in PLATON).

  Returns:
    A :class:`Schedule`.

  Example:
    >>> import jaxprune, jax.numpy as jnp
    >>> sched = jaxprune.schedules.cubic(0.9, 100, 10, 30, delta_t=10)
    >>> float(sched.sparsity(jnp.int32(70))), bool(sched.is_event(jnp.int32(70)))
    (0.8999999761581421, True)
  """
  sparsity = _checks.check_fraction("sparsity", sparsity)
  initial_sparsity = _checks.check_fraction("initial_sparsity",
                                            initial_sparsity)
  total, t_i, t_f = _checks.check_step_counts(total_steps, warmup_steps,
                                              final_steps, 0.0, 0.0)
  delta_t = _checks.check_int("delta_t", delta_t, minimum=1)
  length = total - t_i - t_f
  end = total - t_f

  def sparsity_fn(step):
    step = jnp.asarray(step, jnp.int32)
    frac = jnp.clip((step - t_i).astype(jnp.float32) / length, 0.0, 1.0)
    cube = (1.0 - frac) ** 3
    mid = sparsity + (initial_sparsity - sparsity) * cube
    out = jnp.where(step <= t_i, initial_sparsity,
                    jnp.where(step > end, sparsity, mid))
    return out.astype(jnp.float32)

  def is_event(step):
    step = jnp.asarray(step, jnp.int32)
    return (step > t_i) & ((step > end) | (step % delta_t == 0))

  return Schedule(sparsity_fn, is_event, sparsity)


def cubic_window(sparsity: float, start: int, end: int, *,
                 initial_sparsity: float = 0.0, delta_t: int = 1) -> Schedule:
  """A cubic ramp over ``[start, end]`` with the mask frozen afterwards.

  With ``p0 = initial_sparsity`` and ``p = sparsity``:

  * ``s < start``: sparsity 0, no mask events (dense);
  * ``start <= s <= end``: ``p + (p0 - p) * (1 - (s - start) / (end - start))**3``,
    mask events at ``s == start`` (a one-shot prune to ``p0``), where
    ``s % delta_t == 0`` and at ``s == end`` (exactly ``p``);
  * ``s > end``: sparsity ``p``, the mask selected at ``end`` frozen and
    applied every step.

  MGPP is ``cubic_window(p, t_i, t_f, initial_sparsity=0.3, delta_t=100)``;
  SEVEN is ``cubic_window(p, t_i - 1, t_i + iter_num - 1)`` (a mask every
  step, sparsity ``p * (1 - (1 - (k + 1) / iter_num)**3)`` at iteration
  ``k = s - t_i``).

  Args:
    sparsity: final pruned fraction in ``[0, 1)``.
    start: first step of the ramp (may be -1: the ramp starts before step 0).
    end: last mask event, ``> start``.
    initial_sparsity: ``p0`` in ``[0, 1)``, reached by a one-shot prune at
      ``start``.
    delta_t: spacing of mask events inside the ramp.

  Returns:
    A :class:`Schedule` with ``frozen`` set for ``s > end``.

  Example:
    >>> import jaxprune, jax.numpy as jnp
    >>> sched = jaxprune.schedules.cubic_window(0.9, 10, 20, initial_sparsity=0.3)
    >>> [round(float(sched.sparsity(jnp.int32(s))), 3) for s in (9, 10, 15, 20, 99)]
    [0.0, 0.3, 0.825, 0.9, 0.9]
    >>> [bool(sched.frozen(jnp.int32(s))) for s in (20, 21)]
    [False, True]
  """
  sparsity = _checks.check_fraction("sparsity", sparsity)
  initial_sparsity = _checks.check_fraction("initial_sparsity",
                                            initial_sparsity)
  start = _checks.check_int("start", start, minimum=-1)
  end = _checks.check_int("end", end, minimum=start + 1)
  delta_t = _checks.check_int("delta_t", delta_t, minimum=1)
  length = end - start

  def sparsity_fn(step):
    step = jnp.asarray(step, jnp.int32)
    frac = jnp.clip((step - start).astype(jnp.float32) / length, 0.0, 1.0)
    mid = sparsity + (initial_sparsity - sparsity) * (1.0 - frac) ** 3
    out = jnp.where(step < start, 0.0, jnp.where(step >= end, sparsity, mid))
    return out.astype(jnp.float32)

  def is_event(step):
    step = jnp.asarray(step, jnp.int32)
    return (step >= start) & (step <= end) & (
        (step == start) | (step == end) | (step % delta_t == 0))

  def frozen(step):
    return jnp.asarray(step, jnp.int32) > end

  return Schedule(sparsity_fn, is_event, sparsity, frozen)


def constant(sparsity: float, start_step: int = 0, every: int = 1) -> Schedule:
  """A fixed sparsity from ``start_step`` on, masks every ``every`` steps.

  Example:
    >>> import jaxprune, jax.numpy as jnp
    >>> float(jaxprune.schedules.constant(0.5).sparsity(jnp.int32(3)))
    0.5
  """
  sparsity = _checks.check_fraction("sparsity", sparsity)
  start_step = _checks.check_int("start_step", start_step, minimum=0)
  every = _checks.check_int("every", every, minimum=1)

  def sparsity_fn(step):
    step = jnp.asarray(step, jnp.int32)
    return jnp.where(step >= start_step, sparsity, 0.0).astype(jnp.float32)

  def is_event(step):
    step = jnp.asarray(step, jnp.int32)
    return (step >= start_step) & ((step - start_step) % every == 0)

  return Schedule(sparsity_fn, is_event, sparsity)
