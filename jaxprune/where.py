"""Which leaves are prunable: ``where`` resolution and model presets.

``where`` is one of:

* ``None``: every floating-point leaf with ``ndim >= 2`` (weight matrices);
* a callable ``(path, leaf) -> bool`` over ``jax.tree_util`` key paths;
* a pytree of bools with the structure of the params;
* a preset name: ``"bert"`` (BERT/RoBERTa/MiniLM encoders) or ``"vit"``
  (ViT/DeiT encoders), for the params of :mod:`jaxprune.models` (plain trees
  or ``nnx.State``) and the identical trees of the former Hugging Face Flax
  models; ``"bert_kernels"`` and ``"vit_kernels"`` are the same without the
  biases.

``bert`` and ``vit`` reproduce the PLATON reference's choice: Q, K, V, the
attention output projection and both FFN projections of every encoder layer,
kernels *and* biases; not embeddings, LayerNorms, the pooler or the task
head. ``bert_kernels`` is Sanh et al.'s choice for movement pruning (the
six weight matrices of every layer, no biases), the default of
:func:`jaxprune.topk_movement`.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

__all__ = ["bert", "bert_kernels", "vit", "vit_kernels", "path_str",
           "resolve", "PRESETS"]

_LINEAR_SUFFIX = r"/(kernel|bias)$"
_BERT_RE = re.compile(
    r"(^|/)encoder/layer/\d+/(attention/self/(query|key|value)"
    r"|attention/output/dense|intermediate/dense|output/dense)" + _LINEAR_SUFFIX)
_VIT_RE = re.compile(
    r"(^|/)encoder/layer/\d+/(attention/attention/(query|key|value)"
    r"|attention/output/dense|intermediate/dense|output/dense)" + _LINEAR_SUFFIX)


def path_str(path: Sequence[Any]) -> str:
  """``('bert', 'encoder', ...)`` key path as ``'bert/encoder/...'``.

  The trailing ``.value`` attribute of a Flax NNX ``Variable`` (the leaves of
  ``nnx.state(model, nnx.Param)``, what ``nnx.Optimizer`` passes to the
  transformation) is dropped, so NNX states and plain params trees have the
  same paths.
  """
  parts = []
  path = tuple(path)
  if (path and isinstance(path[-1], jax.tree_util.GetAttrKey)
      and path[-1].name == "value"):
    path = path[:-1]
  for key in path:
    for attr in ("key", "name", "idx"):
      if hasattr(key, attr):
        parts.append(str(getattr(key, attr)))
        break
    else:
      parts.append(str(key))
  return "/".join(parts)


def bert(path: Sequence[Any], leaf: Any) -> bool:
  """Preset for BERT-style encoders (BERT, RoBERTa, MiniLM): our models and
  Hugging Face Flax trees.

  Example:
    >>> import jaxprune
    >>> params = {"bert": {"encoder": {"layer": {"0": {"attention": {"self": {
    ...     "query": {"kernel": 1.0}}}}}}, "pooler": {"dense": {"kernel": 1.0}}}}
    >>> jaxprune.where.bert(("bert", "encoder", "layer", "0", "attention",
    ...     "self", "query", "kernel"), None)
    True
  """
  del leaf
  return _BERT_RE.search(path_str(path)) is not None


def vit(path: Sequence[Any], leaf: Any) -> bool:
  """Preset for ViT/DeiT encoders, ours or Hugging Face Flax (Q/K/V live
  under ``attention/attention/{query,key,value}``)."""
  del leaf
  return _VIT_RE.search(path_str(path)) is not None


def bert_kernels(path: Sequence[Any], leaf: Any) -> bool:
  """:func:`bert` without the biases: the six weight matrices of every layer.

  Example:
    >>> import jaxprune
    >>> layer = ("bert", "encoder", "layer", "0", "intermediate", "dense")
    >>> [jaxprune.where.bert_kernels(layer + (k,), None)
    ...  for k in ("kernel", "bias")]
    [True, False]
  """
  return bert(path, leaf) and path_str(path).endswith("/kernel")


def vit_kernels(path: Sequence[Any], leaf: Any) -> bool:
  """:func:`vit` without the biases."""
  return vit(path, leaf) and path_str(path).endswith("/kernel")


def _default(path, leaf) -> bool:
  del path
  return (hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.floating)
          and getattr(leaf, "ndim", 0) >= 2)


PRESETS: dict[str, Callable[[Any, Any], bool]] = {
    "bert": bert, "vit": vit, "bert_kernels": bert_kernels,
    "vit_kernels": vit_kernels}


def resolve(where, params) -> list[bool]:
  """Resolves ``where`` to one bool per leaf of ``params`` (flatten order).

  Raises:
    ValueError: if ``params`` is None, ``where`` has the wrong type or
      structure, selects nothing, or selects a non-floating leaf.
  """
  if params is None:
    raise ValueError("`params` must be the parameter pytree, got None")
  paths_leaves, _ = jax.tree_util.tree_flatten_with_path(params)
  if isinstance(where, str):
    if where not in PRESETS:
      raise ValueError(
          f"`where` preset must be one of {sorted(PRESETS)}, got {where!r}")
    where = PRESETS[where]
  if where is None:
    flags = [bool(_default(p, x)) for p, x in paths_leaves]
  elif callable(where):
    flags = [bool(where(p, x)) for p, x in paths_leaves]
  else:
    try:
      flags = [bool(f) for f in jax.tree_util.tree_leaves(
          jax.tree.map(lambda _, f: f, params, where))]
    except (ValueError, TypeError) as e:
      raise ValueError(
          "`where` must be None, a preset name, a callable (path, leaf) -> "
          "bool, or a pytree of bools with the structure of `params`; "
          f"the pytree given does not match `params`: {e}") from None
  if not any(flags):
    raise ValueError(
        "`where` selects no leaf of `params`: nothing would be pruned. "
        "Check the preset or callable against the parameter paths "
        f"(first paths: {[path_str(p) for p, _ in paths_leaves[:4]]})")
  for (path, leaf), flag in zip(paths_leaves, flags):
    if flag and not (hasattr(leaf, "dtype")
                     and jnp.issubdtype(leaf.dtype, jnp.floating)):
      raise ValueError(
          f"`where` selects the non-floating leaf {path_str(path)!r} "
          f"(dtype {getattr(leaf, 'dtype', type(leaf).__name__)}); only "
          "floating-point leaves can be pruned")
  return flags
