"""PLATON: the score state by hand and the whole transform against numpy."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxprune


def test_score_state_by_hand_across_window_boundary():
  # beta1 = 0.5, beta2 = 0.25, delta_t = 3; theta' = 2, grads 1, 4, 7, 10, 1.
  # I = |theta' g| = 2, 8, 14, 20, 2.
  sc = jaxprune.platon_scorer(beta1=0.5, beta2=0.25, delta_t=3)
  st = sc.init({"w": jnp.zeros(())})
  seen = []
  for s, g in enumerate([1.0, 4.0, 7.0, 10.0, 2.0]):
    st = jax.jit(sc.update, static_argnums=())(
        st, {"w": jnp.float32(g)}, {"w": jnp.float32(2.0)}, None, s)
    seen.append((float(st.iwin["w"]), float(st.ibar["w"]),
                 float(st.ubar["w"])))
  # s=0 boundary: Ibar = 0, Ubar = 0, Iwin = 2.
  # s=1: Iwin = (2*1 + 8)/2 = 5.   s=2: Iwin = (5*2 + 14)/3 = 8.
  # s=3 boundary: Ibar = .5*0 + .5*8 = 4; Ubar = .25*0 + .75*|8-4| = 3; Iwin = 20.
  # s=4: Iwin = (20 + 4)/2 = 12.
  assert seen == [(2, 0, 0), (5, 0, 0), (8, 0, 0), (20, 4, 3), (12, 4, 3)]
  np.testing.assert_allclose(sc.scores(st, None)["w"], 12.0)
  assert [bool(sc.changes_at(s)) for s in range(5)] == [
      True, False, False, True, False]


def test_cubic_schedule_at_phase_boundaries():
  sched = jaxprune.schedules.cubic(0.9, total_steps=100, warmup_steps=10,
                                   final_steps=30, delta_t=10)
  sp = lambda s: float(sched.sparsity(jnp.int32(s)))
  ev = lambda s: bool(sched.is_event(jnp.int32(s)))
  assert sp(0) == 0.0 and not ev(0)
  assert sp(10) == 0.0 and not ev(10)          # s <= t_i: dense
  np.testing.assert_allclose(sp(11), 0.9 * (1 - (59 / 60) ** 3), rtol=1e-6)
  assert not ev(11)
  np.testing.assert_allclose(sp(20), 0.9 * (1 - (50 / 60) ** 3), rtol=1e-6)
  assert ev(20)
  np.testing.assert_allclose(sp(70), 0.9, rtol=1e-7)  # s = T - t_f: continuous
  assert ev(70)
  assert sp(71) == np.float32(0.9) and ev(71) and ev(72) and ev(99)
  assert sp(150) == np.float32(0.9) and ev(150)   # past T: hold the target


def numpy_platon(params, grads_seq, lr, sched, b1, b2, dt, persistent=False):
  """Independent numpy PLATON (global) around plain SGD."""
  names = sorted(params)
  p = {n: np.array(params[n], np.float32) for n in names}
  iwin = {n: np.zeros_like(p[n]) for n in names}
  ibar = {n: np.zeros_like(p[n]) for n in names}
  ubar = {n: np.zeros_like(p[n]) for n in names}
  keep = {n: np.ones(p[n].shape, bool) for n in names}
  n_total = sum(p[n].size for n in names)
  history = []
  for s, grads in enumerate(grads_seq):
    g = {n: np.asarray(grads[n], np.float32) for n in names}
    if persistent:
      g = {n: np.where(keep[n], g[n], 0) for n in names}
    theta = {n: (p[n] - np.float32(lr) * g[n]).astype(np.float32) for n in names}
    local = s % dt
    for n in names:
      sens = np.abs(theta[n] * g[n])
      if local == 0:
        ibar[n] = b1 * ibar[n] + (1 - b1) * iwin[n]
        ubar[n] = b2 * ubar[n] + (1 - b2) * np.abs(iwin[n] - ibar[n])
        iwin[n] = sens
      else:
        iwin[n] = (iwin[n] * local + sens) / (local + 1)
    frac = float(sched.sparsity(jnp.int32(s)))  # schedule tested separately
    event = bool(sched.is_event(jnp.int32(s)))
    if event:
      k = int(np.floor(n_total * np.float64(frac)))
      if frac == np.float32(sched.target):
        k = int(n_total * sched.target)
      flat = np.concatenate([(ibar[n] * ubar[n]).ravel() for n in names])
      order = np.argsort(flat, kind="stable")
      kflat = np.ones(flat.size, bool)
      kflat[order[:k]] = False
      start = 0
      for n in names:
        keep[n] = kflat[start:start + p[n].size].reshape(p[n].shape)
        start += p[n].size
    for n in names:
      zero = (~keep[n]) if (persistent or event) else np.zeros_like(keep[n])
      p[n] = np.where(zero, 0, theta[n]).astype(np.float32)
    history.append({n: p[n].copy() for n in names})
  return history


@pytest.mark.parametrize("ema_cond", [True, False])
@pytest.mark.parametrize("persistent", [False, True])
def test_transform_matches_numpy_reference(persistent, ema_cond, monkeypatch):
  # Both ways of skipping Ibar/Ubar inside a window (cond on CPU, where on
  # accelerators) must give the reference values.
  from jaxprune.methods import platon as platon_mod
  monkeypatch.setattr(platon_mod, "skip_ema_with_cond", lambda: ema_cond)
  rng = np.random.default_rng(0)
  params = {"a": rng.standard_normal((6, 5)).astype(np.float32),
            "b": rng.standard_normal((4, 7)).astype(np.float32)}
  steps, lr = 40, 0.05
  grads_seq = [{n: rng.standard_normal(v.shape).astype(np.float32)
                for n, v in params.items()} for _ in range(steps)]
  kw = dict(sparsity=0.7, total_steps=steps, warmup_steps=8, final_steps=12,
            beta1=0.85, beta2=0.95, delta_t=3)
  tx = jaxprune.platon(optax.sgd(lr), persistent_mask=persistent, **kw)
  sched = jaxprune.schedules.cubic(0.7, steps, 8, 12, 3)
  expected = numpy_platon(params, grads_seq, lr, sched, 0.85, 0.95, 3,
                          persistent)
  jp = jax.tree.map(jnp.asarray, params)
  state = tx.init(jp)
  step = jax.jit(tx.update)
  for s in range(steps):
    u, state = step(jax.tree.map(jnp.asarray, grads_seq[s]), state, jp)
    jp = optax.apply_updates(jp, u)
    for n in params:
      np.testing.assert_array_equal(np.asarray(jp[n]) == 0,
                                    expected[s][n] == 0, err_msg=f"step {s}")
      np.testing.assert_allclose(jp[n], expected[s][n], rtol=1e-5, atol=1e-6)
  n_zero = sum(int((v == 0).sum()) for v in jax.tree.leaves(jp))
  assert n_zero == int(0.7 * 58)
