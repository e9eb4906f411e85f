"""Training one run of :mod:`experiments.run`: steps, data order, optimizer.

:class:`Trainer` wires a task's loss and batches to :func:`jaxprune.train.fit`
on one device, ``pmap`` or sharded ``jit`` (``cfg.parallel``; multi-host when
``jax.distributed`` is initialised: every host feeds its slice of each global
batch). :func:`train_and_evaluate` adds the model-aware methods
(:mod:`experiments.model_aware`): they get the same inner optimizer, learning
rate schedule and clipping as every other method (:func:`build_optimizer`).
"""

from __future__ import annotations

import math
import os
import re
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

import jaxprune
from experiments import methods
from experiments import model_aware
from experiments.config import RunConfig
from experiments.tasks import optim
from jaxprune import train

__all__ = ["to_steps", "steps_for", "resolve_where", "lr_schedule",
           "build_optimizer", "build_tx", "batched_predict", "Trainer",
           "train_and_evaluate", "make_plan", "Outcome"]

_EPOCHS_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(epochs?|steps?)\s*$")


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
    m = _EPOCHS_RE.match(value)
    if m:
      n = float(m.group(1))
      return int(round(n * steps_per_epoch)) if m.group(2).startswith(
          "epoch") else int(n)
  raise ValueError(f"not a step count: {value!r} (int, 'N epochs' or a "
                   f"fraction)")


def steps_for(cfg: RunConfig, train_size: int) -> tuple[int, int]:
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


def method_overrides(cfg: RunConfig, steps_per_epoch: int,
                     total_steps: int) -> dict:
  """``cfg.method_args`` with step counts converted to steps."""
  args = dict(cfg.method_args)
  for key in ("warmup_steps", "final_steps", "pruning_steps"):
    if args.get(key) is not None:
      args[key] = to_steps(args[key], steps_per_epoch, total_steps)
  return args


def lr_schedule(cfg: RunConfig, *, total_steps: int,
                steps_per_epoch: int) -> optax.Schedule:
  """The run's learning-rate schedule."""
  warmup = min(to_steps(cfg.lr_warmup, steps_per_epoch, total_steps),
               total_steps - 1)
  return optim.lr_schedule(cfg.lr_schedule, cfg.lr, total_steps, warmup,
                           cfg.lr_end_factor)


def build_optimizer(cfg: RunConfig, *, total_steps: int,
                    steps_per_epoch: int
                    ) -> tuple[optax.Schedule, optax.GradientTransformation]:
  """``(schedule, inner optimizer)``: the one inner optimizer of a run."""
  lr = lr_schedule(cfg, total_steps=total_steps,
                   steps_per_epoch=steps_per_epoch)
  return lr, optim.make_optimizer(cfg.optimizer, lr)


def build_tx(cfg: RunConfig, *, total_steps: int, steps_per_epoch: int,
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


def batched_predict(fn: Callable, params: Any, n: int,
                    make_batch: Callable[[np.ndarray], dict],
                    batch_size: int) -> Any:
  """Runs ``fn(params, batch)`` over examples ``0..n-1`` in fixed-size batches.

  The last batch is padded by repeating its last index (one compiled shape),
  and the padding rows are cut from the outputs, which are numpy arrays (or
  a tuple/dict of them) with ``n`` rows.
  """
  outs = []
  for start in range(0, n, batch_size):
    idx = np.arange(start, min(start + batch_size, n))
    real = len(idx)
    if real < batch_size:
      idx = np.concatenate([idx, np.full(batch_size - real, idx[-1])])
    out = fn(params, make_batch(idx))
    outs.append(jax.tree.map(lambda x, r=real: np.asarray(x)[:r], out))
  return jax.tree.map(lambda *xs: np.concatenate(xs), *outs)


def _replicate(x: Any, devices: list) -> jax.Array:
  """One copy of ``x`` per device along a new leading axis (for ``pmap``)."""
  x = np.asarray(x)
  shape = (len(devices),) + x.shape
  sharding = NamedSharding(Mesh(np.array(devices), ("devices",)),
                           P("devices"))
  return jax.device_put(np.broadcast_to(x[None], shape), sharding)


class Trainer:
  """Wires a loss, a data source and an optax transformation to ``fit``.

  Args:
    cfg: the run's config.
    loss_fn: ``(params, batch, rng) -> (loss, aux)``.
    params: initial params (host arrays).
    train_size: number of training examples.
    make_batch: ``(indices, step, global_indices) -> batch`` of numpy
      arrays for this host's ``indices``; ``step`` seeds any random
      augmentation; ``global_indices`` (the whole batch over all hosts) lets
      every host pick the same padded length.
    where: prunable leaves.
    plan: a model-aware method's :class:`experiments.model_aware.Plan`
      (its transformation, trained tree, loss and hooks replace ``cfg``'s
      method, ``params`` and ``loss_fn``); ``None`` for the others.
  """

  def __init__(self, cfg: RunConfig, loss_fn: Callable, params: Any,
               train_size: int,
               make_batch: Callable[[np.ndarray, int, np.ndarray], dict],
               where: Any, plan: model_aware.Plan | None = None,
               pattern: Any = None, desc: str | None = None):
    self.cfg = cfg
    self.where = where
    self.train_size = train_size
    self.make_batch = make_batch
    self.plan = plan
    self._last_step = 0
    self.desc = desc or f"{cfg.task}/{cfg.method}"
    self.total_steps, self.steps_per_epoch = steps_for(cfg, train_size)
    if plan is None:
      self.tx, self.overrides = build_tx(
          cfg, total_steps=self.total_steps,
          steps_per_epoch=self.steps_per_epoch, num_examples=train_size,
          where=where, pattern=pattern)
    else:
      self.tx = plan.tx
      self.overrides = {k: v for k, v in plan.info.items()
                        if isinstance(v, (int, float, str))}
      loss_fn, params = plan.loss_fn, plan.start
    self.parallel = cfg.parallel
    batch = cfg.batch_size
    nproc = jax.process_count()
    if batch % nproc:
      raise ValueError(f"batch size {batch} is not divisible by the "
                       f"{nproc} hosts")
    self.local_batch = batch // nproc
    rng = np.random.default_rng(cfg.seed)
    epochs = self.total_steps * batch // train_size + 1
    self.order = np.concatenate([rng.permutation(train_size)
                                 for _ in range(epochs)])
    self._setup(loss_fn, params)

  def _setup(self, loss_fn: Callable, params: Any) -> None:
    tx = self.tx
    if self.parallel == "single":
      self.params = jax.tree.map(jnp.array, params)  # a copy: steps donate
      self.opt_state = tx.init(self.params)
      self.step_fn = train.make_train_step(loss_fn, tx)
      self._put = lambda b: b
      self.eval_params = lambda p: p
      return
    if self.parallel == "pmap":
      devices = jax.local_devices()
      n = len(devices)
      if self.local_batch % n:
        raise ValueError(f"per-host batch {self.local_batch} is not divisible "
                         f"by the {n} local devices")
      self.params = jax.tree.map(lambda x: _replicate(x, devices), params)
      self.opt_state = jax.pmap(tx.init, devices=devices)(self.params)
      self.step_fn = train.make_pmap_train_step(loss_fn, tx, devices=devices)
      self._put = lambda b: jax.tree.map(
          lambda x: x.reshape((n, -1) + x.shape[1:]), b)
      self.eval_params = lambda p: jax.tree.map(lambda x: x[0], p)
      return
    mesh = Mesh(np.array(jax.devices()), ("data",))
    if self.cfg.batch_size % mesh.size:
      raise ValueError(f"batch size {self.cfg.batch_size} is not divisible "
                       f"by the {mesh.size} devices")
    rep = NamedSharding(mesh, P())
    param_sh = jax.tree.map(lambda _: rep, params)
    opt_sh = train.opt_state_shardings(tx, params, param_sh, mesh)
    batch_sh = NamedSharding(mesh, P("data"))
    # Through host copies: a device_put of device arrays may reuse their
    # buffers (may_alias=False did not prevent it), and the steps donate.
    self.params = jax.device_put(jax.tree.map(np.array, params), param_sh)
    self.opt_state = jax.jit(tx.init, out_shardings=opt_sh)(self.params)
    self.step_fn = train.make_sharded_train_step(
        loss_fn, tx, param_shardings=param_sh, opt_state_shardings=opt_sh,
        batch_sharding=batch_sh)
    self._put = lambda b: train.host_local_to_global(b, batch_sh)
    self.eval_params = lambda p: p

  def batch(self, step: int) -> dict:
    """This host's part of the global batch of ``step`` (deterministic)."""
    idx = self._indices(step)
    lo = jax.process_index() * self.local_batch
    batch = self.make_batch(idx[lo:lo + self.local_batch], step, idx)
    if self.plan is None:
      return batch
    self._last_step = step
    return jax.tree.map(np.asarray, self.plan.batch(batch, step))

  def _indices(self, step: int) -> np.ndarray:
    """Training-set indices of the global batch of ``step``."""
    b = self.cfg.batch_size
    return self.order[step * b:(step + 1) * b]

  def global_batch(self, step: int) -> dict:
    """The whole batch of ``step`` (every host gets the same)."""
    idx = self._indices(step)
    return self.make_batch(idx, step, idx)

  def model_params(self, trained: Any, step: int | None = None) -> Any:
    """The model's params from the trained tree (single-device layout)."""
    if self.plan is None:
      return trained
    return self.plan.to_params(trained, self._last_step if step is None
                               else step)

  def _every(self, key: str) -> int:
    value = getattr(self.cfg, key) or 0
    return to_steps(value, self.steps_per_epoch, self.total_steps) if value \
        else 0

  def fit(self, out: str, evaluate: Callable[[Any], dict],
          log_name: str = "log.jsonl") -> tuple[Any, list[dict], float]:
    """Trains; returns ``(eval params, records, seconds)``."""
    step_fn = self.step_fn
    put = self._put

    def step(p, o, batch, rng, s):
      return step_fn(p, o, put(batch), rng, s)

    def eval_fn(p):
      params = self.model_params(self.eval_params(p))
      result = evaluate(params)
      if self.plan is not None and self.plan.on_eval is not None:
        self.plan.on_eval(params)
      return result

    t0 = time.time()
    params, opt_state, records = train.fit(
        step, self.params, self.opt_state, self.batch, self.total_steps,
        rng=jax.random.PRNGKey(self.cfg.seed),
        eval_fn=eval_fn,
        eval_every=self._every("eval_every"),
        log_path=(os.path.join(out, log_name)
                  if jax.process_index() == 0 else None),
        log_every=self.cfg.log_every,
        ckpt_dir=os.path.join(out, "ckpt" if log_name == "log.jsonl" else
                              "ckpt_" + log_name.split(".")[0]),
        ckpt_every=self._every("ckpt_every"),
        progress=self.cfg.progress, desc=self.desc,
        tensorboard_dir=(os.path.join(self.cfg.tensorboard, self.desc)
                         if self.cfg.tensorboard else None))
    self.opt_state = opt_state
    params = self.model_params(self.eval_params(params), self.total_steps - 1)
    if not any("eval" in r for r in records):  # resumed from a finished run
      result = dict(evaluate(params))
      sparsity = train.mask_sparsity(opt_state)
      if sparsity is not None:
        result["mask_sparsity"] = max(sparsity, 0.0)
      records.append({"step": self.total_steps, "eval": result})
    return params, records, time.time() - t0


class Outcome(NamedTuple):
  """What :func:`train_and_evaluate` returns."""
  trainer: Trainer
  params: Any          # the model's params after training (exact zeros)
  records: list[dict]  # fit's records (evals included)
  seconds: float       # training time
  info: dict           # method details (teacher refreshes, ...)


def make_plan(cfg: RunConfig, task: Any, dense_params: Any = None
              ) -> tuple[RunConfig, model_aware.Plan]:
  """``(cfg, plan)`` of a model-aware method, with the run's own inner
  optimizer, schedule and clipping (``cfg`` may gain evaluations: PINS-SR
  refreshes its teacher at least ten times per run)."""
  method = cfg.method
  total_steps, steps_per_epoch = steps_for(cfg, task.train_size)
  lr, inner = build_optimizer(cfg, total_steps=total_steps,
                              steps_per_epoch=steps_per_epoch)
  score_batches: Any = ()
  if method in ("cam_cut", "smooth_cut"):
    if dense_params is None:
      raise ValueError(f"{method} needs the dense fine-tuned params")
    order = Trainer(cfg.as_dense(), task.loss_fn, task.params,
                    task.train_size, task.make_batch, task.where)
    # The first batches of the run's order, whole on every host, so that
    # all hosts compute the same scores and masks.
    score_batches = (jax.tree.map(jnp.asarray, order.global_batch(s))
                     for s in range(min(cfg.score_batches, total_steps)))
  heldout = task.heldout_evaluate
  if method == "pins_sr":
    if heldout is None:
      raise ValueError("pins_sr needs held-out training examples "
                       "(config key 'heldout' > 0)")
    every = to_steps(cfg.eval_every, steps_per_epoch, total_steps) \
        if cfg.eval_every else 0
    if not every or every > max(1, total_steps // 10):
      cfg = cfg.replace(eval_every=max(1, total_steps // 10))
  plan = model_aware.plan(
      method, model=task.model, params0=task.params, learning_rate=lr,
      sparsity=cfg.sparsity, total_steps=total_steps, where=task.where,
      num_examples=task.train_size, clip_norm=cfg.clip_norm,
      dense_params=dense_params, score_batches=score_batches,
      heldout_accuracy=(lambda p: heldout(p)[task.primary]),
      final_lambda=cfg.final_lambda, scores_lr=cfg.scores_lr,
      rng=jax.random.PRNGKey(cfg.seed), loss_fn=task.loss_fn,
      classification=task.classification, optimizer=inner,
      method_args=method_overrides(cfg, steps_per_epoch, total_steps))
  return cfg, plan


def train_and_evaluate(cfg: RunConfig, task: Any, out: str, *,
                       dense_params: Any = None, pattern: Any = None,
                       log_name: str = "log.jsonl") -> Outcome:
  """Trains ``cfg.method`` on a prepared task; model-aware methods included.

  Args:
    cfg: the run's config.
    task: a :class:`experiments.tasks.base.Prepared` (model, params, loss,
      batches, evaluation, ``where``).
    out: folder for the log and checkpoints.
    dense_params: the dense fine-tuned params (``cam_cut``/``smooth_cut``
      score them; they are scored on ``cfg.score_batches`` training batches
      and the pretrained params are rewound under the fixed mask).
    pattern: the sparsity pattern object (None: unstructured).
    log_name: file name of the JSON-lines log in ``out``.

  ``pins_sr``'s teacher is the best model so far on ``task.heldout_evaluate``
  (training examples held out of the training set), refreshed at every
  evaluation (at least ten per run).
  """
  method = cfg.method
  desc = f"{cfg.task}/{method}"
  if method not in model_aware.METHODS:
    trainer = Trainer(cfg, task.loss_fn, task.params, task.train_size,
                      task.make_batch, task.where, pattern=pattern, desc=desc)
    params, records, seconds = trainer.fit(out, task.evaluate, log_name)
    return Outcome(trainer, params, records, seconds, {})
  cfg, plan = make_plan(cfg, task, dense_params)
  trainer = Trainer(cfg, task.loss_fn, task.params, task.train_size,
                    task.make_batch, task.where, plan=plan, desc=desc)
  params, records, seconds = trainer.fit(out, task.evaluate, log_name)
  info = {}
  teacher = plan.info.get("teacher")
  if teacher is not None:
    info["teacher"] = {"best": teacher.best, "refreshes": teacher.refreshes}
  return Outcome(trainer, params, records, seconds, info)
