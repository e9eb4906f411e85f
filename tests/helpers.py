"""Small models and trees shared by the tests."""
import os

import jax
import jax.numpy as jnp
import numpy as np


def mlp_params(seed=0, dtype=jnp.float32):
  k = jax.random.split(jax.random.key(seed), 3)
  return {
      "dense1": {"kernel": jax.random.normal(k[0], (8, 32), dtype) * 0.3,
                 "bias": jnp.full((32,), 0.01, dtype)},
      "dense2": {"kernel": jax.random.normal(k[1], (32, 32), dtype) * 0.2,
                 "bias": jnp.full((32,), 0.01, dtype)},
      "head": {"kernel": jax.random.normal(k[2], (32, 3), dtype) * 0.2},
      "ln": {"scale": jnp.ones((32,), dtype)},
  }


def mlp_apply(params, x):
  h = jnp.tanh(x @ params["dense1"]["kernel"] + params["dense1"]["bias"])
  h = jnp.tanh(h @ params["dense2"]["kernel"] + params["dense2"]["bias"])
  h = h * params["ln"]["scale"]
  return h @ params["head"]["kernel"]


def mlp_data(n=256, seed=1):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((n, 8)).astype(np.float32)
  w = rng.standard_normal((8, 3)).astype(np.float32)
  y = np.argmax(x @ w, axis=1)
  return jnp.asarray(x), jnp.asarray(y)


def mlp_loss(params, x, y):
  logits = mlp_apply(params, x).astype(jnp.float32)
  return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits),
                                       y[:, None], axis=1))


def assert_stacks_sharded_like(stacked, params, param_shardings):
  """Each stack of a ``jaxprune.stacking.Stacked`` is sharded like its
  leaves' params on their axes and not on the stack's leading axis."""
  from jax.sharding import NamedSharding, PartitionSpec as P
  shardings = jax.tree.leaves(
      param_shardings, is_leaf=lambda x: isinstance(x, NamedSharding))
  by_path = {jax.tree_util.keystr(p): sh for (p, _), sh in zip(
      jax.tree_util.tree_leaves_with_path(params), shardings)}
  for stack, members in zip(stacked.stacks, stacked.layout.members):
    for i in members:
      sh = by_path[stacked.layout.paths[i]]
      want = NamedSharding(sh.mesh, P(None, *sh.spec))
      assert stack.sharding.is_equivalent_to(want, stack.ndim), (
          stack.sharding, want, stacked.layout.paths[i])


def assert_finite_scores(state):
  """Every float array of ``state.scorer_state`` is finite, but SEVEN's
  importance, which is -inf for weights pruned in its window (then their
  mask is False)."""
  from jaxprune import SevenScoreState  # pylint: disable=g-import-not-at-top
  sc = state.scorer_state
  seven = isinstance(sc, SevenScoreState)
  floats = [a for a in jax.tree.leaves((sc.m, sc.v) if seven else sc)
            if jnp.issubdtype(a.dtype, jnp.floating)]
  for a in floats:
    assert np.isfinite(np.asarray(a)).all()
  if seven:
    for imp, keep in zip(jax.tree.leaves(sc.importance),
                         jax.tree.leaves(state.masks)):
      imp, keep = np.asarray(imp), np.asarray(keep)
      assert np.all(np.isfinite(imp) | (np.isneginf(imp) & ~keep))
      assert np.all(np.isfinite(imp[keep]))


def prunable(tree):
  """Default `where`: float leaves with ndim >= 2."""
  return [x for x in jax.tree.leaves(tree) if x.ndim >= 2]


def mlp_step(tx, x, y):
  """A jitted MLP train step: ``(params, state) -> (params, state, loss)``."""
  import optax

  @jax.jit
  def step(params, state):
    loss, g = jax.value_and_grad(mlp_loss)(params, x, y)
    u, state = tx.update(g, state, params)
    return optax.apply_updates(params, u), state, loss

  return step


def run_scenario(module, name):
  """Runs ``python -m module name`` in a fresh interpreter (8 fake devices).

  XLA:CPU runs the 8 fake devices' collectives on a shared thread pool, and
  programs with collectives in one process can deadlock in its rendezvous
  on a 2-core machine, so each multi-device scenario gets its own process.
  """
  import os
  import subprocess
  import sys
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = subprocess.run([sys.executable, "-m", module, name], cwd=root,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
  assert f"scenario {name} ok" in proc.stdout


def compiled_text(lowered) -> str:
  """The optimized HLO of ``lowered`` as XLA compiles it by default.

  tests/xla_flags.py turns XLA:CPU's fusion emitters off to compile faster,
  and without them XLA expands a scatter (a loss's ``take_along_axis``
  gradient) into a while loop. Tests that count ``conditional`` and ``while``
  ops compile with the default, as users get it (where the probe kept that
  flag; otherwise the default is already in effect).
  """
  off = "--xla_cpu_use_fusion_emitters=false"
  options = ({"xla_cpu_use_fusion_emitters": True}
             if off in os.environ.get("XLA_FLAGS", "").split() else None)
  return lowered.compile(compiler_options=options).as_text()
