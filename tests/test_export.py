"""Export: exact zeros, compressed files, shrunk BERT/ViT (our models), BCOO inference."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxprune
from jaxprune import export, patterns, shrink
from tests.train_helpers import tiny_bert, tiny_vit


def _model(arch, seed=1):
  """A tiny model with weights well away from the 0.02-std init, so that
  pruning visibly changes its logits."""
  m = tiny_bert(dropout=0.0, seed=seed) if arch == "bert" else tiny_vit(
      seed=seed)
  leaves, tdef = jax.tree_util.tree_flatten(m.params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return m.with_params(tdef.unflatten(
      [x + 0.2 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]))


def _inputs(arch):
  rng = np.random.default_rng(0)
  if arch == "bert":
    ids = jnp.asarray(rng.integers(1, 64, (3, 8)), jnp.int32)
    return (ids,), {"attention_mask": jnp.ones_like(ids).at[0, 5:].set(0)}
  return (jnp.asarray(rng.random((3, 1, 8, 8)), jnp.float32),), {}


def _prune_once(params, where, pattern, sparsity, granularity="global"):
  tx = optax.chain(
      optax.identity(),
      jaxprune.prune(optax.sgd(0.0), jaxprune.magnitude_scorer(),
                     jaxprune.schedules.constant(sparsity), where=where,
                     granularity=granularity, pattern=pattern))
  state = tx.init(params)
  u, state = jax.jit(tx.update)(jax.tree.map(jnp.zeros_like, params), state,
                                params)
  return optax.apply_updates(params, u), state


def _kill(params, arch, layer, heads=(), neurons=()):
  """Zeroes attention-output rows of `heads` / FFN-output rows of `neurons`."""
  p = jax.tree.map(np.array, params)
  lp = p[arch]["encoder"]["layer"][str(layer)]
  o = lp["attention"]["output"]["dense"]["kernel"]
  d = o.shape[0] // 2
  for h in heads:
    o[h * d:(h + 1) * d] = 0
  for n in neurons:
    lp["output"]["dense"]["kernel"][n] = 0
  return jax.tree.map(jnp.asarray, p)


@pytest.mark.parametrize("arch,granularity,kill", [
    ("bert", "layer", None),
    ("bert", "global", None),
    ("vit", "layer", None),
    ("bert", "manual", (0, (0, 1), tuple(range(32)))),  # no heads, no FFN
    ("vit", "manual", (1, (0, 1), (3, 7))),
])
def test_shrunk_model_matches_masked_logits(arch, granularity, kill,
                                            tmp_path):
  model = _model(arch)
  if kill is None:
    masked, state = _prune_once(
        model.params, arch, patterns.heads_and_neurons(2, preset=arch), 0.5,
        granularity)
    masked = export.apply_masks(model.params, state)
    small_from_state = shrink.shrink(model, model.params, state)
    assert small_from_state.heads_per_layer == shrink.shrink(
        model, masked).heads_per_layer
  else:
    masked = _kill(model.params, arch, *kill)
  small = shrink.shrink(model, masked)
  args, kw = _inputs(arch)
  want = np.asarray(model(*args, params=masked, **kw).logits)
  dense = np.asarray(model(*args, **kw).logits)
  got = np.asarray(small(*args, **kw).logits)
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
  assert np.abs(want - dense).max() > 1e-4  # pruning did change the model
  full = sum(np.size(x) for x in jax.tree_util.tree_leaves(model.params))
  assert small.num_params() < full
  if kill is None:
    assert sum(small.heads_per_layer) == 2
    assert sum(small.intermediate_sizes) == 32
  else:
    layer, heads, neurons = kill
    assert small.heads_per_layer[layer] == 2 - len(heads)
    assert small.intermediate_sizes[layer] == 32 - len(neurons)
  small.save_pretrained(str(tmp_path / "m"))
  again = shrink.ShrunkModel.from_pretrained(str(tmp_path / "m"))
  assert again.heads_per_layer == small.heads_per_layer
  np.testing.assert_array_equal(np.asarray(again(*args, **kw).logits), got)


def test_neurons_only_equal_sizes_is_a_hugging_face_model(tmp_path):
  from jaxprune import models
  model = _model("bert")
  _, state = _prune_once(
      model.params, "bert",
      patterns.heads_and_neurons(2, preset="bert", heads=False), 0.25,
      "layer")
  masked = export.apply_masks(model.params, state)
  small = shrink.shrink(model, masked)
  assert small.intermediate_sizes == (24, 24)
  assert small.config.hf_expressible()
  small.save_pretrained(str(tmp_path / "hf"))
  assert not (tmp_path / "hf" / "jaxprune_config.json").exists()
  back = models.from_pretrained(str(tmp_path / "hf"))
  assert back.config.intermediate_size == 24
  args, kw = _inputs("bert")
  np.testing.assert_allclose(np.asarray(back(*args, **kw).logits),
                             np.asarray(model(*args, params=masked,
                                              **kw).logits), atol=1e-5)
  uneven = shrink.shrink(model, _kill(masked, "bert", 0, heads=(1,)))
  assert not uneven.config.hf_expressible()
  with pytest.warns(UserWarning, match="per-layer"):
    uneven.save_pretrained(str(tmp_path / "uneven"))
  assert (tmp_path / "uneven" / "jaxprune_config.json").exists()
  padded = models.from_pretrained(str(tmp_path / "uneven"))
  assert padded.config.heads_per_layer == (2, 2)  # zero-padded for HF
  np.testing.assert_allclose(np.asarray(padded(*args, **kw).logits),
                             np.asarray(uneven(*args, **kw).logits),
                             atol=1e-6)


@pytest.mark.parametrize("pattern,sparsity,use_state", [
    ("unstructured", 0.9, True),
    ("2:4", 0.5, True),
    ("unstructured", 0.9, False),  # masks inferred from zeros
])
def test_compressed_round_trip(pattern, sparsity, use_state, tmp_path):
  model = _model("bert")
  masked, state = _prune_once(model.params, "bert", pattern, sparsity)
  path = str(tmp_path / "c.safetensors")
  rep = export.save_compressed(path, masked, state if use_state else None)
  loaded, masks = export.load_compressed(path, like=masked)
  for a, b in zip(jax.tree_util.tree_leaves(masked),
                  jax.tree_util.tree_leaves(loaded)):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(np.asarray(a), b)
  if use_state:
    want = export.masks_of(state, masked)
    for w, m in zip(jax.tree_util.tree_leaves(want, is_leaf=lambda x: x is None),
                    jax.tree_util.tree_leaves(masks,
                                              is_leaf=lambda x: x is None)):
      assert (w is None) == (m is None)
      if w is not None:
        np.testing.assert_array_equal(np.asarray(w), m)
  assert rep.file_bytes == os.path.getsize(path)
  full = export.size_report(masked, state if use_state else None,
                            str(tmp_path / "sizes"))
  assert full.file_bytes < full.dense_bytes
  nested, _ = export.load_compressed(path)
  np.testing.assert_array_equal(
      nested["bert"]["encoder"]["layer"]["1"]["output"]["dense"]["kernel"],
      np.asarray(masked["bert"]["encoder"]["layer"]["1"]["output"]["dense"]
                 ["kernel"]))


def test_apply_masks_matches_numpy():
  params = {"a": jnp.array([[1.0, -2.0], [3.0, -4.0]]), "b": jnp.ones(3)}
  masks = {"a": jnp.array([[True, False], [False, True]]), "b": None}
  out = export.apply_masks(params, masks)
  np.testing.assert_array_equal(np.asarray(out["a"]),
                                np.array([[1.0, 0.0], [0.0, -4.0]]))
  assert not np.any(np.signbit(np.asarray(out["a"])[[0, 1], [1, 0]]))
  np.testing.assert_array_equal(np.asarray(out["b"]), np.ones(3))


def test_bcoo_inference_matches_masked_dense():
  model = _model("bert")
  masked, state = _prune_once(model.params, "bert", None, 0.9)
  sp = export.to_bcoo(masked, state, min_sparsity=0.5)
  n_sparse = sum(type(x).__name__ == "BCOO" for x in jax.tree_util.tree_leaves(
      sp, is_leaf=lambda x: type(x).__name__ == "BCOO"))
  assert n_sparse == 12  # 6 kernels in each of 2 layers
  ids = jnp.asarray(np.random.default_rng(1).integers(1, 64, (2, 8)),
                    jnp.int32)
  args = (ids, jnp.ones_like(ids), jnp.zeros_like(ids),
          jnp.broadcast_to(jnp.arange(8), ids.shape), None)

  def apply(p, *a):
    return model(*a[:3], position_ids=a[3], params=p).logits

  got = jax.jit(export.sparse_apply(apply))(sp, *args)
  want = apply(masked, *args)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)
