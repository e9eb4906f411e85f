"""Dense-layer outputs and noisy gradients of Flax models, for DeepCuts.

Works without editing the model's code: the loss function is the ordinary
``loss_fn(params, batch, rng) -> (loss, aux)``. Linear layers are observed in
both Flax APIs at once: ``flax.linen.Dense`` through
``flax.linen.intercept_methods`` (linen models, the former Hugging Face Flax
ones) and the ``Linear`` layers of :mod:`jaxprune.models` (NNX, called
through :class:`~jaxprune.models.FunctionalModel`) through
:func:`jaxprune.models.layers.intercept_linear`.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxprune.models import layers as nnx_layers

__all__ = ["grads_and_activations", "noisy_mean_grads", "noisy_grads"]


def _is_dense_call(context) -> bool:
  return (isinstance(context.module, nn.Dense)
          and context.method_name == "__call__")


@contextlib.contextmanager
def _observe(fn: Callable[[tuple, Any], Any]):
  """``fn(path, dense_output) -> output`` on every linen ``Dense`` and every
  NNX ``Linear`` of :mod:`jaxprune.models` called inside the block."""

  def interceptor(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if _is_dense_call(context):
      out = fn(tuple(context.module.path), out)
    return out

  with nn.intercept_methods(interceptor), nnx_layers.intercept_linear(fn):
    yield


def grads_and_activations(loss_fn: Callable) -> Callable:
  """``fn(params, batch, rng) -> (grads, activations)``.

  ``activations`` maps each ``nn.Dense`` module's path (a tuple of names) to
  its output averaged over every axis but the last (signed), from the same
  forward pass as the gradient (dropout as ``loss_fn`` sets it).

  Example:
    >>> import jax, jax.numpy as jnp, flax.linen as nn
    >>> from jaxprune.train import capture
    >>> model = nn.Dense(2)
    >>> params = model.init(jax.random.key(0), jnp.ones((1, 3)))["params"]
    >>> loss = lambda p, b, r: (jnp.sum(model.apply({"params": p}, b)), {})
    >>> g, acts = capture.grads_and_activations(loss)(params, jnp.ones((4, 3)), None)
    >>> list(acts), acts[()].shape
    ([()], (2,))
  """

  def fn(params, batch, rng):
    def wrapped(p):
      acts = {}

      def record(path, out):
        acts[path] = jnp.mean(out.astype(jnp.float32),
                              axis=tuple(range(out.ndim - 1)))
        return out

      with _observe(record):
        loss, _ = loss_fn(p, batch, rng)
      return loss, acts

    grads, acts = jax.grad(wrapped, has_aux=True)(params)
    return grads, jax.lax.stop_gradient(acts)

  return fn


def noisy_mean_grads(loss_fn: Callable, *, sigma: float = 1e-3,
                     passes: int = 10) -> Callable:
  """``fn(params, batch, rng) -> grads`` averaged over noisy passes.

  Every ``nn.Dense`` output (the classifier's included) gets Gaussian noise
  of std ``sigma`` in each of ``passes`` forward/backward passes of the same
  batch (DeepCuts' Smooth-Cut: 1e-3, 10 passes); pass ``p`` uses the dropout
  key ``fold_in(rng, p)``.

  Example:
    >>> import jax, jax.numpy as jnp, flax.linen as nn
    >>> from jaxprune.train import capture
    >>> model = nn.Dense(1)
    >>> params = model.init(jax.random.key(0), jnp.ones((1, 2)))["params"]
    >>> loss = lambda p, b, r: (jnp.sum(model.apply({"params": p}, b)), {})
    >>> g = capture.noisy_mean_grads(loss)(params, jnp.ones((3, 2)), jax.random.key(1))
    >>> g["kernel"].ravel()  # linear loss: noise does not change the gradient
    Array([3., 3.], dtype=float32)
  """
  if not (isinstance(passes, int) and passes >= 1):
    raise ValueError(f"`passes` must be an integer >= 1, got {passes!r}")

  one_pass = noisy_grads(loss_fn, sigma=sigma)

  def fn(params, batch, rng):
    def add_pass(i, total):  # a loop, not unrolled: one pass is compiled
      g = one_pass(params, batch, jax.random.fold_in(rng, i))
      return jax.tree.map(jnp.add, total, g)
    total = jax.lax.fori_loop(0, passes, add_pass,
                              jax.tree.map(jnp.zeros_like, params))
    return jax.tree.map(lambda x: x / passes, total)

  return fn


def noisy_grads(loss_fn: Callable, *, sigma: float = 1e-3) -> Callable:
  """``fn(params, batch, rng) -> grads`` of one pass with Gaussian noise of
  std ``sigma`` on every ``nn.Dense`` output (``rng`` seeds dropout and the
  noise)."""
  if not sigma >= 0:
    raise ValueError(f"`sigma` must be >= 0, got {sigma}")

  def fn(params, batch, rng):
    counter = [0]

    def add_noise(path, out):
      del path
      counter[0] += 1
      key = jax.random.fold_in(jax.random.fold_in(rng, 1 << 20), counter[0])
      return out + (sigma * jax.random.normal(key, out.shape)).astype(
          out.dtype)

    def loss(p):
      with _observe(add_noise):
        return loss_fn(p, batch, rng)[0]

    return jax.grad(loss)(params)

  return fn
