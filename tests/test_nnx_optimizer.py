"""Every pruning method as ``nnx.Optimizer(model, tx, wrt=nnx.Param)`` on our
NNX BERT and ViT: it prunes, and it gives the same params as the functional
path (``make_train_step`` on the plain params tree) with the same updates."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxprune
from experiments import methods
from jaxprune import models, train

FIX = os.path.join(os.path.dirname(__file__), "fixtures", "models")
STEPS = 6
PRUNING = tuple(m for m in methods.METHODS if m != "dense")


def _tx(method, where):
  return methods.make_tx(method, learning_rate=1e-2, sparsity=0.5,
                         total_steps=STEPS, where=where, num_examples=100,
                         clip_norm=None, weight_decay=0.0)


def _batch(arch):
  rng = np.random.default_rng(0)
  if arch == "vit":
    return {"pixel_values": jnp.asarray(rng.random((4, 3, 16, 16)),
                                        jnp.float32),
            "labels": jnp.asarray(rng.integers(0, 5, 4), jnp.int32)}
  ids = jnp.asarray(rng.integers(3, 100, (4, 8)), jnp.int32)
  return {"input_ids": ids, "attention_mask": jnp.ones_like(ids),
          "token_type_ids": jnp.zeros_like(ids),
          "labels": jnp.asarray(rng.integers(0, 3, 4), jnp.int32)}


@pytest.mark.parametrize("method,arch,compare", [
    (m, "bert", m == "platon") for m in PRUNING] + [("platon", "vit", False)])
def test_nnx_optimizer(method, arch, compare):
  """Prunes through nnx.Optimizer; for PLATON also equals the functional
  path (compiling both for every method would double the test time)."""
  where = arch
  fm = models.from_pretrained(os.path.join(FIX, arch))
  batch = _batch(arch)
  loss_fn = train.hf.classification_loss(fm)

  # NNX path: the module and nnx.Optimizer, eval mode (no dropout).
  module = fm.module()
  opt = nnx.Optimizer(module, _tx(method, where), wrt=nnx.Param)

  @nnx.jit
  def nnx_step(module, opt, batch):
    def loss(m):
      params = nnx.state(m, nnx.Param).to_pure_dict()
      return loss_fn(params, batch, jax.random.key(1))[0]
    grads = nnx.grad(loss)(module)
    opt.update(module, grads)

  # Functional path on the plain params tree.
  tx = _tx(method, where)
  params = jax.tree.map(jnp.array, fm.params)
  state = tx.init(params) if compare else None
  # One traced program, like nnx.Optimizer's (per-kind programs are
  # compared with the traced one in test_step_kinds).
  step = train.make_train_step(
      lambda p, b, r: loss_fn(p, b, jax.random.key(1)), tx, donate=False,
      step_kinds=False)
  for s in range(STEPS):
    nnx_step(module, opt, batch)
    if compare:
      params, state, _ = step(params, state, batch, jax.random.key(0), s)
  got = nnx.state(module, nnx.Param).to_pure_dict()
  assert all(np.isfinite(np.asarray(x)).all()
             for x in jax.tree_util.tree_leaves(got))
  assert jaxprune.actual_sparsity(got, where) >= 0.45
  if not compare:
    return
  for a, b in zip(jax.tree_util.tree_leaves(got),
                  jax.tree_util.tree_leaves(params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5,
                               atol=1e-6)
