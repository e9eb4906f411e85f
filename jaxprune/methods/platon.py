"""PLATON (Zhang et al., ICML 2022): upper confidence bound of importance.

Per prunable scalar three float32 tensors, all starting at 0: the local
window mean ``Iwin`` of the sensitivity ``I = |theta' * g|``, its EMA
``Ibar`` and the EMA ``Ubar`` of the uncertainty. With ``local = s mod
delta_t``:

* ``local == 0`` (window boundary): ``Ibar <- b1 Ibar + (1 - b1) Iwin``,
  then ``Ubar <- b2 Ubar + (1 - b2) |Iwin - Ibar|`` (with the new ``Ibar``),
  then ``Iwin <- I``;
* otherwise ``Iwin <- (Iwin * local + I) / (local + 1)``.

The score is ``S = Ibar * Ubar``. ``theta'`` is the parameter after the inner
optimizer's update and ``g`` the gradient given to ``update`` (clip it before
PLATON, e.g. ``optax.chain(optax.clip_by_global_norm(1.0), platon(...))``, to
match the reference, which scores clipped gradients).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxprune import _checks
from jaxprune import transform
from jaxprune.methods import _common
from jaxprune.methods import _gradual

__all__ = ["PlatonScoreState", "platon_scorer", "platon", "window_scorer",
           "DEFAULT_WARMUP_FRACTION", "DEFAULT_FINAL_FRACTION"]

DEFAULT_WARMUP_FRACTION = _gradual.DEFAULT_WARMUP_FRACTION
DEFAULT_FINAL_FRACTION = _gradual.DEFAULT_FINAL_FRACTION


class PlatonScoreState(NamedTuple):
  """PLATON's score state, trees shaped like the prunable params (float32).

  Attributes:
    iwin: running mean of ``|theta' * g|`` over the current window.
    ibar: EMA (``beta1``) of the window means: the sensitivity.
    ubar: EMA (``beta2``) of ``|Iwin - Ibar|``: the uncertainty.
  """
  iwin: Any
  ibar: Any
  ubar: Any


def skip_ema_with_cond() -> bool:
  """Whether the window scorer skips Ibar/Ubar inside windows with a cond.

  True on CPU, where the cond saves memory passes; elsewhere a ``where``
  (a cond would cost a device-to-host round trip every step).
  """
  return jax.default_backend() == "cpu"


def window_scorer(sensitivity: Callable[..., Any], beta1: float, beta2: float,
                  delta_t: int, needs_inner_state: bool = False
                  ) -> transform.Scorer:
  """PLATON's window + EMA smoothing of any per-weight sensitivity.

  Shared by PLATON (``|theta' * g|``) and PINS (``|g * (theta' - eta g)|``).

  Args:
    sensitivity: ``(grads, new_params, params, step, inner_state) -> tree``
      of float32 sensitivities (trees restricted to the prunable leaves).
    beta1: EMA factor of ``Ibar``, in ``[0, 1)``.
    beta2: EMA factor of ``Ubar``, in ``[0, 1)``.
    delta_t: window length, ``>= 1``.
    needs_inner_state: whether ``sensitivity`` reads ``inner_state``.

  Returns:
    A :class:`jaxprune.Scorer` with a :class:`PlatonScoreState` and score
    ``Ibar * Ubar``.
  """
  beta1 = _checks.check_fraction("beta1", beta1)
  beta2 = _checks.check_fraction("beta2", beta2)
  delta_t = _checks.check_int("delta_t", delta_t, minimum=1)

  def init(params):
    zeros = lambda: _common.zeros(params)
    return PlatonScoreState(zeros(), zeros(), zeros())

  def update(state, grads, new_params, params, step, inner_state=None,
             hint=None):
    local = jnp.asarray(step, jnp.int32) % delta_t
    # `hint`: whether this step closes a window, decided on the host
    # (jaxprune.step_kinds); then no cond and no per-step `where` is needed.
    boundary = local == 0 if hint is None else bool(hint)
    lf = local.astype(jnp.float32)
    sens_tree = sensitivity(grads, new_params, params, step, inner_state)

    # Element-wise passes per tensor, in the order Ibar, Ubar, Iwin: each
    # reads the old Iwin before the last overwrites it in place. Ubar reads
    # the new Ibar (equal to the EMA it needs wherever it changes), and Iwin
    # waits for Ubar through `after`: data dependences, without which XLA
    # copies Iwin first (2-3x the cost of the update at BERT-base size on
    # CPU). This order also leaves nothing for XLA:CPU, which does not fuse
    # several outputs into one pass, to materialise between the passes.
    # Weights whose sensitivity is NaN or inf keep their state.
    ok_tree = jax.tree.map(jnp.isfinite, sens_tree)

    # Each EMA is written with one product (x + (1 - b) (y - x)), so
    # that a compiler contracting a * b + c into an FMA has one way to do
    # it: the traced and the hinted step (differently fused programs) then
    # round alike, bit for bit.
    def ema(iwin, ibar, ubar, ok, upd):
      ibar = jnp.where(upd & ok, ibar + (1 - beta1) * (iwin - ibar), ibar)
      ubar = jnp.where(
          upd & ok,
          ubar + (1 - beta2) * (jnp.abs(iwin - ibar) - ubar), ubar)
      return ibar, ubar

    def ema_all(flag, ibar_t, ubar_t):
      out = jax.tree.map(lambda w, b, u, ok: ema(w, b, u, ok, flag),
                         state.iwin, ibar_t, ubar_t, ok_tree)
      is_pair = lambda x: type(x) is tuple  # pylint: disable=unidiomatic-typecheck
      return (jax.tree.map(lambda o: o[0], out, is_leaf=is_pair),
              jax.tree.map(lambda o: o[1], out, is_leaf=is_pair))

    if hint is not None:
      ibar_t, ubar_t = ((ema_all(True, state.ibar, state.ubar)) if boundary
                        else (state.ibar, state.ubar))
    elif skip_ema_with_cond():
      # Ibar and Ubar change only at window boundaries: on CPU a cond that
      # leaves them untouched inside a window saves two passes per step.
      ibar_t, ubar_t = jax.lax.cond(
          boundary, lambda b, u: ema_all(True, b, u), lambda b, u: (b, u),
          state.ibar, state.ubar)
    else:  # GPU/TPU: a cond costs a host round trip; passes are cheap there
      ibar_t, ubar_t = ema_all(boundary, state.ibar, state.ubar)

    def window(iwin, ibar, ubar, sens, ok):
      if hint is None:
        new_iwin = jnp.where(boundary, sens, (iwin * lf + sens) / (lf + 1.0))
      else:
        new_iwin = sens if boundary else (iwin * lf + sens) / (lf + 1.0)
      if hint is None or boundary:  # the EMA passes read the old Iwin
        ok = ok & _common.after(ubar)  # Ubar is computed from the new Ibar
      return jnp.where(ok, new_iwin, iwin)

    iwin_t = jax.tree.map(window, state.iwin, ibar_t, ubar_t, sens_tree,
                          ok_tree)
    return PlatonScoreState(iwin_t, ibar_t, ubar_t)

  def scores(state, new_params):
    del new_params
    return jax.tree.map(lambda b, u: b * u, state.ibar, state.ubar)

  def changes_at(step):
    return jnp.asarray(step, jnp.int32) % delta_t == 0

  return transform.Scorer(init, update, scores, changes_at,
                          needs_inner_state=needs_inner_state,
                          guards_nonfinite=True, step_hint=changes_at)


def platon_scorer(beta1: float = 0.85, beta2: float = 0.95,
                  delta_t: int = 10) -> transform.Scorer:
  """The PLATON scorer (pure functions; see the module docstring).

  Example:
    >>> import jax.numpy as jnp, jaxprune
    >>> sc = jaxprune.platon_scorer(beta1=0.5, beta2=0.5, delta_t=2)
    >>> st = sc.init({"w": jnp.zeros(2)})
    >>> for s, g in enumerate([1.0, 3.0, 2.0]):
    ...   st = sc.update(st, {"w": jnp.full(2, g)}, {"w": jnp.ones(2)}, None, s)
    >>> float(st.ibar["w"][0]), float(st.ubar["w"][0]), float(st.iwin["w"][0])
    (1.0, 0.5, 2.0)
  """

  def sensitivity(grads, new_params, params, step, inner_state):
    del params, step, inner_state
    return jax.tree.map(
        lambda p, g: jnp.abs(p.astype(jnp.float32) * g.astype(jnp.float32)),
        new_params, grads)

  return window_scorer(sensitivity, beta1, beta2, delta_t)


def platon(optimizer: optax.GradientTransformation, *, sparsity: float,
           total_steps: int, warmup_steps: int | None = None,
           final_steps: int | None = None, beta1: float = 0.85,
           beta2: float = 0.95, delta_t: int = 10, where: Any = None,
           granularity: str = "global", persistent_mask: bool = False,
           pattern: Any = None,
           stack_state: bool = True) -> optax.GradientTransformationExtraArgs:
  """PLATON pruning around any optax optimizer.

  Args:
    optimizer: the inner optax transformation.
    sparsity: final fraction of the selected weights that are zero, in
      ``[0, 1)``.
    total_steps: number of optimizer updates in the run (``T``).
    warmup_steps: dense updates before pruning starts (``t_i``); default
      ``round(0.1 * T)``.
    final_steps: last updates held at ``sparsity`` with a mask event every
      step (``t_f``); default ``round(0.3 * T)`` (capped so that
      ``t_i + t_f < T``).
    beta1: EMA factor of the sensitivity, in ``[0, 1)``.
    beta2: EMA factor of the uncertainty, in ``[0, 1)``.
    delta_t: window length; also the spacing of mask events in the cubic
      phase.
    where: prunable leaves: ``None`` (float leaves with ``ndim >= 2``),
      ``"bert"``, ``"vit"``, a callable ``(path, leaf) -> bool`` or a pytree
      of bools.
    granularity: ``"global"`` (one threshold over all selected weights, as in
      the paper) or ``"layer"``.
    pattern: sparsity pattern (:mod:`jaxprune.patterns`): ``None``
      (unstructured, the default), ``"N:M"`` or a ``patterns.Pattern`` such
      as ``patterns.heads_and_neurons(12, preset="bert")``.
    persistent_mask: keep pruned weights at 0 between mask events and zero
      their gradients (default ``False``: the reference behaviour, where
      pruned weights may regrow until the next mask event).
    stack_state: store the masks as one array per shape (few jit buffers,
      the default); ``False`` for leaves of one shape sharded differently
      (see :func:`jaxprune.prune`).

  Returns:
    An optax ``GradientTransformationExtraArgs``.

  Example:
    >>> import jax, jax.numpy as jnp, optax, jaxprune
    >>> params = {"w": jax.random.normal(jax.random.key(0), (16, 16))}
    >>> tx = jaxprune.platon(optax.adamw(1e-2), sparsity=0.75, total_steps=40)
    >>> state = tx.init(params)
    >>> @jax.jit
    ... def step(params, state):
    ...   grads = jax.grad(lambda p: jnp.sum(jnp.sin(p["w"])))(params)
    ...   updates, state = tx.update(grads, state, params)
    ...   return optax.apply_updates(params, updates), state
    >>> for _ in range(40):
    ...   params, state = step(params, state)
    >>> int(jnp.sum(params["w"] == 0))
    192
  """
  scorer = platon_scorer(beta1, beta2, delta_t)
  return _gradual.cubic_prune(
      optimizer, scorer, sparsity=sparsity, total_steps=total_steps,
      warmup_steps=warmup_steps, final_steps=final_steps, delta_t=delta_t,
      where=where, granularity=granularity, persistent_mask=persistent_mask,
      pattern=pattern, stack_state=stack_state)
