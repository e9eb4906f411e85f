"""Training one run of :mod:`experiments.run`: steps, data order, teachers.

:class:`Trainer` wires a task's loss and batches to :func:`jaxprune.train.fit`
on one device, ``pmap`` or sharded ``jit`` (``cfg.parallel``; multi-host when
``jax.distributed`` is initialised: every host feeds its slice of each global
batch). :func:`train_and_evaluate` adds the model-aware methods
(:mod:`experiments.model_aware`): they get the same inner optimizer, learning
rate schedule and clipping as every other method
(:func:`experiments.optimizer.build_optimizer`), and distillation from a
frozen teacher (:func:`teacher_loss`) for every method.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from experiments import model_aware
from experiments.config import RunConfig
from experiments.optimizer import (build_optimizer, build_tx,
                                   method_overrides, steps_for, to_steps)
from jaxprune import train

__all__ = ["batched_predict", "Trainer", "train_and_evaluate", "make_plan",
           "teacher_loss", "Outcome"]

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
    frozen: a teacher's params, the loss's fourth argument (never
      trained; :mod:`jaxprune.train.distill`), or None.
  """

  def __init__(self, cfg: RunConfig, loss_fn: Callable, params: Any,
               train_size: int,
               make_batch: Callable[[np.ndarray, int, np.ndarray], dict],
               where: Any, plan: model_aware.Plan | None = None,
               pattern: Any = None, desc: str | None = None,
               frozen: Any = None):
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
    self._setup(loss_fn, params, frozen)

  def _setup(self, loss_fn: Callable, params: Any, frozen: Any) -> None:
    tx = self.tx
    if self.parallel == "single":
      self.params = jax.tree.map(jnp.array, params)  # a copy: steps donate
      self.opt_state = tx.init(self.params)
      self.step_fn = train.make_train_step(loss_fn, tx, frozen=frozen,
                                           step_kinds=self.cfg.step_kinds)
      self._put = lambda b: b
      self.eval_params = lambda p: p
      return
    if self.parallel == "pmap":
      devices = jax.local_devices()
      n = len(devices)
      if self.local_batch % n:
        raise ValueError(f"per-host batch {self.local_batch} is not divisible "
                         f"by the {n} local devices")
      # Placed as the step's outputs are: its first program serves every
      # later step (train.replicate says why).
      self.params = train.replicate(params, devices)
      self.opt_state = train.replicate(tx.init(params), devices)
      self.step_fn = train.make_pmap_train_step(
          loss_fn, tx, devices=devices, frozen=frozen,
          step_kinds=self.cfg.step_kinds)
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
        batch_sharding=batch_sh, frozen=frozen,
        step_kinds=self.cfg.step_kinds)
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


def teacher_loss(cfg: RunConfig, task: Any, dense_params: Any = None
                 ) -> tuple[Callable, Any]:
  """``(loss_fn, teacher params)`` of ``cfg.teacher``, or ``(task's loss,
  None)`` without one: ``dense`` is the run's dense baseline (same model,
  ``dense_params``), else a fine-tuned checkpoint folder with the task's
  head (:func:`jaxprune.models.from_pretrained`)."""
  if cfg.teacher is None:
    return task.loss_fn, None
  from jaxprune.train import distill
  if cfg.teacher == "dense":
    if dense_params is None:
      raise ValueError("teacher='dense' needs the dense baseline's params")
    teacher_model, teacher_params = task.model, dense_params
  else:
    from jaxprune import models
    head = ("image_classification" if cfg.task == "image" else
            "sequence_classification")
    teacher_model = models.from_pretrained(cfg.teacher, task=head)
    teacher_params = teacher_model.params
  loss = distill.classification_loss(
      task.model, teacher_model, temperature=cfg.distill_temperature,
      alpha=cfg.distill_alpha, regression=not task.classification)
  return loss, teacher_params


def make_plan(cfg: RunConfig, task: Any, dense_params: Any = None,
              train_loss_fn: Callable | None = None
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
      method_args=method_overrides(cfg, steps_per_epoch, total_steps),
      peak_learning_rate=cfg.lr, train_loss_fn=train_loss_fn)
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
      and the pretrained params are rewound under the fixed mask; with
      ``teacher="dense"`` they are the teacher).
    pattern: the sparsity pattern object (None: unstructured).
    log_name: file name of the JSON-lines log in ``out``.

  ``pins_sr``'s teacher is the best model so far on ``task.heldout_evaluate``
  (training examples held out of the training set), refreshed at every
  evaluation (at least ten per run).
  """
  method = cfg.method
  desc = f"{cfg.task}/{method}"
  loss_fn, teacher = teacher_loss(cfg, task, dense_params)
  if method not in model_aware.METHODS:
    trainer = Trainer(cfg, loss_fn, task.params, task.train_size,
                      task.make_batch, task.where, pattern=pattern, desc=desc,
                      frozen=teacher)
    params, records, seconds = trainer.fit(out, task.evaluate, log_name)
    return Outcome(trainer, params, records, seconds, {})
  cfg, plan = make_plan(cfg, task, dense_params,
                        train_loss_fn=loss_fn if teacher is not None else None)
  trainer = Trainer(cfg, task.loss_fn, task.params, task.train_size,
                    task.make_batch, task.where, plan=plan, desc=desc,
                    frozen=teacher)
  params, records, seconds = trainer.fit(out, task.evaluate, log_name)
  info = {}
  teacher = plan.info.get("teacher")
  if teacher is not None:
    info["teacher"] = {"best": teacher.best, "refreshes": teacher.refreshes}
  return Outcome(trainer, params, records, seconds, info)
