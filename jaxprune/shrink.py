"""Physically smaller BERT/ViT models after head/neuron pruning.

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

The result is our own model (:mod:`jaxprune.models`) with a smaller config:
:class:`jaxprune.models.BertConfig`/``ViTConfig`` hold per-layer head counts
and FFN widths. ``save_pretrained`` writes an HF folder (see
:mod:`jaxprune.models.export` for how per-layer sizes, which HF configs cannot
express, are written).

Example:
  >>> import numpy as np, jax
  >>> from flax import nnx
  >>> from jaxprune import models, shrink
  >>> cfg = models.BertConfig(vocab_size=20, hidden_size=8,
  ...     heads_per_layer=(2,), head_dim=4, intermediate_sizes=(6,),
  ...     num_labels=2)
  >>> fm = models.FunctionalModel(
  ...     models.BertForSequenceClassification(cfg, rngs=nnx.Rngs(0)))
  >>> p = jax.tree.map(np.array, fm.params)
  >>> p["bert"]["encoder"]["layer"]["0"]["output"]["dense"]["kernel"][:2] = 0
  >>> small = shrink.shrink(fm, p)
  >>> small.heads_per_layer, small.intermediate_sizes
  ((2,), (4,))
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxprune import export
from jaxprune.models import FunctionalModel, build, from_pretrained
from jaxprune.models import layers as layers_lib
from jaxprune.models.hf_names import PREFIXES

__all__ = ["ShrunkModel", "shrink", "live_units"]


class ShrunkModel(FunctionalModel):
  """A :class:`jaxprune.models.FunctionalModel` with a shrunk config.

  Attributes:
    kept_heads: original indices of the kept heads, per layer.
    kept_neurons: original indices of the kept neurons, per layer.
  """
  kept_heads: tuple[tuple[int, ...], ...] = ()
  kept_neurons: tuple[tuple[int, ...], ...] = ()

  @property
  def heads_per_layer(self) -> tuple[int, ...]:
    return self.config.heads_per_layer

  @property
  def intermediate_sizes(self) -> tuple[int, ...]:
    return self.config.intermediate_sizes

  @classmethod
  def from_pretrained(cls, folder: str, **kwargs: Any) -> "ShrunkModel":
    """Reads a folder written by ``save_pretrained`` (zero-padded layers are
    sliced out again)."""
    model = from_pretrained(folder, **kwargs)
    return shrink(model)


def _encoder_root(params: Any, family: str) -> tuple[dict, str | None]:
  for p in PREFIXES[family]:
    if p in params:
      return params[p], p
  return params, None


def live_units(params: Any, config: Any) -> tuple[list[np.ndarray],
                                                  list[np.ndarray]]:
  """Indices of the heads and neurons that contribute, per layer.

  Args:
    params: params of one of our BERT/ViT models (or an HF Flax tree of the
      same layout).
    config: its :class:`jaxprune.models.BertConfig`/``ViTConfig``.

  Returns:
    ``(heads, neurons)``: per layer, int arrays of live head and neuron
    indices (see the module docstring for the rule).
  """
  act = layers_lib.activation(config.hidden_act)
  zero_maps_to_zero = float(act(jnp.zeros(()))) == 0.0
  d = config.head_dim
  sub = "self" if config.family == "bert" else "attention"
  root, _ = _encoder_root(params, config.family)
  layers = root["encoder"]["layer"]
  heads, neurons = [], []
  for i, nh in enumerate(config.heads_per_layer):
    lp = jax.tree.map(np.asarray, layers[str(i)])
    att = lp["attention"][sub]
    o = lp["attention"]["output"]["dense"]["kernel"]
    o_dead = ~np.any(o.reshape(nh, -1) != 0, axis=1)
    v = att["value"]
    v_live = np.any(v["kernel"].reshape(-1, nh, d) != 0, axis=(0, 2))
    if "bias" in v:
      v_live |= np.any(v["bias"].reshape(nh, d) != 0, axis=1)
    heads.append(np.flatnonzero(~(o_dead | ~v_live)))
    out_dead = ~np.any(lp["output"]["dense"]["kernel"] != 0, axis=1)
    inter = lp["intermediate"]["dense"]
    in_dead = ~(np.any(inter["kernel"] != 0, axis=0) | (inter["bias"] != 0))
    neurons.append(np.flatnonzero(~(out_dead | (in_dead & zero_maps_to_zero))))
  return heads, neurons


def _task_of(module: nnx.Module) -> str:
  from jaxprune.models import export as mexport
  return {"Model": "base",
          "ForSequenceClassification": "sequence_classification",
          "ForQuestionAnswering": "question_answering",
          "ForImageClassification": "image_classification"}[
              mexport._TASK_OF[type(module)]]


def shrink(model: Any, params: Any = None, masks: Any = None) -> ShrunkModel:
  """Slices dead heads and neurons out of one of our BERT/ViT models.

  Args:
    model: a :class:`jaxprune.models.FunctionalModel` (or NNX module) of
      :mod:`jaxprune.models`.
    params: the pruned params (default ``model.params``).
    masks: optional pruning state (or mask tree) applied to ``params`` first
      with :func:`jaxprune.export.apply_masks`.

  Returns:
    A :class:`ShrunkModel` whose outputs equal ``model(..., params=params)``
    up to float rounding.
  """
  if isinstance(model, nnx.Module):
    model = FunctionalModel(model)
  if not isinstance(model, FunctionalModel):
    raise TypeError("shrink takes a jaxprune.models model (Hugging Face "
                    "Flax models are gone with transformers 5: load the "
                    "checkpoint with jaxprune.models.from_pretrained), got "
                    f"{type(model).__name__}")
  params = model.params if params is None else params
  if masks is not None:
    params = export.apply_masks(params, masks)
  cfg = model.config
  heads, neurons = live_units(params, cfg)
  d = cfg.head_dim
  sub = "self" if cfg.family == "bert" else "attention"
  new = jax.tree.map(np.asarray, params)
  root, _ = _encoder_root(new, cfg.family)
  for i, (hk, nk) in enumerate(zip(heads, neurons)):
    lp = root["encoder"]["layer"][str(i)]
    cols = (hk[:, None] * d + np.arange(d)[None, :]).reshape(-1)
    att = lp["attention"][sub]
    for name in ("query", "key", "value"):
      att[name] = {k: (v[:, cols] if k == "kernel" else v[cols])
                   for k, v in att[name].items()}
    od = lp["attention"]["output"]["dense"]
    od["kernel"] = od["kernel"][cols]
    inter = lp["intermediate"]["dense"]
    inter["kernel"], inter["bias"] = inter["kernel"][:, nk], inter["bias"][nk]
    out = lp["output"]["dense"]
    out["kernel"] = out["kernel"][nk]
  small_cfg = cfg.replace(heads_per_layer=tuple(len(h) for h in heads),
                          intermediate_sizes=tuple(len(n) for n in neurons))
  task = _task_of(model.module())
  abstract = nnx.eval_shape(lambda: build(small_cfg, task))
  graphdef, state = nnx.split(abstract, nnx.Param)
  nnx.replace_by_pure_dict(state, jax.tree.map(jnp.asarray, new))
  out = ShrunkModel(nnx.merge(graphdef, state), source=model.source)
  out.kept_heads = tuple(tuple(int(j) for j in h) for h in heads)
  out.kept_neurons = tuple(tuple(int(j) for j in n) for n in neurons)
  return out
