"""Independent numpy re-implementation of a pruning run around plain SGD.

Each method's test supplies its score math (from the spec) as numpy
callbacks; this module does the parts every method shares, written from the
spec and not from the package: ``theta' = p - lr * g``, exact-k selection of
the lowest scores with ties broken by position (leaf order, then row-major),
and zeroing of pruned weights.
"""
from __future__ import annotations

from typing import Callable

import numpy as np



def tree(shapes: dict[str, tuple[int, ...]], scale: float = 1.0,
         seed: int = 0) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(seed)
  return {n: (rng.standard_normal(s) * scale).astype(np.float32)
          for n, s in shapes.items()}


def grads_sequence(shapes, steps: int, seed: int = 1):
  """Random gradients with a per-weight bias, so scores are informative."""
  rng = np.random.default_rng(seed)
  bias = {n: rng.standard_normal(s).astype(np.float32) for n, s in shapes.items()}
  return [{n: (bias[n] + 0.5 * rng.standard_normal(s)).astype(np.float32)
           for n, s in shapes.items()} for _ in range(steps)]


def select_keep(scores: list[np.ndarray], k: int) -> list[np.ndarray]:
  """Keep-masks pruning exactly the ``k`` lowest (stable tie-break)."""
  flat = np.concatenate([x.ravel() for x in scores])
  order = np.argsort(flat, kind="stable")
  keep = np.ones(flat.size, bool)
  keep[order[:k]] = False
  out, i = [], 0
  for x in scores:
    out.append(keep[i:i + x.size].reshape(x.shape))
    i += x.size
  return out


def simulate(params: dict, grads_seq: list[dict], lr: float, *,
             score_update: Callable[[int, dict, dict, dict, dict], None],
             scores: Callable[[dict], dict],
             schedule: Callable[[int], tuple[float, bool, bool]],
             target: float, persistent: bool = False, monotone: bool = False,
             per_leaf: bool = False,
             prior: Callable[[int, dict], dict] | None = None):
  """Runs the method; returns ``(params, keep, history)``.

  Args:
    params: name -> float32 array (all prunable, names in sorted order).
    grads_seq: the gradient of every step.
    lr: SGD learning rate, or ``s -> learning rate``.
    score_update: ``(s, theta_new, g, p_old, keep) -> None`` mutating the
      method's own state.
    scores: ``theta_new -> name -> scores``.
    schedule: ``s -> (sparsity, is_event, frozen)``.
    target: final sparsity (``k = int(N * target)`` where the schedule is at
      it, as the package documents).
    persistent: zero pruned weights' gradients and keep them 0 every step.
    monotone: pruned weights rank below all others at later selections.
    per_leaf: select per leaf instead of globally.
    prior: ``(s, p) -> name -> extra gradient`` added before SGD.
  """
  names = sorted(params)
  p = {n: params[n].astype(np.float32).copy() for n in names}
  keep = {n: np.ones(p[n].shape, bool) for n in names}
  history = []
  for s, grads in enumerate(grads_seq):
    g = {n: grads[n].astype(np.float32) for n in names}
    g_in = {n: np.where(keep[n], g[n], 0).astype(np.float32) if persistent
            else g[n] for n in names}
    if prior is not None:
      extra = prior(s, p)
      g_in = {n: (g_in[n] + extra[n]).astype(np.float32) for n in names}
    lr_s = np.float32(lr(s) if callable(lr) else lr)
    theta = {n: (p[n] - lr_s * g_in[n]).astype(np.float32) for n in names}
    score_update(s, theta, g, p, keep)
    frac, event, frozen = schedule(s)
    if event:
      sc = scores(theta)
      sc = {n: np.where(keep[n], sc[n], -np.inf) if monotone else sc[n]
            for n in names}
      groups = [[n] for n in names] if per_leaf else [names]
      for group in groups:
        size = sum(p[n].size for n in group)
        k = (int(size * target) if np.float32(frac) == np.float32(target)
             else int(np.floor(size * np.float64(np.float32(frac)))))
        for n, m in zip(group, select_keep([sc[n] for n in group], k)):
          keep[n] = m
    if persistent or event or frozen:
      theta = {n: np.where(keep[n], theta[n], 0).astype(np.float32)
               for n in names}
    p = theta
    history.append({n: keep[n].copy() for n in names})
  return p, keep, history


def cubic_schedule(sparsity: float, total: int, t_i: int, t_f: int, dt: int):
  """PLATON's cubic schedule (Zhang et al. 2022) as ``s -> (sparsity, event, False)``."""
  def schedule(s):
    if s <= t_i:
      return 0.0, False, False
    if s > total - t_f:
      return sparsity, True, False
    frac = sparsity * (1 - (1 - (s - t_i) / (total - t_i - t_f)) ** 3)
    return frac, s % dt == 0, False
  return schedule


def window_smoother(shapes, b1: float, b2: float, dt: int):
  """PLATON's window mean + EMAs (Zhang et al. 2022), returning ``(state, update)``."""
  st = {k: {n: np.zeros(s, np.float32) for n, s in shapes.items()}
        for k in ("iwin", "ibar", "ubar")}

  def update(s, sens):
    local = s % dt
    for n in shapes:
      if local == 0:
        st["ibar"][n] = b1 * st["ibar"][n] + (1 - b1) * st["iwin"][n]
        st["ubar"][n] = b2 * st["ubar"][n] + (1 - b2) * np.abs(
            st["iwin"][n] - st["ibar"][n])
        st["iwin"][n] = sens[n]
      else:
        st["iwin"][n] = (st["iwin"][n] * local + sens[n]) / (local + 1)

  return st, update


def run_package(tx, params: dict, grads_seq: list[dict]):
  """Runs ``tx`` jitted on the same inputs; returns ``(params, state, masks)``."""
  import jax
  import jax.numpy as jnp
  import optax

  @jax.jit
  def step(p, state, g):
    u, state = tx.update(g, state, p)
    return optax.apply_updates(p, u), state

  p = {n: jnp.asarray(v) for n, v in params.items()}
  state = tx.init(p)
  history = []
  for g in grads_seq:
    p, state = step(p, state, {n: jnp.asarray(v) for n, v in g.items()})
    inner = find_prune_state(state)
    history.append({n: np.asarray(m) for n, m in inner.masks.items()})
  return p, state, history


def find_prune_state(state):
  import jax
  import jaxprune
  is_ps = lambda x: isinstance(x, jaxprune.PruneState)
  return [x for x in jax.tree_util.tree_leaves(state, is_leaf=is_ps)
          if is_ps(x)][0]
