"""A model as a pure function of its params, for optax-style training.

:class:`FunctionalModel` splits an NNX module once (``nnx.split``) into a
static graph and a params tree of plain nested dicts (the paths of the former
HF Flax params: ``bert/encoder/layer/0/attention/self/query/kernel``); each
call merges them back (``nnx.merge``), which costs nothing after tracing. It
has the call signature the experiments and :mod:`jaxprune.train.hf` use:
``model(inputs, attention_mask=..., token_type_ids=..., params=...,
dropout_rng=..., train=...)``.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from flax import nnx
  >>> from jaxprune import models
  >>> cfg = models.BertConfig(vocab_size=30, hidden_size=8,
  ...     heads_per_layer=(2,), head_dim=4, intermediate_sizes=(16,),
  ...     num_labels=2)
  >>> fm = models.FunctionalModel(
  ...     models.BertForSequenceClassification(cfg, rngs=nnx.Rngs(0)))
  >>> sorted(fm.params)
  ['bert', 'classifier']
  >>> ids = jnp.ones((1, 4), jnp.int32)
  >>> jax.jit(lambda p: fm(ids, params=p).logits)(fm.params).shape
  (1, 2)
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from jaxprune.models import layers

__all__ = ["FunctionalModel"]


class FunctionalModel:
  """An NNX module seen as ``(params, inputs) -> outputs``.

  Attributes:
    graphdef: the static part (``nnx.split``).
    params: the parameters, nested dicts of arrays.
    config: the module's config.
    source: the folder the weights came from (tokenizer files are copied
      from it on export), or None.
  """

  def __init__(self, module: nnx.Module, source: str | None = None):
    self.graphdef, state = nnx.split(module, nnx.Param)
    self._abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
    self.params = state.to_pure_dict()
    self.config = module.config
    self.source = source

  def module(self, params: Any = None) -> nnx.Module:
    """The NNX module holding ``params`` (default: :attr:`params`)."""
    state = jax.tree.map(lambda x: x, self._abstract)
    nnx.replace_by_pure_dict(state, self.params if params is None else params)
    return nnx.merge(self.graphdef, state)

  def __call__(self, *inputs: Any, params: Any = None,
               dropout_rng: jax.Array | None = None, train: bool = False,
               **kwargs: Any) -> Any:
    """The module's output for ``inputs`` with ``params``.

    Args:
      *inputs: positional inputs (``input_ids`` or ``pixel_values``).
      params: the params (default :attr:`params`).
      dropout_rng: PRNG key for dropout (only used with ``train=True``).
      train: dropout on.
      **kwargs: other module inputs (``attention_mask``, ``token_type_ids``).

    Returns:
      The module's output (``.logits`` or ``.start_logits``/``.end_logits``
      or ``.last_hidden_state``).
    """
    rngs = None
    if train and dropout_rng is not None:
      rngs = nnx.Rngs(dropout=dropout_rng)
    module = self.module(params)
    layers.register_paths(module)  # for layers.intercept_linear (DeepCuts)
    return module(*inputs, deterministic=not train, rngs=rngs, **kwargs)

  def with_params(self, params: Any) -> "FunctionalModel":
    """A copy holding ``params`` of the same structure."""
    return FunctionalModel(self.module(params), self.source)

  def num_params(self) -> int:
    """Number of scalars in :attr:`params`."""
    return int(sum(x.size for x in jax.tree_util.tree_leaves(self.params)))

  def save_pretrained(self, folder: str, **kwargs: Any) -> Any:
    """:func:`jaxprune.models.save_pretrained` of this model."""
    from jaxprune.models import export
    return export.save_pretrained(self, folder, **kwargs)
