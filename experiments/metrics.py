"""Evaluation metrics of the paper experiments, in plain numpy.

GLUE: accuracy, binary F1, Matthews correlation (CoLA), Pearson and Spearman
correlation (STS-B). SQuAD v1.1: exact match and F1 with the answer
normalisation of the official v1.1 evaluation script (lower case, drop
punctuation, drop the articles a/an/the, collapse whitespace; F1 over the bag
of tokens; the maximum over the ground-truth answers; averages in percent).

The GLUE functions return fractions (``[0, 1]`` or ``[-1, 1]``), exactly what
scikit-learn and scipy return; the tests check them against both.

Example:
  >>> from experiments import metrics
  >>> metrics.accuracy([1, 0, 1], [1, 1, 1])
  0.6666666666666666
  >>> metrics.normalize_answer("The  Eiffel-Tower!")
  'eiffeltower'
  >>> metrics.squad_f1("the cat sat", "a cat sat down")
  0.8
"""

from __future__ import annotations

import collections
import re
import string
from typing import Iterable, Mapping, Sequence

import numpy as np

__all__ = ["accuracy", "f1", "matthews", "pearson", "spearman",
           "normalize_answer", "squad_exact", "squad_f1", "squad_evaluate"]


def _arrays(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
  t, p = np.asarray(y_true), np.asarray(y_pred)
  if t.shape != p.shape or t.ndim != 1:
    raise ValueError(f"labels and predictions must be 1-D of one length, got "
                     f"{t.shape} and {p.shape}")
  if t.size == 0:
    raise ValueError("no examples")
  return t, p


def accuracy(y_true: Sequence, y_pred: Sequence) -> float:
  """Fraction of predictions equal to the labels."""
  t, p = _arrays(y_true, y_pred)
  return float(np.mean(t == p))


def f1(y_true: Sequence, y_pred: Sequence, positive: int = 1) -> float:
  """Binary F1 of the ``positive`` class (0 when it is never predicted/true)."""
  t, p = _arrays(y_true, y_pred)
  tp = float(np.sum((p == positive) & (t == positive)))
  fp = float(np.sum((p == positive) & (t != positive)))
  fn = float(np.sum((p != positive) & (t == positive)))
  denom = 2 * tp + fp + fn
  return 0.0 if denom == 0 else 2 * tp / denom


def matthews(y_true: Sequence, y_pred: Sequence) -> float:
  """Matthews correlation coefficient (multi-class form; 0 if undefined)."""
  t, p = _arrays(y_true, y_pred)
  classes, t_idx = np.unique(np.concatenate([t, p]), return_inverse=True)
  t_idx, p_idx = t_idx[:t.size], t_idx[t.size:]
  k = len(classes)
  conf = np.zeros((k, k), np.float64)
  np.add.at(conf, (t_idx, p_idx), 1.0)
  n = conf.sum()
  correct = np.trace(conf)
  t_sum, p_sum = conf.sum(axis=1), conf.sum(axis=0)
  cov_tp = correct * n - t_sum @ p_sum
  cov_pp = n * n - p_sum @ p_sum
  cov_tt = n * n - t_sum @ t_sum
  denom = np.sqrt(cov_pp * cov_tt)
  return 0.0 if denom == 0 else float(cov_tp / denom)


def pearson(x: Sequence, y: Sequence) -> float:
  """Pearson correlation coefficient."""
  a, b = _arrays(x, y)
  a = a.astype(np.float64) - np.mean(a, dtype=np.float64)
  b = b.astype(np.float64) - np.mean(b, dtype=np.float64)
  denom = np.sqrt(np.dot(a, a) * np.dot(b, b))
  return float("nan") if denom == 0 else float(np.dot(a, b) / denom)


def _rank(x: np.ndarray) -> np.ndarray:
  """Ranks 1..n, ties get the mean of their ranks."""
  order = np.argsort(x, kind="stable")
  sorted_x = x[order]
  starts = np.r_[True, sorted_x[1:] != sorted_x[:-1]]
  group = np.cumsum(starts) - 1
  first = np.flatnonzero(starts)
  last = np.r_[first[1:], x.size] - 1
  mean_rank = (first + last) / 2.0 + 1.0
  ranks = np.empty(x.size, np.float64)
  ranks[order] = mean_rank[group]
  return ranks


def spearman(x: Sequence, y: Sequence) -> float:
  """Spearman rank correlation (Pearson on average ranks)."""
  a, b = _arrays(x, y)
  return pearson(_rank(a), _rank(b))


# --- SQuAD v1.1 -------------------------------------------------------------

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
  """Lower case, drop punctuation, drop articles, collapse whitespace.

  The steps run in this order, as in the official SQuAD v1.1 script, so
  ``"A-Team"`` becomes ``"ateam"`` (the hyphen goes first, then ``a`` is
  no longer a word of its own).
  """
  text = text.lower()
  text = "".join(ch for ch in text if ch not in _PUNCTUATION)
  text = _ARTICLES.sub(" ", text)
  return " ".join(text.split())


def squad_exact(prediction: str, truth: str) -> float:
  """1.0 when the normalised strings are equal, else 0.0."""
  return float(normalize_answer(prediction) == normalize_answer(truth))


def squad_f1(prediction: str, truth: str) -> float:
  """F1 over the bags of normalised tokens."""
  pred = normalize_answer(prediction).split()
  gold = normalize_answer(truth).split()
  common = collections.Counter(pred) & collections.Counter(gold)
  same = sum(common.values())
  if same == 0:
    return 0.0
  precision, recall = same / len(pred), same / len(gold)
  return 2 * precision * recall / (precision + recall)


def squad_evaluate(predictions: Mapping[str, str],
                   references: Mapping[str, Iterable[str]]) -> dict[str, float]:
  """Exact match and F1 in percent, each the max over an example's answers.

  Args:
    predictions: question id -> predicted answer text.
    references: question id -> the ground-truth answer texts.

  Returns:
    ``{"exact_match": ..., "f1": ...}`` averaged over ``references``; a
    question without a prediction scores 0 (as in the official script).
  """
  if not references:
    raise ValueError("no references")
  em = f1_sum = 0.0
  for qid, truths in references.items():
    truths = list(truths)
    pred = predictions.get(qid)
    if pred is None:
      continue
    em += max(squad_exact(pred, t) for t in truths)
    f1_sum += max(squad_f1(pred, t) for t in truths)
  n = len(references)
  return {"exact_match": 100.0 * em / n, "f1": 100.0 * f1_sum / n}
