"""Bad input: a ValueError naming the argument and the allowed range."""
import jax
import jax.numpy as jnp
import optax
import pytest

import jaxprune
from tests import helpers

OPT = optax.sgd(0.1)
GOOD = dict(sparsity=0.9, total_steps=100)

FACTORY_CASES = [
    (dict(sparsity=1.0), "sparsity"),
    (dict(sparsity=-0.1), "sparsity"),
    (dict(sparsity=float("nan")), "sparsity"),
    (dict(sparsity="0.5"), "sparsity"),
    (dict(total_steps=0), "total_steps"),
    (dict(total_steps=10.5), "total_steps"),
    (dict(warmup_steps=-1), "warmup_steps"),
    (dict(final_steps=-3), "final_steps"),
    (dict(warmup_steps=50, final_steps=50), "warmup_steps + final_steps"),
    (dict(warmup_steps=100, final_steps=0), "warmup_steps + final_steps"),
    (dict(beta1=1.0), "beta1"),
    (dict(beta1=-0.5), "beta1"),
    (dict(beta2=1.5), "beta2"),
    (dict(delta_t=0), "delta_t"),
    (dict(granularity="row"), "granularity"),
]


@pytest.mark.parametrize("kwargs,name", FACTORY_CASES)
def test_platon_factory_rejects(kwargs, name):
  with pytest.raises(ValueError, match=name.replace("+", r"\+")):
    jaxprune.platon(OPT, **{**GOOD, **kwargs})


@pytest.mark.parametrize("factory", [jaxprune.magnitude, jaxprune.taylor])
def test_other_factories_reject_bad_sparsity(factory):
  with pytest.raises(ValueError, match=r"`sparsity` must be in \[0, 1\)"):
    factory(OPT, sparsity=1.2, total_steps=10)


def test_taylor_rejects_bad_beta():
  with pytest.raises(ValueError, match="beta"):
    jaxprune.taylor(OPT, sparsity=0.5, total_steps=10, beta=1.0)


def test_init_rejects_none_params():
  with pytest.raises(ValueError, match="params"):
    jaxprune.platon(OPT, **GOOD).init(None)


def test_where_selecting_nothing():
  params = {"b": jnp.ones(3)}
  with pytest.raises(ValueError, match="selects no leaf"):
    jaxprune.platon(OPT, **GOOD).init(params)
  with pytest.raises(ValueError, match="selects no leaf"):
    jaxprune.platon(OPT, where="bert", **GOOD).init(helpers.mlp_params())


def test_where_selecting_integer_leaf():
  params = {"w": jnp.ones((2, 2)), "ids": jnp.ones((2, 2), jnp.int32)}
  with pytest.raises(ValueError, match="non-floating leaf 'ids'"):
    jaxprune.platon(OPT, where=lambda p, x: True, **GOOD).init(params)


def test_where_bad_preset_and_bad_tree():
  with pytest.raises(ValueError, match="preset"):
    jaxprune.platon(OPT, where="gpt", **GOOD).init(helpers.mlp_params())
  with pytest.raises(ValueError, match="structure"):
    jaxprune.platon(OPT, where={"x": True}, **GOOD).init(helpers.mlp_params())


def test_non_finite_initial_params():
  params = {"w": jnp.array([[1.0, jnp.nan]])}
  with pytest.raises(ValueError, match="NaN or inf"):
    jaxprune.platon(OPT, **GOOD).init(params)


def test_update_checks_params_grads_and_state():
  params = helpers.mlp_params()
  tx = jaxprune.platon(OPT, **GOOD)
  state = tx.init(params)
  grads = jax.tree.map(jnp.ones_like, params)
  with pytest.raises(ValueError, match="`params` must be passed"):
    tx.update(grads, state)
  bad = dict(grads)
  del bad["head"]
  with pytest.raises(ValueError, match="same tree structure"):
    tx.update(bad, state, params)
  wrong_shape = jax.tree.map(lambda g: g, grads)
  wrong_shape["head"]["kernel"] = jnp.ones((3, 32))
  with pytest.raises(ValueError, match="shapes must match"):
    tx.update(wrong_shape, state, params)
  other = jaxprune.platon(OPT, where=lambda p, x: x.shape == (8, 32), **GOOD)
  with pytest.raises(ValueError, match="another `where`"):
    other.update(grads, state, params)
