"""Small models and trees shared by the tests."""
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


def prunable(tree):
  """Default `where`: float leaves with ndim >= 2."""
  return [x for x in jax.tree.leaves(tree) if x.ndim >= 2]
