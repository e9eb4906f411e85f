"""Text helpers shared by the GLUE and SQuAD scripts.

Tokenised examples are kept ragged (one int32 array per example) and padded
per batch to the smallest length bucket that holds the batch's longest
example, so a run compiles at most a handful of shapes and, unlike a fixed
``max_length`` padding, pays for long sequences only where they occur.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["smoke_tokenizer", "tiny_bert_config", "buckets", "pad_batch",
           "regression_loss", "regression_predictions", "WORDS"]

#: Common words, all single tokens of the BERT uncased vocabulary; the smoke
#: datasets are sentences drawn from them.
WORDS = ("the cat dog sat on mat good bad movie film was very not great "
         "awful day night house car red blue green big small man woman "
         "city river tree book read write run walk happy sad old new").split()


def smoke_tokenizer():
  """The offline MiniLM (BERT uncased WordPiece) fast tokenizer."""
  from jaxprune import models

  from experiments.tasks.base import offline_minilm
  return models.load_tokenizer(offline_minilm())


def tiny_bert_config(vocab_size: int, **kwargs: Any):
  """A 2-layer, 32-wide BERT config (:class:`jaxprune.models.BertConfig`)
  for smoke runs."""
  from jaxprune import models
  base = dict(vocab_size=vocab_size, hidden_size=32, heads_per_layer=(2, 2),
              head_dim=16, intermediate_sizes=(64, 64),
              max_position_embeddings=128)
  return models.BertConfig(**{**base, **kwargs})


def buckets(max_len: int) -> tuple[int, ...]:
  """Padded lengths: 64, 128, 256, ... below ``max_len``, then ``max_len``."""
  out, b = [], 64
  while b < max_len:
    out.append(b)
    b *= 2
  return tuple(out) + (max_len,)


def bucket_length(lengths: Sequence[int], max_len: int) -> int:
  """The smallest bucket that holds the longest of ``lengths``."""
  longest = int(max(lengths)) if len(lengths) else 1
  return next(b for b in buckets(max_len) if b >= min(longest, max_len))


def pad_batch(features: dict[str, np.ndarray], idx: np.ndarray,
              length: int) -> dict[str, np.ndarray]:
  """Pads the ragged ``input_ids``/``token_type_ids`` of ``idx`` to ``length``.

  Args:
    features: ``input_ids`` and ``token_type_ids`` as object arrays of int32
      arrays, plus any per-example arrays (labels, positions) to gather.
    idx: example indices.
    length: padded sequence length.

  Returns:
    ``input_ids``, ``attention_mask``, ``token_type_ids`` (int32, shape
    ``(len(idx), length)``) and the other features gathered at ``idx``.
  """
  n = len(idx)
  ids = np.zeros((n, length), np.int32)
  types = np.zeros((n, length), np.int32)
  mask = np.zeros((n, length), np.int32)
  for row, i in enumerate(idx):
    seq = features["input_ids"][i][:length]
    ids[row, :len(seq)] = seq
    types[row, :len(seq)] = features["token_type_ids"][i][:len(seq)]
    mask[row, :len(seq)] = 1
  out = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
  for k, v in features.items():
    if k not in out and k not in ("input_ids", "token_type_ids"):
      out[k] = v[idx]
  return out


def ragged(seqs: Sequence[Sequence[int]]) -> np.ndarray:
  """An object array of int32 arrays."""
  out = np.empty(len(seqs), dtype=object)
  for i, s in enumerate(seqs):
    out[i] = np.asarray(s, np.int32)
  return out


def _logits(model: Any, params: Any, batch: dict, rng, train: bool):
  kwargs = {"params": params, "train": train}
  if train:
    kwargs["dropout_rng"] = rng
  return model(batch["input_ids"], attention_mask=batch["attention_mask"],
               token_type_ids=batch["token_type_ids"], **kwargs).logits


def regression_loss(model: Any) -> Callable:
  """``loss_fn(params, batch, rng) -> (MSE, {"mse"})`` for a 1-output head.

  The model's ``logits`` have shape ``(batch, 1)`` (``num_labels=1``, as HF
  ``BertForSequenceClassification`` does for STS-B); ``labels`` are floats.
  """

  def loss_fn(params, batch, rng):
    pred = _logits(model, params, batch, rng, True)[:, 0].astype(jnp.float32)
    mse = jnp.mean(jnp.square(pred - batch["labels"].astype(jnp.float32)))
    return mse, {"mse": mse}

  return loss_fn


def regression_predictions(model: Any) -> Callable:
  """``predict(params, batch) -> (batch,)`` scores in eval mode."""

  def predict(params, batch):
    return _logits(model, params, batch, None, False)[:, 0]

  return predict


def span_loss(model: Any) -> Callable:
  """Extractive QA loss: mean of the start and end cross-entropies."""

  def loss_fn(params, batch, rng):
    out = model(batch["input_ids"], attention_mask=batch["attention_mask"],
                token_type_ids=batch["token_type_ids"], params=params,
                dropout_rng=rng, train=True)
    start = out.start_logits.astype(jnp.float32)
    end = out.end_logits.astype(jnp.float32)
    ce = optax.softmax_cross_entropy_with_integer_labels
    loss = 0.5 * (ce(start, batch["start_positions"]).mean()
                  + ce(end, batch["end_positions"]).mean())
    hit = ((jnp.argmax(start, -1) == batch["start_positions"])
           & (jnp.argmax(end, -1) == batch["end_positions"]))
    return loss, {"span_accuracy": jnp.mean(hit)}

  return loss_fn


def span_logits(model: Any) -> Callable:
  """``predict(params, batch) -> (start_logits, end_logits)``, eval mode."""

  def predict(params, batch):
    out = model(batch["input_ids"], attention_mask=batch["attention_mask"],
                token_type_ids=batch["token_type_ids"], params=params,
                train=False)
    return out.start_logits, out.end_logits

  return predict


def sentence(rng: np.random.Generator, n_words: int) -> str:
  """A random sentence over :data:`WORDS`."""
  return " ".join(rng.choice(WORDS, n_words))
