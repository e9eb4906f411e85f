"""Methods that need more than gradients and weights, for the experiment scripts.

``plan(method, ...)`` returns what a training run needs: the optax
transformation, the tree it trains, the loss, per-step batch additions, how
to read the model params back, and an evaluation hook. Methods:

* ``movement`` (Sanh et al.'s top-k movement) and ``soft_movement``: train
  ``{"params", "scores"}``; the loss sees ``W * mask(scores)`` (soft
  movement adds its regulariser); ``batch["step"]`` drives the schedule;
  the scores have their own Adam (top-k: on the weights' schedule shape).
* ``cam_cut`` / ``smooth_cut``: single shot (DeepCuts): scores from the
  dense fine-tuned params over ``score_batches``, per-tensor masks, rewind
  to the pretrained params, fine-tune with the mask fixed.
* ``pins_sr``: PINS plus self-regularisation toward the best checkpoint so
  far on a held-out split of the training data (``on_eval``).

Example:
  >>> from experiments import model_aware
  >>> "soft_movement" in model_aware.METHODS
  True
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxprune
from experiments import methods as methods_lib
from jaxprune import train
from jaxprune.methods import deepcuts
from jaxprune.methods import soft_movement as soft_movement_lib
from jaxprune.train import capture
from jaxprune.train import selfreg

METHODS = ("movement", "soft_movement", "cam_cut", "smooth_cut", "pins_sr")


class Plan(NamedTuple):
  """Everything a run of one model-aware method needs.

  Attributes:
    tx: the optax transformation.
    start: the tree to train (params, or ``{"params", "scores"}``).
    loss_fn: ``(trainable, batch, rng) -> (loss, aux)``.
    batch: ``(batch, step) -> batch`` with per-step additions.
    to_params: ``(trainable, step) -> params`` of the model (exact zeros).
    on_eval: ``params -> None`` called at evaluations (teacher refresh), or
      ``None``.
    info: what to record about the method's settings.
  """
  tx: optax.GradientTransformation
  start: Any
  loss_fn: Callable
  batch: Callable[[dict, int], dict]
  to_params: Callable[[Any, int], Any]
  on_eval: Callable[[Any], None] | None
  info: dict


def _copy(tree):
  return jax.tree.map(jnp.array, tree)


def single_shot_scores(method: str, loss_fn: Callable, params: Any,
                       batches: Iterable[dict], rng: jax.Array, where: Any,
                       shift: float | None = None) -> Any:
  """Cam-Cut or Smooth-Cut scores of ``params`` summed over ``batches``."""
  if method == "cam_cut":
    fn = jax.jit(capture.grads_and_activations(loss_fn))
  else:
    fn = jax.jit(capture.noisy_mean_grads(loss_fn))
  total = None
  for i, batch in enumerate(batches):
    out = fn(params, batch, jax.random.fold_in(rng, i))
    sc = (deepcuts.cam_cut_scores(params, *out, where=where, shift=shift)
          if method == "cam_cut"
          else deepcuts.smooth_cut_scores(params, out, where=where))
    total = sc if total is None else jax.tree.map(jnp.add, total, sc)
  return total


def plan(method: str, *, model: Any, params0: Any, learning_rate: Callable,
         sparsity: float, total_steps: int, where: Any, num_examples: int,
         weight_decay: float = 0.01, clip_norm: float = 1.0,
         dense_params: Any = None, score_batches: Iterable[dict] = (),
         heldout_accuracy: Callable[[Any], float] | None = None,
         final_lambda: float = 400.0, final_threshold: float = 0.1,
         scores_lr: float = 1e-2, rng: jax.Array | None = None,
         loss_fn: Callable | None = None, classification: bool = True,
         optimizer: optax.GradientTransformation | None = None,
         method_args: dict | None = None, peak_learning_rate: float = 1.0,
         train_loss_fn: Callable | None = None) -> Plan:
  """Builds the :class:`Plan` of ``method`` for a classification model.

  Args:
    method: one of :data:`METHODS`.
    model: the classification model (a :class:`jaxprune.models.FunctionalModel`
      or anything with its call signature).
    params0: the pretrained params (the rewind point for single shot).
    learning_rate: the inner AdamW's schedule.
    sparsity: target sparsity (soft movement: not set directly; its
      ``final_lambda`` decides).
    total_steps: updates in the run.
    where: prunable leaves.
    num_examples: training-set size.
    weight_decay, clip_norm: the inner AdamW's decay and the clipping
      (``clip_norm=None``: none).
    dense_params: the dense fine-tuned params (single shot).
    score_batches: batches to score on (single shot).
    heldout_accuracy: ``params -> accuracy`` on held-out training data
      (``pins_sr``'s teacher refresh).
    final_lambda, final_threshold: soft movement's regulariser and threshold.
    scores_lr: soft movement's Adam learning rate for the scores (the
      authors' 1e-2; Adam moves a score by about ``scores_lr`` per step, so
      short runs need more to reach a high sparsity).
    rng: PRNG key for the noisy passes.
    loss_fn: the task's ``(params, batch, rng) -> (loss, aux)``; default:
      cross-entropy of ``model``'s logits.
    classification: whether ``model`` has a classification head (logits
      over classes); ``pins_sr``'s distillation needs one.
    optimizer: the run's inner optimizer (replaces the AdamW built from
      ``learning_rate`` and ``weight_decay``; the experiment runner passes
      the config's, e.g. MT-DNN's Adamax).
    method_args: more keyword arguments of the method's factory
      (``movement``: :func:`jaxprune.topk_movement`, ``soft_movement``,
      ``pins_sr``: :func:`jaxprune.pins`).
    peak_learning_rate: the peak of ``learning_rate`` (top-k movement's
      scores follow its shape at ``scores_lr``).
    train_loss_fn: the loss to train with when it differs from ``loss_fn``
      (which single shot scores with), e.g. a distillation loss
      ``(params, batch, rng, teacher)``.
  """
  base_loss = loss_fn or train.hf.classification_loss(model)
  train_loss = train_loss_fn or base_loss
  inner = optimizer if optimizer is not None else optax.adamw(
      learning_rate, weight_decay=weight_decay)
  extra = dict(method_args or {})

  def clip(tx):
    if clip_norm is None:
      return tx
    return optax.chain(optax.clip_by_global_norm(clip_norm), tx)

  same = lambda b, s: b

  def with_step(b, s):
    # The step goes in per example, so that the batch splits like any
    # other batch entry under pmap and sharding.
    return {**b, "step": np.full((len(jax.tree.leaves(b)[0]),), s, np.int32)}

  if method == "movement":
    tm = jaxprune.topk_movement(**{
        "sparsity": sparsity, "total_steps": total_steps, "where": where,
        **extra})
    tx = clip(soft_movement_lib.optimizer(
        inner, soft_movement_lib.scores_optimizer(
            scores_lr, weights_schedule=learning_rate,
            weights_lr=peak_learning_rate)))
    return Plan(tx, {"params": _copy(params0), "scores": tm.init(params0)},
                tm.wrap_loss(train_loss), with_step,
                lambda t, s: tm.apply(t["params"], t["scores"], s), None,
                {"scores_lr": scores_lr})
  if method == "soft_movement":
    sm = jaxprune.soft_movement(**{
        "total_steps": total_steps, "where": where,
        "final_lambda": final_lambda, "final_threshold": final_threshold,
        **extra})
    tx = clip(soft_movement_lib.optimizer(inner, optax.adam(scores_lr)))
    start = {"params": _copy(params0), "scores": sm.init(params0)}
    return Plan(tx, start, sm.wrap_loss(train_loss), with_step,
                lambda t, s: sm.apply(t["params"], t["scores"], s), None,
                {"final_lambda": final_lambda,
                 "final_threshold": final_threshold, "scores_lr": scores_lr})
  if method in ("cam_cut", "smooth_cut"):
    if dense_params is None:
      raise ValueError(f"{method} needs `dense_params` (a fine-tuned model)")
    scores = single_shot_scores(method, base_loss, dense_params,
                                score_batches,
                                rng if rng is not None else jax.random.key(0),
                                where)
    masks = deepcuts.masks_from_scores(scores, sparsity)
    tx = clip(deepcuts.fixed_mask(inner, scores, sparsity=sparsity,
                                  where=where))
    # A copy: rewind returns params0's own arrays outside the mask, and the
    # train step donates (the caller may reuse params0).
    return Plan(tx, _copy(deepcuts.rewind(params0, masks)), train_loss, same,
                lambda t, s: t, None, {"granularity": "layer"})
  if method == "pins_sr":
    if not classification:
      raise ValueError("`method` pins_sr distils class probabilities and "
                       "needs a classification head (not regression or "
                       "span prediction); use pins there")
    if heldout_accuracy is None:
      raise ValueError("pins_sr needs `heldout_accuracy` for the teacher")
    tx = methods_lib.make_tx("pins", learning_rate=learning_rate,
                             sparsity=sparsity, total_steps=total_steps,
                             where=where, weight_decay=weight_decay,
                             clip_norm=clip_norm, optimizer=optimizer,
                             **extra)
    teacher = selfreg.BestTeacher(train.hf.classification_logits(model),
                                  params0)
    loss_fn = selfreg.classification_loss(train.hf.train_logits(model))
    return Plan(tx, _copy(params0), loss_fn,
                lambda b, s: teacher.with_teacher_logits(b), lambda t, s: t,
                lambda p: teacher.observe(p, heldout_accuracy(p)),
                {"temperature": 2.0, "teacher": teacher})
  raise ValueError(f"`method` must be one of {METHODS}, got {method!r}")
