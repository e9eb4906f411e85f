"""PLATON around many inner optimizers, in the plain optax loop."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxprune
from tests import helpers

T = 40
OPTIMIZERS = {
    "adamw": lambda: optax.adamw(1e-2, weight_decay=0.01),
    "sgd_momentum": lambda: optax.sgd(0.05, momentum=0.9),
    "adafactor": lambda: optax.adafactor(1e-2),
    "chain_clip": lambda: optax.chain(optax.clip_by_global_norm(1.0),
                                      optax.adamw(1e-2)),
    "inject_hyperparams": lambda: optax.inject_hyperparams(optax.adamw)(
        learning_rate=1e-2),
    "lr_schedule": lambda: optax.adamw(
        optax.warmup_cosine_decay_schedule(0.0, 1e-2, 5, T)),
    "multisteps_inner": lambda: optax.MultiSteps(optax.adamw(1e-2), 2),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_platon_with_inner_optimizer(name):
  params = helpers.mlp_params()
  x, y = helpers.mlp_data()
  tx = jaxprune.platon(OPTIMIZERS[name](), sparsity=0.75, total_steps=T,
                       delta_t=4)
  state = tx.init(params)
  step = helpers.mlp_step(tx, x, y)

  losses = []
  for _ in range(T):
    params, state, loss = step(params, state)
    losses.append(float(loss))
  assert np.isfinite(losses).all() and losses[-1] < losses[0]
  leaves = helpers.prunable(params)
  assert sum(int((p == 0).sum()) for p in leaves) == int(
      0.75 * sum(p.size for p in leaves))


def test_multisteps_outside_counts_real_updates():
  # MultiSteps around PLATON: the pruner sees one update per 2 micro-steps.
  params = helpers.mlp_params()
  x, y = helpers.mlp_data()
  tx = optax.MultiSteps(
      jaxprune.platon(optax.adamw(1e-2), sparsity=0.5, total_steps=T // 2,
                      delta_t=2), every_k_schedule=2)
  state = tx.init(params)
  step = jax.jit(lambda p, s: tx.update(
      jax.grad(helpers.mlp_loss)(p, x, y), s, p))
  for _ in range(T):
    u, state = step(params, state)
    params = optax.apply_updates(params, u)
  assert int(state.inner_opt_state.count) == T // 2
  leaves = helpers.prunable(params)
  assert sum(int((p == 0).sum()) for p in leaves) == int(
      0.5 * sum(p.size for p in leaves))


def test_extra_args_pass_through():
  params = {"w": jnp.ones((4, 4))}
  seen = {}

  def init(p):
    return optax.EmptyState()

  def update(u, s, p=None, *, value=None):
    seen["value"] = value
    return u, s

  inner = optax.GradientTransformationExtraArgs(init, update)
  tx = jaxprune.platon(inner, sparsity=0.5, total_steps=10)
  state = tx.init(params)
  tx.update(params, state, params, value=3)
  assert seen["value"] == 3
