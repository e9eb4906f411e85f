"""The value checks of :class:`experiments.config.RunConfig`.

Every check raises ``ValueError`` naming the config key, the allowed values
or range and, for names, the nearest valid one. Data sources are checked
through :mod:`experiments.data` (files exist, extensions, folders) without
reading the data.
"""

from __future__ import annotations

import difflib
import inspect
import os
import re
import types
import typing
from typing import Any, Sequence

TASKS = ("text", "qa", "image")
#: Methods with an optax factory (experiments.methods) and model-aware ones.
METHODS = ("dense", "platon", "magnitude", "taylor", "movement",
           "first_order_movement", "seven", "mgpp", "pins", "soft_movement",
           "cam_cut", "smooth_cut", "pins_sr")
#: Built-in data per task family (``glue/<task>``: any GLUE task).
BUILTIN_DATA = {
    "text": ("rotten_tomatoes", "glue/cola", "glue/sst2", "glue/mrpc",
             "glue/qqp", "glue/stsb", "glue/mnli", "glue/qnli", "glue/rte",
             "smoke"),
    "qa": ("squad", "smoke"),
    "image": ("fashion_mnist", "cifar100", "smoke"),
}
OPTIMIZERS = {"adamw": ("b1", "b2", "eps", "weight_decay"),
              "mtdnn_adamax": ("b1", "b2", "eps", "weight_decay")}
LR_SCHEDULES = ("constant", "linear", "warmup_linear")
WHERE = ("bert", "vit", "bert_kernels", "vit_kernels", "bert_kernels_pooler")
PATTERNS = ("unstructured", "heads_and_neurons", "heads", "neurons")
AGGREGATES = ("sum", "mean", "l2")
PARALLEL = ("single", "pmap", "sharded")
DEFAULT_OPTIMIZER = {"name": "adamw", "weight_decay": 0.01}
STEP_KEYS = ("warmup_steps", "final_steps", "pruning_steps")
#: ``"N epochs"`` / ``"N steps"`` (N may be fractional); also read by
#: :func:`experiments.optimizer.to_steps`.
STEP_COUNT_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(epochs?|steps?)\s*$")


def nearest(name: str, choices: Sequence[str]) -> str:
  """`` (did you mean 'x'?)`` or ``""``."""
  close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
  return f" (did you mean {close[0]!r}?)" if close else ""


def _type_name(tp: Any) -> str:
  args = typing.get_args(tp)
  if args:
    return " or ".join(_type_name(a) for a in args)
  return "None" if tp is type(None) else tp.__name__


def check_type(name: str, value: Any, tp: Any) -> None:
  allowed = typing.get_args(tp) if isinstance(
      tp, types.UnionType) or typing.get_origin(tp) is typing.Union else (tp,)
  for a in allowed:
    if a is type(None) and value is None:
      return
    if a is bool and isinstance(value, bool):
      return
    if a is int and isinstance(value, int) and not isinstance(value, bool):
      return
    if a is float and isinstance(value, (int, float)) and not isinstance(
        value, bool):
      return
    if a in (str, dict) and isinstance(value, a):
      return
  raise ValueError(f"config key {name!r} must be {_type_name(tp)}, got "
                   f"{value!r} ({type(value).__name__})")


def _fail(name: str, value: Any, allowed: str) -> None:
  raise ValueError(f"config key {name!r} must be {allowed}, got {value!r}")


def _one_of(name: str, value: Any, choices: Sequence[str]) -> None:
  if value not in choices:
    raise ValueError(f"config key {name!r} must be one of "
                     f"{', '.join(map(str, choices))}, got {value!r}"
                     + nearest(str(value), choices))


def check_step_count(name: str, value: Any, *, fraction: bool) -> None:
  """An int >= 0, ``"N epochs"``/``"N steps"``, or a fraction in [0, 1)."""
  if isinstance(value, bool):
    pass
  elif isinstance(value, int):
    if value >= 0:
      return
  elif isinstance(value, float):
    if fraction and 0 <= value < 1:
      return
  elif isinstance(value, str) and STEP_COUNT_RE.match(value):
    return
  _fail(name, value, "a step count: an int >= 0, 'N epochs' or 'N steps'"
        + (", or a fraction of the run in [0, 1)" if fraction else ""))


def _positive(cfg: Any, *names: str, allow_none: bool = False) -> None:
  for n in names:
    v = getattr(cfg, n)
    if v is None and allow_none:
      continue
    if v is None or v <= 0:
      _fail(n, v, "> 0" + (" or None" if allow_none else ""))


def check_values(cfg: Any) -> None:
  _one_of("task", cfg.task, TASKS)
  _one_of("method", cfg.method, METHODS)
  if not 0.0 <= cfg.sparsity < 1.0:
    _fail("sparsity", cfg.sparsity, "in [0, 1)")
  _positive(cfg, "epochs", "batch_size", "eval_batch_size", "lr", "log_every",
            "score_batches", "seq_len", "doc_stride", "n_best",
            "max_answer_length", "image_size", "crop_pct", "final_lambda",
            "scores_lr")
  _positive(cfg, "clip_norm", "max_train_examples", "max_eval_examples",
            allow_none=True)
  if cfg.heldout < 0:
    _fail("heldout", cfg.heldout, ">= 0")
  if cfg.steps is not None:
    check_step_count("steps", cfg.steps, fraction=False)
    if cfg.steps in (0, "0 steps", "0 epochs"):
      _fail("steps", cfg.steps, ">= 1 (or None: use `epochs`)")
  for n in ("eval_every", "ckpt_every"):
    check_step_count(n, getattr(cfg, n), fraction=False)
  check_step_count("lr_warmup", cfg.lr_warmup, fraction=True)
  if not 0.0 <= cfg.lr_end_factor <= 1.0:
    _fail("lr_end_factor", cfg.lr_end_factor, "in [0, 1]")
  _one_of("lr_schedule", cfg.lr_schedule, LR_SCHEDULES)
  _one_of("dtype", cfg.dtype, ("float32", "bfloat16"))
  _one_of("parallel", cfg.parallel, PARALLEL)
  _one_of("aggregate", cfg.aggregate, AGGREGATES)
  if cfg.where is not None:
    _one_of("where", cfg.where, WHERE)
  _check_pattern(cfg)
  _check_optimizer(cfg.optimizer)
  _check_method_args(cfg)
  _check_data(cfg)
  _check_model(cfg)
  _check_teacher(cfg)


def _check_pattern(cfg: Any) -> None:
  p = cfg.pattern
  if p in PATTERNS:
    return
  m = re.fullmatch(r"(\d+):(\d+)", p)
  if m and 0 < int(m.group(1)) < int(m.group(2)):
    return
  _fail("pattern", p, "unstructured, heads_and_neurons, heads, neurons or "
        "N:M with 0 < N < M (e.g. 2:4)")


def _check_optimizer(spec: dict) -> None:
  name = spec.get("name", "adamw")
  _one_of("optimizer.name", name, tuple(OPTIMIZERS))
  for k, v in spec.items():
    if k == "name":
      continue
    if k not in OPTIMIZERS[name]:
      raise ValueError(f"unknown config key 'optimizer.{k}' for {name} "
                       f"(allowed: {', '.join(OPTIMIZERS[name])})"
                       + nearest(k, OPTIMIZERS[name]))
    check_type(f"optimizer.{k}", v, float)
    if v < 0:
      _fail(f"optimizer.{k}", v, ">= 0")


def method_keywords(method: str) -> tuple[str, ...]:
  """Keyword arguments the method's factory accepts (``method_args``)."""
  import jaxprune
  fn = {"soft_movement": jaxprune.soft_movement, "pins_sr": jaxprune.pins,
        "movement": jaxprune.topk_movement,
        "first_order_movement": jaxprune.movement}.get(method)
  if method in ("dense", "cam_cut", "smooth_cut"):
    return ()
  fn = fn or getattr(jaxprune, method)
  skip = {"inner", "optimizer", "sparsity", "total_steps", "where", "num_examples",
          "learning_rate", "pattern"}
  return tuple(p for p in inspect.signature(fn).parameters if p not in skip)


def _check_method_args(cfg: Any) -> None:
  allowed = method_keywords(cfg.method)
  for k, v in cfg.method_args.items():
    if k not in allowed:
      raise ValueError(
          f"unknown config key 'method_args.{k}' for method {cfg.method!r}"
          + (f" (allowed: {', '.join(allowed)})" if allowed else
             " (it takes none)") + nearest(k, allowed))
    if k in STEP_KEYS and v is not None:
      check_step_count(f"method_args.{k}", v, fraction=True)


def _check_data(cfg: Any) -> None:
  given = [k for k in ("data", "train_file", "dataset", "image_folder")
           if getattr(cfg, k)]
  if len(given) > 1:
    raise ValueError(f"config keys {' and '.join(map(repr, given))} both give "
                     "the data: set only one of data, train_file, dataset, "
                     "image_folder")
  if cfg.data is not None:
    _one_of("data", cfg.data, BUILTIN_DATA[cfg.task])
  if cfg.split_fraction is not None and not 0 < cfg.split_fraction < 1:
    _fail("split_fraction", cfg.split_fraction, "in (0, 1)")
  if cfg.image_folder and cfg.task != "image":
    _fail("image_folder", cfg.image_folder, "used with task 'image' only")
  if (cfg.train_file or cfg.dataset) and cfg.task != "text":
    key = "train_file" if cfg.train_file else "dataset"
    _fail(key, getattr(cfg, key), "used with task 'text' only (own data for "
          "'qa' is not supported; for 'image' use image_folder)")
  if cfg.train_file or cfg.dataset:
    from experiments.data import tables
    tables.check_text_source(
        train_file=cfg.train_file, validation_file=cfg.validation_file,
        dataset=cfg.dataset, dataset_config=cfg.dataset_config,
        split_fraction=cfg.split_fraction)
  elif cfg.validation_file:
    _fail("validation_file", cfg.validation_file, "used with train_file")
  if cfg.image_folder:
    from experiments.data import image_folder
    image_folder.check_image_folder(cfg.image_folder, cfg.validation_folder,
                                    cfg.split_fraction)
  elif cfg.validation_folder:
    _fail("validation_folder", cfg.validation_folder,
          "used with image_folder")


def _check_teacher(cfg: Any) -> None:
  if cfg.teacher is None:
    return
  if cfg.task == "qa":
    _fail("teacher", cfg.teacher, "None with task 'qa' (distillation of "
          "span logits is not supported)")
  if cfg.method in ("pins_sr", "dense"):
    _fail("teacher", cfg.teacher, f"None with method {cfg.method!r}"
          + (" (it has its own self-teacher)" if cfg.method == "pins_sr"
             else ""))
  if cfg.teacher != "dense" and not os.path.isfile(
      os.path.join(os.path.expanduser(cfg.teacher), "config.json")):
    _fail("teacher", cfg.teacher, "'dense' (the run's dense baseline) or a "
          "folder with config.json (a fine-tuned checkpoint)")
  if not 0.0 < cfg.distill_alpha <= 1.0:
    _fail("distill_alpha", cfg.distill_alpha, "in (0, 1]")
  if cfg.distill_temperature <= 0:
    _fail("distill_temperature", cfg.distill_temperature, "> 0")


def _check_model(cfg: Any) -> None:
  m = cfg.model
  if m is None or m in ("tiny", "scratch"):
    if m == "scratch" and cfg.task != "image":
      _fail("model", m, "'scratch' with task 'image' only")
    return
  local = m.startswith((".", "/", "~")) or os.path.exists(m)
  if local and not os.path.isfile(os.path.join(os.path.expanduser(m),
                                               "config.json")):
    _fail("model", m, "a folder with config.json, or a hub name")


