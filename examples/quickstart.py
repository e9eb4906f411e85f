"""Small end-to-end example: PLATON to 90% sparsity on a toy classifier.

Trains a 2-layer MLP on synthetic data twice for the same budget, dense and
with ``jaxprune.platon``, and prints the accuracies and the sparsity per
layer. Runs in well under a minute on a CPU::

    python examples/quickstart.py --steps 600 --sparsity 0.9
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxprune


def make_data(n, seed):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((n, 32)).astype(np.float32)
  w = np.random.default_rng(0).standard_normal((32, 10)).astype(np.float32)
  y = np.argmax(x @ w + 0.5 * rng.standard_normal((n, 10)), axis=1)
  return jnp.asarray(x), jnp.asarray(y)


def init_params(key):
  k1, k2, k3 = jax.random.split(key, 3)
  return {"hidden": {"kernel": jax.random.normal(k1, (32, 256)) / 32**0.5,
                     "bias": jnp.zeros(256)},
          "hidden2": {"kernel": jax.random.normal(k2, (256, 256)) / 16.0,
                      "bias": jnp.zeros(256)},
          "out": {"kernel": jax.random.normal(k3, (256, 10)) / 16.0,
                  "bias": jnp.zeros(10)}}


def apply(params, x):
  h = jax.nn.relu(x @ params["hidden"]["kernel"] + params["hidden"]["bias"])
  h = jax.nn.relu(h @ params["hidden2"]["kernel"] + params["hidden2"]["bias"])
  return h @ params["out"]["kernel"] + params["out"]["bias"]


def loss_fn(params, x, y):
  logits = apply(params, x)
  return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def train(tx, steps, data, batch=128):
  x, y = data
  params = init_params(jax.random.key(0))
  state = tx.init(params)

  @jax.jit
  def step(params, state, xb, yb):
    loss, grads = jax.value_and_grad(loss_fn)(params, xb, yb)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state, loss

  rng = np.random.default_rng(1)
  for _ in range(steps):
    idx = rng.integers(0, x.shape[0], batch)
    params, state, loss = step(params, state, x[idx], y[idx])
  return params, float(loss)


def accuracy(params, data):
  x, y = data
  return float(jnp.mean(jnp.argmax(apply(params, x), -1) == y))


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--steps", type=int, default=600)
  ap.add_argument("--sparsity", type=float, default=0.9)
  args = ap.parse_args()
  train_data, test_data = make_data(8192, 1), make_data(2048, 2)
  # Prune the two hidden kernels; keep the output layer and biases dense.
  where = lambda path, leaf: leaf.ndim == 2 and "out" not in jaxprune.where.path_str(path)
  t0 = time.time()
  dense, _ = train(optax.adamw(3e-3), args.steps, train_data)
  tx = jaxprune.platon(optax.adamw(3e-3), sparsity=args.sparsity,
                       total_steps=args.steps, where=where)
  pruned, loss = train(tx, args.steps, train_data)
  print(f"dense test accuracy:  {accuracy(dense, test_data):.4f}")
  print(f"PLATON test accuracy: {accuracy(pruned, test_data):.4f} "
        f"(final train loss {loss:.3f})")
  print(f"sparsity of the pruned kernels: "
        f"{jaxprune.actual_sparsity(pruned, where):.4f} "
        f"(target {args.sparsity})")
  for name, frac in jaxprune.sparsity_report(pruned, where).items():
    print(f"  {name:24s} {frac:.4f}")
  print(f"wall time: {time.time() - t0:.1f} s")


if __name__ == "__main__":
  main()
