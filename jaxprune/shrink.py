"""Physically smaller Hugging Face Flax BERT/ViT models after head/neuron pruning.

After structured pruning (:func:`jaxprune.patterns.heads_and_neurons`) whole
heads and FFN neurons are zero. :func:`shrink` slices them out: each layer
keeps only its live heads (Q/K/V columns and biases, attention-output rows) and
live neurons (intermediate columns and biases, FFN-output rows), so the model
does fewer FLOPs and holds fewer weights, and its outputs equal the masked
model's up to float rounding.

A head is removed when its attention-output rows are all zero, or its V kernel
columns and V bias are all zero (then it contributes exactly 0); a neuron when
its FFN-output row is all zero, or its intermediate column and bias are zero
and the activation maps 0 to 0 (GELU, ReLU, SiLU...). Nothing else is assumed:
the decision is read from the params, so any pruning that zeroes these works.

Hugging Face's ``BertConfig``/``ViTConfig`` have one head count and one
intermediate size for all layers, and the head size is ``hidden_size /
num_attention_heads``, so a BERT with 6 of 12 heads in a layer cannot be
described by them. :class:`ShrunkModel` is therefore a small Flax module of
our own that reuses the Hugging Face embedding, output, intermediate and
pooler modules and takes per-layer head counts and intermediate sizes.
``ShrunkModel.save_pretrained(folder)`` writes ``config.json`` (the Hugging
Face config plus a ``jaxprune_shrink`` entry with the per-layer sizes) and
``model.safetensors``; ``ShrunkModel.from_pretrained(folder)`` reads them back.
When every layer keeps all its heads and the same number of neurons, the
model *is* a Hugging Face model with a smaller ``intermediate_size``:
``ShrunkModel.to_hf()`` returns it (whose own ``save_pretrained`` then writes
the standard format).

Supported: ``FlaxBertForSequenceClassification`` (BERT-type checkpoints such
as MiniLM included) and ``FlaxViTForImageClassification``, inference
(``deterministic``) only. This module imports ``transformers``; the core
package does not.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from flax.linen.attention import dot_product_attention_weights

from jaxprune import export

__all__ = ["ShrunkModel", "shrink", "live_units"]

_CONFIG_KEY = "jaxprune_shrink"


def _hf():
  from transformers.models.bert import modeling_flax_bert as bert
  from transformers.models.vit import modeling_flax_vit as vit
  return bert, vit


def _arch_of(config) -> str:
  mt = getattr(config, "model_type", None)
  if mt not in ("bert", "vit"):
    raise ValueError(f"shrink supports BERT and ViT models, got model_type "
                     f"{mt!r}")
  return mt


def _layer_cfg(config, inter: int):
  cfg = config.__class__.from_dict(config.to_dict())
  cfg.intermediate_size = int(inter)
  return cfg


class _SelfAttention(nn.Module):
  """Multi-head self-attention with ``num_heads`` heads of ``head_dim``;
  the same computation as Hugging Face's Flax BERT/ViT self-attention."""
  num_heads: int
  head_dim: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, attention_mask=None):
    width = self.num_heads * self.head_dim
    # Params are always given; a fan-free init keeps flax's shape check
    # (an eval_shape of the init) valid for 0 heads.
    dense = lambda name: nn.Dense(width, dtype=self.dtype, name=name,
                                  kernel_init=nn.initializers.zeros_init())
    q, k, v = dense("query")(x), dense("key")(x), dense("value")(x)
    if self.num_heads == 0:
      return q  # (..., 0): the output projection then gives its bias
    split = lambda t: t.reshape(t.shape[:2] + (self.num_heads, self.head_dim))
    bias = None
    if attention_mask is not None:
      m = jnp.expand_dims(attention_mask, axis=(-3, -2))
      bias = jax.lax.select(
          m > 0, jnp.full(m.shape, 0.0).astype(self.dtype),
          jnp.full(m.shape, jnp.finfo(self.dtype).min).astype(self.dtype))
    w = dot_product_attention_weights(split(q), split(k), bias=bias,
                                      deterministic=True, dtype=self.dtype,
                                      precision=None)
    out = jnp.einsum("...hqk,...khd->...qhd", w, split(v))
    return out.reshape(out.shape[:2] + (-1,))


class _ViTDense(nn.Module):
  """``{"dense": Dense}`` as in HF ViT's output/intermediate blocks, with a
  fan-free init so that flax's shape check passes for 0 inputs."""
  features: int

  @nn.compact
  def __call__(self, x):
    return nn.Dense(self.features, name="dense",
                    kernel_init=nn.initializers.zeros_init())(x)


class _Attention(nn.Module):
  config: Any
  arch: str
  num_heads: int
  head_dim: int

  @nn.compact
  def __call__(self, x, attention_mask=None):
    bert, vit = _hf()
    name = "self" if self.arch == "bert" else "attention"
    ctx = _SelfAttention(self.num_heads, self.head_dim, name=name)(
        x, attention_mask)
    if self.arch == "bert":
      return bert.FlaxBertSelfOutput(self.config, name="output")(
          ctx, x, deterministic=True)
    return _ViTDense(self.config.hidden_size, name="output")(ctx)


class _Layer(nn.Module):
  config: Any
  arch: str
  num_heads: int
  head_dim: int
  intermediate: int

  @nn.compact
  def __call__(self, h, attention_mask=None):
    bert, vit = _hf()
    cfg = _layer_cfg(self.config, self.intermediate)
    att = _Attention(self.config, self.arch, self.num_heads, self.head_dim,
                     name="attention")
    if self.arch == "bert":
      a = att(h, attention_mask)
      z = bert.FlaxBertIntermediate(cfg, name="intermediate")(a)
      return bert.FlaxBertOutput(cfg, name="output")(z, a, deterministic=True)
    eps = self.config.layer_norm_eps
    a = att(nn.LayerNorm(epsilon=eps, name="layernorm_before")(h)) + h
    z = nn.LayerNorm(epsilon=eps, name="layernorm_after")(a)
    from transformers.modeling_flax_utils import ACT2FN
    z = ACT2FN[cfg.hidden_act](_ViTDense(self.intermediate,
                                         name="intermediate")(z))
    return _ViTDense(self.config.hidden_size, name="output")(z) + a


class _Layers(nn.Module):
  config: Any
  arch: str
  heads: tuple[int, ...]
  head_dim: int
  intermediate: tuple[int, ...]

  @nn.compact
  def __call__(self, h, attention_mask=None):
    for i, (nh, ni) in enumerate(zip(self.heads, self.intermediate)):
      h = _Layer(self.config, self.arch, nh, self.head_dim, ni,
                 name=str(i))(h, attention_mask)
    return h


class _Encoder(nn.Module):
  config: Any
  arch: str
  heads: tuple[int, ...]
  head_dim: int
  intermediate: tuple[int, ...]

  @nn.compact
  def __call__(self, h, attention_mask=None):
    return _Layers(self.config, self.arch, self.heads, self.head_dim,
                   self.intermediate, name="layer")(h, attention_mask)


class _Backbone(nn.Module):
  config: Any
  arch: str
  heads: tuple[int, ...]
  head_dim: int
  intermediate: tuple[int, ...]

  @nn.compact
  def __call__(self, *inputs):
    bert, vit = _hf()
    enc = _Encoder(self.config, self.arch, self.heads, self.head_dim,
                   self.intermediate, name="encoder")
    if self.arch == "bert":
      ids, mask, types, pos = inputs
      h = bert.FlaxBertEmbeddings(self.config, name="embeddings")(
          ids, types, pos, mask, deterministic=True)
      h = enc(h, mask)
      return bert.FlaxBertPooler(self.config, name="pooler")(h)
    (pixels,) = inputs
    h = vit.FlaxViTEmbeddings(self.config, name="embeddings")(
        pixels, deterministic=True)
    h = enc(h)
    h = nn.LayerNorm(epsilon=self.config.layer_norm_eps, name="layernorm")(h)
    return h[:, 0, :]


class _Classifier(nn.Module):
  config: Any
  arch: str
  heads: tuple[int, ...]
  head_dim: int
  intermediate: tuple[int, ...]

  @nn.compact
  def __call__(self, *inputs):
    feats = _Backbone(self.config, self.arch, self.heads, self.head_dim,
                      self.intermediate, name=self.arch)(*inputs)
    return nn.Dense(self.config.num_labels, name="classifier")(feats)


class Output(NamedTuple):
  """What :class:`ShrunkModel` returns (like Hugging Face's output)."""
  logits: jax.Array


@dataclasses.dataclass
class ShrunkModel:
  """A BERT/ViT classifier with per-layer head counts and FFN sizes.

  Attributes:
    config: the Hugging Face config of the original model (its
      ``num_attention_heads`` and ``intermediate_size`` are the original ones).
    arch: ``"bert"`` or ``"vit"``.
    heads_per_layer: live heads kept in each layer.
    intermediate_sizes: FFN neurons kept in each layer.
    head_dim: size of one head (unchanged).
    params: the sliced params (same names as the Hugging Face model).
    kept_heads: original indices of the kept heads, per layer.
    kept_neurons: original indices of the kept neurons, per layer.
  """
  config: Any
  arch: str
  heads_per_layer: tuple[int, ...]
  intermediate_sizes: tuple[int, ...]
  head_dim: int
  params: Any
  kept_heads: tuple[tuple[int, ...], ...] = ()
  kept_neurons: tuple[tuple[int, ...], ...] = ()

  @property
  def module(self) -> nn.Module:
    return _Classifier(self.config, self.arch, tuple(self.heads_per_layer),
                       self.head_dim, tuple(self.intermediate_sizes))

  def __call__(self, inputs, attention_mask=None, token_type_ids=None,
               position_ids=None, params=None) -> Output:
    """Logits for ``input_ids`` (BERT) or ``pixel_values`` (ViT), with the
    Hugging Face defaults for the optional BERT inputs."""
    params = self.params if params is None else params
    if self.arch == "vit":
      pixels = jnp.transpose(inputs, (0, 2, 3, 1))  # as HF: NCHW -> NHWC
      return Output(self.module.apply({"params": params}, pixels))
    ids = inputs
    if attention_mask is None:
      attention_mask = jnp.ones_like(ids)
    if token_type_ids is None:
      token_type_ids = jnp.zeros_like(ids)
    if position_ids is None:
      position_ids = jnp.broadcast_to(jnp.arange(ids.shape[-1]), ids.shape)
    return Output(self.module.apply({"params": params}, ids, attention_mask,
                                    token_type_ids, position_ids))

  def num_params(self) -> int:
    return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(self.params)))

  def save_pretrained(self, folder: str) -> None:
    """Writes ``config.json`` and ``model.safetensors`` to ``folder``."""
    os.makedirs(folder, exist_ok=True)
    cfg = self.config.to_dict()
    cfg[_CONFIG_KEY] = {
        "arch": self.arch, "heads_per_layer": list(self.heads_per_layer),
        "intermediate_sizes": list(self.intermediate_sizes),
        "head_dim": self.head_dim,
        "kept_heads": [list(x) for x in self.kept_heads],
        "kept_neurons": [list(x) for x in self.kept_neurons]}
    with open(os.path.join(folder, "config.json"), "w") as f:
      json.dump(cfg, f, indent=2, sort_keys=True)
    export.save_dense(os.path.join(folder, "model.safetensors"), self.params)

  @classmethod
  def from_pretrained(cls, folder: str) -> "ShrunkModel":
    """Reads a folder written by :meth:`save_pretrained`."""
    from safetensors.numpy import load_file
    from transformers import BertConfig, ViTConfig
    with open(os.path.join(folder, "config.json")) as f:
      cfg = json.load(f)
    info = cfg.pop(_CONFIG_KEY)
    config = (BertConfig if info["arch"] == "bert" else ViTConfig).from_dict(
        cfg)
    flat = load_file(os.path.join(folder, "model.safetensors"))
    params = export._nest({k: jnp.asarray(v) for k, v in flat.items()})
    return cls(config, info["arch"], tuple(info["heads_per_layer"]),
               tuple(info["intermediate_sizes"]), int(info["head_dim"]),
               params, tuple(tuple(x) for x in info["kept_heads"]),
               tuple(tuple(x) for x in info["kept_neurons"]))

  def to_hf(self):
    """The equivalent Hugging Face model, when one exists.

    Raises:
      ValueError: unless every layer keeps all heads and the same number of
        neurons (HF configs cannot describe anything else).
    """
    from transformers import (FlaxBertForSequenceClassification,
                              FlaxViTForImageClassification)
    full = self.config.num_attention_heads
    sizes = set(self.intermediate_sizes)
    if any(h != full for h in self.heads_per_layer) or len(sizes) != 1:
      raise ValueError(
          "a Hugging Face config needs the same heads and intermediate size "
          f"in every layer; got heads {self.heads_per_layer} and "
          f"intermediate sizes {self.intermediate_sizes}")
    cfg = _layer_cfg(self.config, sizes.pop())
    cls = (FlaxBertForSequenceClassification if self.arch == "bert"
           else FlaxViTForImageClassification)
    model = cls(cfg, seed=0)  # random init, replaced below
    model.params = self.params
    return model


def _layers_of(params, arch):
  return params[arch]["encoder"]["layer"]


def live_units(params: Any, config: Any) -> tuple[list[np.ndarray],
                                                  list[np.ndarray]]:
  """Indices of the heads and neurons that contribute, per layer.

  Args:
    params: params of a Hugging Face Flax BERT/ViT classifier.
    config: its config.

  Returns:
    ``(heads, neurons)``: per layer, int arrays of live head and neuron
    indices (see the module docstring for the rule).
  """
  arch = _arch_of(config)
  act = config.hidden_act
  from transformers.modeling_flax_utils import ACT2FN
  zero_maps_to_zero = float(ACT2FN[act](jnp.zeros(()))) == 0.0
  nh = config.num_attention_heads
  heads, neurons = [], []
  layers = _layers_of(params, arch)
  for i in sorted(layers, key=int):
    lp = jax.tree.map(np.asarray, layers[i])
    att = lp["attention"]["self" if arch == "bert" else "attention"]
    o = lp["attention"]["output"]["dense"]["kernel"]
    d = o.shape[0] // nh
    o_dead = ~np.any(o.reshape(nh, -1) != 0, axis=1)
    v = att["value"]
    v_dead = ~(np.any(v["kernel"].reshape(-1, nh, d) != 0, axis=(0, 2))
               | np.any(v["bias"].reshape(nh, d) != 0, axis=1))
    heads.append(np.flatnonzero(~(o_dead | v_dead)))
    out_dead = ~np.any(lp["output"]["dense"]["kernel"] != 0, axis=1)
    inter = lp["intermediate"]["dense"]
    in_dead = ~(np.any(inter["kernel"] != 0, axis=0) | (inter["bias"] != 0))
    dead = out_dead | (in_dead & zero_maps_to_zero)
    neurons.append(np.flatnonzero(~dead))
  return heads, neurons


def shrink(model: Any, params: Any = None, masks: Any = None) -> ShrunkModel:
  """Slices dead heads and neurons out of a Hugging Face Flax BERT/ViT.

  Args:
    model: a ``FlaxBertForSequenceClassification`` or
      ``FlaxViTForImageClassification`` (its config is used).
    params: the pruned params (default ``model.params``).
    masks: optional pruning state (or mask tree) applied to ``params`` first
      with :func:`jaxprune.export.apply_masks`.

  Returns:
    A :class:`ShrunkModel` whose logits equal ``model(..., params=params)``
    up to float rounding.
  """
  config = model.config
  arch = _arch_of(config)
  params = model.params if params is None else params
  if masks is not None:
    params = export.apply_masks(params, masks)
  if arch not in params:
    raise ValueError(f"expected classifier params with a top-level {arch!r} "
                     f"entry, got {sorted(params)}")
  heads, neurons = live_units(params, config)
  nh = config.num_attention_heads
  d = config.hidden_size // nh
  new_layers = {}
  layers = _layers_of(params, arch)
  for i, hk, nk in zip(sorted(layers, key=int), heads, neurons):
    lp = jax.tree.map(np.asarray, layers[i])
    cols = (hk[:, None] * d + np.arange(d)[None, :]).reshape(-1)
    sub = "self" if arch == "bert" else "attention"
    att = lp["attention"][sub]
    for name in ("query", "key", "value"):
      att[name] = {"kernel": att[name]["kernel"][:, cols],
                   "bias": att[name]["bias"][cols]}
    od = lp["attention"]["output"]["dense"]
    od["kernel"] = od["kernel"][cols]
    inter = lp["intermediate"]["dense"]
    inter["kernel"], inter["bias"] = inter["kernel"][:, nk], inter["bias"][nk]
    out = lp["output"]["dense"]
    out["kernel"] = out["kernel"][nk]
    new_layers[i] = jax.tree.map(jnp.asarray, lp)
  new_params = jax.tree.map(lambda x: x, dict(params))
  new_params[arch] = dict(params[arch])
  new_params[arch]["encoder"] = dict(params[arch]["encoder"])
  new_params[arch]["encoder"]["layer"] = new_layers
  return ShrunkModel(config, arch, tuple(len(h) for h in heads),
                     tuple(len(n) for n in neurons), d, new_params,
                     tuple(tuple(int(j) for j in h) for h in heads),
                     tuple(tuple(int(j) for j in n) for n in neurons))
