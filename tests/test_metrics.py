"""experiments.metrics against scikit-learn/scipy and hand-worked SQuAD cases."""

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from experiments import metrics


def _random_labels(seed, n=200, k=2):
  rng = np.random.default_rng(seed)
  return rng.integers(0, k, n), rng.integers(0, k, n)


@pytest.mark.parametrize("seed", range(5))
def test_classification_metrics_match_sklearn(seed):
  t, p = _random_labels(seed)
  assert metrics.accuracy(t, p) == pytest.approx(skm.accuracy_score(t, p))
  assert metrics.f1(t, p) == pytest.approx(skm.f1_score(t, p))
  assert metrics.matthews(t, p) == pytest.approx(skm.matthews_corrcoef(t, p))


def test_matthews_multiclass_and_degenerate_match_sklearn():
  t, p = _random_labels(7, k=3)
  assert metrics.matthews(t, p) == pytest.approx(skm.matthews_corrcoef(t, p))
  const = np.zeros(10, int)
  t2 = np.r_[np.zeros(5, int), np.ones(5, int)]
  assert metrics.matthews(t2, const) == skm.matthews_corrcoef(t2, const) == 0


def test_f1_edge_cases_match_sklearn():
  t = np.array([0, 0, 1, 1])
  for p in (np.zeros(4, int), np.ones(4, int), np.array([1, 0, 1, 0])):
    assert metrics.f1(t, p) == pytest.approx(
        skm.f1_score(t, p, zero_division=0.0))
  assert metrics.f1([0, 0], [0, 0]) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_correlations_match_scipy(seed):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=100)
  y = 0.5 * x + rng.normal(size=100)
  assert metrics.pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0])
  assert metrics.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0])
  # STS-B gold scores have many ties (steps of 0.2 on 0..5).
  tx = np.round(rng.uniform(0, 5, 100) * 5) / 5
  ty = np.round(tx + rng.normal(0, 1, 100))
  assert metrics.spearman(tx, ty) == pytest.approx(stats.spearmanr(tx, ty)[0])


def test_bad_shapes_raise():
  with pytest.raises(ValueError, match="1-D"):
    metrics.accuracy([1, 2], [1])
  with pytest.raises(ValueError, match="no examples"):
    metrics.accuracy([], [])


@pytest.mark.parametrize("raw, normal", [
    ("The Quick, Brown fox!", "quick brown fox"),
    ("A-Team", "ateam"),                 # punctuation goes before articles
    ("an apple a day", "apple day"),
    ("Theatre of the absurd", "theatre of absurd"),  # "the" only as a word
    ("  Denver\tBroncos\n", "denver broncos"),
    ("the.", ""),
    ("1,000 (approx.)", "1000 approx"),
])
def test_normalize_answer_hand_examples(raw, normal):
  assert metrics.normalize_answer(raw) == normal


def test_squad_exact_and_f1_hand_examples():
  assert metrics.squad_exact("The Denver Broncos", "denver broncos") == 1.0
  assert metrics.squad_exact("Denver", "Denver Broncos") == 0.0
  # pred {denver, broncos}, gold {denver, broncos, won}: P 1, R 2/3.
  assert metrics.squad_f1("Denver Broncos", "The Denver Broncos won") == \
      pytest.approx(0.8)
  # Bags, not sets: common = {cat: 1, dog: 1}; P = R = 2/3.
  assert metrics.squad_f1("cat cat dog", "cat dog dog") == pytest.approx(2 / 3)
  assert metrics.squad_f1("", "anything") == 0.0
  assert metrics.squad_f1("a the", "an") == 0.0  # both normalise to nothing


def test_squad_evaluate_max_over_answers_and_missing():
  preds = {"q1": "Denver Broncos", "q2": "wrong"}
  refs = {"q1": ["Carolina Panthers", "the Denver Broncos"],
          "q2": ["right answer", "wrong answer"],
          "q3": ["x"]}  # no prediction: scores 0
  out = metrics.squad_evaluate(preds, refs)
  assert out["exact_match"] == pytest.approx(100 / 3)
  assert out["f1"] == pytest.approx(100 * (1 + 2 / 3) / 3)
