"""Exact selection against numpy sorting, on random and tie-heavy inputs."""
from fractions import Fraction

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprune import selection


def numpy_keep(leaves, k, per_leaf=False):
  """Reference: prune the k smallest, ties by (leaf order, row-major index)."""
  if per_leaf:
    return [numpy_keep([x], kk)[0] for x, kk in zip(leaves, k)]
  flat = np.concatenate([np.asarray(x, np.float32).ravel() for x in leaves])
  order = np.argsort(flat, kind="stable")
  keep = np.ones(flat.size, bool)
  keep[order[:int(k)]] = False
  out, start = [], 0
  for x in leaves:
    out.append(keep[start:start + x.size].reshape(x.shape))
    start += x.size
  return out


def make_leaves(rng, kind, shapes):
  leaves = []
  for s in shapes:
    if kind == "normal":
      x = rng.standard_normal(s)
    elif kind == "zeros":  # many exact zeros, like pruned weights' scores
      x = rng.random(s) * (rng.random(s) < 0.3)
    elif kind == "ints":  # few distinct values: massive ties everywhere
      x = rng.integers(0, 4, s).astype(np.float64)
    elif kind == "tiny":  # denormal-range and sign-mixed values
      x = rng.standard_normal(s) * 1e-30 * rng.choice([0, 1, -1], s)
    else:
      x = np.exp(rng.normal(-20, 5, s))
    leaves.append(x.astype(np.float32))
  return leaves


CASES = [(kind, seed) for kind in ("normal", "zeros", "ints", "tiny", "lognormal")
         for seed in range(3)]


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("kind,seed", CASES)
def test_global_exact_k(kind, seed, jit):
  rng = np.random.default_rng(seed)
  shapes = [(int(rng.integers(1, 60)), int(rng.integers(1, 40)))
            for _ in range(int(rng.integers(1, 5)))]
  leaves = make_leaves(rng, kind, shapes)
  n = sum(x.size for x in leaves)
  fn = jax.jit(selection.prune_masks) if jit else selection.prune_masks
  for k in sorted({0, 1, n // 2, int(0.9 * n), n - 1, n}):
    masks, tau = fn([jnp.asarray(x) for x in leaves], jnp.array([k]))
    expected = numpy_keep(leaves, k)
    assert sum(int((~np.asarray(m)).sum()) for m in masks) == k
    for m, e in zip(masks, expected):
      np.testing.assert_array_equal(np.asarray(m), e)
    if k > 0:
      flat = np.concatenate([x.ravel() for x in leaves])
      expected_tau = np.partition(flat, k - 1)[k - 1]
      tiny = np.finfo(np.float32).tiny  # XLA:CPU flushes denormals to 0
      assert (float(tau[0]) == expected_tau or
              (abs(float(tau[0])) < tiny and abs(expected_tau) < tiny))


@pytest.mark.parametrize("nonzero", [0.0, 0.5])
def test_threshold_among_zeros_closes_in_one_pass(nonzero):
  # Under flush-to-zero the 2**24 keys of +-0 and the denormals count alike:
  # a k-th smallest score of 0 is found at the first of them. The search
  # tries that key as soon as the bracket holds it (it took 9 more passes
  # through those keys before), and the masks stay exact.
  rng = np.random.default_rng(0)
  x = (rng.random((200, 300)) * (rng.random((200, 300)) < nonzero)
       ).astype(np.float32)
  k = int(0.3 * x.size)
  tau, _, _, passes = jax.jit(selection.kth_smallest)([jnp.asarray(x)],
                                                      jnp.array([k]))
  assert abs(float(tau[0])) < np.finfo(np.float32).tiny
  assert int(passes) == 1
  masks, tau = jax.jit(selection.prune_masks)([jnp.asarray(x)],
                                              jnp.array([k]))
  np.testing.assert_array_equal(np.asarray(masks[0]), numpy_keep([x], k)[0])
  assert float(tau[0]) == 0.0


def gap_leaves(kind, seed):
  """Scores with a wide gap above a block of 90% of them: small ones (like
  pruned weights' scores), SEVEN's -inf, or negative ones."""
  rng = np.random.default_rng(seed)
  shapes = [(257, 131), (64, 48), (300, 200), (7,)]  # sliced and plain leaves
  leaves = []
  for s in shapes:
    pruned = rng.random(s) < 0.9
    if kind in ("block", "tied"):
      low = 1e-9 * (1 + rng.random(s))
    elif kind == "-inf":
      low = np.full(s, -np.inf)
    else:  # negative block, positive rest
      low = -(1 + rng.random(s))
    x = np.where(pruned, low, np.exp(rng.normal(0, 2, s)))
    if kind == "tied":  # three scores tie at the top of the block
      x.reshape(-1)[:3] = 2e-9
    leaves.append(x.astype(np.float32))
  return leaves


@pytest.mark.parametrize("kind", ["block", "-inf", "negative", "tied"])
@pytest.mark.parametrize("after", [0, 1, -1])
def test_threshold_at_a_gap_closes_in_few_passes(kind, after):
  # The k-th smallest score ends the block below a gap (or is the first score
  # above it): a bracket that holds it has nothing to interpolate, and the
  # midpoint alone took 12-30 passes here. A pass that reads the keys of the
  # bracket's first and last scores closes it. Masks and threshold exact.
  leaves = gap_leaves(kind, 0)
  flat = np.concatenate([x.ravel() for x in leaves])
  k = int((flat < 0.5).sum()) + after if kind != "negative" else int(
      (flat < 0).sum()) + after
  tau, below, _, passes = jax.jit(selection.kth_smallest)(
      [jnp.asarray(x) for x in leaves], jnp.array([k]))
  expected = np.partition(flat, k - 1)[k - 1]
  assert float(tau[0]) == expected
  assert int(below[0]) == int((flat < expected).sum())
  assert int(passes) <= 6, int(passes)
  masks, _ = jax.jit(selection.prune_masks)([jnp.asarray(x) for x in leaves],
                                            jnp.array([k]))
  for m, e in zip(masks, numpy_keep(leaves, k)):
    np.testing.assert_array_equal(np.asarray(m), e)


def test_threshold_at_a_gap_per_group():
  leaves = gap_leaves("block", 1) + gap_leaves("negative", 2)
  groups = [0] * 4 + [1] * 4
  flats = [np.concatenate([x.ravel() for x in leaves[:4]]),
           np.concatenate([x.ravel() for x in leaves[4:]])]
  ks = [int((flats[0] < 0.5).sum()), int((flats[1] < 0).sum()) + 1]
  # Both groups' brackets close at their gaps (24 passes before).
  tau, _, _, passes = jax.jit(selection.kth_smallest, static_argnums=(2, 3))(
      [jnp.asarray(x) for x in leaves], jnp.array(ks), tuple(groups), 2)
  for g in range(2):
    assert float(tau[g]) == np.partition(flats[g], ks[g] - 1)[ks[g] - 1]
  assert int(passes) <= 10, int(passes)


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("kind", ["normal", "zeros", "ints"])
def test_per_leaf_exact_k(kind, jit):
  rng = np.random.default_rng(7)
  leaves = make_leaves(rng, kind, [(5, 7), (1, 1), (30, 20), (3, 100)])
  ks = [int(0.6 * x.size) for x in leaves]
  fn = (jax.jit(selection.prune_masks, static_argnums=(2, 3)) if jit
        else selection.prune_masks)
  masks, _ = fn([jnp.asarray(x) for x in leaves], jnp.array(ks),
                (0, 1, 2, 3), 4)
  for m, e, kk in zip(masks, numpy_keep(leaves, ks, per_leaf=True), ks):
    assert int((~np.asarray(m)).sum()) == kk
    np.testing.assert_array_equal(np.asarray(m), e)


def test_large_leaves_use_sliced_count():
  # Leaves above 32 * 1024 scalars take the parallel sliced counting path.
  rng = np.random.default_rng(3)
  leaves = [rng.random((300, 200)).astype(np.float32),
            (rng.random((257, 131)) * (rng.random((257, 131)) < 0.5)
             ).astype(np.float32)]
  n = sum(x.size for x in leaves)
  for k in (1, n // 3, n - 5):
    masks, _ = jax.jit(selection.prune_masks)(
        [jnp.asarray(x) for x in leaves], jnp.array([k]))
    for m, e in zip(masks, numpy_keep(leaves, k)):
      np.testing.assert_array_equal(np.asarray(m), e)


def test_key_roundtrip_orders_like_floats():
  x = np.array([-np.inf, -3.0, -1e-38, -0.0, 0.0, 1e-45, 2.0, np.inf],
               np.float32)
  keys = np.asarray(selection.float_to_key(jnp.asarray(x)))
  assert (np.diff(keys.astype(np.int64)) > 0).all()
  np.testing.assert_array_equal(
      np.asarray(selection.key_to_float(jnp.asarray(keys))).view(np.uint32),
      x.view(np.uint32))


@pytest.mark.parametrize("n", [0, 1, 999, 1000, 85_017_600, 2**31 - 1])
@pytest.mark.parametrize("p", [0.0, 1e-40, 1e-8, 0.1, 0.5, 0.9, 0.3333333,
                               0.99999994, 1.0])
def test_floor_mul_is_exact(n, p):
  pf = np.float32(p)
  expected = int(Fraction(n) * Fraction(float(pf)) // 1)
  assert int(selection.floor_mul(n, jnp.float32(pf))) == expected


@hypothesis.settings(deadline=None, max_examples=10)
@hypothesis.given(
    sizes=st.lists(st.integers(0, 40), min_size=1, max_size=4),
    distinct=st.integers(1, 6),
    frac=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16))
def test_property_random_shapes_ties_and_k(sizes, distinct, frac, seed):
  rng = np.random.default_rng(seed)
  leaves = [(rng.integers(0, distinct, s) * 1e-30).astype(np.float32)
            for s in sizes]
  n = sum(sizes)
  k = int(frac * n)
  masks, _ = jax.jit(selection.prune_masks)(
      [jnp.asarray(x) for x in leaves], jnp.array([k]))
  for m, e in zip(masks, numpy_keep(leaves, k)):
    np.testing.assert_array_equal(np.asarray(m), e)


@pytest.mark.parametrize("shape", [(), (7,), (5, 9), (3, 4, 6), (2, 3, 2, 5),
                                   (0, 4), (6, 1), (1, 8)])
def test_first_true_keeps_the_first_take_in_row_major_order(shape):
  rng = np.random.default_rng(len(shape) + sum(shape))
  flag = rng.random(shape) < 0.4
  first = jax.jit(selection._first_true)  # pylint: disable=protected-access
  for take in (-1, 0, 1, 2, int(flag.sum()) // 2, int(flag.sum()),
               int(flag.sum()) + 3):
    want = flag & (np.cumsum(flag.reshape(-1)).reshape(shape) <= take)
    np.testing.assert_array_equal(
        np.asarray(first(jnp.asarray(flag), jnp.int32(take))), want)


@pytest.mark.parametrize("shape", [(3, 7), (4, 5, 9), (2, 3, 4, 6)])
def test_first_true_per_stacked_leaf(shape):
  """``batch_dims=1``: each leaf of a bucket keeps its own first ``take``."""
  rng = np.random.default_rng(sum(shape))
  flag = rng.random(shape) < 0.5
  counts = flag.reshape(shape[0], -1).sum(axis=1)
  take = np.array([rng.integers(-1, c + 2) for c in counts], np.int32)
  first = selection._first_true  # pylint: disable=protected-access
  got = jax.jit(first, static_argnums=2)(jnp.asarray(flag), jnp.asarray(take),
                                         1)
  for f, t, g in zip(flag, take, np.asarray(got)):
    np.testing.assert_array_equal(
        g, f & (np.cumsum(f.reshape(-1)).reshape(f.shape) <= t))


def test_coarse_counts_equal_the_float_comparisons_of_the_passes():
  """``#(coarse key <= d) == #(x <= t_d)`` for every coarse candidate ``d``
  (and ``d = 0xFF80``: the non-NaN count), on the values where the top 16 key
  bits alone would be wrong: zeros of both signs, denormals, the largest floats,
  infinities and NaN of both signs. The reference is numpy on the values as
  the device compares them (denormals flushed where it flushes them)."""
  tiny = np.finfo(np.float32).tiny
  special = np.array(
      [0.0, -0.0, 1e-45, -1e-45, 1e-39, -1e-39, tiny, -tiny, 1.0, -1.0,
       1.7e38, -1.7e38, 3.4e38, -3.4e38, np.inf, -np.inf, np.nan, -np.nan,
       2.35e-38, -2.35e-38, 4.2e37, -4.2e37], np.float32)
  rng = np.random.default_rng(0)
  x = np.concatenate([special, rng.standard_normal(200).astype(np.float32)
                      * np.float32(10.0) ** rng.integers(-40, 39, 200)])
  x = x.astype(np.float32)
  coarse = np.asarray(jax.jit(selection._coarse_key)(jnp.asarray(x)))  # pylint: disable=protected-access
  flushes = bool(jax.jit(lambda v: v == 0)(jnp.float32(1e-45)))
  seen = np.where(np.abs(x) < tiny, np.float32(0), x) if flushes else x
  d = np.arange(0xFF81)
  keys = (d.astype(np.uint32) << 16) | np.uint32(0xFFFF)
  t = np.array(selection.key_to_float(jnp.asarray(keys)))
  t[0xFF80] = np.inf  # 0xFF80 stands for +inf
  with np.errstate(invalid="ignore"):
    want = (seen[:, None] <= t[None, :]).sum(axis=0)
  got = (coarse[:, None].astype(np.int32) <= d[None, :]).sum(axis=0)
  np.testing.assert_array_equal(got, want)
