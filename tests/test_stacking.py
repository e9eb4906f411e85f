"""The stacked layout of rarely written pruning state (jaxprune.stacking)."""

import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxprune
from jaxprune import stacking
from jaxprune import train
from tests import helpers

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures",
                       "checkpoint_per_leaf_layout")


def _tree(rng):
  return {"a": rng.standard_normal((2, 3)).astype(np.float32),
          "b": optax.MaskedNode(),
          "c": {"x": rng.standard_normal((4,)).astype(np.float32),
                "y": rng.standard_normal((2, 3)).astype(np.float32)},
          "d": rng.standard_normal((2, 3)).astype(np.float16),
          "e": rng.standard_normal((2, 3)).astype(np.float32)}


@pytest.mark.parametrize("by_leaf", [False, True])
def test_stacks_hold_the_leaves_in_shape_buckets(by_leaf):
  tree = _tree(np.random.default_rng(0))
  s = jax.jit(lambda t: stacking.Stacked.from_tree(t, by_leaf))(tree)
  # Leaf order: a, c.x, c.y, d, e; buckets by (shape, dtype) in order of
  # first appearance, written out by hand.
  if by_leaf:
    want = [[tree["a"]], [tree["c"]["x"]], [tree["c"]["y"]], [tree["d"]],
            [tree["e"]]]
  else:
    want = [[tree["a"], tree["c"]["y"], tree["e"]], [tree["c"]["x"]],
            [tree["d"]]]
  assert len(s.stacks) == len(want)
  for got, leaves in zip(s.stacks, want):
    np.testing.assert_array_equal(np.asarray(got), np.stack(leaves))
  back = jax.jit(lambda s: s.tree())(s)
  assert isinstance(back["b"], optax.MaskedNode)
  for got, ref in zip(jax.tree.leaves(back), jax.tree.leaves(tree)):
    assert got.dtype == ref.dtype
    np.testing.assert_array_equal(np.asarray(got), ref)
  assert s.layout.paths == ("['a']", "['c']['x']", "['c']['y']", "['d']",
                            "['e']")


def test_leading_axes_are_kept_by_leaves():
  """A device axis in front of the stacks (pmap) stays in front of each leaf."""
  tree = _tree(np.random.default_rng(1))
  s = stacking.Stacked.from_tree(tree)
  two = jax.tree.map(lambda x: jnp.stack([x, x + 1]), s)
  for got, ref in zip(two.leaves(), jax.tree.leaves(tree)):
    np.testing.assert_array_equal(np.asarray(got),
                                  np.stack([ref, ref + 1]).astype(ref.dtype))


def test_platon_state_is_few_buffers():
  """Masks: one array per (shape, dtype) bucket; scores per leaf."""
  params = {f"l{i}": {"q": jnp.zeros((6, 6)), "up": jnp.zeros((6, 12)),
                      "down": jnp.zeros((12, 6)), "b": jnp.zeros(6)}
            for i in range(4)}
  tx = jaxprune.platon(optax.sgd(0.1), sparsity=0.5, total_steps=20)
  ps = tx.init(params)
  # 12 prunable leaves (ndim >= 2) in 3 shapes, in order of first
  # appearance (keys sorted: b, down, q, up).
  assert [x.shape for x in ps.mask_stacks.stacks] == [(4, 12, 6), (4, 6, 6),
                                                      (4, 6, 12)]
  assert len(jax.tree.leaves(ps.scorer_state)) == 3 * 12
  # count, sgd's (empty) state, Iwin, Ibar and Ubar 12 each, masks 3,
  # threshold, num_pruned, stale, kind_mismatch.
  assert len(jax.tree.leaves(ps)) == 1 + 36 + 3 + 4
  masks = ps.masks
  assert jax.tree.structure(masks) == jax.tree.structure(
      jax.tree.map(lambda x: x if x.ndim >= 2 else optax.MaskedNode(),
                   params))


def test_stack_state_false_keeps_one_stack_per_leaf():
  params = {"a": jnp.ones((4, 4)), "b": jnp.ones((4, 4))}
  tx = jaxprune.prune(optax.sgd(0.1), jaxprune.platon_scorer(),
                      jaxprune.schedules.constant(0.5), stack_state=False)
  st = tx.init(params)
  assert [x.shape for x in st.mask_stacks.stacks] == [(1, 4, 4)] * 2
  g = jax.tree.map(jnp.ones_like, params)
  u, st = jax.jit(tx.update)(g, st, params)
  assert int(sum(jnp.sum(~m) for m in jax.tree.leaves(st.masks))) == 16
  other = jaxprune.prune(optax.sgd(0.1), jaxprune.platon_scorer(),
                         jaxprune.schedules.constant(0.5))
  with pytest.raises(ValueError, match="stack_state"):
    other.update(g, st, params)


def test_a_checkpoint_of_the_per_leaf_layout_is_refused(tmp_path):
  """Written by the commit before stacking (tests/fixtures/.../make.py)."""
  ckpt = tmp_path / "ckpt"
  shutil.copytree(FIXTURE, ckpt, ignore=shutil.ignore_patterns("make.py"))
  params = {"dense1": {"kernel": jnp.ones((8, 32)) * 0.3,
                       "bias": jnp.zeros(32)},
            "head": {"kernel": jnp.ones((32, 3)) * 0.2}}
  tx = jaxprune.platon(optax.adamw(1e-2), sparsity=0.5, total_steps=10)

  def loss_fn(p, batch, rng):
    del rng
    h = jnp.tanh(batch["x"] @ p["dense1"]["kernel"] + p["dense1"]["bias"])
    return -jnp.mean(jax.nn.log_softmax(h @ p["head"]["kernel"])[:, 0]), {}

  step = train.make_train_step(loss_fn, tx)
  with pytest.raises(ValueError, match="earlier jaxprune.*one array per "
                     "leaf.*opt_state/masks/"):
    train.fit(step, params, tx.init(params),
              lambda i: {"x": jnp.ones((4, 8))}, 4, rng=jax.random.PRNGKey(0),
              ckpt_dir=str(ckpt), progress=False)


def test_opt_state_shardings_shard_stacks_like_their_leaves():
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
  mesh = Mesh(np.array(jax.devices()[:8]).reshape(4, 2), ("data", "model"))
  params = {"a": jnp.ones((4, 6)), "b": jnp.ones((4, 6)), "c": jnp.ones(6)}
  p_sh = {"a": NamedSharding(mesh, P(None, "model")),
          "b": NamedSharding(mesh, P(None, "model")),
          "c": NamedSharding(mesh, P())}
  tx = jaxprune.platon(optax.adamw(1e-2), sparsity=0.5, total_steps=10)
  sh = train.opt_state_shardings(tx, params, p_sh, mesh)
  want = NamedSharding(mesh, P(None, None, "model"))
  assert [s.spec for s in sh.mask_stacks.stacks] == [want.spec]
  assert [s.spec for s in jax.tree.leaves(sh.scorer_state.ibar)] == [
      P(None, "model")] * 2
  state = jax.jit(tx.init, out_shardings=sh)(jax.device_put(params, p_sh))
  helpers.assert_stacks_sharded_like(state.mask_stacks, params, p_sh)

  # Leaves of one shape sharded differently cannot share a stack.
  params = {"a": jnp.ones((6, 6)), "b": jnp.ones((6, 6))}
  p_sh = {"a": NamedSharding(mesh, P(None, "model")),
          "b": NamedSharding(mesh, P("model", None))}
  with pytest.raises(ValueError, match=r"\['a'\].*\['b'\].*stack_state=False"):
    train.opt_state_shardings(tx, params, p_sh, mesh)
  tx = jaxprune.platon(optax.adamw(1e-2), sparsity=0.5, total_steps=10,
                       stack_state=False)
  sh = train.opt_state_shardings(tx, params, p_sh, mesh)
  assert [s.spec for s in sh.mask_stacks.stacks] == [
      P(None, None, "model"), P(None, "model", None)]
  state = jax.jit(tx.init, out_shardings=sh)(jax.device_put(params, p_sh))
  g = jax.device_put(jax.tree.map(jnp.ones_like, params), p_sh)
  update = jax.jit(tx.update, out_shardings=(p_sh, sh))
  for _ in range(10):
    _, state = update(g, state, params)
  helpers.assert_stacks_sharded_like(state.mask_stacks, params, p_sh)
