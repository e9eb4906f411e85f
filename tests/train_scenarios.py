"""pmap and sharded train-step scenarios, each run in a fresh interpreter.

(8 fake CPU devices; see tests/test_distributed.py for why a fresh process.)
Every step here is the traced program (``step_kinds=False``): these scenarios
test that pmap and sharded steps give the single device's results; that the
per-kind programs equal the traced one under pmap and sharding is
tests/test_step_kinds.py's ``test_hinted_equals_traced_on_8_fake_devices``.
Compiling one program instead of one per kind saves about 25 s per scenario.
"""
import os
import sys

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P  # noqa: E402

from jaxprune import train  # noqa: E402
from tests import helpers  # noqa: E402
from tests import train_helpers as th  # noqa: E402

STEPS = 12


def single(model, batches, tx):
  """The single-device reference: one traced program (the per-kind
  programs equal it: tests/test_step_kinds.py), compiled once."""
  params = jax.tree.map(jnp.array, model.params)
  state = tx.init(params)
  step = train.make_train_step(train.hf.classification_loss(model), tx,
                               step_kinds=False)
  for s in range(STEPS):
    params, state, _ = step(params, state, batches[s], jax.random.PRNGKey(0), s)
  return params, state


def scenario_pmap():
  model = th.tiny_bert(dropout=0.0)
  batches = th.text_batches(STEPS, batch=16)
  tx = th.platon_tx(STEPS)
  ref_p, ref_s = single(model, batches, tx)
  params = jax.tree.map(jnp.array, model.params)
  state = tx.init(params)
  params, state = train.replicate(params), train.replicate(state)
  step = train.make_pmap_train_step(train.hf.classification_loss(model), tx,
                                    step_kinds=False)
  lowered = []
  jax.monitoring.register_event_duration_secs_listener(
      lambda event, _, **kw: lowered.append(event) if event.endswith(
          "jaxpr_to_mlir_module_duration") else None)
  for s in range(STEPS):
    b = jax.tree.map(lambda x: x.reshape(8, 2, *x.shape[1:]), batches[s])
    params, state, _ = step(params, state, b, jax.random.PRNGKey(0), s)
    if s == 0:
      del lowered[:]
  # Replicated as the step's outputs are placed: step 0's program serves
  # every later step (a jnp.stack on one device compiled it twice).
  assert not lowered, lowered
  for m, m_ref in zip(jax.tree.leaves(train.find_prune_states(state)[0].masks),
                      jax.tree.leaves(train.find_prune_states(ref_s)[0].masks)):
    m = np.asarray(m)
    assert all((m[d] == m[0]).all() for d in range(8)), "replicas differ"
    np.testing.assert_array_equal(m[0], np.asarray(m_ref))
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ref_p)):
    np.testing.assert_allclose(np.asarray(a)[0], np.asarray(b), rtol=1e-4,
                               atol=1e-5)


def scenario_sharded():
  mesh = Mesh(np.array(jax.devices()[:8]).reshape(4, 2), ("data", "model"))
  model = th.tiny_bert(dropout=0.0)
  batches = th.text_batches(STEPS, batch=16)
  tx = th.platon_tx(STEPS)
  ref_p, ref_s = single(model, batches, tx)

  def spec(x):
    if x.ndim == 2 and x.shape[-1] % 2 == 0:
      return NamedSharding(mesh, P(None, "model"))
    return NamedSharding(mesh, P())

  p_sh = jax.tree.map(spec, model.params)
  s_sh = train.opt_state_shardings(tx, model.params, p_sh, mesh)
  params = jax.device_put(model.params, p_sh)
  state = jax.jit(tx.init, out_shardings=s_sh)(params)
  b_sh = NamedSharding(mesh, P("data"))
  step = train.make_sharded_train_step(
      train.hf.classification_loss(model), tx, param_shardings=p_sh,
      opt_state_shardings=s_sh, batch_sharding=b_sh, step_kinds=False)
  lowered = []
  jax.monitoring.register_event_duration_secs_listener(
      lambda event, _, **kw: lowered.append(event) if event.endswith(
          "jaxpr_to_mlir_module_duration") else None)
  for s in range(STEPS):
    batch = train.host_local_to_global(batches[s], b_sh)
    params, state, _ = step(params, state, batch, jax.random.PRNGKey(0), s)
    if s == 0:
      del lowered[:]
  assert not lowered, lowered   # step 0's program serves every later step
  ps = train.find_prune_states(state)[0]
  sel = [sh for sh, f in zip(jax.tree.leaves(p_sh, is_leaf=lambda x: isinstance(x, NamedSharding)),
                             __import__("jaxprune").where.resolve("bert", model.params)) if f]
  for leaf, sh in zip(jax.tree.leaves(ps.scorer_state.ibar), sel):
    assert leaf.sharding.is_equivalent_to(sh, leaf.ndim), (leaf.sharding, sh)
  helpers.assert_stacks_sharded_like(ps.mask_stacks, model.params, p_sh)
  for m, m_ref in zip(jax.tree.leaves(ps.masks),
                      jax.tree.leaves(train.find_prune_states(ref_s)[0].masks)):
    np.testing.assert_array_equal(np.asarray(m), np.asarray(m_ref))


if __name__ == "__main__":
  {"pmap": scenario_pmap, "sharded": scenario_sharded}[sys.argv[1]]()
  print(f"scenario {sys.argv[1]} ok")
