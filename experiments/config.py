"""The run configuration of :mod:`experiments.run`: typed, checked up front.

A run is one :class:`RunConfig`. Config files under ``experiments/configs/``
are Python files with a ``get_config()`` that returns a dict of the keys
below (only those that differ from the defaults); ``--set key=value`` on the
command line overrides them (``method_args.beta1=0.85`` sets one entry of a
dict-valued key). An unknown key is an error that names the nearest valid
one, and every value is checked here, before any data or model is loaded.

Step counts (``steps``, ``eval_every``, ``ckpt_every``, ``lr_warmup`` and the
``warmup_steps``/``final_steps``/``pruning_steps`` of ``method_args``) are an
int (steps), a string ``"2 epochs"`` or ``"300 steps"``, or (``lr_warmup``
and ``method_args`` only) a float fraction of the run in [0, 1).

Example:
  >>> from experiments import config
  >>> cfg = config.from_dict({"method": "magnitude", "sparsity": 0.8,
  ...                         "data": "smoke", "model": "tiny"})
  >>> cfg.method, cfg.batch_size
  ('magnitude', 32)
  >>> config.from_dict({"sparsty": 0.8})
  Traceback (most recent call last):
  ...
  ValueError: unknown config key 'sparsty' (did you mean 'sparsity'?)
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import importlib.util
import inspect
import json
import os
import re
import types
import typing
from typing import Any, Sequence

__all__ = ["RunConfig", "from_dict", "load", "parse_sets", "TASKS",
           "METHODS", "BUILTIN_DATA", "nearest"]

TASKS = ("text", "qa", "image")
#: Methods with an optax factory (experiments.methods) and model-aware ones.
METHODS = ("dense", "platon", "magnitude", "taylor", "movement", "seven",
           "mgpp", "pins", "soft_movement", "cam_cut", "smooth_cut",
           "pins_sr")
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
_STEPS_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(epochs?|steps?)\s*$")


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """One run: task and data, model, pruning method, training, execution.

  Attributes (defaults in brackets):
    task: ``text`` (classification or regression), ``qa`` (extractive) or
      ``image`` (classification) [text].
    data: built-in data (:data:`BUILTIN_DATA`) [None: the task's own files
      or dataset below; with none of them, ``rotten_tomatoes`` / ``squad`` /
      ``fashion_mnist``].
    train_file, validation_file: text data in CSV, TSV or JSON lines.
    dataset, dataset_config: a ``datasets`` name (or a ``save_to_disk``
      folder) and its configuration.
    image_folder, validation_folder: folders of class subfolders.
    text_column, text_pair_column, label_column: columns of own text data
      [text, None, label].
    regression: own text data has a float target (MSE, 1-output head).
    split_fraction, split_seed: validation fraction taken from the train
      data when there is no validation file or split.
    train_split, validation_split: ``datasets`` split names.
    max_train_examples, max_eval_examples: cut the splits (None: all).
    model: HF name or folder; ``tiny`` (a 2-layer random BERT, for tests)
      or ``scratch`` (image: a 6x192 ViT from scratch) [None: offline
      MiniLM-L6 for text, ``scratch`` for images, bert-base-uncased for qa].
    random_init: the model's architecture with random weights.
    dtype: compute dtype, ``float32`` or ``bfloat16`` (params stay f32).
    seq_len, doc_stride, n_best, max_answer_length: text lengths and QA
      decoding.
    image_size, crop_pct: image preprocessing.
    method, sparsity: the pruning method and its target.
    where: prunable leaves, a preset name [None: the model family's].
    pattern, aggregate: sparsity pattern (``unstructured``, ``N:M``,
      ``heads_and_neurons``, ``heads``, ``neurons``) and group score.
    shrink: slice dead heads/neurons out after training and compare logits.
    method_args: keyword arguments of the method's factory.
    score_batches, heldout, final_lambda, scores_lr: Cam-/Smooth-Cut
      scoring batches, PINS-SR held-out training examples, soft movement's
      regulariser and score learning rate.
    steps, epochs: run length (``steps`` wins).
    batch_size, eval_batch_size, eval_every, log_every, ckpt_every, seed.
    lr, lr_schedule, lr_warmup, lr_end_factor, optimizer, clip_norm: the one
      inner optimizer every method uses (model-aware ones included).
    dense_baseline: first fine-tune the dense model with the same budget.
    parallel: ``single``, ``pmap`` or ``sharded``; distributed: call
      ``jax.distributed.initialize()`` first (multi-host).
    out: run folder [runs/<task>_<method>_<sparsity>]; progress: progress
      bar; tensorboard: also log scalars there.
    source: where the recipe comes from (paper configs).
  """
  task: str = "text"
  data: str | None = None
  train_file: str | None = None
  validation_file: str | None = None
  dataset: str | None = None
  dataset_config: str | None = None
  image_folder: str | None = None
  validation_folder: str | None = None
  text_column: str = "text"
  text_pair_column: str | None = None
  label_column: str = "label"
  regression: bool = False
  split_fraction: float | None = None
  split_seed: int = 0
  train_split: str = "train"
  validation_split: str = "validation"
  max_train_examples: int | None = None
  max_eval_examples: int | None = None
  model: str | None = None
  random_init: bool = False
  dtype: str = "float32"
  seq_len: int = 128
  doc_stride: int = 128
  n_best: int = 20
  max_answer_length: int = 30
  image_size: int = 224
  crop_pct: float = 0.875
  method: str = "platon"
  sparsity: float = 0.9
  where: str | None = None
  pattern: str = "unstructured"
  aggregate: str = "sum"
  shrink: bool = False
  method_args: dict = dataclasses.field(default_factory=dict)
  score_batches: int = 50
  heldout: int = 500
  final_lambda: float = 400.0
  scores_lr: float = 1e-2
  steps: int | str | None = None
  epochs: float = 3.0
  batch_size: int = 32
  eval_batch_size: int = 128
  eval_every: int | str = 0
  log_every: int = 10
  ckpt_every: int | str = 0
  seed: int = 0
  lr: float = 5e-5
  lr_schedule: str = "linear"
  lr_warmup: int | float | str = 0.1
  lr_end_factor: float = 0.0
  optimizer: dict = dataclasses.field(
      default_factory=lambda: dict(DEFAULT_OPTIMIZER))
  clip_norm: float | None = 1.0
  dense_baseline: bool = False
  parallel: str = "single"
  distributed: bool = False
  out: str | None = None
  progress: bool = True
  tensorboard: str | None = None
  source: str = ""

  def __post_init__(self):
    for f in dataclasses.fields(self):
      _check_type(f.name, getattr(self, f.name), _hints()[f.name])
    _check_values(self)

  def replace(self, **changes: Any) -> "RunConfig":
    """A copy with ``changes`` (checked like any config)."""
    return from_dict({**self.to_dict(), **changes})

  def as_dense(self) -> "RunConfig":
    """The dense baseline of this run: same data, model and budget."""
    return self.replace(method="dense", method_args={},
                        pattern="unstructured", shrink=False)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @property
  def data_source(self) -> str:
    """``builtin``, ``files``, ``dataset`` or ``image_folder``."""
    if self.train_file:
      return "files"
    if self.dataset:
      return "dataset"
    if self.image_folder:
      return "image_folder"
    return "builtin"

  @property
  def data_name(self) -> str:
    """The built-in data name (the task's default when ``data`` is None)."""
    return self.data or {"text": "rotten_tomatoes", "qa": "squad",
                         "image": "fashion_mnist"}[self.task]


_HINTS: dict[str, Any] = {}


def _hints() -> dict[str, Any]:
  if not _HINTS:
    _HINTS.update(typing.get_type_hints(RunConfig))
  return _HINTS


def nearest(name: str, choices: Sequence[str]) -> str:
  """`` (did you mean 'x'?)`` or ``""``."""
  close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
  return f" (did you mean {close[0]!r}?)" if close else ""


def _type_name(tp: Any) -> str:
  args = typing.get_args(tp)
  if args:
    return " or ".join(_type_name(a) for a in args)
  return "None" if tp is type(None) else tp.__name__


def _check_type(name: str, value: Any, tp: Any) -> None:
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
  elif isinstance(value, str) and _STEPS_RE.match(value):
    return
  _fail(name, value, "a step count: an int >= 0, 'N epochs' or 'N steps'"
        + (", or a fraction of the run in [0, 1)" if fraction else ""))


def _positive(cfg: RunConfig, *names: str, allow_none: bool = False) -> None:
  for n in names:
    v = getattr(cfg, n)
    if v is None and allow_none:
      continue
    if v is None or v <= 0:
      _fail(n, v, "> 0" + (" or None" if allow_none else ""))


def _check_values(cfg: RunConfig) -> None:
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


def _check_pattern(cfg: RunConfig) -> None:
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
    _check_type(f"optimizer.{k}", v, float)
    if v < 0:
      _fail(f"optimizer.{k}", v, ">= 0")


def method_keywords(method: str) -> tuple[str, ...]:
  """Keyword arguments the method's factory accepts (``method_args``)."""
  import jaxprune
  if method in ("dense", "cam_cut", "smooth_cut", "soft_movement",
                "pins_sr"):
    base = {"soft_movement": jaxprune.soft_movement,
            "pins_sr": jaxprune.pins}.get(method)
    if base is None:
      return ()
    fn = base
  else:
    fn = getattr(jaxprune, method)
  skip = {"inner", "optimizer", "sparsity", "total_steps", "where", "num_examples",
          "learning_rate", "pattern"}
  return tuple(p for p in inspect.signature(fn).parameters if p not in skip)


def _check_method_args(cfg: RunConfig) -> None:
  allowed = method_keywords(cfg.method)
  for k, v in cfg.method_args.items():
    if k not in allowed:
      raise ValueError(
          f"unknown config key 'method_args.{k}' for method {cfg.method!r}"
          + (f" (allowed: {', '.join(allowed)})" if allowed else
             " (it takes none)") + nearest(k, allowed))
    if k in STEP_KEYS and v is not None:
      check_step_count(f"method_args.{k}", v, fraction=True)


def _check_data(cfg: RunConfig) -> None:
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


def _check_model(cfg: RunConfig) -> None:
  m = cfg.model
  if m is None or m in ("tiny", "scratch"):
    if m == "scratch" and cfg.task != "image":
      _fail("model", m, "'scratch' with task 'image' only")
    return
  local = m.startswith((".", "/", "~")) or os.path.exists(m)
  if local and not os.path.isfile(os.path.join(os.path.expanduser(m),
                                               "config.json")):
    _fail("model", m, "a folder with config.json, or a hub name")


def from_dict(values: dict[str, Any]) -> RunConfig:
  """A checked :class:`RunConfig`; unknown keys name the nearest valid one."""
  names = [f.name for f in dataclasses.fields(RunConfig)]
  for k in values:
    if k not in names:
      raise ValueError(f"unknown config key {k!r}" + nearest(k, names))
  return RunConfig(**values)


def parse_value(text: str) -> Any:
  """``--set`` value: a Python literal, ``true``/``false``/``none``, or text."""
  low = text.strip().lower()
  if low in ("true", "false"):
    return low == "true"
  if low in ("none", "null"):
    return None
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def parse_sets(items: Sequence[str]) -> list[tuple[str, str | None, Any]]:
  """``["a=1", "method_args.beta1=0.8"]`` -> ``[("a", None, 1),
  ("method_args", "beta1", 0.8)]`` (a dotted key sets one entry of a
  dict-valued key; ``key={...}`` replaces the whole dict)."""
  out = []
  for item in items:
    if "=" not in item:
      raise ValueError(f"--set expects key=value, got {item!r}")
    key, text = item.split("=", 1)
    head, _, sub = key.partition(".")
    out.append((head, sub or None, parse_value(text)))
  return out


def read_file(path: str) -> dict[str, Any]:
  """The dict of a config file: ``get_config()`` of a .py, or a JSON object."""
  if not os.path.isfile(path):
    raise ValueError(f"--config: no such file {path!r}")
  if path.endswith(".json"):
    with open(path) as f:
      values = json.load(f)
  else:
    spec = importlib.util.spec_from_file_location("_jaxprune_run_config",
                                                  path)
    if spec is None or spec.loader is None or not path.endswith(".py"):
      raise ValueError(f"--config: {path!r} is not a .py or .json file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "get_config", None)):
      raise ValueError(f"--config: {path!r} defines no get_config()")
    values = module.get_config()
  if not isinstance(values, dict):
    raise ValueError(f"--config: {path!r} does not give a dict")
  return dict(values)


def load(path: str | None, sets: Sequence[str] = ()) -> RunConfig:
  """Config file (if any) < ``--set`` overrides; checked.

  When ``--set method=...`` changes the file's method, the file's
  ``method_args`` that the new method does not take are dropped (the
  schedule keys ``warmup_steps``, ``final_steps``, ``delta_t`` usually
  carry over), with a note.
  """
  values = read_file(path) if path else {}
  file_method = values.get("method")
  for key, sub, value in parse_sets(sets):
    if sub is None:
      values[key] = value
      continue
    base = values.get(key, DEFAULT_OPTIMIZER if key == "optimizer" else {})
    if not isinstance(base, dict):
      raise ValueError(f"--set {key}.{sub}: config key {key!r} is not a "
                       "dict")
    values[key] = {**base, sub: value}
  method = values.get("method", RunConfig.method)
  if file_method not in (None, method) and method in METHODS:
    allowed = method_keywords(method)
    args = values.get("method_args") or {}
    dropped = sorted(k for k in args if k not in allowed)
    if dropped:
      print(f"note: the config's method_args {dropped} are for "
            f"{file_method!r}, not passed to {method!r}")
      values["method_args"] = {k: v for k, v in args.items()
                               if k in allowed}
  return from_dict(values)
