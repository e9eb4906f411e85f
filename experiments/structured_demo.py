"""The offline demo with a sparsity pattern: structured PLATON and friends.

Runs :mod:`experiments.demo` unchanged except that the pruner gets
``pattern=...`` (default: whole attention heads and FFN neurons, 50%), then
slices the dead heads and neurons out of the pruned model
(:func:`jaxprune.shrink.shrink`) and records the shrunk model's size and its
largest logit difference to the masked model on test batches.

Usage::

    python -m experiments.structured_demo --skip-dense --out runs/structured50
    python -m experiments.structured_demo --pattern 2:4 --sparsity 0.5
    python -m experiments.structured_demo --pattern heads --aggregate l2

Every other option is :mod:`experiments.demo`'s (``--method``, ``--steps``,
``--sparsity`` (default 0.5 here), ``--task vit`` ...).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments import demo
from jaxprune import export, patterns, shrink

_CTX: dict[str, Any] = {}


def make_pattern(name: str, num_heads: int, preset: str, aggregate: str):
  """``--pattern`` value -> a :class:`jaxprune.patterns.Pattern`."""
  if name in ("heads_and_neurons", "heads", "neurons"):
    return patterns.heads_and_neurons(
        num_heads, preset=preset, aggregate=aggregate,
        heads=name != "neurons", neurons=name != "heads")
  return patterns.resolve(name)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--pattern", default="heads_and_neurons",
                  help="heads_and_neurons | heads | neurons | N:M | "
                       "unstructured")
  ap.add_argument("--aggregate", choices=patterns.AGGREGATES, default="sum")
  args, rest = ap.parse_known_args(argv)
  if not any(a.startswith("--sparsity") for a in rest):
    rest = rest + ["--sparsity", "0.5"]
  task = "vit" if "vit" in rest else "text"

  orig_text, orig_vit = demo.text_task, demo.vit_task
  orig_build, orig_run = demo.build_tx, demo.run

  def capture(fn):
    def wrapped(a):
      out = fn(a)
      _CTX["model"], _CTX["test"] = out[0], out[3]
      return out
    return wrapped

  def build_tx(method, sparsity, steps, lr, where, num_examples=None):
    if method == "dense":
      return orig_build(method, sparsity, steps, lr, where, num_examples)
    cfg = _CTX["model"].config
    pat = make_pattern(args.pattern, cfg.heads_per_layer,
                       "bert" if task == "text" else "vit", args.aggregate)
    warmup = max(1, int(0.1 * steps))
    import optax
    lr_sched = optax.join_schedules(
        [optax.linear_schedule(0.0, lr, warmup),
         optax.linear_schedule(lr, 0.0, steps - warmup)], [warmup])
    return demo.methods.make_tx(method, learning_rate=lr_sched,
                                sparsity=sparsity, total_steps=steps,
                                where=where, num_examples=num_examples,
                                pattern=pat)

  def run(method, a, model, params0, train_data, test_data, where, out_dir,
          *extra, **kw):
    res = orig_run(method, a, model, params0, train_data, test_data, where,
                   out_dir, *extra, **kw)
    if method != "dense" and args.pattern in ("heads_and_neurons", "heads",
                                              "neurons"):
      small = shrink.shrink(model, res["params"])
      keys = [k for k in test_data if k != "labels"]
      b = {k: jnp.asarray(test_data[k][:64]) for k in keys}
      if task == "text":
        want = model(b["input_ids"], attention_mask=b["attention_mask"],
                     token_type_ids=b["token_type_ids"],
                     params=res["params"]).logits
        got = small(b["input_ids"], attention_mask=b["attention_mask"],
                    token_type_ids=b["token_type_ids"]).logits
      else:
        want = model(b["pixel_values"], params=res["params"]).logits
        got = small(b["pixel_values"]).logits
      full = sum(np.size(x) for x in jax.tree_util.tree_leaves(res["params"]))
      _CTX["shrink"] = {
          "heads_per_layer": list(small.heads_per_layer),
          "intermediate_sizes": list(small.intermediate_sizes),
          "params_dense": int(full), "params_shrunk": small.num_params(),
          "max_abs_logit_diff_vs_masked": float(jnp.max(jnp.abs(want - got))),
      }
      small.save_pretrained(os.path.join(out_dir, "shrunk_model"))
      rep = export.size_report(res["params"], None)
      _CTX["shrink"]["compressed_bytes"] = rep.file_bytes
      _CTX["shrink"]["dense_bytes"] = rep.dense_bytes
    return res

  demo.text_task, demo.vit_task = capture(orig_text), capture(orig_vit)
  demo.build_tx, demo.run = build_tx, run
  try:
    summary = demo.main(rest)
  finally:
    demo.text_task, demo.vit_task = orig_text, orig_vit
    demo.build_tx, demo.run = orig_build, orig_run
  summary = {**summary, "pattern": args.pattern,
             "aggregate": args.aggregate, "shrink": _CTX.get("shrink")}
  out = next((rest[i + 1] for i, a in enumerate(rest) if a == "--out"),
             None) or ("runs/demo" if task == "text" else "runs/demo_vit")
  with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
  if summary["shrink"]:
    s = summary["shrink"]
    print(f"shrunk: heads per layer {s['heads_per_layer']}, FFN sizes "
          f"{s['intermediate_sizes']}, {s['params_shrunk']:,} of "
          f"{s['params_dense']:,} params; max |logit diff| vs masked "
          f"{s['max_abs_logit_diff_vs_masked']:.2e}")
  return summary


if __name__ == "__main__":
  main()
