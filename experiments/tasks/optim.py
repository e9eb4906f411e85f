"""Inner optimizers and learning-rate schedules of the papers' recipes.

* ``adamw``: optax AdamW with decoupled weight decay on every leaf except
  biases and normalisation scales (the usual ``no_decay`` list of the
  PyTorch scripts: ``bias``, ``LayerNorm.weight``).
* ``mtdnn_adamax``: the Adamax of the MT-DNN code base that PLATON's GLUE
  scripts use: no bias correction, ``u <- max(b2 * u, |g| + eps)``,
  ``update = m / (u + eps)``, decoupled weight decay added before the
  learning rate (0.01, not on biases and LayerNorms).

Schedules (``lr_schedule``):

* ``constant``;
* ``linear``: linear warm-up over ``warmup`` steps from 0, then linear from
  ``lr`` to ``end_factor * lr`` at the last step (HF ``run_glue``/``run_squad``
  with ``end_factor=0``; MGPP with ``end_factor`` 0.1 or 0.01 and no warm-up);
* ``warmup_linear``: pytorch-pretrained-bert's ``warmup_linear`` used by
  MT-DNN: with ``x = step / T`` the multiplier is ``x / w`` for ``x < w`` and
  ``1 - x`` after, so it drops from 1 to ``1 - w`` at the end of warm-up.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

__all__ = ["decay_mask", "lr_schedule", "make_optimizer",
           "scale_by_mtdnn_adamax", "mtdnn_adamax"]

_NO_DECAY_LEAVES = ("bias", "scale")


def decay_mask(params: Any) -> Any:
  """True for leaves that get weight decay (not biases or norm scales)."""

  def decays(path, _):
    last = path[-1]
    name = str(getattr(last, "key", getattr(last, "name", last)))
    return name not in _NO_DECAY_LEAVES

  return jax.tree_util.tree_map_with_path(decays, params)


def scale_by_mtdnn_adamax(b1: float = 0.9, b2: float = 0.999,
                          eps: float = 1e-6) -> optax.GradientTransformation:
  """MT-DNN's Adamax direction without bias correction (see module doc)."""

  def init(params):
    zeros = lambda: jax.tree.map(lambda p: jnp.zeros_like(p, jnp.float32),
                                 params)
    return optax.ScaleByAdamState(count=jnp.zeros([], jnp.int32), mu=zeros(),
                                  nu=zeros())

  def update(updates, state, params=None):
    del params
    mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g.astype(jnp.float32),
                      state.mu, updates)
    nu = jax.tree.map(
        lambda u, g: jnp.maximum(b2 * u, jnp.abs(g.astype(jnp.float32)) + eps),
        state.nu, updates)
    out = jax.tree.map(lambda m, u, g: (m / (u + eps)).astype(g.dtype),
                       mu, nu, updates)
    return out, optax.ScaleByAdamState(count=state.count + 1, mu=mu, nu=nu)

  return optax.GradientTransformation(init, update)


def mtdnn_adamax(learning_rate: Any, b1: float = 0.9, b2: float = 0.999,
                 eps: float = 1e-6, weight_decay: float = 0.01
                 ) -> optax.GradientTransformation:
  """Adamax of MT-DNN (PLATON GLUE scripts) with masked decoupled decay."""
  return optax.chain(scale_by_mtdnn_adamax(b1, b2, eps),
                     optax.add_decayed_weights(weight_decay, mask=decay_mask),
                     optax.scale_by_learning_rate(learning_rate))


def lr_schedule(kind: str, lr: float, total_steps: int, warmup_steps: int = 0,
                end_factor: float = 0.0) -> Callable[[Any], Any]:
  """The learning-rate schedule ``kind`` (see the module docstring)."""
  if kind == "constant":
    return optax.constant_schedule(lr)
  if kind == "linear":
    decay = optax.linear_schedule(lr, lr * end_factor,
                                  max(1, total_steps - warmup_steps))
    if warmup_steps <= 0:
      return decay
    return optax.join_schedules(
        [optax.linear_schedule(0.0, lr, warmup_steps), decay], [warmup_steps])
  if kind == "warmup_linear":
    w = warmup_steps / total_steps

    def schedule(count):
      x = jnp.asarray(count, jnp.float32) / total_steps
      mult = jnp.where(x < w, x / max(w, 1e-12), 1.0 - x)
      return lr * jnp.maximum(mult, 0.0)

    return schedule
  raise ValueError(f"`lr_schedule` must be constant, linear or warmup_linear, "
                   f"got {kind!r}")


def make_optimizer(spec: dict, learning_rate: Any) -> optax.GradientTransformation:
  """Builds the inner optimizer from ``{"name": ..., **hyperparameters}``.

  Args:
    spec: ``name`` is ``adamw`` (keys ``b1``, ``b2``, ``eps``,
      ``weight_decay``) or ``mtdnn_adamax`` (the same keys).
    learning_rate: float or optax schedule.

  Returns:
    The optax transformation.
  """
  spec = dict(spec)
  name = spec.pop("name", "adamw")
  if name == "adamw":
    return optax.adamw(learning_rate, b1=spec.pop("b1", 0.9),
                       b2=spec.pop("b2", 0.999), eps=spec.pop("eps", 1e-8),
                       weight_decay=spec.pop("weight_decay", 0.01),
                       mask=decay_mask, **spec)
  if name == "mtdnn_adamax":
    return mtdnn_adamax(learning_rate, **spec)
  raise ValueError(f"optimizer name must be adamw or mtdnn_adamax, got {name!r}")
