"""Loss and logits functions for classifiers (BERT-style text, ViT images).

Duck-typed: any model object whose ``__call__`` takes ``params=``,
``dropout_rng=`` and ``train=`` and returns an object with ``.logits`` works:
:class:`jaxprune.models.FunctionalModel` (our NNX models through
``nnx.split``/``nnx.merge``), and the former Hugging Face Flax models. For an
NNX module trained with ``nnx.Optimizer``, call these with
``nnx.state(module, nnx.Param).to_pure_dict()`` as ``params`` or wrap the
module in :class:`~jaxprune.models.FunctionalModel`.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from flax import nnx
  >>> from jaxprune import models, train
  >>> cfg = models.BertConfig(vocab_size=20, hidden_size=8,
  ...     heads_per_layer=(2,), head_dim=4, intermediate_sizes=(16,),
  ...     num_labels=2)
  >>> fm = models.FunctionalModel(
  ...     models.BertForSequenceClassification(cfg, rngs=nnx.Rngs(0)))
  >>> batch = {"input_ids": jnp.ones((2, 4), jnp.int32),
  ...          "labels": jnp.array([0, 1])}
  >>> loss, aux = train.hf.classification_loss(fm)(fm.params, batch,
  ...                                               jax.random.key(0))
  >>> sorted(aux)
  ['accuracy']
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
