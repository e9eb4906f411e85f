"""ViT image classifiers (ViT, DeiT without the distillation head) in Flax NNX.

Pre-norm layers with HF's parameter layout (``attention/attention/query``,
``layernorm_before``, ...), per-layer head counts and FFN widths from
:class:`~.config.ViTConfig`. Pixels are NCHW (as in HF), float.
``model_type="deit"`` adds DeiT's distillation token after the class token
(DeiT checkpoints for ``DeiTForImageClassification``: the head reads the class
token).

Example:
  >>> import jax.numpy as jnp
  >>> from flax import nnx
  >>> from jaxprune.models import ViTConfig, ViTForImageClassification
  >>> cfg = ViTConfig(image_size=8, patch_size=4, num_channels=1,
  ...                 hidden_size=16, heads_per_layer=(2,), head_dim=8,
  ...                 intermediate_sizes=(32,), num_labels=10)
  >>> model = ViTForImageClassification(cfg, rngs=nnx.Rngs(0))
  >>> model(jnp.zeros((2, 1, 8, 8))).logits.shape
  (2, 10)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxprune.models import layers as L
from jaxprune.models.bert import ClassifierOutput, EncoderOutput, Pooler
from jaxprune.models.config import ViTConfig

__all__ = ["ViTModel", "ViTForImageClassification"]


class PatchEmbeddings(nnx.Module):
  """Non-overlapping patches projected by a strided convolution."""

  def __init__(self, cfg: ViTConfig, *, rngs: nnx.Rngs):
    p = cfg.patch_size
    self.projection = nnx.Conv(
        cfg.num_channels, cfg.hidden_size, kernel_size=(p, p), strides=(p, p),
        padding="VALID", dtype=L.compute_dtype(cfg.dtype),
        param_dtype=jnp.float32,
        kernel_init=nnx.initializers.normal(L.INIT_STD), rngs=rngs)

  def __call__(self, pixels):
    x = self.projection(jnp.transpose(pixels, (0, 2, 3, 1)))  # NCHW -> NHWC
    return x.reshape(x.shape[0], -1, x.shape[-1])


class Embeddings(nnx.Module):
  """Class token (+ DeiT distillation token), patches, positions, dropout."""

  def __init__(self, cfg: ViTConfig, *, rngs: nnx.Rngs):
    d = cfg.hidden_size
    init = nnx.initializers.normal(L.INIT_STD)
    self.cls_token = nnx.Param(init(rngs.params(), (1, 1, d), jnp.float32))
    self.distillation = cfg.model_type == "deit"
    if self.distillation:
      self.distillation_token = nnx.Param(
          init(rngs.params(), (1, 1, d), jnp.float32))
    n = cfg.num_patches + (2 if self.distillation else 1)
    self.position_embeddings = nnx.Param(
        init(rngs.params(), (1, n, d), jnp.float32))
    self.patch_embeddings = PatchEmbeddings(cfg, rngs=rngs)
    self.dropout = L.dropout(cfg.hidden_dropout_prob)
    self.dtype = L.compute_dtype(cfg.dtype)

  def __call__(self, pixels, deterministic, rngs):
    x = self.patch_embeddings(pixels.astype(self.dtype))
    b = x.shape[0]
    toks = [jnp.broadcast_to(self.cls_token[...], (b, 1, x.shape[-1]))]
    if self.distillation:
      toks.append(jnp.broadcast_to(self.distillation_token[...],
                                   (b, 1, x.shape[-1])))
    x = jnp.concatenate([t.astype(self.dtype) for t in toks] + [x], axis=1)
    x = x + self.position_embeddings[...].astype(self.dtype)
    return self.dropout(x, deterministic=deterministic, rngs=rngs)


class SelfAttention(nnx.Module):
  """Q, K, V of ``num_heads`` heads and the attention."""

  def __init__(self, cfg: ViTConfig, num_heads: int, *, rngs: nnx.Rngs):
    self.num_heads, self.head_dim = num_heads, cfg.head_dim
    w = num_heads * cfg.head_dim
    mk = lambda: L.linear(cfg.hidden_size, w, cfg.dtype, rngs,
                          use_bias=cfg.qkv_bias)
    self.query, self.key, self.value = mk(), mk(), mk()
    self.dropout = L.attention_dropout(cfg.attention_probs_dropout_prob,
                                       cfg.shared_attention_dropout)

  def __call__(self, h, deterministic, rngs):
    return L.attention(self.query(h), self.key(h), self.value(h), None,
                       num_heads=self.num_heads, head_dim=self.head_dim,
                       dropout=self.dropout, deterministic=deterministic,
                       rngs=rngs)


class DenseOutput(nnx.Module):
  """``dropout(dense(x))`` (the residual is added by the layer)."""

  def __init__(self, n_in: int, cfg: ViTConfig, *, rngs: nnx.Rngs):
    self.dense = L.linear(n_in, cfg.hidden_size, cfg.dtype, rngs)
    self.dropout = L.dropout(cfg.hidden_dropout_prob)

  def __call__(self, x, deterministic, rngs):
    return self.dropout(self.dense(x), deterministic=deterministic, rngs=rngs)


class Attention(nnx.Module):
  """``attention`` (Q/K/V) and ``output`` (the projection)."""

  def __init__(self, cfg: ViTConfig, num_heads: int, *, rngs: nnx.Rngs):
    self.attention = SelfAttention(cfg, num_heads, rngs=rngs)
    self.output = DenseOutput(num_heads * cfg.head_dim, cfg, rngs=rngs)

  def __call__(self, h, deterministic, rngs):
    return self.output(self.attention(h, deterministic, rngs), deterministic,
                       rngs)


class Intermediate(nnx.Module):
  """``act(dense(x))``."""

  def __init__(self, cfg: ViTConfig, inter: int, *, rngs: nnx.Rngs):
    self.dense = L.linear(cfg.hidden_size, inter, cfg.dtype, rngs)
    self.act = L.activation(cfg.hidden_act)

  def __call__(self, x):
    return self.act(self.dense(x))


class Layer(nnx.Module):
  """One pre-norm layer."""

  def __init__(self, cfg: ViTConfig, num_heads: int, inter: int, *,
               rngs: nnx.Rngs):
    eps, d, dt = cfg.layer_norm_eps, cfg.hidden_size, cfg.dtype
    self.layernorm_before = L.layer_norm(d, eps, dt, rngs)
    self.attention = Attention(cfg, num_heads, rngs=rngs)
    self.layernorm_after = L.layer_norm(d, eps, dt, rngs)
    self.intermediate = Intermediate(cfg, inter, rngs=rngs)
    self.output = DenseOutput(inter, cfg, rngs=rngs)

  def __call__(self, h, deterministic, rngs):
    h = self.attention(self.layernorm_before(h), deterministic, rngs) + h
    z = self.intermediate(self.layernorm_after(h))
    return self.output(z, deterministic, rngs) + h


class Encoder(nnx.Module):
  """``layer/0``, ``layer/1``, ..."""

  def __init__(self, cfg: ViTConfig, *, rngs: nnx.Rngs):
    self.layer = L.Layers([
        Layer(cfg, h, i, rngs=rngs)
        for h, i in zip(cfg.heads_per_layer, cfg.intermediate_sizes)])

  def __call__(self, h, deterministic, rngs):
    for layer in self.layer:
      h = layer(h, deterministic, rngs)
    return h


class ViTModel(nnx.Module):
  """The bare ViT encoder (HF ``ViTModel``); ``last_hidden_state`` is after
  the final LayerNorm."""

  def __init__(self, cfg: ViTConfig, *, add_pooling_layer: bool = True,
               rngs: nnx.Rngs):
    self.config = cfg
    self.embeddings = Embeddings(cfg, rngs=rngs)
    self.encoder = Encoder(cfg, rngs=rngs)
    self.layernorm = L.layer_norm(cfg.hidden_size, cfg.layer_norm_eps,
                                  cfg.dtype, rngs)
    self.pooler = Pooler(cfg, rngs=rngs) if add_pooling_layer else None

  def __call__(self, pixel_values: jax.Array, *, deterministic: bool = True,
               rngs: nnx.Rngs | None = None) -> EncoderOutput:
    """Runs the encoder on NCHW ``pixel_values``."""
    h = self.embeddings(pixel_values, deterministic, rngs)
    h = self.layernorm(self.encoder(h, deterministic, rngs))
    return EncoderOutput(h, None if self.pooler is None else self.pooler(h))


class ViTForImageClassification(nnx.Module):
  """``classifier`` on the class token's final hidden state."""

  def __init__(self, cfg: ViTConfig, *, rngs: nnx.Rngs):
    if not cfg.num_labels:
      raise ValueError("an image-classification config needs num_labels")
    self.config = cfg
    setattr(self, self.prefix, ViTModel(cfg, add_pooling_layer=False,
                                        rngs=rngs))
    self.classifier = L.linear(cfg.hidden_size, cfg.num_labels, cfg.dtype,
                               rngs)

  @property
  def prefix(self) -> str:
    return "deit" if self.config.model_type == "deit" else "vit"

  @property
  def backbone(self) -> ViTModel:
    return getattr(self, self.prefix)

  def __call__(self, pixel_values: jax.Array, *, deterministic: bool = True,
               rngs: nnx.Rngs | None = None) -> ClassifierOutput:
    """Logits for NCHW ``pixel_values``."""
    h = self.backbone(pixel_values, deterministic=deterministic,
                      rngs=rngs).last_hidden_state
    return ClassifierOutput(self.classifier(h[:, 0]).astype(jnp.float32))
