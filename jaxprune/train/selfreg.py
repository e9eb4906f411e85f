"""PINS self-regularisation: distil toward the best earlier checkpoint.

Per example ``i`` with student logits ``z``, teacher logits ``u``, ``C``
classes and temperature ``T`` (2 in the PINS script):

* ``alpha_i = 1 - H(softmax(z_i)) / ln C`` from the student's *detached*
  logits (a confident student leans on the teacher);
* ``KD_i = -T**2 * sum_c softmax(u_i / T)_c * log softmax(z_i / T)_c``;
* ``loss = mean_i [alpha_i KD_i + (1 - alpha_i) CE(z_i, y_i)]``.

The teacher is the best checkpoint so far by a held-out metric
(:class:`BestTeacher`): its logits are computed outside the train step (eval
mode, no gradient) and passed in the batch as ``teacher_logits``, so the
train step is unchanged and works under ``jit``, ``pmap`` and sharding.
Choose the teacher on a split of the *training* data: the PINS code uses
the dev set for both teacher refresh and model selection, which makes its
dev numbers optimistic (Ren & Zhu, *Pruning Pre-trained Language Models with
Principled Importance and Self-regularization*, Findings of ACL 2023).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

__all__ = ["self_regularization_loss", "classification_loss", "BestTeacher"]


def self_regularization_loss(student_logits: jax.Array,
                             teacher_logits: jax.Array, labels: jax.Array,
                             temperature: float = 2.0) -> jax.Array:
  """The entropy-weighted mix of distillation and cross-entropy (mean).

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxprune.train import selfreg
    >>> z = jnp.array([[0.0, 0.0]])   # uncertain student: alpha = 0, plain CE
    >>> round(float(selfreg.self_regularization_loss(z, jnp.array([[5.0, -5.0]]),
    ...                                             jnp.array([1]))), 4)
    0.6931
  """
  if not temperature > 0:
    raise ValueError(f"`temperature` must be > 0, got {temperature}")
  z = student_logits.astype(jnp.float32)
  u = jax.lax.stop_gradient(teacher_logits.astype(jnp.float32))
  num_classes = z.shape[-1]
  p = jax.nn.softmax(jax.lax.stop_gradient(z))
  entropy = -jnp.sum(p * jnp.log(jnp.clip(p, 1e-30)), axis=-1)
  alpha = 1.0 - entropy / math.log(num_classes)
  kd = -temperature ** 2 * jnp.sum(
      jax.nn.softmax(u / temperature) * jax.nn.log_softmax(z / temperature),
      axis=-1)
  ce = optax.softmax_cross_entropy_with_integer_labels(z, labels)
  return jnp.mean(alpha * kd + (1.0 - alpha) * ce)


def classification_loss(logits_fn: Callable, temperature: float = 2.0
                        ) -> Callable:
  """``loss_fn(params, batch, rng)`` using ``batch["teacher_logits"]``.

  Args:
    logits_fn: ``(params, batch, rng) -> logits`` in train mode (e.g. from
      a Hugging Face Flax model with dropout).
    temperature: distillation temperature.
  """

  def loss_fn(params, batch, rng):
    logits = logits_fn(params, batch, rng).astype(jnp.float32)
    loss = self_regularization_loss(logits, batch["teacher_logits"],
                                    batch["labels"], temperature)
    acc = jnp.mean(jnp.argmax(logits, -1) == batch["labels"])
    return loss, {"accuracy": acc}

  return loss_fn


class BestTeacher:
  """Holds the best checkpoint so far and computes its logits.

  Args:
    logits_fn: ``(params, batch) -> logits`` in eval mode (jitted here).
    params: the initial teacher (PINS: an external fine-tuned model, used
      until the first evaluation; the pretrained student itself works).
    higher_is_better: direction of the metric given to :meth:`observe`.

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxprune.train import selfreg
    >>> t = selfreg.BestTeacher(lambda p, b: b["x"] * p["w"], {"w": jnp.ones(())})
    >>> t.observe({"w": jnp.full((), 2.0)}, 0.5), t.observe({"w": jnp.zeros(())}, 0.4)
    (True, False)
    >>> t.with_teacher_logits({"x": jnp.ones(2)})["teacher_logits"]
    Array([2., 2.], dtype=float32)
  """

  def __init__(self, logits_fn: Callable, params: Any,
               higher_is_better: bool = True):
    self._logits = jax.jit(logits_fn)
    self.params = jax.tree.map(jnp.array, params)   # a copy: steps donate
    self.best: float | None = None
    self.refreshes = 0
    self._sign = 1.0 if higher_is_better else -1.0

  def observe(self, params: Any, metric: float) -> bool:
    """Makes ``params`` the teacher if ``metric`` beats the best so far."""
    if self.best is not None and not self._sign * metric > self._sign * self.best:
      return False
    self.best = float(metric)
    self.params = jax.tree.map(jnp.array, params)
    self.refreshes += 1
    return True

  def with_teacher_logits(self, batch: dict) -> dict:
    """``batch`` plus ``teacher_logits`` (eval mode, no gradient)."""
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    return {**batch, "teacher_logits": self._logits(self.params, inputs)}
