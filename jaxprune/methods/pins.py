"""PINS (Ren & Zhu, Findings of ACL 2023): principled importance.

The importance of a weight is the first-order loss change of removing it,
taken at the SGD look-ahead ``theta' - eta g``:

    ``I = |g * (theta' - eta * g)|``   (``signed=True``: ``-g * (theta' - eta g)``)

with ``eta`` the current learning rate, smoothed exactly like PLATON
(window mean, ``Ibar``, ``Ubar``; score ``Ibar * Ubar``) on PLATON's cubic
schedule. Follows the authors' code (``DRSY/PINS``): the released code
ranks by the absolute value; the signed form is what
the paper's integer program gives and is offered as an ablation. The
self-regularisation loss of the paper is a separate loss helper.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from jaxprune import _checks
from jaxprune import transform
from jaxprune.methods import _gradual
from jaxprune.methods import platon as platon_lib

__all__ = ["pins_scorer", "pins", "find_learning_rate"]

#: Defaults from the authors' only script (RTE, T = 3120): pruning starts
#: after 200 steps and the last 1200 steps are at the target.
DEFAULT_WARMUP_FRACTION = 200 / 3120
DEFAULT_FINAL_FRACTION = 1200 / 3120


def find_learning_rate(inner_state: Any) -> jax.Array | None:
  """The ``learning_rate`` of the first ``inject_hyperparams`` state, or None.

  Example:
    >>> import optax
    >>> from jaxprune.methods.pins import find_learning_rate
    >>> opt = optax.inject_hyperparams(optax.adamw)(learning_rate=3e-5)
    >>> round(float(find_learning_rate(opt.init({"w": 0.0}))), 8)
    3e-05
  """
  is_hp = lambda x: isinstance(getattr(x, "hyperparams", None), dict)
  for node in jax.tree_util.tree_leaves(inner_state, is_leaf=is_hp):
    if is_hp(node) and "learning_rate" in node.hyperparams:
      return jnp.asarray(node.hyperparams["learning_rate"], jnp.float32)
  return None


def _lr_fn(learning_rate) -> Callable[[jax.Array, Any], jax.Array]:
  if learning_rate is None:
    def from_state(step, inner_state):
      del step
      lr = find_learning_rate(inner_state)
      if lr is None:
        raise ValueError(
            "`learning_rate=None` reads the learning rate from an "
            "optax.inject_hyperparams state in the inner optimizer, but it "
            "has none; pass `learning_rate` (a float or a schedule)")
      return lr
    return from_state
  if callable(learning_rate):
    # The reference reads the LR after scheduler.step(): the next step's.
    return lambda step, inner_state: jnp.asarray(
        learning_rate(step + 1), jnp.float32)
  if (isinstance(learning_rate, numbers.Real)
      and not isinstance(learning_rate, bool) and learning_rate >= 0):
    return lambda step, inner_state: jnp.float32(learning_rate)
  raise ValueError("`learning_rate` must be a number >= 0, an optax schedule "
                   f"or None, got {learning_rate!r}")


def pins_scorer(learning_rate: float | Callable | None = None,
                beta1: float = 0.85, beta2: float = 0.99, delta_t: int = 10,
                signed: bool = False) -> transform.Scorer:
  """The PINS scorer: PLATON's smoothing of ``|g * (theta' - eta g)|``.

  Args:
    learning_rate: ``eta``: a float, a schedule (evaluated at ``step + 1``,
      as the reference reads it after ``scheduler.step()``) or ``None`` to
      read the value used at this step from an ``inject_hyperparams`` state.
    beta1: EMA of the importance. beta2: EMA of the uncertainty (script:
      0.99). delta_t: window length.
    signed: rank by ``-g * (theta' - eta g)`` instead of its absolute value.

  Example:
    >>> import jax.numpy as jnp, jaxprune
    >>> sc = jaxprune.pins_scorer(learning_rate=0.5, delta_t=1)
    >>> st = sc.init({"w": jnp.zeros(1)})
    >>> st = sc.update(st, {"w": jnp.array([2.0])}, {"w": jnp.array([3.0])}, None, 0)
    >>> st.iwin["w"]  # |2 * (3 - 0.5 * 2)|
    Array([4.], dtype=float32)
  """
  lr_fn = _lr_fn(learning_rate)
  signed = _checks.check_bool("signed", signed)

  def sensitivity(grads, new_params, params, step, inner_state):
    del params
    eta = lr_fn(jnp.asarray(step, jnp.int32), inner_state)

    def leaf(p, g):
      g = g.astype(jnp.float32)
      value = -g * (p.astype(jnp.float32) - eta * g)
      return value if signed else jnp.abs(value)

    return jax.tree.map(leaf, new_params, grads)

  return platon_lib.window_scorer(sensitivity, beta1, beta2, delta_t,
                                  needs_inner_state=learning_rate is None)


def pins(optimizer: optax.GradientTransformation, *, sparsity: float,
         total_steps: int, learning_rate: float | Callable | None = None,
         warmup_steps: int | None = None, final_steps: int | None = None,
         beta1: float = 0.85, beta2: float = 0.99, delta_t: int = 10,
         signed: bool = False, where: Any = None, granularity: str = "global",
         pattern: Any = None,
         persistent_mask: bool = False,
         stack_state: bool = True
         ) -> optax.GradientTransformationExtraArgs:
  """PINS pruning around any optax optimizer.

  Args:
    optimizer: the inner optax transformation (script: AdamW 3e-5, 200
      warm-up steps then linear decay, clip 1.0 before PINS).
    sparsity: final pruned fraction, in ``[0, 1)`` (script: 0.8).
    total_steps: number of updates ``T``.
    learning_rate: the learning rate ``eta`` of the importance: a float, the
      optimizer's schedule, or ``None`` to read it from an
      ``optax.inject_hyperparams`` state inside ``optimizer`` (checked at
      ``init``).
    warmup_steps: dense steps; default ``round(T * 200 / 3120)``.
    final_steps: steps at the target, a mask every step; default
      ``round(T * 1200 / 3120)``.
    beta1, beta2, delta_t: smoothing as in PLATON (script: 0.85, 0.99, 10).
    signed: the signed importance (ablation).
    where: prunable leaves (authors: the encoder's linear weights and
      biases, like PLATON; ``where="bert"``).
    granularity: ``"global"`` (authors) or ``"layer"``.
    pattern: sparsity pattern (:mod:`jaxprune.patterns`): ``None``
      (unstructured, the default), ``"N:M"`` or a ``patterns.Pattern`` such
      as ``patterns.heads_and_neurons(12, preset="bert")``.
    persistent_mask: keep pruned weights at 0 between mask events.
    stack_state: store the masks as one array per shape (few jit buffers,
      the default); ``False`` for leaves of one shape sharded differently
      (see :func:`jaxprune.prune`).

  Returns:
    An optax ``GradientTransformationExtraArgs``.

  Example:
    >>> import jax, jax.numpy as jnp, optax, jaxprune
    >>> opt = optax.inject_hyperparams(optax.adam)(learning_rate=1e-2)
    >>> tx = jaxprune.pins(opt, sparsity=0.5, total_steps=40)
    >>> params = {"w": jax.random.normal(jax.random.key(0), (8, 8))}
    >>> state = tx.init(params)
    >>> @jax.jit
    ... def step(params, state):
    ...   grads = jax.grad(lambda p: jnp.sum(jnp.sin(p["w"])))(params)
    ...   updates, state = tx.update(grads, state, params)
    ...   return optax.apply_updates(params, updates), state
    >>> for _ in range(40):
    ...   params, state = step(params, state)
    >>> int(jnp.sum(params["w"] == 0))
    32
  """
  scorer = pins_scorer(learning_rate, beta1, beta2, delta_t, signed)
  tx = _gradual.cubic_prune(
      optimizer, scorer, sparsity=sparsity, total_steps=total_steps,
      warmup_steps=warmup_steps, final_steps=final_steps, delta_t=delta_t,
      where=where, granularity=granularity, persistent_mask=persistent_mask,
      pattern=pattern, stack_state=stack_state, default_warmup=DEFAULT_WARMUP_FRACTION,
      default_final=DEFAULT_FINAL_FRACTION)
  if learning_rate is not None:
    return tx

  def init_fn(params):
    state = tx.init(params)
    if find_learning_rate(state.inner_state) is None:
      raise ValueError(
          "`learning_rate=None` needs an optax.inject_hyperparams(...) "
          "optimizer with a `learning_rate` hyperparameter; pass "
          "`learning_rate` (a float or the schedule) otherwise")
    return state

  return optax.GradientTransformationExtraArgs(init_fn, tx.update)
