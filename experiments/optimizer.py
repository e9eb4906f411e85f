"""The one optimizer builder of the experiments, and the papers' recipes.

:func:`build_tx` (methods with an optax factory) and :func:`build_optimizer`
(the inner optimizer that model-aware methods get too) turn a
:class:`experiments.config.RunConfig` into optax transformations.

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

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

import jaxprune
from experiments import config_checks, methods

__all__ = ["decay_mask", "lr_schedule", "make_optimizer",
           "scale_by_mtdnn_adamax", "mtdnn_adamax", "to_steps", "steps_for",
           "resolve_where", "method_overrides", "run_lr_schedule",
           "build_optimizer", "build_tx"]

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


def to_steps(value: Any, steps_per_epoch: int, total_steps: int) -> int:
  """``7`` -> 7, ``"2 epochs"`` -> 2 * steps_per_epoch, ``0.1`` -> 10% of T."""
  if isinstance(value, bool):
    raise ValueError(f"not a step count: {value!r}")
  if isinstance(value, int):
    return value
  if isinstance(value, float):
    if not 0 <= value < 1:
      raise ValueError(f"a float step count is a fraction in [0, 1), got {value}")
    return int(round(value * total_steps))
  if isinstance(value, str):
    m = config_checks.STEP_COUNT_RE.match(value)
    if m:
      n = float(m.group(1))
      return int(round(n * steps_per_epoch)) if m.group(2).startswith(
          "epoch") else int(n)
  raise ValueError(f"not a step count: {value!r} (int, 'N epochs' or a "
                   f"fraction)")


def steps_for(cfg: Any, train_size: int) -> tuple[int, int]:
  """``(total_steps, steps_per_epoch)`` from ``steps`` or ``epochs``."""
  per_epoch = max(1, math.ceil(train_size / cfg.batch_size))
  if cfg.steps is not None:
    return max(1, to_steps(cfg.steps, per_epoch, 0)), per_epoch
  return max(1, int(math.ceil(cfg.epochs * per_epoch))), per_epoch


def _kernels_only(preset: Callable) -> Callable:
  def where(path, leaf):
    return preset(path, leaf) and jaxprune.where.path_str(path).endswith(
        "kernel")
  return where


def _bert_kernels_and_pooler(path, leaf) -> bool:
  name = jaxprune.where.path_str(path)
  return (name.endswith("pooler/dense/kernel")
          or _kernels_only(jaxprune.where.bert)(path, leaf))


def resolve_where(name: str) -> Any:
  """``bert``/``vit`` presets, ``*_kernels`` (weights only, as MGPP), or
  ``bert_kernels_pooler`` (weights only plus the pooler's, as SEVEN)."""
  if name in jaxprune.where.PRESETS:
    return name
  if name == "bert_kernels_pooler":
    return _bert_kernels_and_pooler
  if name.endswith("_kernels") and name[:-8] in jaxprune.where.PRESETS:
    return _kernels_only(jaxprune.where.PRESETS[name[:-8]])
  raise ValueError(f"`where` must be bert, vit, bert_kernels, vit_kernels or "
                   f"bert_kernels_pooler, got {name!r}")


def method_overrides(cfg: Any, steps_per_epoch: int,
                     total_steps: int) -> dict:
  """``cfg.method_args`` with step counts converted to steps."""
  args = dict(cfg.method_args)
  for key in ("warmup_steps", "final_steps", "pruning_steps"):
    if args.get(key) is not None:
      args[key] = to_steps(args[key], steps_per_epoch, total_steps)
  return args


def run_lr_schedule(cfg: Any, *, total_steps: int,
                steps_per_epoch: int) -> optax.Schedule:
  """The run's learning-rate schedule."""
  warmup = min(to_steps(cfg.lr_warmup, steps_per_epoch, total_steps),
               total_steps - 1)
  return lr_schedule(cfg.lr_schedule, cfg.lr, total_steps, warmup,
                     cfg.lr_end_factor)


def build_optimizer(cfg: Any, *, total_steps: int,
                    steps_per_epoch: int
                    ) -> tuple[optax.Schedule, optax.GradientTransformation]:
  """``(schedule, inner optimizer)``: the one inner optimizer of a run."""
  lr = run_lr_schedule(cfg, total_steps=total_steps,
                       steps_per_epoch=steps_per_epoch)
  return lr, make_optimizer(cfg.optimizer, lr)


def build_tx(cfg: Any, *, total_steps: int, steps_per_epoch: int,
             num_examples: int, where: Any, pattern: Any = None
             ) -> tuple[optax.GradientTransformation, dict]:
  """The run's optax transformation (not model-aware methods) and its
  method arguments."""
  lr, inner = build_optimizer(cfg, total_steps=total_steps,
                              steps_per_epoch=steps_per_epoch)
  overrides = ({} if cfg.method == "dense" else
               method_overrides(cfg, steps_per_epoch, total_steps))
  return methods.make_tx(cfg.method, learning_rate=lr,
                         sparsity=cfg.sparsity, total_steps=total_steps,
                         where=where, num_examples=num_examples,
                         clip_norm=cfg.clip_norm, optimizer=inner,
                         pattern=None if cfg.method == "dense" else pattern,
                         **overrides), overrides
