"""Benchmark: persistent pruning state and transient memory of a mask event.

What is measured
----------------
(a) *Persistent pruning state.* For every method of
``experiments.methods.METHODS`` (built by ``make_tx`` exactly as
``benchmarks/method_overhead.py`` builds it: ``where="bert"``, sparsity 0.9,
``T = 10000``) the optimizer state's shapes are taken with
``jax.eval_shape(tx.init, params)`` on the shapes of a
``jaxprune.models.BertForSequenceClassification`` (``jax.eval_shape`` of
``platon_overhead.build_model``: nothing is allocated). The *pruning state*
is the optimizer state minus the state of the dense baseline
``make_tx("dense")`` (the clip's and the inner AdamW's): the fields of
``jaxprune.PruneState`` other than ``inner_state`` (``count``, the scorer's
state, ``masks``, ``threshold``, ``num_pruned``, ``stale``) plus whatever the
method adds inside ``inner_state`` (MGPP's prior step counter). Its bytes are
split into arrays shaped like the prunable params (*per weight*: float32
score arrays, the bool mask) and the rest (*constant*: scalars and
per-group vectors), printed per state field and checked against the target
"at most 3 float32 copies + 1 byte of mask per prunable weight", i.e. per
weight bytes / N <= 13 (N = prunable scalars, 85,017,600 for bert-base).

(b) *Transient memory.* With ``jax.jit(f).lower(*shapes).compile()
.memory_analysis()`` (XLA's buffer assignment: nothing is run or allocated)
on bert-base-shaped arguments, for:

* ``prune_masks`` and ``kth_smallest`` alone on the 85M prunable leaves;
* the optimizer update alone (``tx.update`` + ``apply_updates``, params and
  state donated as in the train step, no model) of the dense baseline and of
  each method: with the step count a traced argument (the program holds
  both the selection and the keep branch: its temp size bounds every step),
  and with the count baked in as a constant at an ordinary step and at a
  mask-event step (``method_overhead.STEPS``), so that XLA keeps only the
  branch taken;
* with ``--train-step-methods`` (default ``platon``), the whole jitted train
  step (forward, backward, update) of dense and of those methods.

``temp`` is XLA's scratch allocation of the program (the transient peak
beyond arguments and outputs); ``args``/``out``/``alias`` are the argument,
output and donated (aliased) bytes.

How to run
----------
From the repository root (bert-base: about 5-10 minutes on 2 CPU cores, mostly
compiling)::

    PYTHONPATH=. .venv/bin/python benchmarks/memory.py
    PYTHONPATH=. .venv/bin/python benchmarks/memory.py --no-compile   # (a) only
    PYTHONPATH=. .venv/bin/python benchmarks/memory.py --model-size tiny

Results are printed (Markdown tables) and written as JSON to ``--out``
(default ``benchmarks/results/memory.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any, Callable

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_HERE = os.path.dirname(os.path.abspath(__file__))
for _p in (_ROOT, _HERE):
  if _p not in sys.path:
    sys.path.insert(0, _p)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import jaxprune  # noqa: E402
from jaxprune import selection  # noqa: E402
from jaxprune import transform  # noqa: E402
from jaxprune import where as where_lib  # noqa: E402
import method_overhead as mo  # noqa: E402  (benchmarks/method_overhead.py)
import platon_overhead as po  # noqa: E402  (benchmarks/platon_overhead.py)

#: Target: at most 3 float32 copies + 1 byte of mask per prunable weight.
TARGET_BYTES_PER_WEIGHT = 3 * 4 + 1
MIB = 2.0**20


# ---------------------------------------------------------------- shapes


def param_shapes(size: str, seed: int = 0) -> Any:
  """``ShapeDtypeStruct`` tree of the benchmark model's params (no init)."""
  return jax.eval_shape(lambda: po.build_model(size, seed)[0].params)


def _nbytes(tree: Any) -> int:
  return sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize
             for x in jax.tree_util.tree_leaves(tree))


def _scorer_fields(scorer_state: Any) -> dict[str, Any]:
  """Names the parts of a scorer state (NamedTuple fields, else ``scores``)."""
  if hasattr(scorer_state, "_fields"):
    return {f"scorer_state.{name}": getattr(scorer_state, name)
            for name in scorer_state._fields}
  return {"scorer_state": scorer_state}


def state_breakdown(method: str, params: Any) -> dict:
  """Bytes of ``method``'s pruning state, per field, from shapes only.

  Args:
    method: a pruning method of ``experiments.methods.METHODS``.
    params: params or their ``ShapeDtypeStruct`` tree.

  Returns:
    A dict with ``n`` (prunable scalars), ``fields`` (per field: ``bytes``,
    ``per_weight`` whether its arrays are shaped like the prunable params,
    ``dtypes``), ``per_weight_bytes``, ``constant_bytes``, ``total_bytes``
    (the optimizer state minus the dense baseline's), ``bytes_per_weight``
    (per-weight bytes / n) and ``total_bytes_per_weight``.
  """
  flags = where_lib.resolve("bert", params)
  sel = transform.selected_leaves(params, flags)
  n = sum(int(np.prod(x.shape)) for x in sel)
  prunable_shapes = {tuple(x.shape) for x in sel}
  full = jax.eval_shape(mo.make_method_tx(method).init, params)
  dense = jax.eval_shape(mo.make_method_tx("dense").init, params)
  ps = mo.find_prune_state(full)
  if ps is None:
    raise ValueError(f"no PruneState in the state of {method!r}")
  parts: dict[str, Any] = {"count": ps.count}
  parts.update(_scorer_fields(ps.scorer_state))
  parts.update({"masks": ps.masks, "threshold": ps.threshold,
                "num_pruned": ps.num_pruned, "stale": ps.stale})
  fields = {}
  for name, tree in parts.items():
    leaves = jax.tree_util.tree_leaves(tree)
    shaped = (name.startswith(("scorer_state", "masks")) and leaves
              and all(tuple(x.shape) in prunable_shapes for x in leaves))
    fields[name] = {"bytes": _nbytes(tree), "per_weight": bool(shaped),
                    "dtypes": sorted({str(x.dtype) for x in leaves})}
  # Whatever the method keeps in the inner state beyond the dense one's.
  extra = _nbytes(full) - _nbytes(dense) - sum(f["bytes"]
                                               for f in fields.values())
  if extra:
    fields["inner_state (beyond dense)"] = {"bytes": extra,
                                            "per_weight": False,
                                            "dtypes": []}
  per_weight = sum(f["bytes"] for f in fields.values() if f["per_weight"])
  total = _nbytes(full) - _nbytes(dense)
  return {
      "n": n, "fields": fields, "per_weight_bytes": per_weight,
      "constant_bytes": total - per_weight, "total_bytes": total,
      "bytes_per_weight": per_weight / n,
      "total_bytes_per_weight": total / n,
      "meets_target": per_weight / n <= TARGET_BYTES_PER_WEIGHT,
  }


# ------------------------------------------------------- compiled memory


def memory_stats(fn: Callable, *args: Any, donate: tuple[int, ...] = ()
                 ) -> dict:
  """XLA's memory analysis of ``jit(fn)`` compiled for ``args``' shapes."""
  t0 = time.perf_counter()
  compiled = jax.jit(fn, donate_argnums=donate).lower(*args).compile()
  ma = compiled.memory_analysis()
  dt = time.perf_counter() - t0
  if ma is None:
    return {"available": False, "compile_s": dt}
  return {
      "available": True,
      "temp_bytes": int(ma.temp_size_in_bytes),
      "argument_bytes": int(ma.argument_size_in_bytes),
      "output_bytes": int(ma.output_size_in_bytes),
      "alias_bytes": int(ma.alias_size_in_bytes),
      "generated_code_bytes": int(ma.generated_code_size_in_bytes),
      "compile_s": dt,
  }


def _update_fn(tx: optax.GradientTransformation, step: int | None):
  """``(params, state, grads) -> (params', state')``, optionally at ``step``."""

  def f(params, state, grads):
    if step is not None:  # a trace-time constant: XLA drops the other branch
      state = mo.set_step(state, step)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  return f


def transient_section(args, params: Any) -> dict:
  """Compiled memory analyses (nothing is run)."""
  flags = where_lib.resolve("bert", params)
  sel = transform.selected_leaves(params, flags)
  n = sum(int(np.prod(x.shape)) for x in sel)
  score_shapes = [jax.ShapeDtypeStruct(x.shape, jnp.float32) for x in sel]
  k = jax.ShapeDtypeStruct((1,), jnp.int32)
  rows: dict[str, dict] = {}

  def add(name, stats, **extra):
    stats.update(extra)
    rows[name] = stats
    if stats["available"]:
      print(f"  {name:<52s} temp {stats['temp_bytes'] / MIB:9.1f} MiB  "
            f"args {stats['argument_bytes'] / MIB:8.1f}  out "
            f"{stats['output_bytes'] / MIB:8.1f}  alias "
            f"{stats['alias_bytes'] / MIB:8.1f}  ({stats['compile_s']:.0f} s "
            "to compile)", flush=True)
    else:
      print(f"  {name:<52s} memory analysis not available", flush=True)

  print(f"\n=== (b) compiled memory analysis, {len(sel)} prunable leaves "
        f"({n:,} scalars, scores {n * 4 / MIB:.1f} MiB)", flush=True)
  add("prune_masks (85M scores -> masks)" if args.model_size == "base"
      else "prune_masks (scores -> masks)",
      memory_stats(lambda s, k: selection.prune_masks(s, k), score_shapes, k),
      what="prune_masks")
  add("kth_smallest (threshold only)",
      memory_stats(lambda s, k: selection.kth_smallest(s, k)[0],
                   score_shapes, k), what="kth_smallest")

  grads = params  # same shapes and dtypes
  for method in ["dense"] + args.methods:
    tx = mo.make_method_tx(method)
    st = jax.eval_shape(tx.init, params)
    if method == "dense":
      add("update alone: dense (clip + adamw)",
          memory_stats(_update_fn(tx, None), params, st, grads,
                       donate=(0, 1)), method="dense", step="traced")
      continue
    variants = [("traced", None)]
    if not args.traced_only:
      variants += [("ordinary", mo.STEPS[method]["ordinary"]),
                   ("event", mo.STEPS[method]["event"])]
    for kind, step in variants:
      label = f"s={step}" if step is not None else "traced count"
      add(f"update alone: {method}, {kind} ({label})",
          memory_stats(_update_fn(tx, step), params, st, grads,
                       donate=(0, 1)), method=method, step=kind)

  if args.train_step_methods:
    model, config = po.build_model(args.model_size, args.seed)
    batch = {
        "input_ids": jax.ShapeDtypeStruct((args.batch, args.seq), jnp.int32),
        "attention_mask": jax.ShapeDtypeStruct((args.batch, args.seq),
                                               jnp.int32),
        "labels": jax.ShapeDtypeStruct((args.batch,), jnp.int32),
    }
    del config
    for method in ["dense"] + args.train_step_methods:
      tx = mo.make_method_tx(method)
      st = jax.eval_shape(tx.init, params)
      step_fn = po.make_step(model, tx)
      t0 = time.perf_counter()
      ma = step_fn.lower(params, st, batch).compile().memory_analysis()
      stats = {"available": ma is not None,
               "compile_s": time.perf_counter() - t0}
      if ma is not None:
        stats.update(temp_bytes=int(ma.temp_size_in_bytes),
                     argument_bytes=int(ma.argument_size_in_bytes),
                     output_bytes=int(ma.output_size_in_bytes),
                     alias_bytes=int(ma.alias_size_in_bytes),
                     generated_code_bytes=int(
                         ma.generated_code_size_in_bytes))
      add(f"train step: {method} (batch {args.batch} x {args.seq})", stats,
          method=method, step="train")
  return {"n": n, "rows": rows}


# ---------------------------------------------------------------- tables


def state_table(states: dict) -> str:
  """Markdown: per-method pruning state, bytes per prunable weight."""
  lines = ["| method | per-weight state (bytes/weight) | breakdown | "
           "constant bytes | total bytes/weight | <= 13 B/weight |",
           "|---|---|---|---|---|---|"]
  for m, r in states.items():
    n = r["n"]
    parts = ", ".join(
        f"{name.replace('scorer_state.', '')} {f['bytes'] / n:g}"
        for name, f in r["fields"].items() if f["per_weight"])
    consts = ", ".join(f"{name} {f['bytes']}" for name, f in
                       r["fields"].items()
                       if not f["per_weight"] and f["bytes"])
    lines.append(
        f"| {m} | {r['bytes_per_weight']:g} | {parts or '-'} | "
        f"{r['constant_bytes']} ({consts}) | "
        f"{r['total_bytes_per_weight']:.7f} | "
        f"{'yes' if r['meets_target'] else 'NO'} |")
  return "\n".join(lines)


def transient_table(tr: dict) -> str:
  """Markdown: XLA temp (scratch) bytes per compiled program."""
  lines = ["| program | temp (MiB) | arguments (MiB) | outputs (MiB) | "
           "donated/aliased (MiB) |", "|---|---|---|---|---|"]
  for name, r in tr["rows"].items():
    if not r["available"]:
      lines.append(f"| {name} | n/a | | | |")
      continue
    lines.append(f"| {name} | {r['temp_bytes'] / MIB:.1f} | "
                 f"{r['argument_bytes'] / MIB:.1f} | "
                 f"{r['output_bytes'] / MIB:.1f} | "
                 f"{r['alias_bytes'] / MIB:.1f} |")
  return "\n".join(lines)


# ------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> dict:
  """Runs both sections; returns the JSON-able results."""
  p = argparse.ArgumentParser(
      description=__doc__.split("\n\n")[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--model-size", choices=("base", "tiny"), default="base")
  p.add_argument("--methods", nargs="+", choices=mo.PRUNING_METHODS,
                 default=list(mo.PRUNING_METHODS))
  p.add_argument("--no-compile", dest="compile", action="store_false",
                 help="skip (b), the compiled memory analyses")
  p.add_argument("--traced-only", action="store_true",
                 help="in (b), compile each method's update only with a "
                 "traced step count (not at fixed ordinary / event steps)")
  p.add_argument("--train-step-methods", nargs="*",
                 choices=mo.PRUNING_METHODS, default=["platon"],
                 help="methods whose whole train step is also analysed "
                 "(none: pass the flag without names)")
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--seq", type=int, default=128)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default=os.path.join(_ROOT, "benchmarks", "results",
                                                "memory.json"))
  args = p.parse_args(argv)
  t_start = time.perf_counter()
  load_before = os.getloadavg()
  print("jaxprune memory benchmark")
  print(f"  jax {jax.__version__} backend={jax.default_backend()}; "
        f"{platform.platform()}; load average {load_before[0]:.2f}")
  params = param_shapes(args.model_size, args.seed)
  n_all = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(params))

  states = {m: state_breakdown(m, params) for m in args.methods}
  n = next(iter(states.values()))["n"]
  print(f"\n=== (a) persistent pruning state, {args.model_size} "
        f"({n_all:,} params, {n:,} prunable, where='bert')\n")
  st_table = state_table(states)
  print(st_table)
  transient = tr_table = None
  if args.compile:
    transient = transient_section(args, params)
    tr_table = transient_table(transient)
    print("\n" + tr_table)
  load_after = os.getloadavg()
  total = time.perf_counter() - t_start
  print(f"\ntotal benchmark time: {total:.0f} s; load average before "
        f"{load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)")
  out = {
      "benchmark": "memory",
      "config": vars(args),
      "environment": mo.environment(),
      "loadavg_before": list(load_before),
      "loadavg_after": list(load_after),
      "model": {"size": args.model_size, "params": n_all, "prunable": n},
      "target_bytes_per_weight": TARGET_BYTES_PER_WEIGHT,
      "state": states,
      "transient": transient,
      "markdown": {"state": st_table, "transient": tr_table},
      "total_s": total,
  }
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(out, f, indent=1)
  print(f"results written to {args.out}")
  return out


if __name__ == "__main__":
  main()
