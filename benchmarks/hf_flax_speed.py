"""Benchmark: our MiniLM-L6 (``jaxprune.models``) against HF's Flax BERT.

``transformers`` 5 deleted its Flax classes; this compares our model with
``FlaxBertForSequenceClassification`` of ``transformers`` 4.57 on the same
jax, same config (MiniLM-L6: 6 layers, hidden 384) and the same batches:

* the dense train step, ``clip_by_global_norm(1.0)`` + ``adamw(2e-4)``,
  jitted and donated (:func:`jaxprune.train.make_train_step`), batch 16 x 64
  random token ids, dropout on (the demo's shape);
* the eval forward pass, batch 200 x 64, dropout off;
* our train step once more with ``shared_attention_dropout=False`` (one
  attention-dropout mask per element instead of one per batch and head).

Both are compiled first, then run interleaved in rounds (10 train steps and
one eval per model per round, the order alternating), each call followed by
``jax.block_until_ready``. Printed: medians and the ratio ours / HF.

How to run (HF Flax lives in ``transformers<5``, beside our stack)::

    pip install --target /tmp/tf4 --no-deps "transformers==4.57.1" \\
        "huggingface_hub<1.0" "tokenizers==0.22.1" requests urllib3 idna \\
        charset_normalizer certifi
    PYTHONPATH=/tmp/tf4:. python benchmarks/hf_flax_speed.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxprune import models, train


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--rounds", type=int, default=6)
  p.add_argument("--out", default=os.path.join(
      os.path.dirname(os.path.abspath(__file__)), "results",
      "hf_flax_speed.json"))
  args = p.parse_args(argv)
  import transformers
  from transformers import BertConfig, FlaxBertForSequenceClassification

  from experiments.tasks.base import offline_minilm
  path = offline_minilm()
  ours = models.from_pretrained(path, num_labels=2)
  # The same model with one attention-dropout mask per element (HF PyTorch's
  # dropout) instead of one shared by the batch and heads (the default, as
  # HF Flax): the train steps differ only in that.
  per_element = models.from_pretrained(
      path, num_labels=2, config=ours.config.replace(
          shared_attention_dropout=False))
  hf = FlaxBertForSequenceClassification(
      BertConfig.from_pretrained(path, num_labels=2), seed=0)
  rng = np.random.default_rng(0)

  def batch(n, length=64):
    ids = rng.integers(1000, 20000, (n, length)).astype(np.int32)
    return {"input_ids": jnp.asarray(ids),
            "attention_mask": jnp.ones((n, length), jnp.int32),
            "token_type_ids": jnp.zeros((n, length), jnp.int32),
            "labels": jnp.asarray(rng.integers(0, 2, n), jnp.int32)}

  train_batch, eval_batch = batch(16), batch(200)

  def hf_loss(params, b, key):
    logits = hf(b["input_ids"], b["attention_mask"], b["token_type_ids"],
                params=params, dropout_rng=key, train=True).logits
    return optax.softmax_cross_entropy_with_integer_labels(
        logits, b["labels"]).mean(), {}

  tx = optax.chain(optax.clip_by_global_norm(1.0),
                   optax.adamw(2e-4, weight_decay=0.01))
  steps = {"ours": train.make_train_step(train.hf.classification_loss(ours),
                                         tx),
           "hf": train.make_train_step(hf_loss, tx),
           "ours_per_element": train.make_train_step(
               train.hf.classification_loss(per_element), tx)}
  evals = {"ours": jax.jit(train.hf.classification_logits(ours)),
           "ours_per_element": jax.jit(
               train.hf.classification_logits(per_element)),
           "hf": jax.jit(lambda params, b: hf(
               b["input_ids"], b["attention_mask"], b["token_type_ids"],
               params=params, train=False).logits)}
  state = {}
  for name, params in (("ours", ours.params), ("hf", hf.params),
                       ("ours_per_element", per_element.params)):
    params = jax.tree.map(jnp.array, params)
    state[name] = [params, tx.init(params)]
  key = jax.random.key(0)
  eval_inputs = {k: v for k, v in eval_batch.items() if k != "labels"}

  def step(name, s):
    params, opt_state, _ = steps[name](*state[name], train_batch, key, s)
    jax.block_until_ready(params)
    state[name] = [params, opt_state]

  def evaluate(name):
    jax.block_until_ready(evals[name](state[name][0], eval_inputs))

  out = {"benchmark": "hf_flax_speed", "jax": jax.__version__,
         "transformers": transformers.__version__,
         "platform": platform.platform(), "rounds": args.rounds,
         "loadavg_before": list(os.getloadavg())}
  for name in steps:
    t0 = time.perf_counter()
    step(name, 0)
    evaluate(name)
    out[f"{name}_compile_s"] = time.perf_counter() - t0
  times = {name: ([], []) for name in steps}
  s = 1
  for r in range(args.rounds):
    for name in (list(steps) if r % 2 == 0 else list(steps)[::-1]):
      for _ in range(10):
        t0 = time.perf_counter()
        step(name, s)
        times[name][0].append(time.perf_counter() - t0)
      s += 1
      t0 = time.perf_counter()
      evaluate(name)
      times[name][1].append(time.perf_counter() - t0)
  for name, (train_t, eval_t) in times.items():
    out[f"{name}_train_step_median_s"] = float(np.median(train_t))
    out[f"{name}_eval_200_median_s"] = float(np.median(eval_t))
  out["train_step_ratio_ours_over_hf"] = (out["ours_train_step_median_s"] /
                                          out["hf_train_step_median_s"])
  out["eval_ratio_ours_over_hf"] = (out["ours_eval_200_median_s"] /
                                    out["hf_eval_200_median_s"])
  out["train_step_ratio_per_element_over_hf"] = (
      out["ours_per_element_train_step_median_s"] /
      out["hf_train_step_median_s"])
  out["loadavg_after"] = list(os.getloadavg())
  print(f"train step (16 x 64): ours {out['ours_train_step_median_s']:.3f} s,"
        f" HF Flax {out['hf_train_step_median_s']:.3f} s, ratio "
        f"{out['train_step_ratio_ours_over_hf']:.3f}")
  print(f"eval (200 x 64): ours {out['ours_eval_200_median_s']:.3f} s, "
        f"HF Flax {out['hf_eval_200_median_s']:.3f} s, ratio "
        f"{out['eval_ratio_ours_over_hf']:.3f}")
  print("train step with per-element attention dropout: "
        f"{out['ours_per_element_train_step_median_s']:.3f} s, ratio to HF "
        f"{out['train_step_ratio_per_element_over_hf']:.3f}")
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(out, f, indent=1)
  return out


if __name__ == "__main__":
  main()
