"""`where` presets on real Hugging Face Flax BERT and ViT parameter trees."""
import jax
import jax.numpy as jnp
import pytest

import jaxprune
from jaxprune import where as where_lib


def selected_paths(params, where):
  flags = where_lib.resolve(where, params)
  return {where_lib.path_str(p) for (p, _), f in zip(
      jax.tree_util.tree_leaves_with_path(params), flags) if f}


def test_bert_preset_matches_reference_choice():
  from transformers import BertConfig, FlaxBertForSequenceClassification
  cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2,
                   num_attention_heads=2, intermediate_size=32,
                   max_position_embeddings=16)
  params = FlaxBertForSequenceClassification(cfg, seed=0).params
  got = selected_paths(params, "bert")
  expected = {
      f"bert/encoder/layer/{i}/{m}/{w}"
      for i in range(2)
      for m in ("attention/self/query", "attention/self/key",
                "attention/self/value", "attention/output/dense",
                "intermediate/dense", "output/dense")
      for w in ("kernel", "bias")}
  assert got == expected
  n = sum(x.size for p, x in jax.tree_util.tree_leaves_with_path(params)
          if where_lib.path_str(p) in got)
  per_layer = 3 * (16 * 16 + 16) + (16 * 16 + 16) + (16 * 32 + 32) + (32 * 16 + 16)
  assert n == 2 * per_layer


def test_vit_preset_includes_qkv_under_attention_attention():
  from transformers import ViTConfig, FlaxViTForImageClassification
  cfg = ViTConfig(image_size=8, patch_size=4, num_channels=1, hidden_size=16,
                  num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=32, num_labels=3)
  params = FlaxViTForImageClassification(cfg, seed=0).params
  got = selected_paths(params, "vit")
  assert got == {
      f"vit/encoder/layer/0/{m}/{w}"
      for m in ("attention/attention/query", "attention/attention/key",
                "attention/attention/value", "attention/output/dense",
                "intermediate/dense", "output/dense")
      for w in ("kernel", "bias")}
  # The BERT preset would silently miss ViT's Q/K/V: it matches only 3 modules.
  assert len(selected_paths(params, "bert")) == 6


def test_default_where_and_pytree_of_bools():
  params = {"w": jnp.ones((2, 3)), "b": jnp.ones(3), "n": jnp.ones((2, 2),
                                                                   jnp.int32)}
  assert selected_paths(params, None) == {"w"}
  assert selected_paths(params, {"w": False, "b": True, "n": False}) == {"b"}
  assert selected_paths(params, lambda p, x: x.ndim == 1) == {"b"}
