"""Exact k-smallest selection over a list of score arrays, without sorting.

XLA's sort and ``top_k`` are single-threaded on CPU (28 s for 85M scores) and
need every score concatenated into one buffer. Here the k-th smallest score is
found by *counting*: for a batch of candidate thresholds ``t_b`` we count
``#(score <= t_b)`` leaf by leaf and keep the tightest bracket
``count(lo) < k <= count(hi)``. Candidates are chosen in the space of ordered
float32 bit patterns (an integer key that orders like the floats), so the
search is exact and ends when the bracket is one key wide. The first pass
takes two candidates from a small strided sample of the scores; later passes
count three: the bracket's midpoint (so at most 33 passes in all) and a pair
around the rank that interpolation predicts (usually 5-8 passes in all). Where
the k-th smallest is the first or last score in a wide bracket (at a gap in
the scores), a pass reads the keys of those scores and the next one closes
the bracket at them.

Each pass reads every score once. Under sharded ``jit`` a pass is a local
count plus a scalar all-reduce; under ``pmap`` every replica holds the same
scores and computes the same answer.

Ties at the threshold are broken deterministically: the first ``m`` tied
entries in leaf order, then row-major order within a leaf, are pruned, so that
exactly ``k`` entries are selected.

Two searches give the same (exact) answer:

* ``"adaptive"`` (the CPU default): the early-exit search above, in a
  ``while_loop``, leaf by leaf, with a ``cond`` per leaf for the rare tie and
  NaN paths. Fastest on CPU, where control flow is free.
* ``"fixed"`` (the GPU/TPU default): :func:`fixed_kth_smallest`, a fixed
  number of passes with evenly spaced candidates, over the leaves stacked by
  (shape, dtype) into a few buckets, and no control flow at all. On XLA:GPU
  a ``conditional`` or a ``while`` without a known trip count copies a
  predicate to the host and blocks until the stream drains, and every pass
  over 144 separate leaves is 144 small kernels; here a pass is one kernel
  per bucket (XLA fuses the stacking into it: no stacked copy is written),
  ties and NaN scores are ranked from the last pass's per-row counts, and
  nothing waits on the host.

:func:`search_mode` overrides the choice (e.g. to compile for a GPU on a CPU
host, as ``benchmarks/gpu_proxy.py`` does).
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxprune import stacking

__all__ = [
    "count_le",
    "float_to_key",
    "key_to_float",
    "kth_smallest",
    "prune_masks",
    "fixed_kth_smallest",
    "search_mode",
    "floor_mul",
]

_SPREAD = 2.0**-6  # the interpolation pair's distance, a fraction of the bracket
_SLICES = 32  # elementwise partial sums per leaf (parallel on XLA:CPU)
_SAMPLE = 32768  # target size of the strided sample used by the first pass
_MAX_PASSES = 40
# A bracket wider than _END_WIDTH keys whose k-th smallest score is among its
# first or last _END_RANK (by count) triggers a pass that reads the keys of
# its first and last scores (at most _MAX_END_PASSES such passes: the 33
# counting passes that the midpoint bounds still fit in _MAX_PASSES).
_END_WIDTH = 16
_END_RANK = 2
_MAX_END_PASSES = 4
_FIXED_CANDIDATES = 40  # candidates per fixed pass: brackets shrink 41x
_COARSE_PASSES = 3  # passes over the top 16 key bits: 65282 -> 1593 -> 39 -> 1
_FIXED_PASSES = 3  # then over the scores: 65536 -> 1599 -> 39 -> 1 keys
_COARSE_SHIFT = 16  # a coarse candidate is the key (d << 16) | 0xFFFF
_COARSE_TOP = 0xFF80  # coarse value of +inf, standing for it (NaN: 0xFFFF)
_COARSE_ZERO = 0x7FFF  # coarse value of the zero class; candidate 0x7FFF is -0.0
_SIGN = np.uint32(0x80000000)
_KEY_NEG_INF = np.uint32(0x007FFFFF)  # ordered key of -inf
_KEY_POS_INF = np.uint32(0xFF800000)  # ordered key of +inf
_KEY_NEG_ZERO = np.uint32(0x7FFFFFFF)  # ordered key of -0.0
_KEY_NEG_NORMAL = np.uint32(0x7F7FFFFF)  # ... of the negative normal nearest 0
# Ordered key of the largest negative denormal, the first key of the class
# {denormals, -0, +0} that compares equal to 0 under flush-to-zero.
_KEY_ZERO_CLASS = np.uint32(0x7F800000)


def float_to_key(x: jax.Array) -> jax.Array:
  """Maps float32 values to uint32 keys that order like the floats."""
  bits = jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.uint32)
  neg = (bits & _SIGN) != 0
  return jnp.where(neg, ~bits, bits | _SIGN)


def key_to_float(key: jax.Array) -> jax.Array:
  """Inverse of :func:`float_to_key`."""
  key = key.astype(jnp.uint32)
  pos = (key & _SIGN) != 0
  bits = jnp.where(pos, key & ~_SIGN, ~key)
  return jax.lax.bitcast_convert_type(bits, jnp.float32)


def _count_leaf_le(x: jax.Array, thresholds: jax.Array) -> jax.Array:
  """``#(x <= t)`` for each threshold ``t``; returns int32 of shape ``(B,)``."""
  t = thresholds.astype(jnp.float32)
  return _sliced_sum(x, lambda r: (r[:, None] <= t[None, :]).astype(jnp.int32),
                     t.shape)


def _sliced_sum(x: jax.Array, fn, shape: tuple[int, ...],
                maximum: bool = False) -> jax.Array:
  """``sum(fn(x.reshape(-1)), axis=0)`` (or its ``max``) for an integer
  ``fn`` elementwise in its first axis; ``shape`` is the result's (of
  ``fn``'s dtype; 0 for an empty ``x``).

  On CPU the reduction is first taken over ``_SLICES`` equal slices as an
  elementwise fusion (which XLA:CPU runs on all cores) and only then
  finished; a plain reduction is single-threaded there and ~6x slower. (A
  float ``min``, ``max`` or sum this way is still 5-15x slower than these.)
  """
  flat = x.reshape(-1)
  n = flat.shape[0]
  if maximum:
    op, finish = jnp.maximum, lambda a: jnp.max(a, axis=0)
  else:
    op, finish = jnp.add, lambda a: jnp.sum(a, axis=0, dtype=a.dtype)
  if n == 0:
    return jnp.zeros(shape, jax.eval_shape(fn, flat).dtype)
  if jax.default_backend() != "cpu" or n < _SLICES * 1024:
    return finish(fn(flat))
  main = (n // _SLICES) * _SLICES
  rows = flat[:main].reshape(_SLICES, -1)
  acc = fn(rows[0])
  for i in range(1, _SLICES):
    acc = op(acc, fn(rows[i]))
  total = finish(acc)
  if main < n:
    total = op(total, finish(fn(flat[main:])))
  return total


def _leaf_counts_le(leaves: Sequence[jax.Array], thresholds: jax.Array,
                    groups: Sequence[int]) -> jax.Array:
  """``#(x <= t)`` per leaf for its group's thresholds: ``(num_leaves, B)``
  int32 from float32 ``thresholds`` of shape ``(G, B)``."""
  return jnp.stack([_count_leaf_le(x, thresholds[g])
                    for x, g in zip(leaves, groups)])


def _group_sums(per_leaf: jax.Array, groups: Sequence[int],
                num_groups: int) -> jax.Array:
  """``(num_leaves, ...)`` -> ``(num_groups, ...)`` sums over each group's
  leaves (a static one-hot contraction)."""
  if num_groups == 1:
    return jnp.sum(per_leaf, axis=0, keepdims=True)
  onehot = jnp.asarray(np.asarray(groups)[None, :]
                       == np.arange(num_groups)[:, None], per_leaf.dtype)
  return jnp.tensordot(onehot, per_leaf, axes=1)


def _take_counts(per_leaf: jax.Array, idx: jax.Array, take: jax.Array,
                 old: jax.Array, groups: Sequence[int]) -> jax.Array:
  """Per leaf, its count at candidate ``idx[g]`` of its group ``g`` where
  ``take[g]``, else ``old``."""
  gid = np.asarray(groups, np.int32)
  new = jnp.take_along_axis(per_leaf, idx[gid][:, None], axis=1)[:, 0]
  return jnp.where(take[gid], new, old)


def count_le(leaves: Sequence[jax.Array], thresholds: jax.Array,
             groups: Sequence[int] | None = None) -> jax.Array:
  """Counts ``#(score <= threshold)`` per group.

  Args:
    leaves: float score arrays.
    thresholds: float32 array ``(G, B)``: ``B`` thresholds for each of ``G``
      groups.
    groups: group index of each leaf (default: all leaves in group 0).

  Returns:
    int32 array ``(G, B)``.
  """
  thresholds = jnp.asarray(thresholds, jnp.float32)
  if not leaves:
    return jnp.zeros(thresholds.shape, jnp.int32)
  if groups is None:
    groups = [0] * len(leaves)
  return _group_sums(_leaf_counts_le(leaves, thresholds, groups), groups,
                     thresholds.shape[0])


def _sample_keys(leaves: Sequence[jax.Array], size: int) -> jax.Array:
  """A deterministic strided sample of the scores' keys, sorted."""
  total = sum(int(np.prod(x.shape)) for x in leaves)
  stride = max(1, total // size)
  parts = [float_to_key(x.reshape(-1)[::stride]) for x in leaves
           if int(np.prod(x.shape)) > 0]
  return jnp.sort(jnp.concatenate(parts))


def _candidates(lo, hi, c_lo, c_hi, k):
  """Three candidate keys strictly inside ``(lo, hi)`` for one search pass.

  The bracket's midpoint, so that the bracket at least halves whatever the
  data (from the initial width below ``2**32``, 32 such passes close it), and
  a pair ``_SPREAD`` of the bracket to each side of the position that linear
  interpolation of the counts predicts: where the prediction is that good the
  bracket shrinks 32-fold. The interpolation is in score values where the
  bracket spans less than a factor of 4 (score densities are smooth in value,
  and the key space changes scale at every power of two), else in keys
  (roughly log-values). A bracket of at most four keys is closed by its
  interior keys.

  Three, not more: on XLA:CPU a counting pass over 85M scores takes about as
  long for up to three thresholds as for one (12-13 ms, 2 cores) and four
  times as long for four; see docs/performance.md.
  """
  width = hi - lo  # uint32, >= 2 while searching
  w = width.astype(jnp.float32)
  frac = ((k - c_lo).astype(jnp.float32) /
          jnp.maximum(c_hi - c_lo, 1).astype(jnp.float32))
  v_lo, v_hi = key_to_float(lo), key_to_float(hi)
  a_lo, a_hi = jnp.abs(v_lo), jnp.abs(v_hi)
  by_value = (jnp.isfinite(v_lo) & jnp.isfinite(v_hi)
              & (jnp.signbit(v_lo) == jnp.signbit(v_hi))
              & (jnp.maximum(a_lo, a_hi) < 4 * jnp.minimum(a_lo, a_hi)))
  v_at = v_lo + frac * (v_hi - v_lo)
  at = jnp.where(by_value, (float_to_key(v_at) - lo).astype(jnp.float32),
                 frac * w)
  spread = jnp.maximum(w * _SPREAD, 1.0)
  pair = jnp.clip(jnp.stack([at - spread, at + spread]), 1.0,
                  4294967040.0).astype(jnp.uint32)
  offsets = jnp.concatenate([(width // 2)[None], pair])  # exact midpoint
  offsets = jnp.where(width <= 4, jnp.arange(1, 4, dtype=jnp.uint32), offsets)
  cand = lo + jnp.clip(offsets, jnp.uint32(1), width - 1)
  # Under flush-to-zero (XLA:CPU, XLA:GPU) the 2**24 keys of +-0 and the
  # denormals all count alike, so a k-th smallest score of 0 (all-zero
  # scores, or k inside a block of exact zeros) is found only at the first
  # of them, which bisection and interpolation reach after many passes.
  # Where the bracket holds it, that key and the one below replace the
  # interpolation pair: such a bracket closes in one pass. The answer is the
  # same either way (the smallest key whose count reaches k).
  z = jnp.uint32(_KEY_ZERO_CLASS)
  cand = cand.at[1].set(jnp.where((lo < z - 1) & (z - 1 < hi), z - 1, cand[1]))
  cand = cand.at[2].set(jnp.where((lo < z) & (z < hi), z, cand[2]))
  return cand


def _bracket_end_keys(leaves: Sequence[jax.Array], lo: jax.Array,
                      hi: jax.Array, groups: Sequence[int], num_groups: int
                      ) -> tuple[jax.Array, jax.Array]:
  """Per group, the keys of the first and of the last score in the bracket
  ``(lo, hi]``, in the comparisons the counting passes make (``(G,)`` uint32
  each; meaningless for a group with no score there). ``lo`` one key below
  ``-inf`` bounds nothing; NaN scores are never in a bracket."""
  bottom = lo < _KEY_NEG_INF
  lo_v = key_to_float(jnp.maximum(lo, _KEY_NEG_INF))
  hi_v = key_to_float(hi)

  def ends(x, g):
    def fn(r):  # max of ~key is ~(min of key)
      inside = (((r > lo_v[g]) | (bottom[g] & (r == -jnp.inf)))
                & (r <= hi_v[g]))
      key = float_to_key(r)
      return jnp.stack([jnp.where(inside, ~key, jnp.uint32(0)),
                        jnp.where(inside, key, jnp.uint32(0))], axis=-1)
    return _sliced_sum(x.astype(jnp.float32), fn, (2,), maximum=True)

  per_leaf = jnp.stack([ends(x, g) for x, g in zip(leaves, groups)])
  gid = np.asarray(groups)
  per_group = jnp.stack([jnp.max(per_leaf[gid == g], axis=0)
                         if (gid == g).any() else jnp.zeros((2,), jnp.uint32)
                         for g in range(num_groups)])
  return ~per_group[:, 0], per_group[:, 1]


def _end_candidates(lo, hi, c_lo, c_hi, k, first_key, last_key):
  """Three candidate keys in ``(lo, hi)`` when the k-th smallest score is
  among the bracket's first or last ``_END_RANK`` (by count, ties included):
  the key of its first score (``first_key``) or of its last (``last_key``),
  whichever end is nearer in rank, and the key below. Where the k-th is that
  score (or tied with it) they close the bracket in one pass; else they
  take that score off the bracket.

  Interpolation has nothing to go on there, and the midpoint only halves the
  bracket per pass. That happens at a gap in the scores, e.g. where the k-th
  smallest ends a block of pruned weights' scores far below the others (on
  PLATON scores of BERT-base shapes with masks applied, 13 of 22 passes
  halved such a bracket). The midpoint is kept. These only place candidates:
  the counts decide.
  """
  key = jnp.where(k - c_lo <= c_hi - k + 1, first_key, last_key)
  cand = jnp.stack([lo + (hi - lo) // 2, key - 1, key])
  return jnp.clip(cand, lo + 1, hi - 1)


def kth_smallest(leaves: Sequence[jax.Array], k: jax.Array,
                 groups: Sequence[int] | None = None,
                 num_groups: int = 1
                 ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """Exact k-th smallest score (1-based) per group, without sorting.

  Args:
    leaves: float score arrays (any shapes). NaN scores are never counted as
      small (they are treated as larger than every finite score).
    k: int32 array ``(num_groups,)`` with ``1 <= k <= group size``.
    groups: group index of each leaf; ``None`` puts all leaves in group 0.
    num_groups: number of groups.

  Returns:
    ``(tau, below, under, passes)``: float32 ``(num_groups,)`` threshold
    values; int32 ``(num_groups,)`` counts of scores strictly below ``tau``;
    float32 ``under``, the largest value with ``count(score <= under) ==
    below`` (the key just under ``tau``, or a value below every score); and
    the number of refinement passes after the first (for diagnostics).

  Note:
    XLA on CPU flushes denormal floats to zero in comparisons, so there every
    denormal compares equal to 0 and ``tau`` may come out as a denormal that
    stands for 0. Counts and masks are consistent with the device's
    comparisons either way.
  """
  k = jnp.asarray(k, jnp.int32).reshape(num_groups)
  if groups is None:
    groups = [0] * len(leaves)
  tau, below, under, passes, _ = _adaptive_search(
      [x.astype(jnp.float32) for x in leaves], k, list(groups), num_groups)
  return tau, below, under, passes


def _adaptive_search(leaves: Sequence[jax.Array], k: jax.Array,
                     groups: Sequence[int], num_groups: int):
  """:func:`kth_smallest` on float32 leaves; also returns, per leaf, the
  counts ``#(x <= under)``, ``#(x <= tau)`` and ``#(x <= +inf)`` (the
  non-NaN scores), ``(num_leaves,)`` each."""
  # Bracket: count(lo) < k <= count(hi), per group and, for the ties, per
  # leaf. lo starts one key below -inf (count 0 by definition), hi at +inf.
  lo = jnp.full((num_groups,), _KEY_NEG_INF - 1, jnp.uint32)
  hi = jnp.full((num_groups,), _KEY_POS_INF, jnp.uint32)
  c_lo = jnp.zeros((num_groups,), jnp.int32)
  sizes = np.zeros(num_groups, np.int64)
  for leaf, g in zip(leaves, groups):
    sizes[g] += int(np.prod(leaf.shape))
  # count(+inf) is taken as the group size for the search; per leaf the
  # first pass measures it (NaN scores are never counted as small).
  c_hi = jnp.asarray(np.minimum(sizes, np.iinfo(np.int32).max), jnp.int32)

  # Pass 1: two candidates, sample order statistics 2 sigma to each side of
  # the target rank (one group) or those of `_candidates`; plus +inf, whose
  # per-leaf counts start the per-leaf bracket (it is not a candidate:
  # count(+inf) may be below k). Three thresholds, as in every pass.
  if num_groups == 1 and sizes[0] > 0:
    sample = _sample_keys(leaves, _SAMPLE)
    ns = sample.shape[0]
    q = k[0].astype(jnp.float32) / float(max(sizes[0], 1))
    sigma = float(np.sqrt(ns)) * 0.5 + 1.0
    steps = jnp.array([-2, 2], jnp.float32)
    ranks = jnp.clip(jnp.round(q * ns + steps * sigma), 0, ns - 1)
    cand = jnp.clip(sample[ranks.astype(jnp.int32)], _KEY_NEG_INF,
                    _KEY_POS_INF - 1)[None, :]
  else:
    cand = jax.vmap(_candidates)(lo, hi, c_lo, c_hi, k)[:, :2]
  first = _leaf_counts_le(
      leaves, key_to_float(jnp.concatenate([cand, hi[:, None]], axis=1)),
      groups)
  not_nan = first[:, -1]
  state = _advance(
      (lo, hi, c_lo, c_hi, jnp.zeros((len(leaves),), jnp.int32), not_nan),
      cand, first[:, :-1], k, groups, num_groups)

  def next_pass(state):
    """The next pass's candidates, and their float thresholds."""
    lo, hi, c_lo, c_hi = state[:4]
    cand = jax.vmap(_candidates)(lo, hi, c_lo, c_hi, k)
    return finish(state, cand)

  def finish(state, cand):
    # A finished group keeps its bracket: its filler candidate ``hi`` is
    # defined, not measured (count(+inf) excludes NaN scores).
    lo, hi = state[:2]
    cand = jnp.where((hi - lo > 1)[:, None], cand, hi[:, None])
    return cand, key_to_float(cand)

  def at_end(state):
    """Groups whose k-th smallest score is among the first or the last
    ``_END_RANK`` scores of their bracket, wider than ``_END_WIDTH`` keys."""
    lo, hi, c_lo, c_hi = state[:4]
    return (hi - lo > _END_WIDTH) & ((k - c_lo <= _END_RANK)
                                     | (c_hi - k < _END_RANK))

  def end_pass(state):
    """One more read of the scores: for the groups :func:`at_end`, candidates
    at the bracket's end score nearer the k-th (that key and the one below);
    the usual ones for the others."""
    lo, hi, c_lo, c_hi = state[:4]
    first, last = _bracket_end_keys(leaves, lo, hi, groups, num_groups)
    cand = jnp.where(at_end(state)[:, None],
                     jax.vmap(_end_candidates)(lo, hi, c_lo, c_hi, k, first,
                                               last),
                     jax.vmap(_candidates)(lo, hi, c_lo, c_hi, k))
    return finish(state, cand)

  def not_done(carry):
    state, it = carry[:2]
    return jnp.any(state[1] - state[0] > 1) & (it < _MAX_PASSES)

  def body(carry):
    # The thresholds come in the carry, computed at the end of the previous
    # pass: otherwise XLA fuses their computation into the counting loop,
    # which then redoes it for every score (3x the pass time on XLA:CPU).
    old, it, cand, thresholds, ends_left = carry
    active = old[1] - old[0] > 1
    new = _advance(old, cand, _leaf_counts_le(leaves, thresholds, groups), k,
                   groups, num_groups)
    gid = np.asarray(groups, np.int32)
    keep = [active] * 4 + [active[gid]] * 2
    state = tuple(jnp.where(a, n, o) for a, n, o in zip(keep, new, old))
    extra = jnp.any(at_end(state)) & (ends_left > 0)
    cand, thresholds = jax.lax.cond(extra, end_pass, next_pass, state)
    return (state, it + 1 + extra.astype(jnp.int32), cand, thresholds,
            ends_left - extra.astype(jnp.int32))

  (lo, hi, c_lo, _, lo_leaf, hi_leaf), passes = jax.lax.while_loop(
      not_done, body, (state, jnp.int32(0)) + next_pass(state)
      + (jnp.int32(_MAX_END_PASSES),))[:2]
  return (key_to_float(hi), c_lo, key_to_float(lo), passes,
          (lo_leaf, hi_leaf, not_nan))


_SEARCH = ["auto"]


@contextlib.contextmanager
def search_mode(mode: str) -> Iterator[None]:
  """Context manager: the search that selections *traced* inside it use.

  Args:
    mode: ``"auto"`` (``"adaptive"`` on the CPU backend, ``"fixed"``
      elsewhere), ``"adaptive"`` or ``"fixed"`` (see the module docstring).
      Both give the same masks and thresholds.

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxprune import selection
    >>> with selection.search_mode("fixed"):
    ...   masks, tau = selection.prune_masks([jnp.array([3., 1., 2.])],
    ...                                      jnp.array([2]))
    >>> masks[0].tolist(), float(tau[0])
    ([True, False, False], 2.0)
  """
  if mode not in ("auto", "adaptive", "fixed"):
    raise ValueError(
        f"`mode` must be 'auto', 'adaptive' or 'fixed', got {mode!r}")
  _SEARCH.append(mode)
  try:
    yield
  finally:
    _SEARCH.pop()


def _resolve_search(search: str | None) -> str:
  mode = _SEARCH[-1] if search is None else search
  if mode not in ("auto", "adaptive", "fixed"):
    raise ValueError(
        f"`search` must be 'auto', 'adaptive' or 'fixed', got {mode!r}")
  if mode == "auto":
    return "adaptive" if jax.default_backend() == "cpu" else "fixed"
  return mode


class _Buckets:
  """Leaves stacked by (shape, dtype): a pass is one kernel per bucket.

  ``stacks[b]`` has shape ``(L_b,) + shape_b``; ``index[b]`` lists the leaf
  positions it holds (ascending); ``gid[b]`` their group ids. Stacking along a
  new leading axis keeps each leaf's own sharding on the other axes, and
  reductions run over the leaf axes without reshaping them.
  """

  def __init__(self, leaves: Sequence[jax.Array], groups: Sequence[int]):
    self.index = [np.asarray(v, np.int32) for v in stacking.bucket_members(
        [(tuple(x.shape), jnp.dtype(x.dtype)) for x in leaves])]
    self.gid = [np.asarray([groups[i] for i in v], np.int32)
                for v in self.index]
    self.stacks = self.stack(leaves)
    self.leaves = list(leaves)
    self.num_leaves = len(leaves)
    # Position of each leaf in the concatenation of the buckets.
    order = np.concatenate(self.index) if self.index else np.zeros(0, np.int32)
    self.inverse = np.argsort(order, kind="stable").astype(np.int32)

  def stack(self, leaves: Sequence[jax.Array]) -> list[jax.Array]:
    """Per bucket, its leaves stacked along a new leading axis (float32)."""
    return [jnp.stack([leaves[i] for i in v]).astype(jnp.float32)
            for v in self.index]

  def per_leaf(self, values: Sequence[jax.Array]) -> jax.Array:
    """Per-bucket ``(L_b, ...)`` arrays -> one ``(num_leaves, ...)`` array in
    leaf order."""
    if not values:
      return jnp.zeros((0,), jnp.int32)
    return jnp.concatenate(values)[self.inverse]

  def counts(self, thresholds: jax.Array) -> list[jax.Array]:
    """Per bucket, ``#(x <= t)`` per leaf for its group's thresholds:
    ``(L_b, B)`` int32 from ``thresholds`` of shape ``(G, B)``."""
    out = []
    for x, gid in zip(self.stacks, self.gid):
      t = thresholds.astype(jnp.float32)[gid]  # (L_b, B)
      t = t.reshape((t.shape[0],) + (1,) * (x.ndim - 1) + (t.shape[1],))
      out.append(jnp.sum(x[..., None] <= t, axis=tuple(range(1, x.ndim)),
                         dtype=jnp.int32))
    return out

  def row_counts(self, thresholds: jax.Array) -> list[jax.Array]:
    """Per bucket, ``#(x <= t)`` per row (all axes but the last flattened)
    of each leaf for its group's thresholds: ``(L_b, R_b, B)`` int32 from
    ``thresholds`` of shape ``(G, B)``."""
    out = []
    for x, gid in zip(self.stacks, self.gid):
      x = _as_rows(x, 1)  # (L_b, R_b, C_b)
      t = thresholds.astype(jnp.float32)[gid][:, None, None, :]
      out.append(jnp.sum(x[..., None] <= t, axis=2, dtype=jnp.int32))
    return out

  def coarse_counts(self, d: jax.Array) -> list[jax.Array]:
    """Per bucket, ``#(coarse key <= d)`` per leaf (:func:`_coarse_key`) for
    its group's coarse values: ``(L_b, B)`` int32 from ``d`` ``(G, B)``.

    The coarse keys are written once, two bytes per score (an extra output
    of the pass that computes the scores, where XLA fuses them into it; the
    barrier keeps XLA from recomputing them from the float32 scores in every
    pass instead), and stacked into buckets like the scores (XLA:GPU fuses
    the stacking of 16-bit keys into the passes, not that of 8-bit ones).
    """
    keys = jax.lax.optimization_barrier(
        [_coarse_key(x) for x in self.leaves])
    out = []
    for v, gid in zip(self.index, self.gid):
      x = jnp.stack([keys[i] for i in v])
      t = d[gid].astype(jnp.uint16)  # (L_b, B)
      t = t.reshape((t.shape[0],) + (1,) * (x.ndim - 1) + (t.shape[1],))
      out.append(jnp.sum(x[..., None] <= t,
                         axis=tuple(range(1, x.ndim)), dtype=jnp.int32))
    return out


def _coarse_key(x: jax.Array) -> jax.Array:
  """uint16 coarse key of float scores: ``#(coarse <= d) == #(x <= t_d)``.

  ``t_d = key_to_float((d << 16) | 0xFFFF)``, the largest float whose key
  has top 16 bits ``d``, for ``d < 0xFF80``, and ``#(coarse <= 0xFF80)`` is
  the number of non-NaN scores (0xFF80 is +inf's, the only non-NaN key with
  those top bits). So the coarse value is the key's top 16 bits, with two
  exceptions that make the counts equal the float comparisons of the
  counting passes: NaN (never counted) is 0xFFFF, and scores equal to 0 are
  0x7FFF, as -0.0 (``t_0x7FFF``) is: ``+0 <= -0`` holds for floats, as do
  denormals where the device flushes them to zero (the comparison ``x == 0``
  here flushes them exactly where the passes' comparisons do).

  Where the device flushes denormals, it flushes the candidates ``t_d`` from
  0x7F80 to 0x7FFE (negative denormals) too: a float pass would count the
  zeros there, the coarse count does not. The two differ by the zeros alone,
  so they disagree on whether ``k`` scores lie at or below ``t_d`` only when
  the k-th smallest score is 0; then the coarse passes leave the bracket
  with ``lo`` below the zeros, the float passes close it on a denormal key
  that compares equal to 0, and ``#(x < tau)`` is the count at ``lo``, as
  the masks need.
  """
  x = x.astype(jnp.float32)
  top = jnp.where(x == 0, _COARSE_ZERO, float_to_key(x) >> _COARSE_SHIFT)
  return jnp.where(jnp.isnan(x), 0xFFFF, top).astype(jnp.uint16)


def _refine(lo, hi, c_lo, c_hi, cand, counts, k):
  """Tightest bracket ``count(lo) < k <= count(hi)`` given candidate counts.

  Returns:
    ``(lo, hi, c_lo, c_hi, (i_lo, take_lo), (i_hi, take_hi))``: the new
    bracket, and per group the index of the candidate that became ``lo``
    (``hi``) where ``take_lo`` (``take_hi``) is set.
  """
  below = counts < k[:, None]
  lo_cands = jnp.where(below, cand, jnp.uint32(0))
  i_lo = jnp.argmax(lo_cands, axis=1)
  lo_c = jnp.max(lo_cands, axis=1)
  c_lo_c = jnp.max(jnp.where(below, counts, -1), axis=1)
  take_lo = below.any(axis=1) & (lo_c > lo)
  hi_cands = jnp.where(below, jnp.uint32(0xFFFFFFFF), cand)
  i_hi = jnp.argmin(hi_cands, axis=1)
  hi_c = jnp.min(hi_cands, axis=1)
  c_hi_c = jnp.min(jnp.where(below, jnp.iinfo(jnp.int32).max, counts), axis=1)
  take_hi = (~below).any(axis=1) & (hi_c < hi)
  return (jnp.where(take_lo, lo_c, lo), jnp.where(take_hi, hi_c, hi),
          jnp.where(take_lo, c_lo_c, c_lo), jnp.where(take_hi, c_hi_c, c_hi),
          (i_lo, take_lo), (i_hi, take_hi))


def _advance(state, cand, per_leaf, k, groups, num_groups, active=None):
  """One refinement of ``state = (lo, hi, c_lo, c_hi, lo_leaf, hi_leaf)``
  (the bracket per group, and per leaf the counts at its ends) from the
  per-leaf counts ``(num_leaves, B)`` at the candidates ``cand`` ``(G, B)``.
  Where ``active`` is False a group keeps its bracket."""
  lo, hi, c_lo, c_hi, lo_leaf, hi_leaf = state
  counts = _group_sums(per_leaf, groups, num_groups)
  if active is not None:
    counts = jnp.where(active[:, None], counts, c_hi[:, None])
    cand = jnp.where(active[:, None], cand, hi[:, None])
  lo, hi, c_lo, c_hi, (i_lo, t_lo), (i_hi, t_hi) = _refine(
      lo, hi, c_lo, c_hi, cand, counts, k)
  return (lo, hi, c_lo, c_hi,
          _take_counts(per_leaf, i_lo, t_lo, lo_leaf, groups),
          _take_counts(per_leaf, i_hi, t_hi, hi_leaf, groups))


def _initial_bracket(sizes: np.ndarray):
  g = sizes.shape[0]
  return (jnp.full((g,), _KEY_NEG_INF - 1, jnp.uint32),
          jnp.full((g,), _KEY_POS_INF, jnp.uint32),
          jnp.zeros((g,), jnp.int32),
          jnp.asarray(np.minimum(sizes, np.iinfo(np.int32).max), jnp.int32))


def _fixed_search(buckets: _Buckets, k: jax.Array, sizes: np.ndarray,
                  groups: Sequence[int], rows: bool = False):
  """``(lo, hi, c_lo, lo_leaf, hi_leaf, ends)``: the final bracket of keys,
  the count below ``hi``, and per leaf ``#(x <= lo)`` and ``#(x <= hi)``.

  With ``rows``, ``ends`` holds per bucket the count per row (all axes but
  the last) at ``lo``, ``hi``, ``+inf``, ``-0.0`` and the negative normal
  nearest 0, ``(L_b, R_b, 5)`` int32 (else None). The last pass counts
  them: its bracket is narrower than its candidates, which then cover every
  key inside it, so the final ends are among its thresholds once the old
  ends are added to them.
  """
  state = _initial_bracket(sizes) + (
      jnp.zeros((buckets.num_leaves,), jnp.int32), None)
  j = jnp.arange(1, _FIXED_CANDIDATES + 1, dtype=jnp.int32)
  low = np.uint32((1 << _COARSE_SHIFT) - 1)
  for _ in range(_COARSE_PASSES):
    lo, hi = state[:2]
    # The bracket in coarse values: candidates d_lo < d < d_hi, where d_lo is
    # lo's coarse value if lo is a coarse candidate (else one below the
    # first candidate above lo), and d_hi hi's (0xFF80 for +inf).
    d_lo = (lo >> _COARSE_SHIFT).astype(jnp.int32) - (
        (lo & low) != low).astype(jnp.int32)
    d_hi = jnp.minimum(hi >> _COARSE_SHIFT, _COARSE_TOP).astype(jnp.int32)
    width = d_hi - d_lo  # >= 1
    step = -(-width // (_FIXED_CANDIDATES + 1))
    d = jnp.minimum(d_lo[:, None] + j[None, :] * step[:, None],
                    (d_hi - 1)[:, None])
    d = jnp.maximum(d, 0)  # a finished group's (width 1) are not used
    cand = (d.astype(jnp.uint32) << _COARSE_SHIFT) | low
    if state[5] is None:  # first pass: per leaf, count(+inf) excludes NaN
      top = jnp.full((d.shape[0], 1), _COARSE_TOP, jnp.int32)
      per_leaf = buckets.per_leaf(buckets.coarse_counts(
          jnp.concatenate([d, top], axis=1)))
      state, per_leaf = state[:5] + (per_leaf[:, -1],), per_leaf[:, :-1]
    else:
      per_leaf = buckets.per_leaf(buckets.coarse_counts(d))
    state = _advance(state, cand, per_leaf, k, groups, k.shape[0],
                     active=width > 1)
  j = jnp.arange(1, _FIXED_CANDIDATES + 1, dtype=jnp.uint32)
  ends = None
  for p in range(_FIXED_PASSES):
    lo, hi = state[:2]
    width = hi - lo  # >= 1
    step = (width // (_FIXED_CANDIDATES + 1)
            + (width % (_FIXED_CANDIDATES + 1) != 0).astype(jnp.uint32))
    cand = jnp.minimum(lo[:, None] + j[None, :] * step[:, None],
                       (hi - 1)[:, None])
    if rows and p == _FIXED_PASSES - 1:
      fixed = jnp.asarray([_KEY_POS_INF, _KEY_NEG_ZERO, _KEY_NEG_NORMAL],
                          jnp.uint32)
      ext = jnp.concatenate(
          [cand, lo[:, None], hi[:, None],
           jnp.broadcast_to(fixed, (lo.shape[0], 3))], axis=1)
      # The barrier keeps XLA from merging the sum over rows into the
      # count (a reduction of a reduction): it would count the scores again.
      per_row = jax.lax.optimization_barrier(
          buckets.row_counts(key_to_float(ext)))
      per_leaf = buckets.per_leaf([jnp.sum(c, axis=1) for c in per_row])
      per_leaf = per_leaf[:, :_FIXED_CANDIDATES]
    else:
      per_leaf = buckets.per_leaf(buckets.counts(key_to_float(cand)))
    # A finished group (width 1: its only candidate is lo) keeps its bracket.
    state = _advance(state, cand, per_leaf, k, groups, k.shape[0],
                     active=width > 1)
    if rows and p == _FIXED_PASSES - 1:
      lo, hi = state[:2]
      ends_at = ext[:, :-3]
      b = ext.shape[1]
      col = jnp.stack([jnp.argmax(ends_at == lo[:, None], axis=1),
                       jnp.argmax(ends_at == hi[:, None], axis=1)]
                      + [jnp.full_like(lo, c, jnp.int32)
                         for c in (b - 3, b - 2, b - 1)],
                      axis=1).astype(jnp.int32)  # (G, 5)
      ends = [jnp.take_along_axis(c, col[gid][:, None, :], axis=2)
              for c, gid in zip(per_row, buckets.gid)]
  lo, hi, c_lo, _, lo_leaf, hi_leaf = state
  return lo, hi, c_lo, lo_leaf, hi_leaf, ends


def fixed_kth_smallest(leaves: Sequence[jax.Array], k: jax.Array,
                       groups: Sequence[int] | None = None,
                       num_groups: int = 1
                       ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Exact k-th smallest score per group in a fixed number of passes.

  The same answer as :func:`kth_smallest` without data-dependent control
  flow. Each pass counts ``#(score <= c)`` for 40 candidates ``c`` spaced
  evenly inside the bracket ``count(lo) < k <= count(hi)`` of ordered float32
  keys. The first ``_COARSE_PASSES = 3`` count on two bytes per score, the
  top 16 bits of its key (:func:`_coarse_key`), with candidates of the form
  ``(d << 16) | 0xFFFF``; the other ``_FIXED_PASSES = 3`` on the scores,
  spaced ``ceil(w / 41)`` apart for a bracket ``w = hi - lo`` keys wide.

  Why 6 passes suffice: a pass leaves a bracket at most ``ceil(w / 41)``
  candidate positions wide (consecutive candidates, ``lo`` to the first and
  the last to ``hi`` are at most that far apart), and ``ceil(ceil(w / a) /
  a) = ceil(w / a**2)``. The coarse bracket starts at 65282 positions (``d``
  from 0x7F, ``-inf``'s, to 0xFF7F, and 0xFF80 standing for ``+inf``): 1593
  after one pass, 39 after two, 1 after three (``41**3 = 68921``), so ``lo``
  and ``hi`` are then neighbours among the coarse keys, the initial ends (one
  key below ``-inf``, ``+inf``) included, at most ``2**16`` keys apart. After
  3 passes over the scores ``w <= ceil(2**16 / 41**3) = 1``: ``hi`` is the
  k-th smallest key. Candidates lie strictly inside the bracket, hence are
  never NaN bit patterns. The coarse passes read half the bytes of the
  others. (Bytes against compute: 7 passes of 31 candidates, 2 of them on
  one byte per score, moved 5 more bytes per score, with 10% fewer
  comparisons.)

  Leaves are stacked by (shape, dtype) (:class:`_Buckets`): a pass is one
  counting kernel per bucket, whatever the number of leaves.

  Args:
    leaves: float score arrays. NaN scores are never counted as small.
    k: int32 ``(num_groups,)``, ``1 <= k <= group size``.
    groups: group index of each leaf (default: all in group 0).
    num_groups: number of groups.

  Returns:
    ``(tau, below, under)`` as in :func:`kth_smallest`.
  """
  k = jnp.asarray(k, jnp.int32).reshape(num_groups)
  groups = [0] * len(leaves) if groups is None else list(groups)
  sizes = np.zeros(num_groups, np.int64)
  for leaf, g in zip(leaves, groups):
    sizes[g] += int(np.prod(leaf.shape))
  lo, hi, c_lo, _, _, _ = _fixed_search(_Buckets(leaves, groups), k, sizes,
                                        groups)
  return key_to_float(hi), c_lo, key_to_float(lo)


def _segment_prefix(groups: Sequence[int]) -> np.ndarray:
  """Static int32 matrix ``S[l, m] = (m < l) & (group m == group l)``:
  ``S @ v`` is the exclusive prefix sum of ``v`` within each group."""
  g = np.asarray(groups)
  n = g.shape[0]
  idx = np.arange(n)
  return ((idx[None, :] < idx[:, None]) & (g[None, :] == g[:, None])
          ).astype(np.int32)


def _prune_masks_fixed(leaves: Sequence[jax.Array], k: jax.Array,
                       groups: Sequence[int], num_groups: int
                       ) -> tuple[list[jax.Array], jax.Array]:
  """:func:`prune_masks` with the fixed search on buckets, without a ``cond``.

  Which tied entries (and NaN scores) a leaf prunes is a row-major cut: the
  row that holds the last one comes from the per-row counts of the search's
  last pass (ties at ``tau``: ``#(x <= hi) - #(x <= lo)``; NaN: the row
  length less ``#(x <= +inf)``), and that row alone is read back, by a
  gather, to find the column. So ranking costs no pass over the scores and
  runs on every selection: no ``conditional``, which on XLA:GPU would be a
  host synchronisation. The masks are one element-wise expression of the
  scores, which XLA fuses into the masked update.
  """
  sizes = np.zeros(num_groups, np.int64)
  for leaf, g in zip(leaves, groups):
    sizes[g] += int(np.prod(leaf.shape))
  buckets = _Buckets(leaves, groups)
  safe_k = jnp.maximum(k, 1)
  _, hi, below, lo_leaf, hi_leaf, ends = _fixed_search(
      buckets, safe_k, sizes, groups, rows=True)
  tau = key_to_float(hi)
  need = k - below  # ties at tau still to prune, per group
  gid = np.asarray(groups, np.int32)
  prefix = jnp.asarray(_segment_prefix(groups))
  # Per leaf, #(x <= tau) - #(x < tau), with lo the key just under tau: the
  # search counted both (no counting pass of its own).
  ties = hi_leaf - lo_leaf  # (num_leaves,), leaf order
  nans = jnp.asarray([int(np.prod(x.shape)) for x in leaves], jnp.int32) - (
      buckets.per_leaf([jnp.sum(e[..., 2], axis=1) for e in ends]))
  group_ties = jnp.zeros((num_groups,), jnp.int32).at[gid].add(ties)
  # With more to prune than non-NaN scores, the rest are NaN scores.
  extra = jnp.maximum(need - group_ties, 0)
  take = jnp.clip(need[gid] - prefix @ ties, 0, ties)
  nan_take = jnp.clip(extra[gid] - prefix @ nans, 0, nans)
  tau_l = tau[gid]
  kpos = (k > 0)[gid]

  tie_cut, nan_cut = [], []
  for idx, x, e in zip(buckets.index, buckets.stacks, ends):
    x = _as_rows(x, 1)  # (L_b, R_b, C_b)
    t_take, n_take = take[idx], nan_take[idx]
    # Ties per row: between the ends, except where the device flushes
    # denormals and tau is one (see _coarse_key): then the float count at lo
    # (a denormal too, set by a coarse pass) includes the zeros, the ties,
    # and the leaf's count at lo tells it; the ties are then the zeros,
    # counted between -0.0 and the negative normal nearest 0.
    zero = (jnp.sum(e[..., 0], axis=1) != lo_leaf[idx])[:, None]
    r_t, rem_t = _cut_row(jnp.where(zero, e[..., 3] - e[..., 4],
                                    e[..., 1] - e[..., 0]), t_take)
    r_n, rem_n = _cut_row(x.shape[2] - e[..., 2], n_take)
    if x.shape[1] * x.shape[2] == 0:  # empty leaves: nothing to cut
      tie_cut.append(jnp.full(t_take.shape, -1, jnp.int32))
      nan_cut.append(jnp.full(n_take.shape, -1, jnp.int32))
      continue
    r = jnp.minimum(jnp.stack([r_t, r_n], axis=1), x.shape[1] - 1)
    row = jnp.take_along_axis(x, r[:, :, None], axis=1)  # (L_b, 2, C_b)
    j_t = _col_in_row(row[:, 0] == tau_l[idx][:, None], rem_t)
    j_n = _col_in_row(jnp.isnan(row[:, 1]), rem_n)
    tie_cut.append(jnp.where(t_take > 0, r_t * x.shape[2] + j_t, -1))
    nan_cut.append(jnp.where(n_take > 0, r_n * x.shape[2] + j_n, -1))
  tie_cut = buckets.per_leaf(tie_cut)
  nan_cut = buckets.per_leaf(nan_cut)
  masks = []
  for i, x in enumerate(leaves):
    x = x.astype(jnp.float32)
    flat = _row_major_index(x.shape)
    pruned = ((x < tau_l[i]) | ((x == tau_l[i]) & (flat <= tie_cut[i]))
              | (jnp.isnan(x) & (flat <= nan_cut[i])))
    masks.append(~(pruned & kpos[i]))
  return masks, _report_tau(tau, extra, k)


def _report_tau(tau, extra, k):
  # Report a threshold that stands for 0 (a denormal under flush-to-zero) as 0.
  tau = jnp.where(jnp.abs(tau) < jnp.finfo(jnp.float32).tiny, 0.0, tau)
  tau = jnp.where(extra > 0, jnp.nan, tau)
  return jnp.where(k > 0, tau, -jnp.inf)


def _first_true(flag: jax.Array, take: jax.Array,
                batch_dims: int = 0) -> jax.Array:
  """``flag`` restricted to its first ``take`` ``True`` entries, row-major.

  Equals ``flag & (inclusive row-major count of flag <= take)`` without a
  scan over the array: see :func:`_first_true_cut`. The first ``batch_dims``
  axes index independent arrays (a bucket of stacked leaves); ``take`` has
  their shape (``<= 0``: nothing).
  """
  cut = _first_true_cut(flag, take, batch_dims)
  flat = _row_major_index(flag.shape[batch_dims:])
  return flag & (flat <= _expand_to(cut, flag))


def _first_true_cut(flag: jax.Array, take: jax.Array,
                    batch_dims: int = 0) -> jax.Array:
  """The row-major index of the ``take``-th ``True`` entry of ``flag``.

  ``flag & (row-major index <= cut)`` keeps the first ``take`` ``True``
  entries; ``-1`` where ``take <= 0``, and an index at or past the last
  ``True`` entry where ``take`` reaches their number. Computed without a
  scan over the array (a cumsum of every entry costs ~15 ns per entry on
  XLA:CPU and many passes on XLA:GPU). With rows along the last axis: the row
  ``r`` that holds the ``take``-th entry is the number of rows whose running
  total stays below ``take`` (:func:`_cut_row`); that row, extracted by a
  masked sum over the rows, is scanned alone for the column ``j`` of the
  entry (:func:`_col_in_row`); the cut is ``r * C + j``. Apart from scans of
  one row and of the row totals everything is a reduction, so for an array
  sharded along any axis only row- or column-length vectors cross devices.
  The first ``batch_dims`` axes index independent arrays (a bucket of
  stacked leaves); ``take`` and the result have their shape.
  """
  take = jnp.asarray(take, jnp.int32)
  if flag.ndim - batch_dims == 0 or flag.size == 0:
    return jnp.where(take >= 1, 0, -1).astype(jnp.int32)
  f = _as_rows(flag, batch_dims)  # (..., R, C)
  r, rem = _cut_row(jnp.sum(f, axis=-1, dtype=jnp.int32), take)
  row_idx = jnp.arange(f.shape[-2], dtype=jnp.int32)
  row_r = jnp.sum(f & (row_idx == r[..., None])[..., None], axis=-2,
                  dtype=jnp.int32)  # (..., C)
  j = _col_in_row(row_r, rem)
  return jnp.where(take > 0, r * f.shape[-1] + j, -1)


def _as_rows(x: jax.Array, batch_dims: int) -> jax.Array:
  """``x`` with the axes after the first ``batch_dims`` as ``(rows, C)``:
  all but the last flattened (one row for fewer than two of them)."""
  lead, rest = x.shape[:batch_dims], x.shape[batch_dims:]
  cols = rest[-1] if rest else 1
  return x.reshape(lead + (int(np.prod(rest[:-1])), cols))


def _cut_row(rows: jax.Array, take: jax.Array) -> tuple[jax.Array, jax.Array]:
  """From per-row counts ``(..., R)``: the row ``r`` that holds the
  ``take``-th counted entry (``R`` where ``take`` exceeds their total) and how
  many of them that row must give, ``rem``."""
  row_idx = jnp.arange(rows.shape[-1], dtype=jnp.int32)
  r = jnp.sum(jnp.cumsum(rows, axis=-1) < take[..., None], axis=-1,
              dtype=jnp.int32)
  rem = take - jnp.sum(jnp.where(row_idx < r[..., None], rows, 0), axis=-1)
  return r, rem


def _col_in_row(row: jax.Array, rem: jax.Array) -> jax.Array:
  """The column of the ``rem``-th ``True`` entry of ``row`` ``(..., C)``."""
  return jnp.sum(jnp.cumsum(row, axis=-1, dtype=jnp.int32) < rem[..., None],
                 axis=-1, dtype=jnp.int32)


def _row_major_index(shape: Sequence[int]) -> jax.Array:
  """int32 array of ``shape`` holding each entry's row-major flat index."""
  flat = jnp.zeros(shape, jnp.int32)
  stride = 1
  for axis in reversed(range(len(shape))):
    flat = flat + jax.lax.broadcasted_iota(jnp.int32, shape, axis) * stride
    stride *= shape[axis]
  return flat


def _expand_to(v: jax.Array, x: jax.Array) -> jax.Array:
  """``v`` (the leading axes of ``x``) with singleton axes for the rest."""
  v = jnp.asarray(v)
  return v.reshape(v.shape + (1,) * (x.ndim - v.ndim))


def prune_masks(leaves: Sequence[jax.Array], k: jax.Array,
                groups: Sequence[int] | None = None,
                num_groups: int = 1, *, search: str | None = None
                ) -> tuple[list[jax.Array], jax.Array]:
  """Boolean keep-masks that prune exactly ``k`` lowest scores per group.

  Args:
    leaves: float score arrays.
    k: int32 ``(num_groups,)``, number of entries to prune in each group
      (``0 <= k <= group size``).
    groups: group index of each leaf; ``None`` means one global group.
    num_groups: number of groups.
    search: ``"adaptive"``, ``"fixed"``, ``"auto"`` or ``None`` (the
      :func:`search_mode` in effect, ``"auto"`` by default): see the module
      docstring. The result does not depend on it.

  NaN scores rank above every other score (``+inf`` included), as in
  ``np.sort``: they are pruned only when ``k`` exceeds the number of other
  scores, then the first ones in leaf and row-major order, so that exactly
  ``k`` entries are pruned in any case.

  Returns:
    ``(masks, tau)``: a keep-mask per leaf (``True`` = kept) and the float32
    threshold per group (``-inf`` where ``k == 0``, NaN where NaN scores were
    pruned; a threshold smaller in magnitude than the smallest normal float
    is reported as 0).
  """
  k = jnp.asarray(k, jnp.int32).reshape(num_groups)
  if groups is None:
    groups = [0] * len(leaves)
  if not leaves:
    return [], jnp.full((num_groups,), -jnp.inf, jnp.float32)
  if _resolve_search(search) == "fixed":
    return _prune_masks_fixed(leaves, k, list(groups), num_groups)
  safe_k = jnp.maximum(k, 1)
  tau, below, _, _, (lo_leaf, hi_leaf, not_nan) = _adaptive_search(
      [x.astype(jnp.float32) for x in leaves], safe_k, list(groups),
      num_groups)
  need = k - below  # ties at tau still to prune, per group
  # Per leaf, #(x <= tau) - #(x < tau), counted by the search.
  tie_counts = list(hi_leaf - lo_leaf)
  # With more to prune than non-NaN scores (tau is then +inf and every tie
  # is taken), the rest are NaN scores, taken in leaf and row-major order.
  group_ties = [jnp.int32(0)] * num_groups
  for ties, g in zip(tie_counts, groups):
    group_ties[g] = group_ties[g] + ties
  extra = jnp.maximum(need - jnp.stack(group_ties), 0)
  # Ties to take per leaf, in leaf order within each group.
  offset = [jnp.int32(0)] * num_groups
  takes = []
  for g, ties in zip(groups, tie_counts):
    takes.append(jnp.clip(need[g] - offset[g], 0, ties))
    offset[g] = offset[g] + ties
  # A conditional per leaf (this search is the CPU's, where control flow
  # costs nothing): only a leaf that prunes part of its ties at tau (at most
  # one per group) or NaN scores picks its first ones in row-major order
  # (:func:`_first_true`: reductions and an element-wise pass), rather than
  # every leaf whenever any leaf needs it. Ties at tau are common on large
  # score sets (85M log-normal float32 scores: 3 equal to the 90% quantile).
  nan_offset = [jnp.int32(0)] * num_groups
  masks = []
  for i, (x, g, take, ties) in enumerate(zip(leaves, groups, takes,
                                             tie_counts)):
    xf = x.astype(jnp.float32)
    nan_take = extra[g] - nan_offset[g]  # NaN scores the group still prunes
    nans = int(np.prod(x.shape)) - not_nan[i]
    nan_offset[g] = nan_offset[g] + nans

    # Each branch returns the keep-mask itself (no pass of its own to
    # negate it on XLA:CPU, which fuses nothing across a conditional).
    def ranked(v, t=tau[g], take=take, nan_take=nan_take, kpos=k[g] > 0):
      isnan = jnp.isnan(v)
      return ~(((v < t) | _first_true(v == t, take)
                | _first_true(isnan, nan_take)) & kpos)

    def simple(v, t=tau[g], take=take, ties=ties, kpos=k[g] > 0):
      return ~(((v < t) | ((v == t) & (take == ties) & (take > 0))) & kpos)

    rare = ((take > 0) & (take < ties)) | ((nan_take > 0) & (nans > 0))
    masks.append(jax.lax.cond(rare, ranked, simple, xf))
  return masks, _report_tau(tau, extra, k)


def floor_mul(n: int, p: jax.Array) -> jax.Array:
  """Exact ``floor(n * p)`` for a Python int ``n < 2**31`` and float32 ``p``.

  ``float32(n) * p`` is off by several units once ``n > 2**24``; this
  multiplies the integer mantissa of ``p`` by ``n`` in 12-bit limbs instead.
  ``p`` must be finite and in ``[0, 1]``.
  """
  if not 0 <= n < 2**31:
    raise ValueError(f"n must be in [0, 2**31), got {n}")
  p = jnp.asarray(p, jnp.float32)
  bits = jax.lax.bitcast_convert_type(p, jnp.uint32)
  exp = ((bits >> 23) & 0xFF).astype(jnp.int32)
  man = bits & 0x7FFFFF
  m = jnp.where(exp == 0, man, man | 0x800000)  # p = m * 2**-sh
  sh = jnp.where(exp == 0, 149, 150 - exp)
  m_limbs = [m & 0xFFF, m >> 12]
  n_limbs = [(n >> (12 * i)) & 0xFFF for i in range(3)]
  digits = [jnp.uint32(0)] * 6
  for i, ni in enumerate(n_limbs):
    for j, mj in enumerate(m_limbs):
      digits[i + j] = digits[i + j] + jnp.uint32(ni) * mj
  carry = jnp.uint32(0)
  norm = []
  for d in digits:
    d = d + carry
    norm.append(d & 0xFFF)
    carry = d >> 12
  q, r = sh // 12, sh % 12
  result = jnp.uint32(0)
  for t, d in enumerate(norm):
    shift = 12 * (t - q) - r
    hi_part = jnp.where((t > q) & (shift < 32),
                        d << jnp.clip(shift, 0, 31).astype(jnp.uint32), 0)
    lo_part = jnp.where(t == q, d >> r.astype(jnp.uint32), 0)
    result = result + hi_part + lo_part
  return jnp.where(p >= 1.0, jnp.uint32(n), result).astype(jnp.int32)
