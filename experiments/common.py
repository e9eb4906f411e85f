"""What the GLUE, SQuAD and ViT scripts share: CLI, configs, training, results.

A run is described by one flat settings dict, merged from (lowest first) the
script's defaults, the ``--config`` file and the command-line flags. Config
files are Python files defining ``CONFIG`` (a dict) or JSON files; see
``experiments/configs/``. Step counts in a config (``steps``,
``method_args["warmup_steps"]``, ...) are integers (steps) or strings such as
``"2 epochs"``, converted with the training-set size at run time.

Settings keys common to all scripts:

* ``task``, ``method``, ``sparsity``, ``model``, ``seed``;
* ``batch_size``, ``epochs`` or ``steps`` (``steps`` wins), ``eval_every``,
  ``eval_batch_size``, ``ckpt_every``;
* ``lr``, ``lr_schedule`` (``constant``, ``linear``, ``warmup_linear``),
  ``lr_warmup`` (steps, epochs string, or a float fraction of the run),
  ``lr_end_factor``;
* ``optimizer`` (``{"name": "adamw" | "mtdnn_adamax", ...}``), ``clip_norm``;
* ``where`` (``bert``, ``vit``, ``bert_kernels``, ``vit_kernels``,
  ``bert_kernels_pooler``);
* ``method_args``: keyword arguments of the method's factory, passed to
  :func:`experiments.methods.make_tx` as overrides. They apply when
  ``--method`` is the config's ``method``; for another method only the
  schedule keys (``warmup_steps``, ``final_steps``, ``delta_t``) carry over.

Parallelism (``--parallel``): ``single`` (one device, default), ``pmap``
(data parallel over the local devices) or ``sharded`` (``jit`` over a 1-D
``data`` mesh of all devices, params replicated). With ``--distributed``
(or ``JAXPRUNE_DISTRIBUTED=1``) :func:`jax.distributed.initialize` runs
first and every host feeds its own slice of each global batch.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import re
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

import jaxprune
from experiments import methods
from experiments import model_aware
from experiments.tasks import optim
from jaxprune import train

__all__ = ["base_parser", "load_config", "resolve_settings", "to_steps",
           "resolve_where", "build_tx", "Trainer", "train_and_evaluate",
           "batched_predict",
           "write_results", "maybe_initialize_distributed"]

#: Defaults shared by every script (scripts add their own on top).
BASE_DEFAULTS: dict[str, Any] = {
    "method": "platon", "sparsity": 0.9, "seed": 0, "batch_size": 32,
    "epochs": 3, "steps": None, "eval_every": 0, "eval_batch_size": 128,
    "ckpt_every": 0, "lr": 5e-5, "lr_schedule": "linear", "lr_warmup": 0.1,
    "lr_end_factor": 0.0, "optimizer": {"name": "adamw", "weight_decay": 0.01},
    "clip_norm": 1.0, "method_args": {}, "max_train_examples": None,
    "max_eval_examples": None, "score_batches": 50, "final_lambda": 400.0,
    "scores_lr": 1e-2,
}

#: Factory keywords that every gradual method of this package accepts.
SCHEDULE_KEYS = ("warmup_steps", "final_steps", "delta_t")
_METHOD_SCHEDULE_KEYS = {"dense": (), "seven": ("warmup_steps",)}

# CLI flag -> settings key (all default to None = "not given").
_CLI_KEYS = {"method": "method", "sparsity": "sparsity", "model": "model",
             "seed": "seed", "batch_size": "batch_size", "epochs": "epochs",
             "steps": "steps", "lr": "lr", "eval_every": "eval_every",
             "eval_batch_size": "eval_batch_size",
             "max_train_examples": "max_train_examples",
             "max_eval_examples": "max_eval_examples", "pattern": "pattern",
             "score_batches": "score_batches", "final_lambda": "final_lambda",
             "scores_lr": "scores_lr"}


def base_parser(description: str) -> argparse.ArgumentParser:
  """The flags every experiment script takes."""
  ap = argparse.ArgumentParser(description=description)
  ap.add_argument("--config", default=None,
                  help="Python (defines CONFIG) or JSON config file")
  ap.add_argument("--method", choices=methods.METHODS + model_aware.METHODS,
                  default=None)
  ap.add_argument("--sparsity", type=float, default=None)
  ap.add_argument("--pattern", default=None,
                  help="sparsity pattern: unstructured (default) or N:M, "
                  "e.g. 2:4 (heads/neurons: experiments.structured_demo)")
  ap.add_argument("--model", default=None, help="HF hub name or folder")
  ap.add_argument("--out", default=None, help="output folder (results.json, "
                  "log.jsonl, checkpoints); default runs/<script>/<task>_<method>")
  ap.add_argument("--smoke", action="store_true",
                  help="offline: tiny generated data and a tiny random model")
  ap.add_argument("--seed", type=int, default=None)
  ap.add_argument("--batch-size", type=int, default=None)
  ap.add_argument("--epochs", type=float, default=None)
  ap.add_argument("--steps", type=int, default=None,
                  help="total optimizer updates (overrides --epochs)")
  ap.add_argument("--lr", type=float, default=None)
  ap.add_argument("--eval-every", type=int, default=None)
  ap.add_argument("--eval-batch-size", type=int, default=None)
  ap.add_argument("--max-train-examples", type=int, default=None)
  ap.add_argument("--max-eval-examples", type=int, default=None)
  ap.add_argument("--parallel", choices=("single", "pmap", "sharded"),
                  default="single")
  ap.add_argument("--distributed", action="store_true",
                  help="call jax.distributed.initialize() (multi-host); "
                  "also on when JAXPRUNE_DISTRIBUTED=1")
  ap.add_argument("--no-progress", action="store_true")
  ap.add_argument("--score-batches", type=int, default=None,
                  help="cam_cut/smooth_cut: training batches to score on "
                  "(default 50)")
  ap.add_argument("--final-lambda", type=float, default=None,
                  help="soft_movement: final regulariser weight (default 400)")
  ap.add_argument("--scores-lr", type=float, default=None,
                  help="soft_movement: Adam learning rate of the scores "
                  "(default 1e-2)")
  return ap


def load_config(path: str | None) -> dict:
  """Reads ``CONFIG`` from a Python file, or a JSON object."""
  if path is None:
    return {}
  if path.endswith(".json"):
    with open(path) as f:
      return json.load(f)
  spec = importlib.util.spec_from_file_location("_jaxprune_config", path)
  if spec is None or spec.loader is None:
    raise ValueError(f"cannot load config {path!r}")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not isinstance(getattr(module, "CONFIG", None), dict):
    raise ValueError(f"config {path!r} defines no CONFIG dict")
  return dict(module.CONFIG)


def resolve_settings(args: argparse.Namespace, defaults: dict) -> dict:
  """Merges defaults < config file < command-line flags."""
  cfg = {**BASE_DEFAULTS, **defaults}
  from_file = load_config(args.config)
  cfg.update(from_file)
  cfg["config_method"] = from_file.get("method")
  for flag, key in _CLI_KEYS.items():
    value = getattr(args, flag, None)
    if value is not None:
      cfg[key] = value
  if args.steps is not None:
    cfg["steps"] = args.steps
  elif args.epochs is not None:
    cfg["steps"] = None
  cfg["config_file"] = args.config
  cfg["smoke"] = bool(args.smoke)
  cfg["parallel"] = args.parallel
  cfg["no_progress"] = bool(args.no_progress)
  if args.smoke:
    _smoke_steps(cfg)
  return cfg


def _smoke_steps(cfg: dict) -> None:
  """Smoke runs last a few steps: a config's step counts would not fit."""
  args = dict(cfg.get("method_args") or {})
  dropped = [k for k in ("warmup_steps", "final_steps", "pruning_steps")
             if k in args]
  for k in dropped:
    del args[k]
  cfg["method_args"] = args
  if not isinstance(cfg["lr_warmup"], float):
    cfg["lr_warmup"] = 0.1
  for key in ("eval_every", "ckpt_every"):
    if isinstance(cfg.get(key), str):
      cfg[key] = 0
  cfg["smoke_dropped"] = dropped


_EPOCHS_RE = re.compile(r"^\s*([0-9.]+)\s*(epochs?|steps?)\s*$")


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


def method_overrides(cfg: dict, steps_per_epoch: int,
                     total_steps: int) -> dict:
  """The ``method_args`` that apply to ``cfg["method"]``, in steps."""
  args = dict(cfg.get("method_args") or {})
  method = cfg["method"]
  if cfg.get("config_method") not in (None, method):
    keep = _METHOD_SCHEDULE_KEYS.get(method, SCHEDULE_KEYS)
    dropped = sorted(set(args) - set(keep))
    args = {k: v for k, v in args.items() if k in keep}
    if dropped:
      print(f"note: config is for {cfg['config_method']!r}; not passing "
            f"{dropped} to {method!r}")
  if method == "dense":
    return {}
  for key in ("warmup_steps", "final_steps", "pruning_steps"):
    if key in args and args[key] is not None:
      args[key] = to_steps(args[key], steps_per_epoch, total_steps)
  return args


def lr_schedule(cfg: dict, *, total_steps: int, steps_per_epoch: int):
  """The run's learning-rate schedule."""
  warmup = min(to_steps(cfg["lr_warmup"], steps_per_epoch, total_steps),
               total_steps - 1)
  return optim.lr_schedule(cfg["lr_schedule"], cfg["lr"], total_steps, warmup,
                           cfg["lr_end_factor"])


def build_tx(cfg: dict, *, total_steps: int, steps_per_epoch: int,
             num_examples: int, where: Any):
  """The run's optax transformation, through :func:`methods.make_tx`."""
  lr = lr_schedule(cfg, total_steps=total_steps,
                   steps_per_epoch=steps_per_epoch)
  inner = optim.make_optimizer(cfg["optimizer"], lr)
  overrides = method_overrides(cfg, steps_per_epoch, total_steps)
  pattern = cfg.get("pattern")
  return methods.make_tx(cfg["method"], learning_rate=lr,
                         sparsity=cfg["sparsity"], total_steps=total_steps,
                         where=where, num_examples=num_examples,
                         clip_norm=cfg["clip_norm"], optimizer=inner,
                         pattern=(None if pattern in (None, "unstructured")
                                  or cfg["method"] == "dense" else pattern),
                         **overrides), overrides


def maybe_initialize_distributed(args: argparse.Namespace) -> None:
  """``jax.distributed.initialize()`` when asked (flag or environment)."""
  if args.distributed or os.environ.get("JAXPRUNE_DISTRIBUTED") == "1":
    jax.distributed.initialize()


def steps_for(cfg: dict, train_size: int) -> tuple[int, int]:
  """``(total_steps, steps_per_epoch)`` from ``steps`` or ``epochs``."""
  per_epoch = max(1, math.ceil(train_size / cfg["batch_size"]))
  total = cfg["steps"] if cfg.get("steps") else int(
      math.ceil(cfg["epochs"] * per_epoch))
  return int(total), per_epoch


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
    cfg: run settings (see the module docstring).
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

  def __init__(self, cfg: dict, loss_fn: Callable, params: Any,
               train_size: int,
               make_batch: Callable[[np.ndarray, int, np.ndarray], dict],
               where: Any, plan: model_aware.Plan | None = None):
    self.cfg = cfg
    self.where = where
    self.train_size = train_size
    self.make_batch = make_batch
    self.plan = plan
    self._last_step = 0
    self.total_steps, self.steps_per_epoch = steps_for(cfg, train_size)
    if plan is None:
      self.tx, self.overrides = build_tx(
          cfg, total_steps=self.total_steps,
          steps_per_epoch=self.steps_per_epoch, num_examples=train_size,
          where=where)
    else:
      self.tx = plan.tx
      self.overrides = {k: v for k, v in plan.info.items()
                        if isinstance(v, (int, float, str))}
      loss_fn, params = plan.loss_fn, plan.start
    self.parallel = cfg["parallel"]
    batch = cfg["batch_size"]
    nproc = jax.process_count()
    if batch % nproc:
      raise ValueError(f"batch size {batch} is not divisible by the "
                       f"{nproc} hosts")
    self.local_batch = batch // nproc
    rng = np.random.default_rng(cfg["seed"])
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
    if self.cfg["batch_size"] % mesh.size:
      raise ValueError(f"batch size {self.cfg['batch_size']} is not divisible "
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
    b = self.cfg["batch_size"]
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
    value = self.cfg.get(key) or 0
    return to_steps(value, self.steps_per_epoch, self.total_steps) if value \
        else 0

  def fit(self, out: str, evaluate: Callable[[Any], dict]
          ) -> tuple[Any, list[dict], float]:
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
        rng=jax.random.PRNGKey(self.cfg["seed"]),
        eval_fn=eval_fn,
        eval_every=self._every("eval_every"),
        log_path=(os.path.join(out, "log.jsonl")
                  if jax.process_index() == 0 else None),
        log_every=10,
        ckpt_dir=os.path.join(out, "ckpt"),
        ckpt_every=self._every("ckpt_every"),
        progress=not self.cfg.get("no_progress"),
        desc=f"{self.cfg['task']}/{self.cfg['method']}")
    self.opt_state = opt_state
    params = self.model_params(self.eval_params(params), self.total_steps - 1)
    if not any("eval" in r for r in records):  # resumed from a finished run
      result = dict(evaluate(params))
      sparsity = train.mask_sparsity(opt_state)
      if sparsity is not None:
        result["mask_sparsity"] = max(sparsity, 0.0)
      records.append({"step": self.total_steps, "eval": result})
    return params, records, time.time() - t0


def train_and_evaluate(cfg: dict, *, model: Any, loss_fn: Callable,
                       params: Any, train_size: int,
                       make_batch: Callable[[np.ndarray, int, np.ndarray],
                                            dict],
                       where: Any, evaluate: Callable[[Any], dict],
                       primary: str, out: str, classification: bool = True
                       ) -> tuple[Trainer, Any, list[dict], float, dict]:
  """Trains ``cfg["method"]``; model-aware methods included.

  For ``cam_cut``/``smooth_cut`` a dense fine-tuning runs first (in
  ``out/dense``), is scored on ``cfg["score_batches"]`` training batches,
  and the pretrained ``params`` are rewound under the fixed mask. For
  ``pins_sr`` the teacher is the best checkpoint so far by ``primary`` on
  the evaluation split (as the PINS code does; the demo uses a held-out
  training split instead), refreshed at every evaluation (default: ten
  per run); the teacher is not checkpointed, a resumed run restarts it
  from ``params``.

  Returns:
    ``(trainer, model params, records, train seconds, info)``.
  """
  method = cfg["method"]
  if method not in model_aware.METHODS:
    trainer = Trainer(cfg, loss_fn, params, train_size, make_batch, where)
    trained, records, seconds = trainer.fit(out, evaluate)
    return trainer, trained, records, seconds, {}
  total_steps, steps_per_epoch = steps_for(cfg, train_size)
  info: dict[str, Any] = {}
  dense_params, score_batches = None, []
  dense_seconds = 0.0
  if method in ("cam_cut", "smooth_cut"):
    dense = Trainer({**cfg, "method": "dense"}, loss_fn, params, train_size,
                    make_batch, where)
    dense_params, dense_records, dense_seconds = dense.fit(
        os.path.join(out, "dense"), evaluate)
    finals = [r["eval"] for r in dense_records if "eval" in r]
    info["dense"] = {"metrics": finals[-1] if finals else {},
                     "train_seconds": dense_seconds}
    # The first batches of the run's order, whole on every host, so that
    # all hosts compute the same scores and masks.
    score_batches = (jax.tree.map(jnp.asarray, dense.global_batch(s))
                     for s in range(min(cfg["score_batches"], total_steps)))
  last: dict[str, Any] = {}

  def evaluate_and_keep(p):
    last["result"] = evaluate(p)
    return last["result"]

  if method == "pins_sr" and not cfg.get("eval_every"):
    cfg = {**cfg, "eval_every": max(1, total_steps // 10)}
  optimizer = cfg.get("optimizer") or {}
  plan = model_aware.plan(
      method, model=model, params0=params,
      learning_rate=lr_schedule(cfg, total_steps=total_steps,
                                steps_per_epoch=steps_per_epoch),
      sparsity=cfg["sparsity"], total_steps=total_steps, where=where,
      num_examples=train_size,
      weight_decay=optimizer.get("weight_decay", 0.01),
      clip_norm=cfg["clip_norm"], dense_params=dense_params,
      score_batches=score_batches,
      heldout_accuracy=lambda p: last["result"][primary],
      final_lambda=cfg["final_lambda"], scores_lr=cfg["scores_lr"],
      rng=jax.random.PRNGKey(cfg["seed"]), loss_fn=loss_fn,
      classification=classification)
  trainer = Trainer(cfg, loss_fn, params, train_size, make_batch, where,
                    plan=plan)
  trained, records, seconds = trainer.fit(out, evaluate_and_keep)
  teacher = plan.info.get("teacher")
  if teacher is not None:
    info["teacher"] = {"best": teacher.best, "refreshes": teacher.refreshes}
  return trainer, trained, records, seconds + dense_seconds, info


def _jsonable(x: Any) -> Any:
  if isinstance(x, dict):
    return {str(k): _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  if isinstance(x, (np.floating, np.integer)):
    x = x.item()
  if isinstance(x, float) and not math.isfinite(x):
    return None  # strict JSON has no NaN (e.g. a correlation of constants)
  if isinstance(x, (str, int, float, bool)) or x is None:
    return x
  return repr(x)


def write_results(out: str, trainer: Trainer, params: Any, records: list[dict],
                  *, primary: str, seconds: float, train_seconds: float,
                  info: dict) -> dict:
  """Writes ``out/results.json`` (rank 0 only) and returns the record.

  ``metrics`` are those of the final model (what MGPP reports; PLATON's
  MT-DNN scripts report the best dev epoch, so ``best`` holds the eval with
  the highest ``primary`` metric too). Metric values are percentages.
  """
  cfg = trainer.cfg
  evals = [{"step": r["step"], **r["eval"]} for r in records if "eval" in r]
  final = dict(evals[-1]) if evals else {}
  final.pop("step", None)
  best = max(evals, key=lambda e: e.get(primary, -math.inf)) if evals else {}
  result = {
      "task": cfg["task"], "method": cfg["method"], "model": cfg["model"],
      "target_sparsity": cfg["sparsity"] if cfg["method"] != "dense" else 0.0,
      "actual_sparsity": float(jaxprune.actual_sparsity(params, trainer.where)),
      "primary_metric": primary, "metrics": final, "best": best,
      "total_steps": trainer.total_steps,
      "steps_per_epoch": trainer.steps_per_epoch,
      "train_examples": trainer.train_size, "method_args": trainer.overrides,
      "seconds": seconds, "train_seconds": train_seconds,
      "devices": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
      "processes": jax.process_count(), "smoke": cfg["smoke"],
      "config": cfg, **info,
  }
  result = _jsonable(result)
  if jax.process_index() == 0:
    os.makedirs(out, exist_ok=True)
    tmp = os.path.join(out, "results.json.tmp")
    with open(tmp, "w") as f:
      json.dump(result, f, indent=2)
    os.replace(tmp, os.path.join(out, "results.json"))
  return result


def default_out(script: str, cfg: dict) -> str:
  """``runs/<script>/<task>_<method>_<sparsity>``."""
  tag = "dense" if cfg["method"] == "dense" else (
      f"{cfg['method']}_{round(100 * cfg['sparsity'])}")
  return os.path.join("runs", script, f"{cfg['task']}_{tag}")
