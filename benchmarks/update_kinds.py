"""Benchmark: the optimizer update alone, per PLATON step kind (BERT-base shapes).

What is measured
----------------
The update of ``experiments.methods.make_tx("platon", ...)`` with the GPU
proxy's settings (``benchmarks/gpu_proxy.py``: no clip, AdamW inside,
``where="bert"``, 85,017,600 prunable weights of the HF-layout BERT-base
params, random normal params and gradients) followed by
``optax.apply_updates``, jitted with params and state donated, once per step
kind (``jaxprune.step_kind``): a window boundary without selection, an
ordinary final-phase step applying the stored mask, and a selection step;
against ``optax.adamw`` alone. Each pruning variant runs at the last step of
its kind in the 10,000-step schedule (the state's counters are set to it
before every call, as in ``method_overhead.py``), so the selection prunes
``floor(0.9 N)`` weights. No forward or backward pass: this isolates
what pruning adds to a step, which ``platon_overhead.py`` measures inside
the whole train step. Each variant keeps its own params and state and feeds
its outputs back; the variants run round-robin, ``--rounds`` times, each
call followed by ``jax.block_until_ready``, after ``--warmup`` untimed calls
per variant (PLATON's scores are all zero for the first two). The selection
kind re-selects on scores that keep changing, as at every boundary of a real
run.

Printed and written (``--out``, JSON): median and minimum seconds per
variant and each pruning variant's median over dense's.

Run (about 3 minutes on 2 CPU cores, most of it compiling the selection
step): ``PYTHONPATH=. python benchmarks/update_kinds.py``. To compare two
checkouts, run it from each in turn (``PYTHONPATH=<checkout>``) and
alternate.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp
import numpy as np
import optax

import gpu_proxy as G  # pylint: disable=g-import-not-at-top
import jaxprune  # pylint: disable=g-import-not-at-top
from method_overhead import set_step  # pylint: disable=g-import-not-at-top

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

KINDS = {  # name -> a substring of the step kind's label
    "boundary": "select=False, apply=False, scorer=True",
    "final": "select=False, apply=True, scorer=False",
    "select": "select=True",
}


def kind_steps(tx) -> dict:
  """``{name: (step, hint)}``: the last step of each of :data:`KINDS` in the
  proxy's ``TOTAL_STEPS`` schedule (``tx.init`` must have been traced)."""
  steps = {}
  for step in range(G.TOTAL_STEPS):
    hint = jaxprune.step_kind(tx, step)
    for name, label in KINDS.items():
      if label in str(hint):
        steps[name] = (step, hint)
  return steps


def write_result(benchmark: str, args, body: dict) -> dict:
  """Writes ``{benchmark, config, environment, **body}`` to ``args.out``."""
  result = {"benchmark": benchmark, "config": vars(args),
            "environment": G.environment(), **body}
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(result, f, indent=1)
  print(f"results written to {args.out}")
  return result


def _jitted(tx, hint):
  def update(params, state, grads):
    kwargs = {} if hint is None else {"step_kind": hint}
    updates, state = tx.update(grads, state, params, **kwargs)
    return optax.apply_updates(params, updates), state
  return jax.jit(update, donate_argnums=(0, 1))


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--rounds", type=int, default=7)
  p.add_argument("--warmup", type=int, default=3,
                 help="untimed calls per variant, the first one compiles")
  p.add_argument("--layers", type=int, default=12)
  p.add_argument("--out", default=os.path.join(_ROOT, "benchmarks", "results",
                                               "update_kinds.json"))
  args = p.parse_args(argv)
  if args.rounds < 1:
    p.error(f"--rounds must be >= 1, got {args.rounds}")
  if args.warmup < 1:
    p.error(f"--warmup must be >= 1, got {args.warmup}")
  shapes = G.bert_param_shapes(args.layers)
  keys = iter(jax.random.split(jax.random.PRNGKey(0), 4 * len(
      jax.tree.leaves(shapes))))
  params = jax.tree.map(
      lambda s: 0.02 * jax.random.normal(next(keys), s.shape, s.dtype), shapes)
  grads = jax.tree.map(
      lambda s: 1e-3 * jax.random.normal(next(keys), s.shape, s.dtype), shapes)
  dense = optax.adamw(G.LR)
  tx = G.make_tx("platon", clip_norm=None)
  jax.eval_shape(tx.init, shapes)
  variants = {"dense": (dense, _jitted(dense, None))}
  steps = kind_steps(tx)
  for name, (step, hint) in steps.items():
    variants[name] = (tx, _jitted(tx, hint))
  at = lambda name, state: (state if name == "dense" else
                            set_step(state, steps[name][0]))
  live = {}
  for name, (t, fn) in variants.items():
    prm = jax.tree.map(jnp.copy, params)
    t0 = time.perf_counter()
    state = (prm, t.init(prm))
    for _ in range(args.warmup):
      state = fn(state[0], at(name, state[1]), grads)
      jax.block_until_ready(state)
    live[name] = state
    print(f"{name:9s} compile + {args.warmup} calls "
          f"{time.perf_counter() - t0:6.1f} s", flush=True)
  times = {name: [] for name in variants}
  for r in range(args.rounds):
    names = list(variants)
    names = names[r % len(names):] + names[:r % len(names)]
    for name in names:
      fn = variants[name][1]
      prm, st = live[name][0], at(name, live[name][1])
      t0 = time.perf_counter()
      live[name] = fn(prm, st, grads)
      jax.block_until_ready(live[name])
      times[name].append(time.perf_counter() - t0)
  dense_med = float(np.median(times["dense"]))
  rows = {}
  for name, ts in times.items():
    med = float(np.median(ts))
    rows[name] = {"median_s": med, "min_s": float(np.min(ts)), "times_s": ts,
                  "median_over_dense": med / dense_med}
    print(f"{name:9s} median {med:.3f} s  min {min(ts):.3f} s  "
          f"x{med / dense_med:.2f} dense", flush=True)
  for name, (step, hint) in steps.items():
    rows[name]["step"] = step
    rows[name]["step_kind"] = str(hint)
  return write_result("update_kinds", args, {"results": rows})


if __name__ == "__main__":
  main()
