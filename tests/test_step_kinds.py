"""Step kinds decided on the host: bitwise the traced step's results, no
control flow in the compiled ordinary step, wrong kinds detected.

The reference is the traced step (``tx.update`` without ``step_kind``), itself
tested against numpy in the per-method tests.
"""
import os
import platform

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxprune
from jaxprune import selection, step_kinds, train
from tests import helpers

T = 40
KW = dict(sparsity=0.75, total_steps=T)
METHODS = {
    "platon": lambda o, **k: jaxprune.platon(o, delta_t=4, **k),
    "platon_layer": lambda o, **k: jaxprune.platon(o, delta_t=4,
                                                   granularity="layer", **k),
    "platon_persistent": lambda o, **k: jaxprune.platon(
        o, delta_t=4, persistent_mask=True, **k),
    "magnitude": jaxprune.magnitude,
    "taylor": jaxprune.taylor,
    "movement": jaxprune.movement,
    "seven": jaxprune.seven,
    "mgpp": lambda o, **k: jaxprune.mgpp(o, num_examples=64, **k),
    "pins": lambda o, **k: jaxprune.pins(o, learning_rate=1e-2, **k),
}


def _run(tx, hinted, search="adaptive", offset=0):
  """T jitted updates of the MLP; ``offset`` shifts the kinds' step."""
  x, y = helpers.mlp_data(n=64)
  params = helpers.mlp_params()
  state = tx.init(params)

  @jax.jit
  def traced(params, state):
    g = jax.grad(helpers.mlp_loss)(params, x, y)
    u, state = tx.update(g, state, params)
    return optax.apply_updates(params, u), state

  def hinted_step(kind):
    @jax.jit
    def step(params, state):
      g = jax.grad(helpers.mlp_loss)(params, x, y)
      u, state = tx.update(g, state, params, step_kind=kind)
      return optax.apply_updates(params, u), state
    return step

  programs = {}
  with selection.search_mode(search):
    for s in range(T):
      if hinted:
        kind = jaxprune.step_kind(tx, s + offset)
        if kind not in programs:
          programs[kind] = hinted_step(kind)
        params, state = programs[kind](params, state)
      else:
        params, state = traced(params, state)
  return params, state, programs


# conftest.py turns fused multiply-add off on x86 CPUs (the only platform
# whose flag we know): there the traced and the hinted step must agree bit for
# bit, floats included.
FMA_OFF = "--xla_cpu_max_isa=AVX" in os.environ.get("XLA_FLAGS", "")


def _assert_same(a, b):
  """Everything bitwise where FMA is off; elsewhere floats to 1e-5.

  XLA contracts ``a * b + c`` into a fused multiply-add inside a fusion, and
  the traced and the hinted step are differently fused programs, so with FMA
  a float may round differently in its last bit (seen: 6 of 96 PLATON scores
  of one leaf, 1 ulp; SEVEN's cumulative scores drift to 10 ulp over 40
  steps). Without FMA every leaf is bitwise equal; masks, counts and flags
  always are.
  """
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    x, y = np.asarray(x), np.asarray(y)
    assert x.dtype == y.dtype and x.shape == y.shape
    if np.issubdtype(x.dtype, np.floating) and not FMA_OFF:
      np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)
    else:
      np.testing.assert_array_equal(x, y)


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="the no-FMA flag is x86's")
def test_the_tests_compile_without_fused_multiply_add():
  """The bitwise comparisons here rely on it: (1 + 2^-12)^2 - (1 + 2^-11) is
  2^-24 with FMA and 0 when the product is rounded first."""
  assert FMA_OFF
  x = jnp.full((64,), 1 + 2.0**-12, jnp.float32)
  z = jnp.full((64,), -(1 + 2.0**-11), jnp.float32)
  out = jax.jit(lambda x, z: x * x + z)(x, z)
  np.testing.assert_array_equal(np.asarray(out), 0.0)


def test_the_cheap_compile_flags_are_known_to_this_jaxlib():
  """XLA refuses to start on an unknown flag: the probe drops those."""
  from tests import xla_flags
  assert not xla_flags._accepted("--xla_no_such_flag_for_jaxprune=1")
  fast = xla_flags.fast_compile().split()
  assert set(fast) <= set(xla_flags._FAST)
  assert all(f in os.environ["XLA_FLAGS"] for f in fast)


# Every method with CPU's search; the GPU/TPU search on global, per-leaf
# and monotone selections (the selection itself is property-tested against
# numpy in test_numerics).
CASES = ([(name, "adaptive") for name in sorted(METHODS)] +
         [(name, "fixed") for name in ("platon", "platon_layer", "seven")])


@pytest.mark.parametrize("name,search", CASES)
def test_hinted_step_matches_the_traced_step(name, search, monkeypatch):
  tx = optax.chain(optax.clip_by_global_norm(1.0),
                   METHODS[name](optax.adamw(1e-2), **KW))
  p_ref, s_ref, _ = _run(tx, hinted=False)
  if search == "fixed":
    # The hinted steps are traced as for an accelerator (the code paths that
    # ask jax.default_backend(): the fixed search, the masked update of a
    # selection step without its ordering dependence) and run on the CPU.
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  p, s, programs = _run(tx, hinted=True, search=search)
  _assert_same((p, s), (p_ref, s_ref))
  assert not bool(step_kinds.mismatch(s))
  kinds = set(programs)
  assert any(not k.select for k in kinds) and any(k.select for k in kinds)
  # The schedule reached its target: warm-up, cubic and final phases ran.
  prune_state = train.find_prune_states(s)[0]
  n = sum(x.size for x in helpers.prunable(p))
  assert int(jnp.sum(prune_state.num_pruned)) > 0.7 * n


def test_kinds_follow_the_platon_schedule():
  tx = jaxprune.platon(optax.sgd(0.1), sparsity=0.5, total_steps=100,
                       warmup_steps=10, final_steps=30, delta_t=10)
  tx.init(helpers.mlp_params())
  kinds = [jaxprune.step_kind(tx, s) for s in range(100)]
  # Warm-up: no events; window boundaries every 10 steps.
  assert kinds[5] == jaxprune.StepKind(False, False, False)
  assert kinds[10] == jaxprune.StepKind(False, False, True)
  # Cubic phase: an event at each boundary, which selects.
  assert kinds[20] == jaxprune.StepKind(True, True, True)
  assert kinds[21] == jaxprune.StepKind(False, False, False)
  # s = 70 ends the ramp at the target; the final phase (s > 70) applies
  # the stored mask every step and selects again only at boundaries.
  assert kinds[70] == jaxprune.StepKind(True, True, True)
  assert kinds[71] == jaxprune.StepKind(False, True, False)
  assert kinds[80] == jaxprune.StepKind(True, True, True)


def test_step_kind_before_init_is_a_clear_error():
  tx = jaxprune.platon(optax.sgd(0.1), sparsity=0.5, total_steps=10)
  with pytest.raises(ValueError, match=r"tx.init\(params\)"):
    jaxprune.step_kind(tx, 0)


def test_no_pruning_transformation_has_no_kind():
  assert jaxprune.step_kind(optax.adamw(1e-3), 3) is None


def test_bad_step_kind_argument_is_refused():
  tx = jaxprune.magnitude(optax.sgd(0.1), sparsity=0.5, total_steps=10)
  params = helpers.mlp_params()
  state = tx.init(params)
  with pytest.raises(ValueError, match="`step_kind`"):
    tx.update(params, state, params, step_kind=(True, True))
  with pytest.raises(ValueError, match="`step`"):
    jaxprune.step_kind(tx, -1)


@pytest.mark.parametrize("offset", [1, 5])
def test_a_wrong_kind_is_detected(offset):
  tx = jaxprune.platon(optax.adamw(1e-2), delta_t=4, **KW)
  _, s, _ = _run(tx, hinted=True, offset=offset)
  assert bool(step_kinds.mismatch(s))
  with pytest.raises(jaxprune.StepKindError, match="count"):
    step_kinds.check(s)


def test_fit_raises_on_a_wrong_step_index():
  x, y = helpers.mlp_data(n=64)
  tx = jaxprune.platon(optax.adamw(1e-2), delta_t=4, **KW)
  params = helpers.mlp_params()
  loss = lambda p, b, r: (helpers.mlp_loss(p, b["x"], b["y"]), {})
  step = train.make_train_step(loss, tx)
  shifted = lambda p, o, b, r, s: step(p, o, b, r, s + 3)  # a buggy loop
  with pytest.raises(jaxprune.StepKindError):
    train.fit(shifted, params, tx.init(params), lambda s: {"x": x, "y": y},
              T, rng=jax.random.key(0), progress=False, log_every=5)


def test_step_kinds_false_runs_one_traced_program():
  x, y = helpers.mlp_data(n=64)
  tx = jaxprune.magnitude(optax.adamw(1e-2), **KW)
  loss = lambda p, b, r: (helpers.mlp_loss(p, b["x"], b["y"]), {})
  results = {}
  for flag in (True, False):
    params = helpers.mlp_params()
    state = tx.init(params)
    step = train.make_train_step(loss, tx, step_kinds=flag)
    for s in range(T):
      params, state, metrics = step(params, state, {"x": x, "y": y},
                                    jax.random.key(0), s)
    results[flag] = (params, state)
    assert ("kind_mismatch" in metrics) == flag
  _assert_same(results[True], results[False])
  assert step.step_kinds is None
  assert step.program(None)._cache_size() == 1   # compiled once for T steps
  with pytest.raises(ValueError, match="`step_kinds` must be True or False"):
    train.make_train_step(loss, tx, step_kinds="no")


def test_checkpoint_of_the_previous_state_layout_is_refused(tmp_path):
  """A PruneState saved before ``kind_mismatch`` existed does not restore."""
  tx = jaxprune.platon(optax.adamw(1e-2), delta_t=4, **KW)
  params = helpers.mlp_params()
  state = tx.init(params)
  old = {f: getattr(state, f) for f in state._fields if f != "kind_mismatch"}
  ckpt = train.Checkpointer(str(tmp_path))
  ckpt.save(3, {"params": params, "opt_state": old,
                "step": np.zeros((), np.int64)})
  with pytest.raises(ValueError, match="kind_mismatch"):
    ckpt.restore(3, {"params": params, "opt_state": state,
                     "step": np.zeros((), np.int64)})
  ckpt.close()


def _compiled_text(kind, search):
  x, y = helpers.mlp_data(n=64)
  tx = optax.chain(optax.clip_by_global_norm(1.0),
                   jaxprune.platon(optax.adamw(1e-2), delta_t=4, **KW))
  params = helpers.mlp_params()
  loss = lambda p, b, r: (helpers.mlp_loss(p, b["x"], b["y"]), {})
  step = train.make_train_step(loss, tx)
  with selection.search_mode(search):
    lowered = step.program(kind).lower(params, tx.init(params),
                                       {"x": x, "y": y}, jax.random.key(0), 0)
    return helpers.compiled_text(lowered)


@pytest.mark.parametrize("apply", [False, True])
@pytest.mark.parametrize("boundary", [False, True])
def test_ordinary_step_compiles_without_control_flow(apply, boundary):
  text = _compiled_text(jaxprune.StepKind(False, apply, boundary), "adaptive")
  assert " conditional(" not in text
  assert " while(" not in text


def test_fixed_selection_step_compiles_without_control_flow():
  text = _compiled_text(jaxprune.StepKind(True, True, True), "fixed")
  assert " conditional(" not in text
  assert " while(" not in text


def scenario_distributed(kind: str) -> None:
  """Hinted equals traced under pmap or sharded jit (8 fake devices)."""
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
  x, y = helpers.mlp_data(n=64)
  loss = lambda p, b, r: (helpers.mlp_loss(p, b["x"], b["y"]), {})
  results = []
  for use_kinds in (False, True):
    tx = jaxprune.platon(optax.adamw(1e-2), delta_t=4, **KW)
    params = helpers.mlp_params()
    state = tx.init(params)
    if kind == "pmap":
      step = train.make_pmap_train_step(loss, tx)
      rep = train.replicate
      params, state = rep(params), rep(state)
      batch = {"x": x.reshape(8, 8, 8), "y": y.reshape(8, 8)}
    else:
      mesh = Mesh(np.array(jax.devices()[:8]).reshape(4, 2),
                  ("data", "model"))
      p_sh = jax.tree.map(
          lambda a: NamedSharding(mesh, P(None, "model") if a.ndim == 2 and
                                  a.shape[1] % 2 == 0 else P()), params)
      o_sh = train.opt_state_shardings(tx, params, p_sh, mesh)
      b_sh = NamedSharding(mesh, P("data"))
      step = train.make_sharded_train_step(
          loss, tx, param_shardings=p_sh, opt_state_shardings=o_sh,
          batch_sharding=b_sh)
      params, state = jax.device_put(params, p_sh), jax.device_put(state, o_sh)
      batch = jax.device_put({"x": x, "y": y}, b_sh)
    for s in range(T):
      # A traced step index (a jax array) selects the traced program.
      index = s if use_kinds else jnp.int32(s)
      params, state, _ = step(params, state, batch, jax.random.key(0), index)
    assert step.step_kinds is not None
    results.append(jax.device_get((params, state)))
  _assert_same(results[1], results[0])
  assert not bool(np.any(step_kinds.mismatch(results[1][1])))


@pytest.mark.parametrize("kind", ["pmap", "sharded"])
def test_hinted_equals_traced_on_8_fake_devices(kind):
  helpers.run_scenario("tests.test_step_kinds", kind)


if __name__ == "__main__":
  import os
  import sys
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             " --xla_force_host_platform_device_count=8")
  scenario_distributed(sys.argv[1])
  print(f"scenario {sys.argv[1]} ok")
