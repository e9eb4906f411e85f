"""`where` presets on our BERT/RoBERTa/ViT params (plain and nnx.State) and former HF Flax trees."""
import jax
import jax.numpy as jnp
import pytest

import jaxprune
from jaxprune import where as where_lib


def selected_paths(params, where):
  flags = where_lib.resolve(where, params)
  return {where_lib.path_str(p) for (p, _), f in zip(
      jax.tree_util.tree_leaves_with_path(params), flags) if f}


_MODULES = ("attention/self/query", "attention/self/key",
            "attention/self/value", "attention/output/dense",
            "intermediate/dense", "output/dense")
_VIT_MODULES = ("attention/attention/query", "attention/attention/key",
                "attention/attention/value", "attention/output/dense",
                "intermediate/dense", "output/dense")


def _params(kind):
  """Params trees the presets must read: ours (plain and nnx.State), and a
  former HF Flax tree (the same nested dicts; built by HF 4.x Flax when that
  is installed, else literally)."""
  from flax import nnx
  from jaxprune import models
  if kind in ("ours_bert", "nnx_state", "ours_roberta"):
    cfg = models.BertConfig(
        model_type="roberta" if kind == "ours_roberta" else "bert",
        vocab_size=50, hidden_size=16, heads_per_layer=(2, 2), head_dim=8,
        intermediate_sizes=(32, 32), max_position_embeddings=18,
        num_labels=2)
    m = models.build(cfg, "sequence_classification")
    st = nnx.state(m, nnx.Param)
    return st if kind == "nnx_state" else st.to_pure_dict()
  if kind == "ours_vit":
    cfg = models.ViTConfig(image_size=8, patch_size=4, num_channels=1,
                           hidden_size=16, heads_per_layer=(2,), head_dim=8,
                           intermediate_sizes=(32,), num_labels=3)
    return nnx.state(models.build(cfg, "image_classification"),
                     nnx.Param).to_pure_dict()
  if kind == "hf_flax_bert":
    try:
      from transformers import BertConfig, FlaxBertForSequenceClassification
      cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2,
                       num_attention_heads=2, intermediate_size=32,
                       max_position_embeddings=16)
      return FlaxBertForSequenceClassification(cfg, seed=0).params
    except ImportError:  # transformers 5 has no Flax models
      lin = lambda i, o: {"kernel": jnp.ones((i, o)), "bias": jnp.ones(o)}
      ln = {"scale": jnp.ones(16), "bias": jnp.ones(16)}
      layer = {"attention": {"self": {q: lin(16, 16) for q in
                                      ("query", "key", "value")},
                             "output": {"dense": lin(16, 16),
                                        "LayerNorm": ln}},
               "intermediate": {"dense": lin(16, 32)},
               "output": {"dense": lin(32, 16), "LayerNorm": ln}}
      return {"bert": {"embeddings": {"word_embeddings": {
          "embedding": jnp.ones((50, 16))}, "LayerNorm": ln},
                       "encoder": {"layer": {"0": layer, "1": layer}},
                       "pooler": {"dense": lin(16, 16)}},
              "classifier": lin(16, 2)}
  raise ValueError(kind)


@pytest.mark.parametrize("kind,root", [
    ("ours_bert", "bert"), ("nnx_state", "bert"), ("ours_roberta", "roberta"),
    ("hf_flax_bert", "bert")])
def test_bert_preset_matches_reference_choice(kind, root):
  params = _params(kind)
  got = selected_paths(params, "bert")
  expected = {f"{root}/encoder/layer/{i}/{m}/{w}" for i in range(2)
              for m in _MODULES for w in ("kernel", "bias")}
  assert got == expected
  n = sum(x.size for p, x in jax.tree_util.tree_leaves_with_path(params)
          if where_lib.path_str(p) in got)
  per_layer = 3 * (16 * 16 + 16) + (16 * 16 + 16) + (16 * 32 + 32) + (32 * 16 + 16)
  assert n == 2 * per_layer


def test_vit_preset_includes_qkv_under_attention_attention():
  params = _params("ours_vit")
  got = selected_paths(params, "vit")
  assert got == {f"vit/encoder/layer/0/{m}/{w}" for m in _VIT_MODULES
                 for w in ("kernel", "bias")}
  # The BERT preset would silently miss ViT's Q/K/V: it matches only 3 modules.
  assert len(selected_paths(params, "bert")) == 6


def test_default_where_and_pytree_of_bools():
  params = {"w": jnp.ones((2, 3)), "b": jnp.ones(3), "n": jnp.ones((2, 2),
                                                                   jnp.int32)}
  assert selected_paths(params, None) == {"w"}
  assert selected_paths(params, {"w": False, "b": True, "n": False}) == {"b"}
  assert selected_paths(params, lambda p, x: x.ndim == 1) == {"b"}
