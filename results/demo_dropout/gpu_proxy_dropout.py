"""Deviceless H100 compile of a BERT-base train step (8 x 128, AdamW) with
dropout on: attention dropout shared by batch and heads vs per element.

Run from the repo root after ``make gpu-proxy`` built ``.venv-proxy``::

    .venv-proxy/bin/python results/demo_dropout/gpu_proxy_dropout.py 12
"""
import json
import os
import sys
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import jax, jax.numpy as jnp, optax
from flax import nnx
import gpu_proxy as gp, hlo_stats
from jaxprune import models

layers, batch, seq = int(sys.argv[1]), 8, 128
sh = gp.target_sharding()
out = {}
for shared in (True, False):
  config = models.BertConfig(vocab_size=gp.VOCAB, hidden_size=gp.HIDDEN,
      heads_per_layer=(12,) * layers, head_dim=gp.HIDDEN // 12,
      intermediate_sizes=(gp.FFN,) * layers, max_position_embeddings=gp.MAX_POS,
      type_vocab_size=gp.TYPE_VOCAB, num_labels=gp.LABELS,
      shared_attention_dropout=shared)
  model = models.FunctionalModel(nnx.eval_shape(
      lambda: models.build(config, "sequence_classification")))
  params = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), model.params)
  b = {"input_ids": jax.ShapeDtypeStruct((batch, seq), jnp.int32),
       "attention_mask": jax.ShapeDtypeStruct((batch, seq), jnp.int32),
       "labels": jax.ShapeDtypeStruct((batch,), jnp.int32)}
  def loss_fn(p, bb):
    logits = model(bb["input_ids"], attention_mask=bb["attention_mask"], params=p,
                   train=True, dropout_rng=jax.random.key(0)).logits
    return optax.softmax_cross_entropy_with_integer_labels(logits, bb["labels"]).mean()
  tx = optax.adamw(1e-4)
  r = gp.compile_step(tx, loss_fn, params, b, None, sh)
  c = hlo_stats.hlo_counts(r["text"])
  out["shared" if shared else "per_element"] = {k: v for k, v in c.items() if not isinstance(v, (dict, list))}
  print("shared" if shared else "per_element", out["shared" if shared else "per_element"], flush=True)
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       f"gpu_proxy_dropout_{layers}layers.json"), "w") as f:
  json.dump(out, f, indent=1)
