"""One place that turns ``--method NAME`` into an optax transformation.

Every experiment script (demo, GLUE, SQuAD, ViT, compare) builds its
optimizer here, so a method added to the package is added to all of them at
once and every method gets the same inner optimizer, clipping and data.

Example:
  >>> import optax
  >>> from experiments import methods
  >>> tx = methods.make_tx("platon", learning_rate=optax.constant_schedule(1e-3),
  ...                      sparsity=0.8, total_steps=100, where=None)
  >>> "dense" in methods.METHODS
  True
"""

from __future__ import annotations

from typing import Any, Callable

import optax

import jaxprune

#: Every value ``--method`` accepts; "dense" trains without pruning.
METHODS = ("dense", "platon", "magnitude", "taylor", "movement",
           "first_order_movement", "seven", "mgpp", "pins")


def _pruner(method: str, inner: optax.GradientTransformation, *,
            learning_rate: Callable, sparsity: float, total_steps: int,
            where: Any, num_examples: int | None,
            overrides: dict[str, Any]) -> optax.GradientTransformation:
  common = dict(sparsity=sparsity, total_steps=total_steps, where=where,
                **overrides)
  if method == "platon":
    return jaxprune.platon(inner, **common)
  if method == "magnitude":
    return jaxprune.magnitude(inner, **common)
  if method == "taylor":
    return jaxprune.taylor(inner, **{"beta": 0.85, **common})
  if method in ("movement", "first_order_movement"):
    # The first-order optax variant (the experiment runner's "movement" is
    # the authors' learned-score version: experiments.model_aware).
    return jaxprune.movement(inner, **common)
  if method == "seven":
    return jaxprune.seven(inner, **common)
  if method == "pins":   # eta = the inner optimizer's own schedule
    return jaxprune.pins(inner, **{"learning_rate": learning_rate, **common})
  if method == "mgpp":
    if num_examples is None:
      raise ValueError("method 'mgpp' needs `num_examples` (the training-set "
                       "size; its prior is divided by it)")
    return jaxprune.mgpp(inner, num_examples=num_examples, **common)
  raise ValueError(f"`method` must be one of {METHODS}, got {method!r}")


def make_tx(method: str, *, learning_rate: Callable[[Any], Any] | float,
            sparsity: float, total_steps: int, where: Any,
            num_examples: int | None = None, weight_decay: float = 0.01,
            clip_norm: float | None = 1.0, optimizer: Any = None,
            pattern: Any = None,
            **overrides: Any) -> optax.GradientTransformation:
  """``clip -> method(adamw(learning_rate))``, or plain AdamW for "dense".

  Args:
    method: one of :data:`METHODS`.
    learning_rate: float or optax schedule of the inner AdamW.
    sparsity: final pruned fraction of the ``where`` leaves.
    total_steps: optimizer updates in the run.
    where: prunable leaves (``"bert"``, ``"vit"``, a callable, ...).
    num_examples: training-set size (MGPP scales its prior by 1/N).
    weight_decay: AdamW's decoupled weight decay.
    clip_norm: global-norm clipping before the pruner (the reference codes
      score the clipped gradient); ``None`` for none.
    optimizer: an optax transformation replacing AdamW (e.g. the MGPP
      scripts' ``adamw(b1=0.9, b2=0.98, eps=1e-6, weight_decay=0)``).
    pattern: sparsity pattern passed to the method's factory when not
      ``None`` (``"2:4"``, ``jaxprune.patterns.heads_and_neurons(...)``;
      see :mod:`jaxprune.patterns`); ``None`` keeps the factory default.
    **overrides: keyword arguments of the method's factory (``beta1``,
      ``warmup_steps``, ``delta_t``, ...).

  Returns:
    The optax transformation.
  """
  if method not in METHODS:
    raise ValueError(f"`method` must be one of {METHODS}, got {method!r}")
  inner = optimizer if optimizer is not None else optax.adamw(
      learning_rate, weight_decay=weight_decay)
  if method == "dense":
    tx = inner
  else:
    if pattern is not None:
      overrides = {**overrides, "pattern": pattern}
    lr_fn = (learning_rate if callable(learning_rate)
             else optax.constant_schedule(learning_rate))
    tx = _pruner(method, inner, learning_rate=lr_fn, sparsity=sparsity,
                 total_steps=total_steps, where=where,
                 num_examples=num_examples, overrides=overrides)
  if clip_norm is None:
    return tx
  return optax.chain(optax.clip_by_global_norm(clip_norm), tx)
