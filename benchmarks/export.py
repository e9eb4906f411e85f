"""Benchmark: export sizes and inference latency of pruned BERT-base (CPU).

What is measured
----------------
A ``jaxprune.models.BertForSequenceClassification`` with the bert-base
config (``models.BertConfig()``, random init, nothing downloaded; ``--model-size
tiny`` for a quick check) is pruned in one magnitude step (``jaxprune.prune``
with ``magnitude_scorer`` and a constant schedule, ``where="bert"``, global
selection) in two ways:

* **90% unstructured**: 90% of the Q/K/V/O/FFN kernels and biases are 0;
* **50% heads+neurons**: ``patterns.heads_and_neurons(12, preset="bert",
  aggregate="sum")``: 72 of 144 heads and 18,432 of 36,864 FFN neurons.

Sizes: the dense safetensors file of all params vs
``export.save_compressed`` (packed masks + kept values) for both, and for
the structured case also the shrunk model folder (``shrink.shrink`` then
``save_pretrained``: per-layer smaller kernels, stored dense).

Latency of the jitted forward pass (logits, no dropout) on one batch of
``--batch`` 8 x ``--seq`` 128 random token ids: the dense model; the shrunk
structured model; and the 90% unstructured model run through
``jax.experimental.sparse`` (``export.to_bcoo`` + ``export.sparse_apply``:
the 72 pruned kernels as BCOO matrices, 10% of their entries stored). Each
function is compiled and run once untimed, then the functions are timed
round-robin (``--repeats`` rounds, order rotating each round, each call
followed by ``block_until_ready``); medians are reported with the ratio to
the dense median of the same rounds.

The machine is a shared 2-core CPU: other processes may run at the same time,
so the absolute times are noisy; the ratios come from interleaved rounds.

How to run
----------
``python benchmarks/export.py`` (bert-base, about 5 minutes here) or
``python benchmarks/export.py --model-size tiny --repeats 3`` (seconds).
Writes ``benchmarks/results/export.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jaxprune  # noqa: E402
from jaxprune import export, patterns, shrink  # noqa: E402


def build(size: str):
  from jaxprune import models
  if size == "base":
    cfg = models.BertConfig(num_labels=2)
  else:
    cfg = models.BertConfig(vocab_size=512, hidden_size=64,
                            heads_per_layer=(4, 4), head_dim=16,
                            intermediate_sizes=(128, 128),
                            max_position_embeddings=128, num_labels=2)
  return models.FunctionalModel(
      models.build(cfg, "sequence_classification", seed=0))


def prune_once(params, pattern, sparsity):
  tx = jaxprune.prune(optax.sgd(0.0), jaxprune.magnitude_scorer(),
                      jaxprune.schedules.constant(sparsity), where="bert",
                      pattern=pattern)
  state = tx.init(params)
  upd = jax.jit(tx.update)
  _, state = upd(jax.tree.map(jnp.zeros_like, params), state, params)
  return export.apply_masks(params, state), state


def folder_bytes(path: str) -> int:
  return sum(os.path.getsize(os.path.join(d, f))
             for d, _, fs in os.walk(path) for f in fs)


def time_round_robin(fns: dict, repeats: int) -> dict[str, list[float]]:
  times = {k: [] for k in fns}
  names = list(fns)
  for k in names:  # compile + one untimed run
    jax.block_until_ready(fns[k]())
  for r in range(repeats):
    order = names[r % len(names):] + names[:r % len(names)]
    for k in order:
      t0 = time.perf_counter()
      jax.block_until_ready(fns[k]())
      times[k].append(time.perf_counter() - t0)
  return times


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--model-size", choices=("base", "tiny"), default="base")
  ap.add_argument("--batch", type=int, default=8)
  ap.add_argument("--seq", type=int, default=128)
  ap.add_argument("--repeats", type=int, default=10)
  ap.add_argument("--out", default="benchmarks/results/export.json")
  args = ap.parse_args(argv)

  model = build(args.model_size)
  params = model.params
  cfg = model.config
  t0 = time.time()
  unstr, unstr_state = prune_once(params, None, 0.9)
  struct, struct_state = prune_once(
      params, patterns.heads_and_neurons(cfg.num_attention_heads,
                                         preset="bert", aggregate="sum"), 0.5)
  prune_s = time.time() - t0
  small = shrink.shrink(model, struct)

  sizes = {}
  with tempfile.TemporaryDirectory() as d:
    rep_u = export.size_report(unstr, unstr_state, os.path.join(d, "u"))
    rep_s = export.size_report(struct, struct_state, os.path.join(d, "s"))
    small.save_pretrained(os.path.join(d, "shrunk"), hf_compatible=False)
    shrunk_bytes = folder_bytes(os.path.join(d, "shrunk"))
  sizes["dense_file_bytes"] = rep_u.dense_bytes
  sizes["unstructured90_compressed_bytes"] = rep_u.file_bytes
  sizes["structured50_compressed_bytes"] = rep_s.file_bytes
  sizes["structured50_shrunk_folder_bytes"] = shrunk_bytes
  n_dense = sum(np.size(x) for x in jax.tree_util.tree_leaves(params))
  sizes["dense_params"] = int(n_dense)
  sizes["shrunk_params"] = small.num_params()

  rng = np.random.default_rng(0)
  ids = jnp.asarray(rng.integers(1, cfg.vocab_size, (args.batch, args.seq)),
                    jnp.int32)
  inputs = (ids, jnp.ones_like(ids), jnp.zeros_like(ids),
            jnp.broadcast_to(jnp.arange(args.seq), ids.shape))

  def hf_apply(p, ids, mask, types, pos):
    return model(ids, attention_mask=mask, token_type_ids=types,
                 position_ids=pos, params=p).logits

  dense_fn = jax.jit(hf_apply)
  small_fn = jax.jit(lambda p, ids, mask, types, pos: small(
      ids, attention_mask=mask, token_type_ids=types, position_ids=pos,
      params=p).logits)
  sp_params = export.to_bcoo(unstr, unstr_state, min_sparsity=0.5)
  bcoo_fn = jax.jit(export.sparse_apply(hf_apply))

  # Correctness next to the timings.
  ref_s = hf_apply(struct, *inputs)
  ref_u = hf_apply(unstr, *inputs)
  diff_small = float(jnp.max(jnp.abs(small_fn(small.params, *inputs) - ref_s)))
  diff_bcoo = float(jnp.max(jnp.abs(bcoo_fn(sp_params, *inputs) - ref_u)))

  fns = {"dense": lambda: dense_fn(params, *inputs),
         "shrunk_structured50": lambda: small_fn(small.params, *inputs),
         "bcoo_unstructured90": lambda: bcoo_fn(sp_params, *inputs)}
  times = time_round_robin(fns, args.repeats)
  med = {k: float(np.median(v)) for k, v in times.items()}

  result = {
      "model": f"bert-{args.model_size} (jaxprune.models BertForSequenceClassification, "
               "random init)",
      "batch": args.batch, "seq": args.seq, "repeats": args.repeats,
      "sizes": sizes,
      "size_ratio_unstructured90": rep_u.file_bytes / rep_u.dense_bytes,
      "size_ratio_structured50_compressed": rep_s.file_bytes / rep_s.dense_bytes,
      "size_ratio_structured50_shrunk": shrunk_bytes / rep_u.dense_bytes,
      "heads_per_layer": list(small.heads_per_layer),
      "intermediate_sizes": list(small.intermediate_sizes),
      "latency_median_s": med,
      "latency_all_s": times,
      "latency_ratio_vs_dense": {k: v / med["dense"] for k, v in med.items()},
      "max_abs_logit_diff": {"shrunk_vs_masked": diff_small,
                             "bcoo_vs_masked": diff_bcoo},
      "prune_seconds": prune_s,
      "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                  "jax": jax.__version__, "backend": jax.default_backend(),
                  "note": "shared 2-core CPU, other jobs running"},
  }
  os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(result, f, indent=2)

  mb = lambda b: f"{b / 2**20:8.1f} MiB"
  print(f"{result['model']}, batch {args.batch} x {args.seq}")
  print("file sizes")
  print(f"  dense safetensors                  {mb(rep_u.dense_bytes)}")
  print(f"  90% unstructured, packed           {mb(rep_u.file_bytes)}  "
        f"({result['size_ratio_unstructured90']:.3f}x)")
  print(f"  50% heads+neurons, packed          {mb(rep_s.file_bytes)}  "
        f"({result['size_ratio_structured50_compressed']:.3f}x)")
  print(f"  50% heads+neurons, shrunk model    {mb(shrunk_bytes)}  "
        f"({result['size_ratio_structured50_shrunk']:.3f}x)")
  print("forward latency (median)")
  for k, v in med.items():
    print(f"  {k:34s} {v * 1e3:9.1f} ms  "
          f"({result['latency_ratio_vs_dense'][k]:.2f}x dense)")
  print(f"max |logit diff|: shrunk vs masked {diff_small:.2e}, "
        f"BCOO vs masked {diff_bcoo:.2e}")
  print(f"wrote {args.out}")
  return result


if __name__ == "__main__":
  main()
