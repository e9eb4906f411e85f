"""experiments.movement_outliers: outlier dimensions and the pruning rules,
checked on hand-built arrays."""
import numpy as np

from experiments import movement_outliers as mo


def _layer_norms(n_norms, big_in, dim=3, size=16):
  rng = np.random.default_rng(0)
  tree = {}
  for i in range(n_norms):
    scale = 1 + 0.01 * rng.standard_normal(size)
    if i < big_in:
      scale[dim] = 5.0
    tree[f"n{i}"] = {"LayerNorm": {"scale": scale, "bias": np.zeros(size)}}
  return {"encoder": tree}


def test_outlier_dims_need_half_of_the_layer_norms():
  assert mo.outlier_dims(_layer_norms(4, big_in=2)).tolist() == [3]
  assert mo.outlier_dims(_layer_norms(4, big_in=1)).tolist() == []


def test_line_axis_reads_rows_writes_columns():
  pre = "bert/encoder/layer/0/"
  assert mo.line_axis(pre + "attention/self/query/kernel") == 0
  assert mo.line_axis(pre + "intermediate/dense/kernel") == 0
  assert mo.line_axis(pre + "attention/output/dense/kernel") == 1
  assert mo.line_axis(pre + "output/dense/kernel") == 1
  assert mo.line_axis(pre + "output/dense/bias") is None
  assert mo.line_axis("bert/pooler/dense/kernel") is None


def test_every_rule_prunes_movements_count_and_the_controls_hold():
  rng = np.random.default_rng(1)
  names = ["l/attention/self/key/kernel", "l/output/dense/kernel"]
  kernels = {n: rng.standard_normal((8, 6)) for n in names}
  scores = {n: rng.standard_normal((8, 6)) for n in names}
  # movement's lowest scores all in outlier line 2 of the first kernel
  scores[names[0]][2, :] -= 10
  outliers = np.array([2])
  rules = mo._masks(kernels, scores, 0.25, outliers, rng)
  k = int(np.floor(48 * 0.25))
  for rule, masks in rules.items():
    for n in names:
      assert masks[n].sum() == k, (rule, n)
  mv = rules["movement"][names[0]]
  assert mv[2].all() and mv.sum() == 12   # the whole row, then 6 more
  np.testing.assert_array_equal(
      mv.ravel(), np.isin(np.arange(48), np.argsort(
          scores[names[0]].ravel(), kind="stable")[:k]))
  spared = rules["movement, outlier lines spared"][names[0]]
  assert not spared[2].any()
  matched = rules["random, movement's outlier count"]
  assert matched[names[0]][2].sum() == 6
  # the second kernel writes the hidden state: its lines are columns
  assert (matched[names[1]][:, 2].sum()
          == rules["movement"][names[1]][:, 2].sum())
  assert not rules["movement, outlier lines spared"][names[1]][:, 2].any()
  mag = rules["magnitude"][names[1]]
  assert np.abs(kernels[names[1]])[mag].max() <= np.abs(
      kernels[names[1]])[~mag].min()
  per_unit = rules["random, movement's count per unit"]
  np.testing.assert_array_equal(per_unit[names[0]].sum(axis=0),
                                rules["movement"][names[0]].sum(axis=0))
  np.testing.assert_array_equal(per_unit[names[1]].sum(axis=1),
                                rules["movement"][names[1]].sum(axis=1))
