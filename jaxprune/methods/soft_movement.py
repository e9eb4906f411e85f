"""Movement pruning with learned scores (Sanh, Wolf, Rush, NeurIPS 2020).

Every prunable weight ``W`` gets a learned score ``S`` (float32, initialised
to the constant ``score_init``, the authors' default, so that the ranking
comes from learned movement only). The forward pass uses ``W' = W * M(S)``
with a binary mask ``M`` and the straight-through estimator: the mask is the
identity in the backward pass, so ``dL/dS = dL/dW' * W`` and
``dL/dW = dL/dW' * M``. The dense ``W`` stays behind the mask: a weight
masked at one step keeps its value and comes back with it when its score
rises again. Two masks, on the same machinery:

* :func:`topk_movement` (hard movement, the authors' ``topK``): ``M`` keeps
  the top ``1 - p_t`` fraction of each matrix's scores (exactly
  ``N - floor(N p_t)`` entries), ``p_t`` on the cubic schedule (dense for
  ``warmup_steps``, cubic ramp, ``final_steps`` at the target). No
  regulariser. Default ``where``: :func:`jaxprune.where.bert_kernels`.
* :func:`soft_movement` (the authors' ``sigmoied_threshold``):
  ``M = [sigmoid(S) > tau_t]``, ``tau_t`` cubic from ``initial_threshold``
  to ``final_threshold`` (sigmoid space), plus the regulariser
  ``lambda_t * mean_over_matrices(sum(sigmoid(S)) / numel)`` with
  ``lambda_t = final_lambda * tau_t / final_threshold``. At least
  ``min_keep`` (0.5%) of each matrix is always kept (its top scores). The
  final sparsity is not set directly: ``final_lambda`` controls it (Sanh et
  al. report e.g. 400 for ~10% remaining weights on SQuAD).

Nothing in the model changes: the masked weights are computed from
``{"params", "scores"}`` before ``apply`` (:attr:`MovementMasks.wrap_loss`),
so our BERT and ViT (:mod:`jaxprune.models`) run unmodified. Train
``{"params": params, "scores": scores}`` with :func:`optimizer`: the scores
have their own Adam (the authors: 1e-2, on the weights' learning-rate
schedule shape, no weight decay: :func:`scores_optimizer`).

The step ``t`` comes from ``batch["step"]`` (a scalar or one entry per
example, so that it splits over devices like the rest of the batch).
:func:`jaxprune.movement` is a different, first-order method: it
accumulates ``-sum_t theta_t g_t`` in the optimizer state with pruned
weights set to 0 (no learned scores, no Adam on the scores).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxprune import _checks
from jaxprune import patterns as patterns_lib
from jaxprune import schedules
from jaxprune import selection
from jaxprune import where as where_lib

__all__ = ["MovementMasks", "SoftMovement", "soft_movement", "topk_movement",
           "optimizer", "scores_optimizer"]

#: Defaults from the authors' SQuAD example (as :func:`jaxprune.movement`):
#: the threshold stays at its initial value for ``initial_warmup *
#: warmup_steps`` = 5400 of ~55k steps (~10%) and at its final value for the
#: last ``final_warmup * warmup_steps`` = 10800 (~20%).
DEFAULT_WARMUP_FRACTION = 0.1
DEFAULT_FINAL_FRACTION = 0.2

#: The authors' Adam learning rate of the scores (``mask_scores_learning_rate``).
DEFAULT_SCORES_LR = 1e-2


class MovementMasks(NamedTuple):
  """Learned-score movement pruning (soft or top-k) as pure functions.

  Attributes:
    init: ``params -> scores``: float32 ``score_init`` on the prunable leaves,
      ``optax.MaskedNode()`` elsewhere.
    apply: ``(params, scores, step) -> params`` with ``W * M`` on the prunable
      leaves (straight-through gradient to the scores). Jitted; at a step
      ``>= total_steps`` it gives the final pruned params (exact zeros).
    masks: ``(scores, step) -> tree`` of bool keep-masks (``MaskedNode``
      where not prunable).
    threshold: ``step -> float32``: soft movement's ``tau_t`` (sigmoid
      space); top-k movement's kept fraction ``1 - p_t`` (what the authors'
      code calls the threshold of ``topK``).
    regularizer: ``(scores, step) -> float32`` added to the loss (soft:
      ``lambda_t * mean(sum(sigmoid(S))/numel)``; top-k: 0).
    wrap_loss: ``loss_fn -> loss_fn`` over ``{"params", "scores"}``: reads
      the step from ``batch["step"]``, runs ``loss_fn`` on
      ``apply(params, scores, step)`` and adds the regulariser (soft:
      also reported as ``aux["regularizer"]``). Extra positional arguments
      after ``rng`` (e.g. the frozen teacher params of
      :func:`jaxprune.train.make_train_step`) are passed through.
  """
  init: Callable[[Any], Any]
  apply: Callable[[Any, Any, Any], Any]
  masks: Callable[[Any, Any], Any]
  threshold: Callable[[Any], jax.Array]
  regularizer: Callable[[Any, Any], jax.Array]
  wrap_loss: Callable[[Callable], Callable]


#: The former name of :class:`MovementMasks` (soft movement returns it).
SoftMovement = MovementMasks


def _is_masked(x) -> bool:
  return isinstance(x, optax.MaskedNode)


def _build(where: Any, score_init: float, threshold: Callable,
           leaf_masks: Callable, regularizer: Callable | None
           ) -> MovementMasks:
  """The machinery shared by soft and top-k movement.

  ``leaf_masks(paths, scores, step)`` gets the ``/``-joined paths and the
  float32 scores of the prunable leaves (in flatten order, no gradient) and
  returns their bool keep-masks.
  """
  if not np.isfinite(score_init):
    raise ValueError(f"`score_init` must be a finite number, got "
                     f"{score_init!r}")

  def init(params):
    flags = where_lib.resolve(where, params)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    return treedef.unflatten([
        jnp.full(x.shape, score_init, jnp.float32) if f else optax.MaskedNode()
        for x, f in zip(leaves, flags)])

  def masks(scores, step):
    # MaskedNode has no leaves: the flat list holds the prunable leaves only.
    flat, treedef = jax.tree_util.tree_flatten_with_path(scores)
    paths = [where_lib.path_str(p) for p, _ in flat]
    leaves = [jax.lax.stop_gradient(s).astype(jnp.float32) for _, s in flat]
    return treedef.unflatten(leaf_masks(paths, leaves, step))

  def apply(params, scores, step):
    keep = masks(scores, step)

    def one(p, s, m):
      if _is_masked(s):
        return p
      m = m.astype(jnp.float32)
      m = m + (s - jax.lax.stop_gradient(s))  # forward M, dM/dS = 1 (STE)
      return (p * m.astype(p.dtype)).astype(p.dtype)

    return jax.tree.map(one, params, scores, keep, is_leaf=_is_masked)

  def reg_fn(scores, step):
    if regularizer is None:
      return jnp.float32(0.0)
    return regularizer(jax.tree_util.tree_leaves(scores), step)

  def wrap_loss(loss_fn):
    def wrapped(trainable, batch, rng, *extra):
      # A scalar, or one entry per example (all equal) so that the batch
      # splits over devices like its other entries.
      step = jnp.asarray(batch["step"]).reshape(-1)[0]
      eff = apply(trainable["params"], trainable["scores"], step)
      loss, aux = loss_fn(eff, batch, rng, *extra)
      if regularizer is None:
        return loss, aux
      reg = reg_fn(trainable["scores"], step)
      return loss + reg, {**aux, "regularizer": reg}
    return wrapped

  # Jitted so that eager calls (evaluation, export) do not run the
  # selection op by op; inside a jitted loss they inline.
  return MovementMasks(init, jax.jit(apply), jax.jit(masks), threshold,
                       reg_fn, wrap_loss)


def soft_movement(*, total_steps: int, warmup_steps: int | None = None,
                  final_steps: int | None = None,
                  final_threshold: float = 0.1,
                  initial_threshold: float = 0.0, final_lambda: float = 400.0,
                  min_keep: float = 0.005, score_init: float = 0.0,
                  where: Any = None) -> SoftMovement:
  """Soft movement pruning (threshold on ``sigmoid(S)``) for ``where``.

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

  def leaf_masks(paths, leaves, step):
    del paths
    tau = threshold(step)
    masks = [jax.nn.sigmoid(s) > tau for s in leaves]
    # Leaves whose hard mask keeps fewer than ``n_min = int(min_keep N)``
    # entries keep their n_min highest scores instead (exact, ties by
    # position): one grouped selection (one group per leaf) under one
    # ``cond`` for all of them, not a cond and a search per leaf (on a GPU
    # every cond is a host synchronisation).
    idx = [i for i, s in enumerate(leaves) if int(min_keep * s.size) > 0]
    if not idx:
      return masks
    n_min = [int(min_keep * leaves[i].size) for i in idx]
    short = jnp.stack([jnp.sum(masks[i], dtype=jnp.int32) < n
                       for i, n in zip(idx, n_min)])

    def top(_):
      keep, _ = selection.prune_masks(
          [leaves[i] for i in idx],
          jnp.array([leaves[i].size - n for i, n in zip(idx, n_min)],
                    jnp.int32), list(range(len(idx))), len(idx))
      return [jnp.where(short[j], keep[j], masks[i])
              for j, i in enumerate(idx)]

    chosen = jax.lax.cond(jnp.any(short), top,
                          lambda _: [masks[i] for i in idx], None)
    for j, i in enumerate(idx):
      masks[i] = chosen[j]
    return masks

  def regularizer(leaves, step):
    terms = [jnp.sum(jax.nn.sigmoid(s)) / s.size for s in leaves]
    lam = (final_lambda * threshold(step) / final_threshold
           if final_threshold > 0 else jnp.float32(0.0))
    return lam * sum(terms) / max(1, len(terms))

  return _build(where, score_init, threshold, leaf_masks, regularizer)


def topk_movement(*, sparsity: float, total_steps: int,
                  warmup_steps: int | None = None,
                  final_steps: int | None = None,
                  granularity: str = "layer", pattern: Any = None,
                  score_init: float = 0.0,
                  where: Any = "bert_kernels") -> MovementMasks:
  """Movement pruning as Sanh et al. define it: learned scores, top-k masks.

  The model runs on ``W * M(S)``, ``M`` the top ``1 - p_t`` fraction of each
  matrix's scores: ``floor(N p_t)`` of the ``N`` entries are masked, the
  lowest scores, ties broken by position (row-major); ``p_t`` is the cubic
  schedule (:func:`jaxprune.schedules.cubic`: ``p_t = 0`` for
  ``t <= warmup_steps``, ``p (1 - (1 - (t - t_i) / (T - t_i - t_f))^3)``
  in between, ``p`` for the last ``final_steps``; at the target the count
  is ``int(N p)`` in float64). The scores get the straight-through
  gradient ``dL/dS = dL/dW' * W`` and are trained by their own optimizer
  (:func:`optimizer`, :func:`scores_optimizer`: Adam 1e-2 on the weights'
  schedule shape in the authors' code); the dense ``W`` stays behind the
  mask and comes back with its value when its score rises.

  Differences from the authors' ``TopKBinarizer``: they keep
  ``int((1 - p_t) N)`` entries (we prune ``floor(N p_t)``: the kept count
  can differ by one where ``N p_t`` is not an integer), and their ties are
  broken by an unstable sort.

  Args:
    sparsity: final masked fraction ``p`` of each matrix, in ``[0, 1)``
      (the authors' ``final_threshold`` is ``1 - p``).
    total_steps: number of updates ``T``.
    warmup_steps: dense steps ``t_i``; default ``round(0.1 T)`` (the
      authors' ``initial_warmup * warmup_steps`` on SQuAD).
    final_steps: last steps at the target ``t_f``; default ``round(0.2 T)``.
    granularity: ``"layer"`` (the authors' default: top-k per matrix) or
      ``"global"`` (one ranking over all matrices, their ``--global_topk``).
    pattern: sparsity pattern (:mod:`jaxprune.patterns`), default
      unstructured.
    score_init: the constant initial score (the authors' ``mask_init
      constant``, ``mask_scale 0``).
    where: prunable leaves (see :mod:`jaxprune.where`); default the Q, K,
      V, attention-output and both FFN *kernels* of every BERT layer (no
      biases, LayerNorms, embeddings, pooler or head), as the authors.

  Returns:
    A :class:`MovementMasks` (``threshold(step)`` is the kept fraction
    ``1 - p_t``; ``regularizer`` is 0).

  Example:
    >>> import jax.numpy as jnp, jaxprune
    >>> tm = jaxprune.topk_movement(sparsity=0.5, total_steps=10, where=None)
    >>> params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
    >>> scores = {"w": jnp.array([[3.0, -1.0], [0.5, 2.0]]),
    ...           "b": tm.init(params)["b"]}
    >>> tm.apply(params, scores, 10)["w"]   # the 2 highest scores are kept
    Array([[1., 0.],
           [0., 1.]], dtype=float32)
  """
  if granularity not in ("global", "layer"):
    raise ValueError(
        f"`granularity` must be 'global' or 'layer', got {granularity!r}")
  total, t_i, t_f = _checks.check_step_counts(
      total_steps, warmup_steps, final_steps, DEFAULT_WARMUP_FRACTION,
      DEFAULT_FINAL_FRACTION)
  schedule = schedules.cubic(sparsity, total, t_i, t_f, delta_t=1)
  target = float(schedule.target)
  pattern = patterns_lib.resolve(pattern)
  if pattern.check_target is not None:
    pattern.check_target(target)

  def threshold(step):
    return (1.0 - schedule.sparsity(step)).astype(jnp.float32)

  def leaf_masks(paths, leaves, step):
    layout = pattern.bind(paths, [tuple(s.shape) for s in leaves],
                          granularity, target)
    frac = schedule.sparsity(step)
    k = layout.k(frac, frac == jnp.float32(target))
    keep, _ = layout.select(leaves, k)
    return keep

  return _build(where, score_init, threshold, leaf_masks, None)


def scores_optimizer(learning_rate: float = DEFAULT_SCORES_LR, *,
                     weights_schedule: Callable | None = None,
                     weights_lr: float | None = None
                     ) -> optax.GradientTransformation:
  """Adam for the scores, optionally on the weights' schedule shape.

  The authors train the scores with (Adam)W at ``mask_scores_learning_rate``
  (1e-2), no weight decay, ``eps`` 1e-8, and the same linear warm-up and
  decay multiplier as the weights: the scores' rate at step ``s`` is
  ``learning_rate * weights_schedule(s) / weights_lr``.

  Args:
    learning_rate: the scores' peak learning rate.
    weights_schedule: the weights' learning-rate schedule (``step -> lr``),
      or ``None`` for a constant rate.
    weights_lr: the weights' peak learning rate (the schedule's scale);
      required with ``weights_schedule``.

  Returns:
    An optax transformation for the scores.

  Example:
    >>> import optax, jaxprune
    >>> from jaxprune.methods import soft_movement as sm
    >>> lr = optax.linear_schedule(3e-5, 0.0, 100)
    >>> tx = sm.optimizer(optax.adamw(lr),
    ...                   sm.scores_optimizer(weights_schedule=lr,
    ...                                       weights_lr=3e-5))
  """
  if not (np.isfinite(learning_rate) and learning_rate > 0):
    raise ValueError(f"`learning_rate` must be a number > 0, got "
                     f"{learning_rate!r}")
  if weights_schedule is None:
    return optax.adam(learning_rate)
  if not callable(weights_schedule):
    raise ValueError("`weights_schedule` must be a callable step -> lr, got "
                     f"{weights_schedule!r}")
  if weights_lr is None or not (np.isfinite(weights_lr) and weights_lr > 0):
    raise ValueError("`weights_lr` (the weights' peak learning rate) must be "
                     f"a number > 0 with `weights_schedule`, got {weights_lr!r}")
  scale = learning_rate / weights_lr
  return optax.adam(lambda step: scale * weights_schedule(step))


def optimizer(params_tx: optax.GradientTransformation,
              scores_tx: optax.GradientTransformation | None = None
              ) -> optax.GradientTransformation:
  """``params_tx`` on ``trainable["params"]``, ``scores_tx`` on the scores.

  ``scores_tx`` defaults to ``optax.adam(1e-2)`` (the authors' score LR,
  constant; :func:`scores_optimizer` follows the weights' schedule).
  Gradient clipping chained before this sees both trees, as in the authors'
  code (``clip_grad_norm_`` over all parameters, scores included).

  Example:
    >>> import optax, jaxprune
    >>> tx = jaxprune.methods.soft_movement.optimizer(optax.adamw(3e-5))
  """
  scores_tx = (scores_tx if scores_tx is not None
               else optax.adam(DEFAULT_SCORES_LR))
  return optax.multi_transform(
      {"params": params_tx, "scores": scores_tx},
      lambda tree: {k: k for k in tree})
