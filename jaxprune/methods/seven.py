"""SEVEN (Xiao et al., 2024): keep the weights whose sensitivity is steady.

At every pruning iteration ``k = s - t_i`` (``0 <= k < iter_num``) with
``a = |g|`` (the gradient, zero on pruned weights since the mask persists):

* ``m <- alpha1 m + (1 - alpha1) a`` and ``v <- alpha2 v + (1 - alpha2) a**2``;
* ``m_hat = m / (1 - alpha1**(k+1))``, ``v_tilde = sqrt(v / (1 - alpha2**(k+1))) + eps``;
* ``importance <- importance + |theta' * a * m_hat / v_tilde|`` (cumulative).

``m_hat / v_tilde`` estimates ``E|g| / sqrt(E g**2)`` in ``(0, 1]``: close to 1
when the gradient magnitude is steady, small when it is spiky, so SEVEN
divides by gradient noise where PLATON multiplies by it. The mask is
selected every step of the window on the cubic ramp
``sparsity * (1 - (1 - (k+1)/iter_num)**3)``, is monotone (pruned weights are
never selected again) and is frozen after the window. This follows the
authors' code (``strategies/pruner.py`` of the SEVEN release),
which puts ``|g|`` in the first moment; ``signed=True`` uses ``g`` there
(``|m_hat| / v_tilde``, a sign signal-to-noise ratio), the paper's reading.

Differences from the authors' code, all deliberate: their window stops one
iteration short (``k <= iter_num - 2``) and ends at
``sparsity * (1 - iter_num**-3)``; we run ``k = iter_num - 1`` too so the run
ends exactly at ``sparsity``. They keep ``#(importance >= tau)`` weights
(ties kept); we prune exactly ``floor(N * sparsity)``. They reset the
importance of a pruned weight to 0; we set it to ``-inf`` at the next step of
the window, so that the state holds the scores the monotone selection reads
(one float32 array less written per selection step on an accelerator).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxprune import _checks
from jaxprune import schedules
from jaxprune import transform
from jaxprune.methods import _common

__all__ = ["SevenScoreState", "seven_scorer", "seven"]

#: ``warmup_steps`` default (dense steps before the window): 10% of ``T``.
DEFAULT_WARMUP_FRACTION = 0.1
#: ``pruning_steps`` default (``iter_num``): 30% of ``T``, about the median
#: of ``iter_num / T`` over the authors' per-task table (0.13-0.52).
DEFAULT_PRUNING_FRACTION = 0.3


class SevenScoreState(NamedTuple):
  """SEVEN's score state, trees shaped like the prunable params (float32).

  Attributes:
    importance: cumulative ``|theta' * |g| * m_hat / v_tilde|``; ``-inf``
      for a pruned weight, from the next step of the window on.
    m: EMA (``alpha1``) of ``|g|`` (of ``g`` with ``signed=True``).
    v: EMA (``alpha2``) of ``g**2``.
  """
  importance: Any
  m: Any
  v: Any


def seven_scorer(start: int, pruning_steps: int, alpha1: float = 0.8,
                 alpha2: float = 0.9, eps: float = 1e-9,
                 signed: bool = False) -> transform.Scorer:
  """The SEVEN scorer, updating at steps ``start <= s < start + pruning_steps``.

  Example:
    >>> import jax.numpy as jnp, jaxprune
    >>> sc = jaxprune.seven_scorer(start=0, pruning_steps=10)
    >>> st = sc.init({"w": jnp.zeros(1)})
    >>> st = sc.update(st, {"w": jnp.array([2.0])}, {"w": jnp.array([3.0])}, None, 0)
    >>> round(float(st.importance["w"][0]), 4)  # first: |theta' g| (factor 1)
    6.0
  """
  start = _checks.check_int("start", start, minimum=0)
  pruning_steps = _checks.check_int("pruning_steps", pruning_steps, minimum=1)
  alpha1 = _checks.check_fraction("alpha1", alpha1)
  alpha2 = _checks.check_fraction("alpha2", alpha2)
  signed = _checks.check_bool("signed", signed)
  if not eps > 0:
    raise ValueError(f"`eps` must be > 0, got {eps}")

  def init(params):
    zeros = lambda: _common.zeros(params)
    return SevenScoreState(zeros(), zeros(), zeros())

  def in_window(step):
    step = jnp.asarray(step, jnp.int32)
    return (step >= start) & (step < start + pruning_steps)

  def update(state, grads, new_params, params, step, hint=None, masks=None):
    del params
    # `hint`: whether the step is in the window, decided on the host
    # (jaxprune.step_kinds). Outside it the state is returned untouched: no
    # pass over it (3 float32 reads and writes per weight otherwise).
    # `masks` (from jaxprune.prune): the importance of pruned weights becomes
    # -inf in the window, so the state holds the scores a monotone selection
    # reads (see `Scorer.ranks_pruned_last`).
    if hint is not None and not hint:
      return state
    step = jnp.asarray(step, jnp.int32)
    active = in_window(step) if hint is None else True
    k1 = (step - start + 1).astype(jnp.float32)
    c1 = 1.0 - jnp.float32(alpha1) ** k1
    c2 = 1.0 - jnp.float32(alpha2) ** k1

    # m and v first, in place; the importance then reads the new m and v
    # (a data dependence, so XLA need not copy them) and is written last, as
    # transform.prune expects of a scorer state's first tree. Weights whose
    # g * theta' is not finite keep their state.
    def leaf(imp, m, v, p, g, keep):
      g = g.astype(jnp.float32)
      p = p.astype(jnp.float32)
      a = jnp.abs(g)
      upd = jnp.isfinite(p * g) & active
      m = jnp.where(upd, alpha1 * m + (1.0 - alpha1) * (g if signed else a), m)
      v = jnp.where(upd, alpha2 * v + (1.0 - alpha2) * a * a, v)
      ratio = jnp.abs(m / c1) / (jnp.sqrt(v / c2) + eps)
      imp = jnp.where(upd, imp + jnp.abs(p * a * ratio), imp)
      if keep is not None:
        imp = jnp.where(active & ~keep, -jnp.inf, imp)
      return SevenScoreState(imp, m, v)

    if masks is None:
      masks = jax.tree.map(lambda _: None, state.importance)
    out = jax.tree.map(leaf, state.importance, state.m, state.v, new_params,
                       grads, masks)
    is_out = lambda x: isinstance(x, SevenScoreState)
    pick = lambda i: jax.tree.map(lambda o: o[i], out, is_leaf=is_out)
    return SevenScoreState(pick(0), pick(1), pick(2))

  def scores(state, new_params):
    del new_params
    return state.importance

  return transform.Scorer(init, update, scores, _common.always,
                          guards_nonfinite=True, step_hint=in_window,
                          ranks_pruned_last=True)


def seven(optimizer: optax.GradientTransformation, *, sparsity: float,
          total_steps: int, warmup_steps: int | None = None,
          pruning_steps: int | None = None, alpha1: float = 0.8,
          alpha2: float = 0.9, eps: float = 1e-9, signed: bool = False,
          where: Any = None, granularity: str = "global",
          pattern: Any = None,
          stack_state: bool = True
          ) -> optax.GradientTransformationExtraArgs:
  """SEVEN pruning around any optax optimizer (SEVEN_dyn of the paper).

  Args:
    optimizer: the inner optax transformation (the authors: AdamW 2e-5,
      constant, no weight decay).
    sparsity: final pruned fraction of the selected weights, in ``[0, 1)``.
    total_steps: number of updates ``T``.
    warmup_steps: dense updates before the window (``t_i``); default
      ``round(0.1 * T)``.
    pruning_steps: the window length (``iter_num``): a mask every step
      there, frozen afterwards; default ``round(0.3 * T)``, capped at
      ``T - t_i``.
    alpha1: EMA factor of the first moment (authors' default 0.8).
    alpha2: EMA factor of the second moment (authors' default 0.9).
    eps: added to ``sqrt(v_hat)``.
    signed: use the signed gradient in the first moment (paper reading).
    where: prunable leaves (see :func:`jaxprune.platon`). The authors prune
      every Linear weight but the classifier, pooler included.
    granularity: ``"global"`` (authors) or ``"layer"``.
    pattern: sparsity pattern (:mod:`jaxprune.patterns`): ``None``
      (unstructured, the default), ``"N:M"`` or a ``patterns.Pattern`` such
      as ``patterns.heads_and_neurons(12, preset="bert")``.
    stack_state: store the masks as one array per shape (few jit buffers,
      the default); ``False`` for leaves of one shape sharded differently
      (see :func:`jaxprune.prune`).

  Returns:
    An optax ``GradientTransformationExtraArgs``; pruned weights stay 0
    (their gradients are zeroed before ``optimizer``, as the authors' masked
    forward pass does).

  Example:
    >>> import jax, jax.numpy as jnp, optax, jaxprune
    >>> params = {"w": jax.random.normal(jax.random.key(0), (8, 8))}
    >>> tx = jaxprune.seven(optax.adam(1e-2), sparsity=0.5, total_steps=30)
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
  total = _checks.check_int("total_steps", total_steps, minimum=1)
  if warmup_steps is None:
    warmup_steps = int(round(DEFAULT_WARMUP_FRACTION * total))
  t_i = _checks.check_int("warmup_steps", warmup_steps, minimum=0)
  if t_i >= total:
    raise ValueError(f"`warmup_steps` must be < `total_steps` ({total}), got "
                     f"{t_i}")
  if pruning_steps is None:
    pruning_steps = max(1, min(int(round(DEFAULT_PRUNING_FRACTION * total)),
                               total - t_i))
  length = _checks.check_int("pruning_steps", pruning_steps, minimum=1)
  if t_i + length > total:
    raise ValueError(
        "`warmup_steps + pruning_steps` must be <= `total_steps`, got "
        f"{t_i} + {length} > {total}")
  scorer = seven_scorer(t_i, length, alpha1, alpha2, eps, signed)
  schedule = schedules.cubic_window(sparsity, t_i - 1, t_i + length - 1)
  return transform.prune(optimizer, scorer, schedule, where=where,
                         granularity=granularity, monotone=True,
                         pattern=pattern, stack_state=stack_state)
