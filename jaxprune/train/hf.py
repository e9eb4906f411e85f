"""Glue for Hugging Face Flax models (BERT-style text and ViT image models).

Duck-typed: nothing here imports ``transformers``; any model object whose
``__call__`` takes ``params=``, ``dropout_rng=`` and ``train=`` and returns
an object with ``.logits`` works.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

__all__ = ["classification_loss", "classification_logits", "train_logits"]


def _forward(model: Any, params: Any, batch: dict, rng, train: bool):
  kwargs = dict(params=params, train=train)
  if train:
    kwargs["dropout_rng"] = rng
  if "pixel_values" in batch:
    return model(batch["pixel_values"], **kwargs).logits
  return model(batch["input_ids"], attention_mask=batch.get("attention_mask"),
               token_type_ids=batch.get("token_type_ids"), **kwargs).logits


def classification_loss(model: Any) -> Callable:
  """``loss_fn(params, batch, rng) -> (loss, {"accuracy"})`` with dropout on.

  ``batch`` holds ``labels`` and either ``input_ids`` (plus optional
  ``attention_mask``/``token_type_ids``) or ``pixel_values``.
  """

  def loss_fn(params, batch, rng):
    logits = _forward(model, params, batch, rng, train=True)
    logits = logits.astype(jnp.float32)
    loss = optax.softmax_cross_entropy_with_integer_labels(
        logits, batch["labels"]).mean()
    acc = jnp.mean(jnp.argmax(logits, -1) == batch["labels"])
    return loss, {"accuracy": acc}

  return loss_fn


def classification_logits(model: Any) -> Callable:
  """``logits_fn(params, batch)`` in eval mode (no dropout)."""

  def logits_fn(params, batch):
    return _forward(model, params, batch, None, train=False)

  return logits_fn


def train_logits(model: Any) -> Callable:
  """``logits_fn(params, batch, rng)`` in train mode (dropout from ``rng``)."""

  def logits_fn(params, batch, rng):
    return _forward(model, params, batch, rng, train=True)

  return logits_fn
