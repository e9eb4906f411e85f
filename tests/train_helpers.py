"""Tiny BERT and ViT models (ours, as FunctionalModel) and batches for the train tests."""
import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxprune


def tiny_bert(dropout=0.1, seed=0):
  from jaxprune import models
  cfg = models.BertConfig(vocab_size=64, hidden_size=16, heads_per_layer=(2, 2),
                          head_dim=8, intermediate_sizes=(32, 32),
                          max_position_embeddings=16, num_labels=2,
                          hidden_dropout_prob=dropout,
                          attention_probs_dropout_prob=dropout)
  return models.FunctionalModel(
      models.build(cfg, "sequence_classification", seed=seed))


def tiny_vit(seed=0):
  from jaxprune import models
  cfg = models.ViTConfig(image_size=8, patch_size=4, num_channels=1,
                         hidden_size=16, heads_per_layer=(2, 2), head_dim=8,
                         intermediate_sizes=(32, 32), num_labels=3)
  return models.FunctionalModel(
      models.build(cfg, "image_classification", seed=seed))


def text_batches(n_steps, batch=8, seq=8, seed=0):
  rng = np.random.default_rng(seed)
  ids = rng.integers(1, 64, (n_steps, batch, seq)).astype(np.int32)
  labels = (ids[:, :, 0] > 32).astype(np.int32)
  return [{"input_ids": jnp.asarray(ids[s]),
           "attention_mask": jnp.ones((batch, seq), jnp.int32),
           "labels": jnp.asarray(labels[s])} for s in range(n_steps)]



def platon_tx(steps, where="bert"):
  return optax.chain(
      optax.clip_by_global_norm(1.0),
      jaxprune.platon(optax.adamw(1e-3), sparsity=0.8, total_steps=steps,
                      warmup_steps=2, final_steps=4, delta_t=2, where=where))
