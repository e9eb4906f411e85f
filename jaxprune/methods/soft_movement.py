"""Soft movement pruning (Sanh, Wolf, Rush, NeurIPS 2020): learned mask scores.

Every prunable weight ``W`` gets a learned score ``S`` (float32, initialised
to ``score_init``). The forward pass uses ``W * M`` with the binary mask
``M = [sigmoid(S) > tau_t]`` and the straight-through estimator: the
gradient reaching ``S`` is the gradient with respect to ``M``, i.e.
``dL/dS = dL/dW' * W`` (``W' = W * M``), while ``W`` gets ``dL/dW' * M``. At
least ``min_keep`` (0.5%) of each matrix is always kept (its top scores).

``tau_t`` rises cubically from ``initial_threshold`` to ``final_threshold``
(sigmoid space) over the pruning window, and the loss gains the regulariser
``lambda_t * mean_over_matrices(sum(sigmoid(S)) / numel)`` with
``lambda_t = final_lambda * tau_t / final_threshold``. The final sparsity is
not set directly: ``final_lambda`` controls it (Sanh et al. report e.g. 400
for ~10% remaining weights on SQuAD).

Nothing in the model changes: the masked weights are computed from
``{"params", "scores"}`` before ``apply``, so Hugging Face Flax BERT and ViT
run unmodified. Train ``{"params": params, "scores": scores}`` with
:func:`optimizer` (the scores have their own optimizer, Adam 1e-2 in the
authors' examples).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxprune import _checks
from jaxprune import selection
from jaxprune import where as where_lib

__all__ = ["SoftMovement", "soft_movement", "optimizer"]

#: Defaults from the authors' SQuAD example (as :func:`jaxprune.movement`).
DEFAULT_WARMUP_FRACTION = 0.1
DEFAULT_FINAL_FRACTION = 0.2


class SoftMovement(NamedTuple):
  """Soft movement pruning as pure functions.

  Attributes:
    init: ``params -> scores``: float32 ``score_init`` on the prunable leaves,
      ``optax.MaskedNode()`` elsewhere.
    apply: ``(params, scores, step) -> params`` with ``W * M`` on the prunable
      leaves (straight-through gradient to the scores).
    masks: ``(scores, step) -> tree`` of bool keep-masks.
    threshold: ``step -> tau_t`` (float32, sigmoid space).
    regularizer: ``(scores, step) -> lambda_t * mean(sum(sigmoid(S))/numel)``.
    wrap_loss: ``loss_fn -> loss_fn`` over ``{"params", "scores"}``, reading
      the step from ``batch["step"]`` (a scalar or one per example) and
      adding the regulariser.
  """
  init: Callable[[Any], Any]
  apply: Callable[[Any, Any, Any], Any]
  masks: Callable[[Any, Any], Any]
  threshold: Callable[[Any], jax.Array]
  regularizer: Callable[[Any, Any], jax.Array]
  wrap_loss: Callable[[Callable], Callable]


def soft_movement(*, total_steps: int, warmup_steps: int | None = None,
                  final_steps: int | None = None,
                  final_threshold: float = 0.1,
                  initial_threshold: float = 0.0, final_lambda: float = 400.0,
                  min_keep: float = 0.005, score_init: float = 0.0,
                  where: Any = None) -> SoftMovement:
  """Builds soft movement pruning for the ``where`` leaves.

  Args:
    total_steps: number of updates ``T``.
    warmup_steps: steps at ``initial_threshold``; default ``round(0.1 T)``.
    final_steps: last steps at ``final_threshold``; default ``round(0.2 T)``.
    final_threshold: ``tau`` at the end, in ``[0, 1)`` (sigmoid space).
    initial_threshold: ``tau`` before the ramp, ``<= final_threshold``.
    final_lambda: regulariser weight at the end, ``>= 0``.
    min_keep: fraction of each matrix always kept, in ``[0, 1)``.
    score_init: initial score (``sigmoid(0) = 0.5``: everything kept).
    where: prunable leaves (see :func:`jaxprune.platon`).

  Returns:
    A :class:`SoftMovement`.

  Example:
    >>> import jax, jax.numpy as jnp, jaxprune
    >>> sm = jaxprune.soft_movement(total_steps=100)
    >>> params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
    >>> scores = sm.init(params)
    >>> scores = {"w": jnp.array([[-3.0, 1.0], [2.0, -1.0]]), "b": scores["b"]}
    >>> sm.apply(params, scores, 100)["w"]  # sigmoid(S) > 0.1 at the end
    Array([[0., 1.],
           [1., 1.]], dtype=float32)
  """
  total, t_i, t_f = _checks.check_step_counts(
      total_steps, warmup_steps, final_steps, DEFAULT_WARMUP_FRACTION,
      DEFAULT_FINAL_FRACTION)
  final_threshold = _checks.check_fraction("final_threshold", final_threshold)
  initial_threshold = _checks.check_fraction("initial_threshold",
                                             initial_threshold)
  if initial_threshold > final_threshold:
    raise ValueError("`initial_threshold` must be <= `final_threshold`, got "
                     f"{initial_threshold} > {final_threshold}")
  if not (np.isfinite(final_lambda) and final_lambda >= 0):
    raise ValueError(f"`final_lambda` must be a number >= 0, got "
                     f"{final_lambda!r}")
  min_keep = _checks.check_fraction("min_keep", min_keep)
  length = total - t_i - t_f

  def threshold(step):
    step = jnp.asarray(step, jnp.int32)
    frac = jnp.clip((step - t_i).astype(jnp.float32) / length, 0.0, 1.0)
    mid = final_threshold + (initial_threshold - final_threshold) * (
        1.0 - frac) ** 3
    out = jnp.where(step <= t_i, initial_threshold,
                    jnp.where(step > total - t_f, final_threshold, mid))
    return out.astype(jnp.float32)

  def init(params):
    flags = where_lib.resolve(where, params)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    return treedef.unflatten([
        jnp.full(x.shape, score_init, jnp.float32) if f else optax.MaskedNode()
        for x, f in zip(leaves, flags)])

  def leaf_mask(s, tau):
    hard = jax.nn.sigmoid(s) > tau
    n_min = int(min_keep * s.size)
    if n_min == 0:
      return hard

    def top(_):  # keep the n_min highest scores (exact, ties by position)
      keep, _ = selection.prune_masks([s], jnp.array([s.size - n_min]),
                                      [0], 1)
      return keep[0]

    return jax.lax.cond(jnp.sum(hard) < n_min, top, lambda _: hard, None)

  def masks(scores, step):
    tau = threshold(step)
    return jax.tree.map(lambda s: leaf_mask(s, tau), scores)

  def apply(params, scores, step):
    tau = threshold(step)

    def one(p, s):
      if isinstance(s, optax.MaskedNode):
        return p
      s_const = jax.lax.stop_gradient(s)
      m = leaf_mask(s_const, tau).astype(jnp.float32)
      m = m + (s - s_const)   # forward m, d m / d S = 1 (straight through)
      return (p * m.astype(p.dtype)).astype(p.dtype)

    is_masked = lambda x: isinstance(x, optax.MaskedNode)
    return jax.tree.map(one, params, scores, is_leaf=is_masked)

  def regularizer(scores, step):
    terms = [jnp.sum(jax.nn.sigmoid(s)) / s.size
             for s in jax.tree_util.tree_leaves(scores)]
    lam = (final_lambda * threshold(step) / final_threshold
           if final_threshold > 0 else jnp.float32(0.0))
    return lam * sum(terms) / max(1, len(terms))

  def wrap_loss(loss_fn):
    def wrapped(trainable, batch, rng):
      # A scalar, or one entry per example (all equal) so that the batch
      # splits over devices like its other entries.
      step = jnp.asarray(batch["step"]).reshape(-1)[0]
      eff = apply(trainable["params"], trainable["scores"], step)
      loss, aux = loss_fn(eff, batch, rng)
      reg = regularizer(trainable["scores"], step)
      return loss + reg, {**aux, "regularizer": reg}
    return wrapped

  # Jitted so that eager calls (evaluation, export) do not run the min-keep
  # selection op by op; inside a jitted loss they inline.
  return SoftMovement(init, jax.jit(apply), jax.jit(masks), threshold,
                      regularizer, wrap_loss)


def optimizer(params_tx: optax.GradientTransformation,
              scores_tx: optax.GradientTransformation | None = None
              ) -> optax.GradientTransformation:
  """``params_tx`` on ``trainable["params"]``, ``scores_tx`` on the scores.

  ``scores_tx`` defaults to ``optax.adam(1e-2)`` (the authors' score LR).

  Example:
    >>> import optax, jaxprune
    >>> tx = jaxprune.methods.soft_movement.optimizer(optax.adamw(3e-5))
  """
  scores_tx = scores_tx if scores_tx is not None else optax.adam(1e-2)
  return optax.multi_transform(
      {"params": params_tx, "scores": scores_tx},
      lambda tree: {k: k for k in tree})
