"""BERT-family encoders (BERT, RoBERTa, MiniLM) in Flax NNX.

Modules mirror Hugging Face's parameter layout (see :mod:`.hf_names`) with
per-layer head counts and FFN widths from :class:`~.config.BertConfig`.
Inputs are HF's: ``input_ids``, ``attention_mask`` (1 = attend),
``token_type_ids`` and ``position_ids`` (defaults as in HF; RoBERTa counts
positions from ``pad_token_id + 1`` over non-padding tokens). Dropout runs
when ``deterministic=False`` and an ``nnx.Rngs`` with a ``dropout`` stream is
given as ``rngs``.

Example:
  >>> import jax.numpy as jnp
  >>> from flax import nnx
  >>> from jaxprune.models import BertConfig, BertForSequenceClassification
  >>> cfg = BertConfig(vocab_size=50, hidden_size=16, heads_per_layer=(2, 1),
  ...                  head_dim=8, intermediate_sizes=(32, 8), num_labels=3)
  >>> model = BertForSequenceClassification(cfg, rngs=nnx.Rngs(0))
  >>> model(jnp.ones((2, 5), jnp.int32)).logits.shape
  (2, 3)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from jaxprune.models import layers as L
from jaxprune.models.config import BertConfig

__all__ = ["BertModel", "BertForSequenceClassification",
           "BertForQuestionAnswering", "EncoderOutput", "ClassifierOutput",
           "QuestionAnsweringOutput", "backbone_name"]


class EncoderOutput(NamedTuple):
  """Bare encoder output: ``last_hidden_state`` ``(B, T, D)`` and
  ``pooler_output`` ``(B, D)`` (None without a pooler)."""
  last_hidden_state: jax.Array
  pooler_output: jax.Array | None = None


class ClassifierOutput(NamedTuple):
  """``logits``: ``(B, num_labels)``, float32."""
  logits: jax.Array


class QuestionAnsweringOutput(NamedTuple):
  """Span logits ``(B, T)``, float32."""
  start_logits: jax.Array
  end_logits: jax.Array


def backbone_name(cfg: BertConfig) -> str:
  """Attribute (and HF prefix) of the encoder in task models: ``"bert"`` or
  ``"roberta"`` (RoBERTa, XLM-R, CamemBERT)."""
  return "roberta" if cfg.is_roberta else "bert"


def _embed(n: int, d: int, dtype: str, rngs: nnx.Rngs) -> nnx.Embed:
  return nnx.Embed(n, d, dtype=L.compute_dtype(dtype), param_dtype=jnp.float32,
                   embedding_init=nnx.initializers.normal(L.INIT_STD),
                   rngs=rngs)


class Embeddings(nnx.Module):
  """Word + position + token-type embeddings, LayerNorm, dropout."""

  def __init__(self, cfg: BertConfig, *, rngs: nnx.Rngs):
    d, dt = cfg.hidden_size, cfg.dtype
    self.word_embeddings = _embed(cfg.vocab_size, d, dt, rngs)
    self.position_embeddings = _embed(cfg.max_position_embeddings, d, dt, rngs)
    self.token_type_embeddings = _embed(cfg.type_vocab_size, d, dt, rngs)
    self.LayerNorm = L.layer_norm(d, cfg.layer_norm_eps, dt, rngs)
    self.dropout = L.dropout(cfg.hidden_dropout_prob)

  def __call__(self, ids, token_type_ids, position_ids, deterministic, rngs):
    h = (self.word_embeddings(ids) + self.position_embeddings(position_ids)
         + self.token_type_embeddings(token_type_ids))
    h = self.LayerNorm(h)
    return self.dropout(h, deterministic=deterministic, rngs=rngs)


class SelfAttention(nnx.Module):
  """Q, K, V projections of ``num_heads`` heads and the attention."""

  def __init__(self, cfg: BertConfig, num_heads: int, *, rngs: nnx.Rngs):
    self.num_heads, self.head_dim = num_heads, cfg.head_dim
    w = num_heads * cfg.head_dim
    self.query = L.linear(cfg.hidden_size, w, cfg.dtype, rngs)
    self.key = L.linear(cfg.hidden_size, w, cfg.dtype, rngs)
    self.value = L.linear(cfg.hidden_size, w, cfg.dtype, rngs)
    self.dropout = L.attention_dropout(cfg.attention_probs_dropout_prob,
                                       cfg.shared_attention_dropout)

  def __call__(self, h, mask, deterministic, rngs):
    return L.attention(self.query(h), self.key(h), self.value(h), mask,
                       num_heads=self.num_heads, head_dim=self.head_dim,
                       dropout=self.dropout, deterministic=deterministic,
                       rngs=rngs)


class ProjectionOutput(nnx.Module):
  """``LayerNorm(dropout(dense(x)) + residual)`` (HF's ``*Output``)."""

  def __init__(self, n_in: int, cfg: BertConfig, *, rngs: nnx.Rngs):
    self.dense = L.linear(n_in, cfg.hidden_size, cfg.dtype, rngs)
    self.LayerNorm = L.layer_norm(cfg.hidden_size, cfg.layer_norm_eps,
                                  cfg.dtype, rngs)
    self.dropout = L.dropout(cfg.hidden_dropout_prob)

  def __call__(self, x, residual, deterministic, rngs):
    x = self.dropout(self.dense(x), deterministic=deterministic, rngs=rngs)
    return self.LayerNorm(x + residual)


class Attention(nnx.Module):
  """Self-attention (``self``) and its output block (``output``)."""

  def __init__(self, cfg: BertConfig, num_heads: int, *, rngs: nnx.Rngs):
    self.self = SelfAttention(cfg, num_heads, rngs=rngs)
    self.output = ProjectionOutput(num_heads * cfg.head_dim, cfg, rngs=rngs)

  def __call__(self, h, mask, deterministic, rngs):
    ctx = self.self(h, mask, deterministic, rngs)
    return self.output(ctx, h, deterministic, rngs)


class Intermediate(nnx.Module):
  """``act(dense(x))``: the FFN's first projection."""

  def __init__(self, n_in: int, n_out: int, cfg, *, rngs: nnx.Rngs):
    self.dense = L.linear(n_in, n_out, cfg.dtype, rngs)
    self.act = L.activation(cfg.hidden_act)

  def __call__(self, x):
    return self.act(self.dense(x))


class Layer(nnx.Module):
  """One post-norm Transformer layer."""

  def __init__(self, cfg: BertConfig, num_heads: int, inter: int, *,
               rngs: nnx.Rngs):
    self.attention = Attention(cfg, num_heads, rngs=rngs)
    self.intermediate = Intermediate(cfg.hidden_size, inter, cfg, rngs=rngs)
    self.output = ProjectionOutput(inter, cfg, rngs=rngs)

  def __call__(self, h, mask, deterministic, rngs):
    a = self.attention(h, mask, deterministic, rngs)
    return self.output(self.intermediate(a), a, deterministic, rngs)


class Encoder(nnx.Module):
  """The stack of layers (``layer/0``, ``layer/1``, ...)."""

  def __init__(self, cfg: BertConfig, *, rngs: nnx.Rngs):
    self.layer = L.Layers([
        Layer(cfg, h, i, rngs=rngs)
        for h, i in zip(cfg.heads_per_layer, cfg.intermediate_sizes)])

  def __call__(self, h, mask, deterministic, rngs):
    for layer in self.layer:
      h = layer(h, mask, deterministic, rngs)
    return h


class Pooler(nnx.Module):
  """``tanh(dense(h[:, 0]))``."""

  def __init__(self, cfg, *, rngs: nnx.Rngs):
    self.dense = L.linear(cfg.hidden_size, cfg.hidden_size, cfg.dtype, rngs)

  def __call__(self, h):
    return jnp.tanh(self.dense(h[:, 0]))


def position_ids_for(cfg: BertConfig, ids: jax.Array) -> jax.Array:
  """HF's default position ids: ``0..T-1`` (BERT) or, for RoBERTa, the
  running count of non-padding tokens plus ``pad_token_id`` (padding
  positions get ``pad_token_id``)."""
  if not cfg.is_roberta:
    return jnp.broadcast_to(jnp.arange(ids.shape[-1]), ids.shape)
  keep = (ids != cfg.pad_token_id).astype(jnp.int32)
  return jnp.cumsum(keep, axis=-1) * keep + cfg.pad_token_id


class BertModel(nnx.Module):
  """The bare encoder (HF ``BertModel``/``RobertaModel``).

  Args:
    cfg: the config.
    add_pooling_layer: build the pooler (``pooler_output``).
    rngs: init randomness (``nnx.Rngs(seed)``).
  """

  def __init__(self, cfg: BertConfig, *, add_pooling_layer: bool = True,
               rngs: nnx.Rngs):
    self.config = cfg
    self.embeddings = Embeddings(cfg, rngs=rngs)
    self.encoder = Encoder(cfg, rngs=rngs)
    self.pooler = Pooler(cfg, rngs=rngs) if add_pooling_layer else None

  def __call__(self, input_ids: jax.Array,
               attention_mask: jax.Array | None = None,
               token_type_ids: jax.Array | None = None,
               position_ids: jax.Array | None = None, *,
               deterministic: bool = True,
               rngs: nnx.Rngs | None = None) -> EncoderOutput:
    """Runs the encoder.

    Args:
      input_ids: ``(B, T)`` int token ids.
      attention_mask: ``(B, T)``, 1 = real token (default: all ones).
      token_type_ids: ``(B, T)`` (default zeros).
      position_ids: ``(B, T)`` (default: see :func:`position_ids_for`).
      deterministic: no dropout (inference).
      rngs: an ``nnx.Rngs`` with a ``dropout`` stream, for training.

    Returns:
      :class:`EncoderOutput`.
    """
    if token_type_ids is None:
      token_type_ids = jnp.zeros_like(input_ids)
    if position_ids is None:
      position_ids = position_ids_for(self.config, input_ids)
    h = self.embeddings(input_ids, token_type_ids, position_ids,
                        deterministic, rngs)
    h = self.encoder(h, attention_mask, deterministic, rngs)
    pooled = None if self.pooler is None else self.pooler(h)
    return EncoderOutput(h, pooled)


class RobertaClassificationHead(nnx.Module):
  """``out_proj(dropout(tanh(dense(dropout(h[:, 0])))))``."""

  def __init__(self, cfg: BertConfig, *, rngs: nnx.Rngs):
    self.dense = L.linear(cfg.hidden_size, cfg.hidden_size, cfg.dtype, rngs)
    self.out_proj = L.linear(cfg.hidden_size, cfg.num_labels, cfg.dtype, rngs)
    rate = (cfg.hidden_dropout_prob if cfg.classifier_dropout is None
            else cfg.classifier_dropout)
    self.dropout = L.dropout(rate)

  def __call__(self, h, deterministic, rngs):
    x = self.dropout(h[:, 0], deterministic=deterministic, rngs=rngs)
    x = jnp.tanh(self.dense(x))
    x = self.dropout(x, deterministic=deterministic, rngs=rngs)
    return self.out_proj(x)


class BertForSequenceClassification(nnx.Module):
  """Classification (``num_labels >= 2``) or regression (``num_labels=1``).

  BERT: pooler -> dropout -> ``classifier``; RoBERTa: HF's two-layer
  ``classifier`` head on the first token.
  """

  def __init__(self, cfg: BertConfig, *, rngs: nnx.Rngs):
    if not cfg.num_labels:
      raise ValueError("a sequence-classification config needs num_labels")
    self.config = cfg
    setattr(self, backbone_name(cfg),
            BertModel(cfg, add_pooling_layer=not cfg.is_roberta, rngs=rngs))
    if cfg.is_roberta:
      self.classifier = RobertaClassificationHead(cfg, rngs=rngs)
    else:
      rate = (cfg.hidden_dropout_prob if cfg.classifier_dropout is None
              else cfg.classifier_dropout)
      self.dropout = L.dropout(rate)
      self.classifier = L.linear(cfg.hidden_size, cfg.num_labels, cfg.dtype,
                                 rngs)

  @property
  def backbone(self) -> BertModel:
    return getattr(self, backbone_name(self.config))

  def __call__(self, input_ids, attention_mask=None, token_type_ids=None,
               position_ids=None, *, deterministic: bool = True,
               rngs: nnx.Rngs | None = None) -> ClassifierOutput:
    """Logits; arguments as :meth:`BertModel.__call__`."""
    out = self.backbone(input_ids, attention_mask, token_type_ids,
                        position_ids, deterministic=deterministic, rngs=rngs)
    if self.config.is_roberta:
      logits = self.classifier(out.last_hidden_state, deterministic, rngs)
    else:
      x = self.dropout(out.pooler_output, deterministic=deterministic,
                       rngs=rngs)
      logits = self.classifier(x)
    return ClassifierOutput(logits.astype(jnp.float32))


class BertForQuestionAnswering(nnx.Module):
  """Extractive QA: ``qa_outputs`` gives start and end logits per token."""

  def __init__(self, cfg: BertConfig, *, rngs: nnx.Rngs):
    self.config = cfg
    setattr(self, backbone_name(cfg),
            BertModel(cfg, add_pooling_layer=False, rngs=rngs))
    self.qa_outputs = L.linear(cfg.hidden_size, 2, cfg.dtype, rngs)

  @property
  def backbone(self) -> BertModel:
    return getattr(self, backbone_name(self.config))

  def __call__(self, input_ids, attention_mask=None, token_type_ids=None,
               position_ids=None, *, deterministic: bool = True,
               rngs: nnx.Rngs | None = None) -> QuestionAnsweringOutput:
    """Span logits; arguments as :meth:`BertModel.__call__`."""
    out = self.backbone(input_ids, attention_mask, token_type_ids,
                        position_ids, deterministic=deterministic, rngs=rngs)
    logits = self.qa_outputs(out.last_hidden_state).astype(jnp.float32)
    return QuestionAnsweringOutput(logits[..., 0], logits[..., 1])
