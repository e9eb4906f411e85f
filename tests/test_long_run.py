"""A 10,000-step PLATON run: scheduled sparsity at every step, finite state,
constant memory.

The run is jitted in ``lax.scan`` chunks that record, per step, the number of
pruned entries in the masks, the zeros of the prunable weights and whether
all state is finite. The expected number of pruned weights comes from the
cubic schedule recomputed here in numpy (float32, like the schedule) and an
exact floor with ``fractions``.
"""
from __future__ import annotations

import os
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxprune

T, T_I, T_F, DELTA_T, SPARSITY = 10_000, 1_000, 3_000, 5, 0.9
CHUNK = 500


def expected_pruned(n: int) -> tuple[np.ndarray, np.ndarray]:
  """``(is_event, k)`` per step from the cubic schedule, independently.

  ``k`` is the number of pruned weights after step ``s``: ``floor(n * p(s))``
  at a mask event, held between events. The schedule is float32 (the cubic
  value is computed in float32, as the library documents); the floor is
  exact, and at the target it is the float64 ``int(n * sparsity)``.
  """
  steps = np.arange(T)
  end = T - T_F
  event = (steps > T_I) & ((steps > end) | (steps % DELTA_T == 0))
  length = np.float32(T - T_I - T_F)
  k = np.zeros(T, np.int64)
  last = 0
  for s in steps:
    if event[s]:
      if s > end:
        last = int(n * SPARSITY)
      else:
        frac = np.clip(np.float32(s - T_I) / length, np.float32(0),
                       np.float32(1))
        one_minus = np.float32(1) - frac
        cube = one_minus * one_minus * one_minus
        p = np.float32(SPARSITY) + np.float32(-SPARSITY) * cube
        if p == np.float32(SPARSITY):
          last = int(n * SPARSITY)
        else:
          last = int(Fraction(float(p)) * n // 1)
    k[s] = last
  return event, k


def _rss_bytes() -> int:
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _specs(tree):
  return (jax.tree_util.tree_structure(tree),
          [(x.shape, x.dtype) for x in jax.tree.leaves(tree)])


@pytest.mark.parametrize("granularity,persistent", [("global", False),
                                                    ("layer", True)])
def test_ten_thousand_steps_keep_schedule_finite_state_and_memory(
    granularity, persistent):
  k1, k2, k3, k4 = jax.random.split(jax.random.key(0), 4)
  params = {"w1": jax.random.normal(k1, (8, 16)) * 0.5,
            "b": jnp.zeros((16,)),
            "w2": jax.random.normal(k2, (16, 4)) * 0.5}
  x = jax.random.normal(k3, (64, 8))
  y = jnp.tanh(x @ jax.random.normal(k4, (8, 4)))
  tx = optax.chain(
      optax.clip_by_global_norm(1.0),
      jaxprune.platon(optax.adam(1e-3), sparsity=SPARSITY, total_steps=T,
                      warmup_steps=T_I, final_steps=T_F, delta_t=DELTA_T,
                      granularity=granularity, persistent_mask=persistent))
  state = tx.init(params)
  prunable = ("w1", "w2")
  n = sum(params[k].size for k in prunable)
  noise_key = jax.random.key(1)

  def loss_fn(p, s):
    xn = x + 0.1 * jax.random.normal(jax.random.fold_in(noise_key, s),
                                     x.shape)
    pred = jnp.tanh(xn @ p["w1"] + p["b"]) @ p["w2"]
    return jnp.mean((pred - y) ** 2)

  def one_step(carry, s):
    p, st = carry
    g = jax.grad(loss_fn)(p, s)
    u, st = tx.update(g, st, p)
    p = optax.apply_updates(p, u)
    ps = st[1]
    masks = [ps.masks[k] for k in prunable]
    # Everything finite, except the threshold, which is -inf until the
    # first selection that prunes something.
    rest = (p, st[0], ps._replace(threshold=jnp.zeros(1)))
    finite = jnp.all(jnp.stack(
        [jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(rest)
         if jnp.issubdtype(a.dtype, jnp.floating)]))
    finite &= jnp.all(jnp.isfinite(ps.threshold) | (
        (ps.threshold == -jnp.inf) & (ps.num_pruned == 0)))
    record = {
        "count": ps.count,
        "pruned": sum(jnp.sum(~m, dtype=jnp.int32) for m in masks),
        "num_pruned": jnp.sum(ps.num_pruned),
        "zeros": sum(jnp.sum(p[k] == 0, dtype=jnp.int32) for k in prunable),
        "masked_are_zero": jnp.all(jnp.stack(
            [jnp.all(jnp.where(m, True, p[k] == 0))
             for k, m in zip(prunable, masks)])),
        "finite": finite,
    }
    return (p, st), record

  @jax.jit
  def chunk(p, st, start):
    return jax.lax.scan(one_step, (p, st), start + jnp.arange(CHUNK))

  specs = _specs(state)
  records, live, rss = [], [], []
  for start in range(0, T, CHUNK):
    (params, state), rec = chunk(params, state, jnp.int32(start))
    # Copies: a numpy view of a CPU jax array would keep that array alive.
    records.append(jax.tree.map(lambda a: np.array(a, copy=True), rec))
    del rec
    assert _specs(state) == specs  # no leaf appears, grows or changes dtype
    live.append(len(jax.live_arrays()))
    rss.append(_rss_bytes())
  rec = {k: np.concatenate([r[k] for r in records]) for k in records[0]}

  if granularity == "global":
    event, k = expected_pruned(n)
  else:  # floor per leaf
    per_leaf = [expected_pruned(params[name].size) for name in prunable]
    event, k = per_leaf[0][0], sum(kk for _, kk in per_leaf)
  steps = np.arange(T)
  assert rec["finite"].all(), np.flatnonzero(~rec["finite"])[:5]
  np.testing.assert_array_equal(rec["count"], steps + 1)
  # The masks hold exactly the scheduled count after every step ...
  bad = np.flatnonzero(rec["pruned"] != k)
  assert bad.size == 0, [(s, rec["pruned"][s], k[s]) for s in bad[:5]]
  np.testing.assert_array_equal(rec["num_pruned"], k)
  # ... and at every mask event those weights are exactly 0.
  assert rec["masked_are_zero"][event].all()
  assert (rec["zeros"][event] >= k[event]).all()
  if persistent:  # pruned weights stay 0 between events too
    assert rec["masked_are_zero"].all()
  final = steps >= T - T_F
  k_final = (int(n * SPARSITY) if granularity == "global" else
             sum(int(params[name].size * SPARSITY) for name in prunable))
  assert event[final].all() and (k[final] == k_final).all()
  assert (rec["zeros"][final] == k_final).all()
  assert (k[:T_I + 1] == 0).all() and 0 < k[T_I + 200] < k[T - T_F - 1]
  assert np.all(np.diff(k) >= 0)  # the cubic ramp never goes back
  # Constant memory: after the first chunk (compilation), the number of live
  # device arrays never changes and the RSS stays within a small bound.
  assert live[1:] == [live[1]] * (len(live) - 1), live
  assert max(rss[2:]) - rss[1] < 64 * 2**20, [r // 2**20 for r in rss]
