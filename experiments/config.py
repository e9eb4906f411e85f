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
import importlib.util
import json
import os
import typing
from typing import Any, Sequence

__all__ = ["RunConfig", "from_dict", "load", "parse_sets", "TASKS",
           "METHODS", "BUILTIN_DATA", "nearest"]

from experiments.config_checks import (  # noqa: F401  (re-exported)
    BUILTIN_DATA, DEFAULT_OPTIMIZER, METHODS, TASKS, check_type,
    check_values, method_keywords, nearest)


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
    shared_attention_dropout: one attention-dropout mask shared by the
      batch and the heads (as HF Flax; the models' default) or, False, one
      per element (as HF PyTorch); see docs/models.md.
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
    teacher: distil from a frozen teacher: ``dense`` (this run's dense
      baseline, trained first) or a fine-tuned checkpoint folder [None];
      distill_temperature, distill_alpha: ``(1 - a) CE + a T^2 KL`` (MSE
      to the teacher for regression) [2.0, 0.5: Sanh et al.'s defaults].
    parallel: ``single``, ``pmap`` or ``sharded``; distributed: call
      ``jax.distributed.initialize()`` first (multi-host).
    step_kinds: compile one train-step program per pruning step kind (no
      host syncs on accelerators) [True]; False: one traced program,
      compiled once (quicker for runs of a few steps).
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
  shared_attention_dropout: bool = True
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
  teacher: str | None = None
  distill_temperature: float = 2.0
  distill_alpha: float = 0.5
  parallel: str = "single"
  distributed: bool = False
  step_kinds: bool = True
  out: str | None = None
  progress: bool = True
  tensorboard: str | None = None
  source: str = ""

  def __post_init__(self):
    for f in dataclasses.fields(self):
      check_type(f.name, getattr(self, f.name), _hints()[f.name])
    check_values(self)

  def replace(self, **changes: Any) -> "RunConfig":
    """A copy with ``changes`` (checked like any config)."""
    return from_dict({**self.to_dict(), **changes})

  def as_dense(self) -> "RunConfig":
    """The dense baseline of this run: same data, model and budget."""
    return self.replace(method="dense", method_args={},
                        pattern="unstructured", shrink=False, teacher=None)

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
