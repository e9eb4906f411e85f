"""PINS self-regularisation loss against numpy; teacher refresh."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprune.train import selfreg


def numpy_loss(z, u, y, t):
  def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)
  c = z.shape[-1]
  p = softmax(z)
  alpha = 1 - (-(p * np.log(p)).sum(-1)) / np.log(c)
  kd = -t * t * (softmax(u / t) * np.log(softmax(z / t))).sum(-1)
  ce = -np.log(p[np.arange(len(y)), y])
  return np.mean(alpha * kd + (1 - alpha) * ce)


@pytest.mark.parametrize("classes,t", [(2, 2.0), (3, 2.0), (5, 1.0)])
def test_loss_matches_numpy(classes, t):
  rng = np.random.default_rng(classes)
  z = rng.standard_normal((7, classes)).astype(np.float32) * 2
  u = rng.standard_normal((7, classes)).astype(np.float32) * 2
  y = rng.integers(0, classes, 7)
  got = jax.jit(selfreg.self_regularization_loss, static_argnums=3)(z, u, y, t)
  np.testing.assert_allclose(float(got), numpy_loss(z, u, y, t), rtol=1e-5)


def test_gradient_treats_alpha_and_teacher_as_constants():
  rng = np.random.default_rng(0)
  z = rng.standard_normal((4, 3)).astype(np.float32)
  u = rng.standard_normal((4, 3)).astype(np.float32)
  y = rng.integers(0, 3, 4)
  t = 2.0

  def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)
  p = softmax(z)
  alpha = 1 - (-(p * np.log(p)).sum(-1)) / np.log(3)
  onehot = np.eye(3)[y]
  # d/dz of alpha*KD + (1-alpha)*CE with alpha fixed, divided by batch size:
  expect = (alpha[:, None] * t * (softmax(z / t) - softmax(u / t))
            + (1 - alpha[:, None]) * (p - onehot)) / len(y)
  gz, gu = jax.grad(selfreg.self_regularization_loss, argnums=(0, 1))(
      z, u, y, t)
  np.testing.assert_allclose(np.asarray(gz), expect, rtol=1e-4, atol=1e-7)
  np.testing.assert_array_equal(np.asarray(gu), 0)


def test_best_teacher_keeps_a_copy_of_the_best():
  teacher = selfreg.BestTeacher(lambda p, b: b["x"] @ p["w"],
                                {"w": jnp.eye(2)})
  assert teacher.observe({"w": 2 * jnp.eye(2)}, 0.7)
  p = {"w": 3 * jnp.eye(2)}
  assert not teacher.observe(p, 0.6)
  assert teacher.observe(p, 0.7 + 1e-6)
  np.testing.assert_array_equal(np.asarray(teacher.params["w"]), 3 * np.eye(2))
  assert teacher.params["w"] is not p["w"]          # a copy (steps donate)
  out = teacher.with_teacher_logits({"x": jnp.ones((1, 2)), "labels": 0})
  np.testing.assert_array_equal(np.asarray(out["teacher_logits"]), [[3, 3]])
  with pytest.raises(ValueError, match="temperature"):
    selfreg.self_regularization_loss(jnp.zeros((1, 2)), jnp.zeros((1, 2)),
                                     jnp.zeros(1, int), 0.0)
