"""MGPP (Zhang, Sun, Liang, 2024): magnitude pruning under a mixture Gaussian prior.

Each prunable weight gets the prior ``pi(theta) = lam N(theta; 0, v1) +
(1 - lam) N(theta; 0, v0)`` (``v0 << v1`` are *variances*: spike and slab).
The gradient of the negative log prior divided by the dataset size ``N``,

    ``theta * (p0 / v0 + (1 - p0) / v1) / N``,  ``p0 = sigmoid(-(c2 theta**2 + c1))``,
    ``c1 = ln lam - ln(1 - lam) + ln(v0) / 2 - ln(v1) / 2``, ``c2 = 1/(2 v0) - 1/(2 v1)``,

(``p0`` is the posterior probability of the spike) is added to the gradient
*before* the inner optimizer (a coupled regulariser), with ``lam = lambda0 *
alpha(s)``, ``alpha`` 1 before ``t_i`` and linear from ``alpha_i`` to
``alpha_f`` over ``[t_i, t_f]``; the prior is off after ``t_f``. Pruning is
global magnitude pruning of ``theta'``: a one-shot prune to
``initial_sparsity`` at ``t_i``, the cubic ramp to ``sparsity`` at ``t_f``
with a mask every ``delta_t`` steps (pruned weights may regrow in between:
the prior's spike pulls them back), and the mask frozen after ``t_f``, as in
the authors' ``PTMGP`` code.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxprune import _checks
from jaxprune import schedules
from jaxprune import transform
from jaxprune import where as where_lib
from jaxprune.methods import magnitude as magnitude_lib

__all__ = ["MgppPriorState", "mgpp_prior", "mgpp", "prior_gradient"]

#: ``warmup_steps`` default: 1/8 of ``T`` (MNLI script: 1 of 8 epochs).
DEFAULT_WARMUP_FRACTION = 0.125
#: ``delta_t`` default: ``T / 1000`` (MNLI: 100 of ~98k steps; SST-2: 10 of
#: ~12.6k).
DEFAULT_DELTA_T_FRACTION = 1e-3


class MgppPriorState(NamedTuple):
  """State of :func:`mgpp_prior`.

  Attributes:
    count: int32, number of updates done so far.
  """
  count: jax.Array


def prior_gradient(theta: jax.Array, lam: jax.Array, v0: float,
                   v1: float) -> jax.Array:
  """``d/dtheta [-ln pi(theta)]`` of the spike-and-slab prior, in float32.

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxprune.methods.mgpp import prior_gradient
    >>> g = prior_gradient(jnp.array([1e-6, 0.1]), 0.1, 1e-10, 0.05)
    >>> [round(float(x), 3) for x in g / jnp.array([1e4, 2.0])]  # theta/v0, theta/v1
    [1.0, 1.0]
  """
  theta = theta.astype(jnp.float32)
  lam = jnp.asarray(lam, jnp.float32)
  c1 = (jnp.log(lam) - jnp.log1p(-lam) + 0.5 * math.log(v0)
        - 0.5 * math.log(v1))
  c2 = 0.5 / v0 - 0.5 / v1
  p0 = jax.nn.sigmoid(-(c2 * theta * theta + c1))
  return theta * (p0 / v0 + (1.0 - p0) / v1)


def _check_variances(v0, v1):
  for name, v in (("v0", v0), ("v1", v1)):
    if not (isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v) and v > 0):
      raise ValueError(f"`{name}` must be a finite number > 0 (a variance), "
                       f"got {v!r}")
  if not v0 < v1:
    raise ValueError(f"`v0` (spike variance) must be < `v1` (slab variance), "
                     f"got v0={v0}, v1={v1}")
  return float(v0), float(v1)


def mgpp_prior(num_examples: int, *, v0: float = 1e-10, v1: float = 0.05,
               lambda0: float = 0.1, alpha_i: float = 1.0,
               alpha_f: float = 1e-3, anneal_start: int = 0,
               anneal_end: int | None = None, where: Any = None
               ) -> optax.GradientTransformation:
  """Adds the mixture-Gaussian prior gradient (divided by ``num_examples``).

  ``lam(s) = lambda0 * alpha(s)``: ``alpha = 1`` for ``s < anneal_start``,
  linear from ``alpha_i`` to ``alpha_f`` over ``[anneal_start, anneal_end]``.
  The prior is applied while ``s <= anneal_end`` (always when
  ``anneal_end`` is ``None``, then ``alpha`` stays 1) and only on the
  ``where`` leaves. Chain it before the optimizer:
  ``optax.chain(mgpp_prior(N), optax.adamw(lr, weight_decay=0.0))``.

  Args:
    num_examples: ``N``, the number of training examples (features for
      SQuAD); the prior enters the loss divided by ``N``.
    v0: spike variance (scripts: 1e-10 or 1e-9).
    v1: slab variance (scripts: 0.05, SST-2 0.1).
    lambda0: prior weight of the slab before annealing, in ``(0, 1)``.
    alpha_i: annealing factor at ``anneal_start``, in ``(0, 1]``.
    alpha_f: annealing factor at ``anneal_end``, in ``(0, 1]``.
    anneal_start: ``t_i``.
    anneal_end: ``t_f``, or ``None``.
    where: the regularised leaves (see :func:`jaxprune.platon`).

  Returns:
    A ``GradientTransformation`` (needs ``params`` in ``update``).

  Example:
    >>> import jax.numpy as jnp, optax, jaxprune
    >>> tx = jaxprune.mgpp_prior(num_examples=10, v0=1e-4, v1=1.0)
    >>> params = {"w": jnp.array([[0.5, 1e-5]])}
    >>> u, _ = tx.update({"w": jnp.zeros((1, 2))}, tx.init(params), params)
    >>> [round(float(x), 4) for x in u["w"][0]]  # slab 0.5/(10*1), spike 1e-5/(10*1e-4)
    [0.05, 0.01]
  """
  n = _checks.check_int("num_examples", num_examples, minimum=1)
  v0, v1 = _check_variances(v0, v1)
  for name, x in (("lambda0", lambda0),):
    if not 0.0 < _checks.check_fraction(name, x):
      raise ValueError(f"`{name}` must be in (0, 1), got {x}")
  for name, x in (("alpha_i", alpha_i), ("alpha_f", alpha_f)):
    _checks.check_fraction(name, x, upper_inclusive=True)
    if not x > 0:
      raise ValueError(f"`{name}` must be in (0, 1], got {x}")
  t_i = _checks.check_int("anneal_start", anneal_start, minimum=0)
  t_f = (None if anneal_end is None else
         _checks.check_int("anneal_end", anneal_end, minimum=t_i + 1))

  def lam_at(step):
    if t_f is None:
      return jnp.float32(lambda0)
    frac = jnp.clip((step - t_i).astype(jnp.float32) / (t_f - t_i), 0.0, 1.0)
    alpha = jnp.where(step < t_i, 1.0, alpha_i + (alpha_f - alpha_i) * frac)
    return (lambda0 * alpha).astype(jnp.float32)

  def init_fn(params):
    where_lib.resolve(where, params)  # fail early on a bad `where`
    return MgppPriorState(count=jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("`params` must be passed to `update` of mgpp_prior")
    flags = where_lib.resolve(where, params)
    step = state.count
    on = jnp.asarray(True) if t_f is None else step <= t_f
    lam = lam_at(step)
    treedef = jax.tree_util.tree_structure(params)
    out = []
    for g, p, f in zip(treedef.flatten_up_to(updates),
                       treedef.flatten_up_to(params), flags):
      if f:
        reg = prior_gradient(p, lam, v0, v1) / n
        g = jnp.where(on, g + reg.astype(g.dtype), g)
      out.append(g)
    return (treedef.unflatten(out),
            MgppPriorState(count=optax.safe_increment(step)))

  return optax.GradientTransformation(init_fn, update_fn)


def mgpp(optimizer: optax.GradientTransformation, *, sparsity: float,
         total_steps: int, num_examples: int, warmup_steps: int | None = None,
         final_steps: int = 0, initial_sparsity: float = 0.3,
         v0: float = 1e-10, v1: float = 0.05, lambda0: float = 0.1,
         alpha_i: float = 1.0, alpha_f: float = 1e-3,
         delta_t: int | None = None, where: Any = None,
         granularity: str = "global", pattern: Any = None,
         stack_state: bool = True
         ) -> optax.GradientTransformationExtraArgs:
  """MGPP: the prior before ``optimizer``, then global magnitude pruning.

  ``t_i = warmup_steps`` and ``t_f = T - final_steps - 1`` (the authors'
  ``sparse_finetune_steps``, 0 in every released script, so the last update
  reaches ``sparsity``).

  Args:
    optimizer: the inner optax transformation (scripts: AdamW, betas 0.9 /
      0.98, eps 1e-6, weight decay 0, LR decaying linearly to 0.1x).
    sparsity: final pruned fraction, in ``[0, 1)`` (scripts: 0.9).
    total_steps: number of updates ``T``.
    num_examples: training-set size ``N`` (the prior is divided by it).
    warmup_steps: dense steps before the one-shot prune; default
      ``round(T / 8)``.
    final_steps: steps after ``t_f`` with the mask frozen and the prior off.
    initial_sparsity: one-shot sparsity at ``t_i`` (scripts: 0.3; 0.5 for
      QNLI and SQuAD).
    v0: spike variance. v1: slab variance. lambda0, alpha_i, alpha_f: the
      slab weight ``lambda0 * alpha`` annealed from ``alpha_i`` to ``alpha_f``
      over ``[t_i, t_f]`` (scripts: 0.1, 1, 0.001).
    delta_t: steps between mask events; default ``max(1, round(T / 1000))``.
    where: pruned and regularised leaves (authors: Q, K, V, attention
      output, FFN in and out kernels; no biases).
    granularity: ``"global"`` (authors) or ``"layer"``.
    pattern: sparsity pattern (:mod:`jaxprune.patterns`): ``None``
      (unstructured, the default), ``"N:M"`` or a ``patterns.Pattern`` such
      as ``patterns.heads_and_neurons(12, preset="bert")``.
    stack_state: store the masks as one array per shape (few jit buffers,
      the default); ``False`` for leaves of one shape sharded differently
      (see :func:`jaxprune.prune`).

  Returns:
    An optax ``GradientTransformationExtraArgs``.

  Example:
    >>> import jax, jax.numpy as jnp, optax, jaxprune
    >>> params = {"w": jax.random.normal(jax.random.key(0), (8, 8))}
    >>> tx = jaxprune.mgpp(optax.adam(1e-2), sparsity=0.75, total_steps=40,
    ...                    num_examples=100)
    >>> state = tx.init(params)
    >>> @jax.jit
    ... def step(params, state):
    ...   grads = jax.grad(lambda p: jnp.sum(jnp.sin(p["w"])))(params)
    ...   updates, state = tx.update(grads, state, params)
    ...   return optax.apply_updates(params, updates), state
    >>> for _ in range(40):
    ...   params, state = step(params, state)
    >>> int(jnp.sum(params["w"] == 0))
    48
  """
  _checks.check_transformation("optimizer", optimizer)
  total = _checks.check_int("total_steps", total_steps, minimum=2)
  if warmup_steps is None:
    warmup_steps = int(round(DEFAULT_WARMUP_FRACTION * total))
  t_i = _checks.check_int("warmup_steps", warmup_steps, minimum=0)
  final = _checks.check_int("final_steps", final_steps, minimum=0)
  t_f = total - final - 1
  if not t_i < t_f:
    raise ValueError(
        "`warmup_steps` must be < `total_steps - final_steps - 1` (the "
        f"pruning window needs two steps), got warmup_steps={t_i}, "
        f"total_steps={total}, final_steps={final}")
  if delta_t is None:
    delta_t = max(1, int(round(DEFAULT_DELTA_T_FRACTION * total)))
  initial_sparsity = _checks.check_fraction("initial_sparsity",
                                            initial_sparsity)
  if initial_sparsity > _checks.check_fraction("sparsity", sparsity):
    raise ValueError(f"`initial_sparsity` must be <= `sparsity`, got "
                     f"{initial_sparsity} > {sparsity}")
  prior = mgpp_prior(num_examples, v0=v0, v1=v1, lambda0=lambda0,
                     alpha_i=alpha_i, alpha_f=alpha_f, anneal_start=t_i,
                     anneal_end=t_f, where=where)
  schedule = schedules.cubic_window(sparsity, t_i, t_f,
                                    initial_sparsity=initial_sparsity,
                                    delta_t=delta_t)
  return transform.prune(optax.chain(prior, optimizer),
                         magnitude_lib.magnitude_scorer(), schedule,
                         where=where, granularity=granularity,
                         pattern=pattern, stack_state=stack_state)
