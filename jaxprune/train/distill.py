"""Knowledge distillation from a frozen teacher, for every pruning method.

Classification (Hinton, Vinyals, Dean 2015), per example ``i`` with student
logits ``z``, teacher logits ``u`` and temperature ``T``:

    loss = (1 - alpha) * CE(z, y) + alpha * T**2 * KL(softmax(u/T) || softmax(z/T))

averaged over the examples (every leading axis: tokens too). Regression:
``(1 - alpha) * MSE(z, y) + alpha * MSE(z, u)``.

Defaults ``T = 2``, ``alpha = 0.5``: the defaults of Sanh et al.'s movement
pruning scripts (``masked_run_glue.py``/``masked_run_squad.py`` in Hugging
Face's ``examples/research_projects/movement-pruning``: ``--temperature 2.0
--alpha_ce 0.5 --alpha_distil 0.5``, KL with ``batchmean`` times ``T**2``,
as here). oBERT (Kurtic et al. 2022) uses ``T = 2`` with ``hardness 1.0``,
i.e. ``alpha = 1`` (distillation only; SparseML's ``DistillationModifier``
computes ``(1 - hardness) * loss + hardness * T**2 * KL``), e.g. in its
``30epochs_unstructured90_qqp.yaml`` recipe. Their regression tasks (STS-B)
get no distillation from the softmax of a single logit; the MSE form here
is the usual substitute.

The teacher runs inside the same jitted train step (eval mode, no dropout,
no gradient), its params a *frozen* input of the step, not part of the
trained tree, so the pruning transformation never sees it:

>>> import jax, jax.numpy as jnp, optax, jaxprune
>>> from jaxprune import train
>>> from jaxprune.train import distill
>>> student = lambda p, b, r: b["x"] @ p["w"]            # (params, batch, rng)
>>> teacher = lambda p, b: b["x"] @ p["w"]               # (params, batch)
>>> loss_fn = distill.with_teacher(student, teacher, temperature=2.0, alpha=0.5)
>>> params, t_params = {"w": jnp.ones((3, 2))}, {"w": jnp.eye(3)[:, :2]}
>>> tx = jaxprune.magnitude(optax.sgd(0.1), sparsity=0.5, total_steps=4)
>>> step = train.make_train_step(loss_fn, tx, frozen=t_params)
>>> state = tx.init(params)
>>> batch = {"x": jnp.ones((4, 3)), "labels": jnp.array([0, 1, 0, 1])}
>>> params, state, m = step(params, state, batch, jax.random.key(0), 0)
>>> sorted(m)
['accuracy', 'ce', 'distill', 'kind_mismatch', 'loss']

With a pruning method that trains ``{"params", "scores"}`` (soft or top-k
movement), wrap the distillation loss: ``mm.wrap_loss(loss_fn)`` passes the
teacher through.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["distillation_loss", "regression_distillation_loss",
           "with_teacher", "classification_loss"]

#: Sanh et al.'s script defaults (``--temperature``, ``--alpha_distil``).
DEFAULT_TEMPERATURE = 2.0
DEFAULT_ALPHA = 0.5


def _check(temperature: float, alpha: float) -> None:
  if not (np.isfinite(temperature) and temperature > 0):
    raise ValueError(f"`temperature` must be a number > 0, got "
                     f"{temperature!r}")
  if not (np.isfinite(alpha) and 0.0 <= alpha <= 1.0):
    raise ValueError(f"`alpha` must be in [0, 1], got {alpha!r}")


def _kl_terms(student_logits: jax.Array, teacher_logits: jax.Array,
              temperature: float) -> jax.Array:
  """Per example ``T**2 * KL(softmax(u/T) || softmax(z/T))`` (float32)."""
  z = student_logits.astype(jnp.float32) / temperature
  u = jax.lax.stop_gradient(teacher_logits.astype(jnp.float32)) / temperature
  log_p = jax.nn.log_softmax(u)
  log_q = jax.nn.log_softmax(z)
  # log_softmax is finite for finite logits: an underflowed p gives 0 * x.
  return temperature ** 2 * jnp.sum(
      jnp.exp(log_p) * (log_p - log_q), axis=-1)


def distillation_loss(student_logits: jax.Array, teacher_logits: jax.Array,
                      labels: jax.Array | None, *,
                      temperature: float = DEFAULT_TEMPERATURE,
                      alpha: float = DEFAULT_ALPHA) -> jax.Array:
  """``(1 - alpha) CE(z, y) + alpha T**2 KL(softmax(u/T) || softmax(z/T))``.

  Averaged over every axis but the last (the classes). The teacher's logits
  get no gradient.

  Args:
    student_logits: ``z``, ``(..., C)``.
    teacher_logits: ``u``, same shape.
    labels: integer labels ``(...)``; may be ``None`` when ``alpha == 1``.
    temperature: ``T > 0`` (Sanh et al., oBERT: 2).
    alpha: weight of the distillation term, in ``[0, 1]`` (Sanh et al.'s
      default ``alpha_distil`` 0.5; oBERT's ``hardness`` 1).

  Returns:
    The float32 scalar loss.

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxprune.train import distill
    >>> z = jnp.array([[2.0, 0.0]])
    >>> float(distill.distillation_loss(z, z, jnp.array([0]), alpha=1.0))
    0.0
  """
  _check(temperature, alpha)
  if student_logits.shape != teacher_logits.shape:
    raise ValueError("student and teacher logits must have the same shape, "
                     f"got {student_logits.shape} and {teacher_logits.shape}")
  kd = jnp.mean(_kl_terms(student_logits, teacher_logits, temperature))
  if alpha == 1.0:
    return kd
  if labels is None:
    raise ValueError("`labels` is needed unless `alpha` is 1")
  ce = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(
      student_logits.astype(jnp.float32), labels))
  return (1.0 - alpha) * ce + alpha * kd


def regression_distillation_loss(predictions: jax.Array,
                                 teacher_predictions: jax.Array,
                                 targets: jax.Array | None, *,
                                 alpha: float = DEFAULT_ALPHA) -> jax.Array:
  """``(1 - alpha) MSE(pred, y) + alpha MSE(pred, teacher_pred)`` (means).

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxprune.train import distill
    >>> float(distill.regression_distillation_loss(
    ...     jnp.array([1.0]), jnp.array([3.0]), jnp.array([0.0])))
    2.5
  """
  _check(1.0, alpha)
  pred = predictions.astype(jnp.float32)
  teacher = jax.lax.stop_gradient(teacher_predictions.astype(jnp.float32))
  if pred.shape != teacher.shape:
    raise ValueError("student and teacher predictions must have the same "
                     f"shape, got {pred.shape} and {teacher.shape}")
  kd = jnp.mean((pred - teacher) ** 2)
  if alpha == 1.0:
    return kd
  if targets is None:
    raise ValueError("`targets` is needed unless `alpha` is 1")
  mse = jnp.mean((pred - jnp.reshape(targets, pred.shape)) ** 2)
  return (1.0 - alpha) * mse + alpha * kd


def with_teacher(student_fn: Callable, teacher_fn: Callable, *,
                 temperature: float = DEFAULT_TEMPERATURE,
                 alpha: float = DEFAULT_ALPHA, regression: bool = False,
                 labels_key: str = "labels") -> Callable:
  """A distillation loss for the ``frozen`` argument of the train steps.

  Args:
    student_fn: ``(params, batch, rng) -> logits`` (train mode: dropout from
      ``rng``), e.g. :func:`jaxprune.train.hf.train_logits`.
    teacher_fn: ``(teacher_params, batch) -> logits`` (eval mode), e.g.
      :func:`jaxprune.train.hf.classification_logits` of the teacher model.
    temperature: ``T`` (classification only).
    alpha: weight of the distillation term.
    regression: use :func:`regression_distillation_loss` (``labels`` float
      targets, predictions of shape ``(B,)`` or ``(B, 1)``).
    labels_key: the batch entry holding the labels or targets.

  Returns:
    ``loss_fn(params, batch, rng, teacher_params) -> (loss, aux)`` with
    ``aux = {"ce" (or "mse"), "distill", "accuracy" (classification)}``:
    the two terms before weighting (no ``ce``/``mse``/``accuracy`` when
    ``alpha == 1`` and the batch has no labels). Pass it with ``frozen=teacher_params``
    to :func:`jaxprune.train.make_train_step` (or the ``pmap``/sharded
    step).
  """
  _check(temperature, alpha)

  def loss_fn(params, batch, rng, teacher_params):
    z = student_fn(params, batch, rng).astype(jnp.float32)
    u = jax.lax.stop_gradient(
        teacher_fn(teacher_params, batch).astype(jnp.float32))
    y = batch.get(labels_key) if alpha == 1.0 else batch[labels_key]
    if regression:
      z = z.reshape(z.shape[0], -1)
      u = u.reshape(z.shape)
      loss = regression_distillation_loss(z, u, y, alpha=alpha)
      aux = {"distill": jnp.mean((z - u) ** 2)}
      if y is not None:
        aux["mse"] = jnp.mean((z - y.reshape(z.shape)) ** 2)
      return loss, aux
    loss = distillation_loss(z, u, y, temperature=temperature, alpha=alpha)
    aux = {"distill": jnp.mean(_kl_terms(z, u, temperature))}
    if y is not None:
      aux["ce"] = jnp.mean(
          optax.softmax_cross_entropy_with_integer_labels(z, y))
      aux["accuracy"] = jnp.mean(jnp.argmax(z, -1) == y)
    return loss, aux

  return loss_fn


def classification_loss(model: Any, teacher_model: Any, *,
                        temperature: float = DEFAULT_TEMPERATURE,
                        alpha: float = DEFAULT_ALPHA,
                        regression: bool = False) -> Callable:
  """:func:`with_teacher` for two classifiers of :mod:`jaxprune.models`.

  ``model`` (the student, dropout on) and ``teacher_model`` (eval mode) are
  :class:`jaxprune.models.FunctionalModel` or anything with their call
  signature (:mod:`jaxprune.train.hf`); the teacher may be a different
  architecture with the same tokenizer and label set.

  Example:
    >>> from jaxprune import models
    >>> from jaxprune.train import distill
    >>> cfg = models.BertConfig(vocab_size=20, hidden_size=8,
    ...     heads_per_layer=(2,), head_dim=4, intermediate_sizes=(16,),
    ...     num_labels=2)
    >>> m = models.FunctionalModel(models.build(cfg, "sequence_classification"))
    >>> loss_fn = distill.classification_loss(m, m)  # self-distillation
  """
  from jaxprune.train import hf
  return with_teacher(hf.train_logits(model),
                      hf.classification_logits(teacher_model),
                      temperature=temperature, alpha=alpha,
                      regression=regression)
