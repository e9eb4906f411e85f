"""Knowledge distillation: the losses and their gradients against numpy, a
jitted train step with a frozen teacher (unchanged, not donated, swappable
without recompiling, invisible to the pruner, composed with top-k movement),
and the pmap and sharded steps on 8 fake CPU devices."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxprune
from jaxprune import train
from jaxprune.methods import soft_movement as sm_lib
from jaxprune.train import distill
from tests import helpers


def np_log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


@pytest.mark.parametrize("temperature,alpha", [(2.0, 0.5), (1.0, 0.9),
                                               (4.0, 0.0), (3.0, 1.0)])
def test_classification_loss_and_gradient_match_numpy(temperature, alpha):
  rng = np.random.default_rng(0)
  z = rng.standard_normal((5, 4)) * 2
  u = rng.standard_normal((5, 4)) * 3
  y = rng.integers(0, 4, 5)
  onehot = np.eye(4)[y]
  log_p = np_log_softmax(u / temperature)
  log_q = np_log_softmax(z / temperature)
  kl = (np.exp(log_p) * (log_p - log_q)).sum(-1)
  ce = -(onehot * np_log_softmax(z)).sum(-1)
  want = (1 - alpha) * ce.mean() + alpha * temperature ** 2 * kl.mean()
  # d/dz: (1-a)(softmax(z) - y)/B + a T (softmax(z/T) - softmax(u/T))/B
  want_grad = ((1 - alpha) * (np.exp(np_log_softmax(z)) - onehot)
               + alpha * temperature * (np.exp(log_q) - np.exp(log_p))) / 5
  fn = jax.jit(lambda a, b: distill.distillation_loss(
      a, b, jnp.asarray(y), temperature=temperature, alpha=alpha))
  zj, uj = jnp.asarray(z, jnp.float32), jnp.asarray(u, jnp.float32)
  np.testing.assert_allclose(float(fn(zj, uj)), want, rtol=1e-5)
  gz, gu = jax.grad(fn, argnums=(0, 1))(zj, uj)
  np.testing.assert_allclose(np.asarray(gz), want_grad, rtol=1e-4, atol=1e-6)
  np.testing.assert_array_equal(np.asarray(gu), 0.0)   # no teacher gradient


@pytest.mark.parametrize("alpha", [0.5, 0.2, 1.0])
def test_regression_loss_and_gradient_match_numpy(alpha):
  rng = np.random.default_rng(1)
  z, u, y = (rng.standard_normal(6) for _ in range(3))
  want = (1 - alpha) * np.mean((z - y) ** 2) + alpha * np.mean((z - u) ** 2)
  want_grad = ((1 - alpha) * 2 * (z - y) + alpha * 2 * (z - u)) / 6
  fn = lambda a, b: distill.regression_distillation_loss(
      a, b, jnp.asarray(y, jnp.float32), alpha=alpha)
  zj, uj = jnp.asarray(z, jnp.float32), jnp.asarray(u, jnp.float32)
  np.testing.assert_allclose(float(fn(zj, uj)), want, rtol=1e-5)
  gz, gu = jax.grad(fn, argnums=(0, 1))(zj, uj)
  np.testing.assert_allclose(np.asarray(gz), want_grad, rtol=1e-5, atol=1e-7)
  np.testing.assert_array_equal(np.asarray(gu), 0.0)


def test_bad_arguments():
  z = jnp.zeros((2, 3))
  with pytest.raises(ValueError, match="temperature"):
    distill.distillation_loss(z, z, jnp.zeros(2, jnp.int32), temperature=0.0)
  with pytest.raises(ValueError, match="alpha"):
    distill.with_teacher(lambda *a: z, lambda *a: z, alpha=1.5)
  with pytest.raises(ValueError, match="same shape"):
    distill.distillation_loss(z, jnp.zeros((2, 4)), None, alpha=1.0)
  with pytest.raises(ValueError, match="labels"):
    distill.distillation_loss(z, z, None, alpha=0.5)
  tx = optax.sgd(0.1)
  with pytest.raises(ValueError, match="empty"):
    train.make_train_step(lambda *a: (0.0, {}), tx, frozen={})
  with pytest.raises(ValueError, match="arrays only"):
    train.make_train_step(lambda *a: (0.0, {}), tx, frozen={"w": "x"})
  assert not hasattr(train.make_train_step(lambda *a: (0.0, {}), tx),
                     "set_frozen")


# A linear student and a small nonlinear teacher of another shape.
def student_logits(p, batch, rng):
  del rng
  return batch["x"] @ p["w"] + p["b"]


def teacher_logits(t, batch):
  return jnp.tanh(batch["x"] @ t["w1"]) @ t["w2"]


def problem(n=16, seed=0):
  rng = np.random.default_rng(seed)
  params = {"w": rng.standard_normal((3, 4)).astype(np.float32),
            "b": np.zeros(4, np.float32)}
  teacher = {"w1": rng.standard_normal((3, 8)).astype(np.float32),
             "w2": rng.standard_normal((8, 4)).astype(np.float32) * 2}
  x = rng.standard_normal((n, 3)).astype(np.float32)
  y = rng.integers(0, 4, n).astype(np.int32)
  return params, teacher, {"x": x, "labels": y}


def make_tx(steps=4):
  return jaxprune.magnitude(optax.sgd(0.1), sparsity=0.5, total_steps=steps,
                            warmup_steps=1, final_steps=1, delta_t=1)


def numpy_loss(params, teacher, batch, temperature=2.0, alpha=0.5):
  z = batch["x"] @ params["w"] + params["b"]
  u = np.tanh(batch["x"] @ teacher["w1"]) @ teacher["w2"]
  log_p = np_log_softmax(u / temperature)
  kl = (np.exp(log_p) * (log_p - np_log_softmax(z / temperature))).sum(-1)
  ce = -np_log_softmax(z)[np.arange(len(z)), batch["labels"]]
  return (1 - alpha) * ce.mean() + alpha * temperature ** 2 * kl.mean()


def run_single(steps=4):
  params, teacher, batch = problem()
  loss_fn = distill.with_teacher(student_logits, teacher_logits)
  tx = make_tx(steps)
  step = train.make_train_step(loss_fn, tx, frozen=teacher)
  p, state = jax.tree.map(jnp.asarray, params), tx.init(params)
  losses = []
  for s in range(steps):
    p, state, m = step(p, state, batch, jax.random.key(0), s)
    losses.append(float(m["loss"]))
  return jax.device_get(p), losses


def test_jitted_step_with_a_frozen_teacher():
  params, teacher, batch = problem()
  teacher_copy = jax.tree.map(np.copy, teacher)
  loss_fn = distill.with_teacher(student_logits, teacher_logits)
  tx = make_tx()
  teacher_dev = jax.tree.map(jnp.asarray, teacher)
  step = train.make_train_step(loss_fn, tx, frozen=teacher_dev)
  p, state = jax.tree.map(jnp.asarray, params), tx.init(params)
  # The pruner sees the student only.
  assert sorted(state.masks) == ["b", "w"]
  p, state, m = step(p, state, batch, jax.random.key(0), 0)
  np.testing.assert_allclose(float(m["loss"]),
                             numpy_loss(params, teacher, batch), rtol=1e-5)
  assert float(m["distill"]) > 0.1 and float(m["ce"]) > 0
  for s in range(1, 4):
    p, state, m = step(p, state, batch, jax.random.key(0), s)
  assert int((np.asarray(p["w"]) == 0).sum()) == 6             # pruned
  for k in teacher:                # bitwise unchanged, and not donated
    np.testing.assert_array_equal(np.asarray(step.frozen[k]), teacher_copy[k])
    np.testing.assert_array_equal(np.asarray(teacher_dev[k]), teacher_copy[k])
  # Swapping the teacher changes the loss without recompiling: it is an
  # argument of the compiled program, not a constant.
  kind = step.step_kinds(3)
  before = step.program(kind)._cache_size()
  other = jax.tree.map(lambda x: x * 0.0, teacher)    # uniform soft labels
  step.set_frozen(other)
  p2, _, m2 = step(jax.tree.map(jnp.array, p), jax.tree.map(jnp.array, state),
                   batch, jax.random.key(0), 3)
  step.set_frozen(teacher)
  _, _, m3 = step(jax.tree.map(jnp.array, p), jax.tree.map(jnp.array, state),
                  batch, jax.random.key(0), 3)
  assert step.program(kind)._cache_size() == before
  assert abs(float(m2["distill"]) - float(m3["distill"])) > 1e-3
  np.testing.assert_allclose(float(m3["loss"]),
                             numpy_loss(jax.device_get(p), teacher, batch),
                             rtol=1e-5)


def test_self_distillation_teacher_survives_donation():
  """The teacher is a copy: the student's own arrays can be the teacher even
  though the step donates (deletes) them."""
  params, _, batch = problem()
  p = jax.tree.map(jnp.asarray, params)
  loss_fn = distill.with_teacher(student_logits, student_logits_eval)
  step = train.make_train_step(loss_fn, optax.sgd(0.1), frozen=p)
  state = optax.sgd(0.1).init(p)
  p2, state, m = step(p, state, batch, jax.random.key(0), 0)
  assert float(m["distill"]) == pytest.approx(0.0, abs=1e-6)
  p2, state, m = step(p2, state, batch, jax.random.key(0), 1)
  for k in params:
    np.testing.assert_array_equal(np.asarray(step.frozen[k]), params[k])
  assert float(m["distill"]) > 0


def student_logits_eval(p, batch):
  return student_logits(p, batch, None)


def test_topk_movement_with_a_teacher():
  params, teacher, batch = problem()
  tm = jaxprune.topk_movement(sparsity=0.5, total_steps=4, warmup_steps=0,
                              final_steps=1, where=None)
  loss_fn = tm.wrap_loss(distill.with_teacher(student_logits, teacher_logits))
  tx = sm_lib.optimizer(optax.sgd(0.1))
  trainable = {"params": jax.tree.map(jnp.asarray, params),
               "scores": tm.init(params)}
  state = tx.init(trainable)
  step = train.make_train_step(loss_fn, tx, frozen=teacher)
  trainable, state, m = step(trainable, state, {**batch, "step": 0},
                             jax.random.key(0), 0)
  np.testing.assert_allclose(float(m["loss"]),
                             numpy_loss(params, teacher, batch), rtol=1e-5)
  assert "scores" not in jax.tree.structure(step.frozen).__repr__()


@pytest.mark.parametrize("kind", ["pmap", "sharded"])
def test_teacher_on_8_fake_devices(kind):
  helpers.run_scenario("tests.test_distill", kind)


def scenario(kind):
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
  assert jax.device_count() == 8
  ref_p, ref_losses = run_single()
  params, teacher, batch = problem()
  teacher_copy = jax.tree.map(np.copy, teacher)
  loss_fn = distill.with_teacher(student_logits, teacher_logits)
  tx = make_tx()
  if kind == "pmap":
    step = train.make_pmap_train_step(loss_fn, tx, frozen=teacher)
    rep = train.replicate
    p, state = rep(params), rep(tx.init(params))
    b = jax.tree.map(lambda a: a.reshape((8, -1) + a.shape[1:]), batch)
    frozen_out = lambda: jax.tree.map(lambda a: np.asarray(a)[3],
                                      step.frozen)
  else:
    mesh = Mesh(np.array(jax.devices()), ("data",))
    rep = NamedSharding(mesh, P())
    p_sh = jax.tree.map(lambda _: rep, params)
    step = train.make_sharded_train_step(
        loss_fn, tx, param_shardings=p_sh,
        opt_state_shardings=train.opt_state_shardings(tx, params, p_sh, mesh),
        batch_sharding=NamedSharding(mesh, P("data")), frozen=teacher,
        frozen_shardings={"w1": NamedSharding(mesh, P(None, "data")),
                          "w2": NamedSharding(mesh, P("data", None))})
    assert step.frozen["w1"].sharding.spec == P(None, "data")
    p = jax.device_put(params, p_sh)
    state = jax.device_put(tx.init(params), train.opt_state_shardings(
        tx, params, p_sh, mesh))
    b = batch
    frozen_out = lambda: jax.device_get(step.frozen)
  losses = []
  for s in range(4):
    p, state, m = step(p, state, b, jax.random.key(0), s)
    losses.append(float(np.asarray(m["loss"]).ravel()[0]))
  got = jax.tree.map(lambda a: np.asarray(a)[0] if kind == "pmap"
                     else np.asarray(a), p)
  for k in ref_p:
    np.testing.assert_allclose(got[k], ref_p[k], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
  for k, v in frozen_out().items():
    np.testing.assert_array_equal(v, teacher_copy[k])


if __name__ == "__main__":
  import os
  import sys
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             " --xla_force_host_platform_device_count=8")
  scenario(sys.argv[1])
  print(f"scenario {sys.argv[1]} ok")
