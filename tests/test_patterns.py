"""Sparsity patterns (N:M, heads and neurons) against independent numpy code."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxprune
from jaxprune import patterns
from tests.train_helpers import tiny_bert, tiny_vit


def _one_step(params, pattern, sparsity, *, jit, granularity="global",
              where=None, scorer=None, schedule=None):
  tx = jaxprune.prune(optax.sgd(0.0), scorer or jaxprune.magnitude_scorer(),
                      schedule or jaxprune.schedules.constant(sparsity),
                      where=where, granularity=granularity, pattern=pattern)
  state = tx.init(params)
  update = jax.jit(tx.update) if jit else tx.update
  u, state = update(jax.tree.map(jnp.zeros_like, params), state, params)
  return optax.apply_updates(params, u), state


def _np_nm_keep(w, n, m, axis=-2):
  """Keep-mask: the n largest |w| of each m along `axis`, ties to the
  higher index kept (the lower index is pruned first)."""
  x = np.moveaxis(np.abs(np.asarray(w, np.float64)), axis, -1)
  blk = x.reshape(x.shape[:-1] + (x.shape[-1] // m, m))
  order = np.argsort(blk, axis=-1, kind="stable")
  rank = np.argsort(order, axis=-1, kind="stable")
  keep = (rank >= m - n).reshape(x.shape)
  return np.moveaxis(keep, -1, axis)


NM_CASES = [
    # (n, m, shape, integer-valued weights = many ties)
    (2, 4, (8, 6), False),
    (1, 4, (16, 3), False),
    (4, 8, (16, 5), False),
    (1, 2, (6, 4), True),
    (2, 4, (3, 3, 8, 2), False),  # a conv kernel (kh, kw, in, out)
    (1, 3, (9, 2), True),
]


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("n,m,shape,ties", NM_CASES)
def test_nm_masks_match_numpy(n, m, shape, ties, jit):
  rng = np.random.default_rng(n * 100 + m)
  w = rng.normal(size=shape).astype(np.float32)
  if ties:
    w = np.round(w).astype(np.float32) + 0.0
  params = {"w": jnp.asarray(w), "b": jnp.ones((shape[-1],))}
  out, state = _one_step(params, patterns.nm(n, m), 1 - n / m, jit=jit,
                         where=lambda p, x: True)
  keep = np.asarray(state.masks["w"])
  np.testing.assert_array_equal(keep, _np_nm_keep(w, n, m))
  # At most n nonzeros in every group of m along the input axis.
  nz = np.moveaxis(np.asarray(out["w"]) != 0, -2, -1)
  per_group = nz.reshape(nz.shape[:-1] + (-1, m)).sum(-1)
  assert per_group.max() <= n
  np.testing.assert_array_equal(np.asarray(out["w"]), np.where(keep, w, 0))
  # 1-D leaves stay dense under N:M.
  assert bool(jnp.all(state.masks["b"]))
  assert int(state.num_pruned[0]) == (m - n) * w.size // m


def test_nm_ramps_with_the_schedule():
  # cubic schedule to 0.75: at a mid-ramp event floor(4 * p) per group.
  w = jax.random.normal(jax.random.key(0), (16, 4))
  sched = jaxprune.schedules.cubic(0.75, 20, 2, 4, delta_t=2)
  tx = jaxprune.prune(optax.sgd(0.0), jaxprune.magnitude_scorer(), sched,
                      pattern="1:4")
  state = tx.init({"w": w})
  params = {"w": w}
  step = jax.jit(tx.update)
  seen = []
  for s in range(20):
    u, state = step({"w": jnp.zeros_like(w)}, state, params)
    params = optax.apply_updates(params, u)
    if bool(sched.is_event(s)):
      p = float(sched.sparsity(s))
      c = min(int(np.floor(4 * np.float32(p))), 3)
      nz = np.asarray(params["w"] != 0).reshape(4, 4, 4).sum(1)
      assert nz.max() <= 4 - c
      seen.append(c)
  assert seen[-1] == 3 and min(seen) < 3


@pytest.mark.parametrize("kwargs,msg", [
    (dict(pattern=patterns.nm(2, 4), sparsity=0.9), "must be 0.5"),
    (dict(pattern="2:4", sparsity=0.5, shape=(6, 4)), "multiple of 4"),
    (dict(pattern="3:2", sparsity=0.5), "`n` must be"),
    (dict(pattern="bogus", sparsity=0.5), "`pattern` must be"),
])
def test_pattern_errors(kwargs, msg):
  shape = kwargs.pop("shape", (8, 4))
  with pytest.raises(ValueError, match=msg):
    _one_step({"w": jnp.ones(shape)}, kwargs["pattern"], kwargs["sparsity"],
              jit=False)


# --- heads and neurons -------------------------------------------------------

def _np_units(params, preset, num_heads, aggregate):
  """Per (kind, layer) unit scores from |w|, written out leaf by leaf."""
  enc = params["bert" if preset == "bert" else "vit"]["encoder"]["layer"]
  out = {}
  for layer in sorted(enc, key=int):
    lp = jax.tree.map(lambda x: np.abs(np.asarray(x, np.float64)), enc[layer])
    att = lp["attention"]["self" if preset == "bert" else "attention"]
    o = lp["attention"]["output"]["dense"]["kernel"]
    hid = o.shape[1]
    d = o.shape[0] // num_heads
    head_parts = []
    for name in ("query", "key", "value"):
      head_parts.append(att[name]["kernel"].reshape(hid, num_heads, d)
                        .transpose(1, 0, 2).reshape(num_heads, -1))
      head_parts.append(att[name]["bias"].reshape(num_heads, d))
    head_parts.append(o.reshape(num_heads, -1))
    inter = lp["intermediate"]["dense"]
    neuron_parts = [inter["kernel"].T, inter["bias"][:, None],
                    lp["output"]["dense"]["kernel"]]
    for kind, parts in (("heads", head_parts), ("neurons", neuron_parts)):
      x = np.concatenate(parts, axis=1)
      agg = {"sum": x.sum(1), "mean": x.mean(1),
             "l2": np.sqrt((x * x).sum(1))}[aggregate]
      out[(kind, int(layer))] = agg
  return out


def _np_select(scores_list, k):
  flat = np.concatenate(scores_list)
  order = np.argsort(flat, kind="stable")
  pruned = np.zeros(flat.shape, bool)
  pruned[order[:k]] = True
  return np.split(~pruned, np.cumsum([len(s) for s in scores_list])[:-1])


@pytest.mark.parametrize("preset,aggregate,granularity,jit", [
    ("bert", "sum", "global", True), ("bert", "mean", "layer", True),
    ("bert", "l2", "global", True), ("vit", "sum", "layer", True),
    ("vit", "l2", "global", False),
])
def test_heads_and_neurons_match_numpy(preset, aggregate, granularity, jit):
  model = tiny_bert(seed=3) if preset == "bert" else tiny_vit(seed=3)
  params = model.params
  num_heads = model.config.num_attention_heads
  pat = patterns.heads_and_neurons(num_heads, preset=preset,
                                   aggregate=aggregate)
  out, state = _one_step(params, pat, 0.5, jit=jit, where=preset,
                         granularity=granularity)
  units = _np_units(params, preset, num_heads, aggregate)
  layers = sorted({layer for _, layer in units})
  expected = {}
  for kind in ("heads", "neurons"):
    if granularity == "global":
      lists = [units[(kind, l)] for l in layers]
      keeps = _np_select(lists, int(sum(len(x) for x in lists) * 0.5))
      expected.update({(kind, l): kp for l, kp in zip(layers, keeps)})
    else:
      for l in layers:
        expected[(kind, l)] = _np_select([units[(kind, l)]],
                                         int(len(units[(kind, l)]) * 0.5))[0]
  root = "bert" if preset == "bert" else "vit"
  enc = out[root]["encoder"]["layer"]
  for l in layers:
    lp = enc[str(l)]
    att = lp["attention"]["self" if preset == "bert" else "attention"]
    hk = expected[("heads", l)]
    nk = expected[("neurons", l)]
    d = lp["attention"]["output"]["dense"]["kernel"].shape[0] // num_heads
    col_keep = np.repeat(hk, d)
    for name in ("query", "key", "value"):
      k_ = np.asarray(att[name]["kernel"])
      assert np.all((k_[:, ~col_keep] == 0)) and np.all(k_[:, col_keep] != 0)
      assert np.all(np.asarray(att[name]["bias"])[~col_keep] == 0)
    o = np.asarray(lp["attention"]["output"]["dense"]["kernel"])
    assert np.all(o[~col_keep] == 0) and np.all(o[col_keep] != 0)
    ik = np.asarray(lp["intermediate"]["dense"]["kernel"])
    assert np.all(ik[:, ~nk] == 0) and np.all(ik[:, nk] != 0)
    ok = np.asarray(lp["output"]["dense"]["kernel"])
    assert np.all(ok[~nk] == 0) and np.all(ok[nk] != 0)
    # Output biases belong to no unit: untouched.
    np.testing.assert_array_equal(
        np.asarray(lp["output"]["dense"]["bias"]),
        np.asarray(params[root]["encoder"]["layer"][str(l)]["output"]
                   ["dense"]["bias"]))
  n_groups = 2 if granularity == "global" else 2 * len(layers)
  assert state.num_pruned.shape == (n_groups,)


@pytest.mark.parametrize("method", ["platon", "seven"])
def test_structured_factories_train(method):
  params = tiny_bert().params  # BERT's param tree; a cheap stand-in loss

  def loss_fn(p):
    return sum(jnp.sum(jnp.sin(3 * x) * x)
               for x in jax.tree_util.tree_leaves(p))

  pat = patterns.heads_and_neurons(2, preset="bert")
  factory = getattr(jaxprune, method)
  tx = factory(optax.adamw(1e-2), sparsity=0.5, total_steps=12,
               warmup_steps=2, where="bert", pattern=pat,
               **({"final_steps": 4, "delta_t": 2} if method == "platon"
                  else {"pruning_steps": 4}))
  state = tx.init(params)

  @jax.jit
  def step(p, s):
    g = jax.grad(loss_fn)(p)
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s

  for _ in range(12):
    params, state = step(params, state)
  enc = params["bert"]["encoder"]["layer"]
  heads_left = sum(int(np.any(np.asarray(
      enc[l]["attention"]["output"]["dense"]["kernel"]).reshape(2, -1) != 0,
      axis=1).sum()) for l in enc)
  neurons_left = sum(int(np.any(np.asarray(
      enc[l]["output"]["dense"]["kernel"]) != 0, axis=1).sum()) for l in enc)
  assert heads_left == 2 and neurons_left == 32
  assert state.num_pruned.tolist() == [2, 32]


def test_structured_needs_all_kernels():
  params = tiny_bert().params
  only_q = lambda p, x: "query" in jaxprune.where.path_str(p)
  with pytest.raises(ValueError, match="needs all 4"):
    _one_step(params, patterns.heads_and_neurons(2), 0.5, jit=False,
              where=only_q)
