"""Benchmark: every pruning method's per-step cost over a dense BERT train step.

What is measured
----------------
A ``jaxprune.models.BertForSequenceClassification`` with the bert-base
config (random init, nothing downloaded; ``--model-size tiny`` for a quick
check) is trained on one fixed batch of random token ids and labels
(``--batch`` 8 x ``--seq`` 128, softmax cross-entropy, no dropout), with the
jitted train step of ``benchmarks/platon_overhead.py`` (``make_step``:
params and optimizer state donated). Every optimizer comes from the
experiment registry, ``experiments.methods.make_tx(method,
learning_rate=8e-5, sparsity=0.9, total_steps=10000, where="bert",
num_examples=10000)``, i.e. ``clip_by_global_norm(1.0)`` then the method
around ``adamw(8e-5, weight_decay=0.01)``, each factory with its own
defaults; the baseline is ``make_tx("dense", ...)`` (the same clip and
AdamW, no pruning).

Each method's train step is compiled once and run from one optimizer state
whose step ``count`` is set directly before every step (no untimed BERT
steps to get there), alternately to

* an *ordinary* step: no mask event, so no selection (inside the cubic ramp
  between two events, or, for the methods with a mask event at every ramp
  step, outside the ramp), and
* a *mask-event* step: a mask event that runs a selection.

The steps chosen, with ``T = 10000`` and every factory's defaults:

=========  ==============================================  ========  =====
method     schedule (mask events)                          ordinary  event
=========  ==============================================  ========  =====
platon     cubic, t_i 1000, ramp to 7000, every 10th step  6995      7000
magnitude  as platon (persistent mask)                     6995      7000
taylor     as platon (beta 0.85)                           6995      7000
movement   t_i 1000, ramp to 8000, every step, per layer   995       7000
seven      window 1000..3999, every step, mask frozen      5000      3000
           afterwards (monotone, persistent)
mgpp       t_i 1250, ramp to 9999, every 10th step         5005      5000
pins       t_i 641, ramp to 6154, every 10th step          6145      6150
=========  ==============================================  ========  =====

Before each step the state's ``num_pruned`` is also set to 0, so that after
the step ``num_pruned > 0`` holds exactly when the step selected a mask:
this is recorded per step and checked (``selected`` in the JSON). Dense and
each method's ordinary and event steps are interleaved round-robin in one
process (the order rotates every round), one method after the other (only
one method's params and state are alive at a time), each step followed by
``jax.block_until_ready``. Reported per method: the dense median, the
method's median per step type and the *overhead* ``mean(method) /
mean(dense) - 1`` with the dense steps of the same rounds (and the median of
the per-round ratios in the JSON).

The pieces section (``--no-pieces`` to skip) times, on the model's actual
prunable leaves (85,017,600 scalars for bert-base), each method's pruning
work alone, jitted, median of ``--piece-repeats``:

* *score update*: the scorer's ``update`` followed by the non-finite guard
  that ``jaxprune.prune`` applies (``transform._guard``), score state
  donated; for MGPP the prior gradient added to the gradient
  (``mgpp_prior``'s update; its magnitude score has no state);
* *selection*: the scorer's ``scores`` (``|theta'|``, ``Ibar * Ubar``...,
  SEVEN's ``-inf`` for earlier pruned weights) plus the pattern's
  ``select`` (``selection.prune_masks``, global, or per leaf for movement)
  at ``k = floor(0.9 N)``;
* *masking*: ``where(apply & ~m, -p, u)`` on the updates, plus, for the
  persistent-mask methods (magnitude, seven), the gradient masking
  ``where(m, g, 0)`` before the inner optimizer.

Standalone times can exceed what a piece adds inside the train step (XLA
overlaps and fuses work there); the train-step ratios are the reference.

How to run
----------
From the repository root (bert-base, defaults: about 15-20 minutes on 2 CPU
cores, most of it compiling the 8 train steps)::

    PYTHONPATH=. .venv/bin/python benchmarks/method_overhead.py
    PYTHONPATH=. .venv/bin/python benchmarks/method_overhead.py --rounds 8
    PYTHONPATH=. .venv/bin/python benchmarks/method_overhead.py \\
        --model-size tiny --rounds 1 --methods platon magnitude

Results are printed (a Markdown table at the end) and written as JSON to
``--out`` (default ``benchmarks/results/method_overhead.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
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
from jaxprune import patterns as patterns_lib  # noqa: E402
from jaxprune import transform  # noqa: E402
from jaxprune import where as where_lib  # noqa: E402
from experiments import methods as methods_lib  # noqa: E402
import platon_overhead as po  # noqa: E402  (benchmarks/platon_overhead.py)

LR = 8e-5
SPARSITY = 0.9
TOTAL_STEPS = 10_000
NUM_EXAMPLES = 10_000
PRUNING_METHODS = tuple(m for m in methods_lib.METHODS if m != "dense")

#: Step counts (``T = 10000``, factory defaults): an ordinary step (no mask
#: event) and a mask-event step with a selection, per method.
STEPS = {
    "platon": {"ordinary": 6995, "event": 7000},
    "magnitude": {"ordinary": 6995, "event": 7000},
    "taylor": {"ordinary": 6995, "event": 7000},
    "movement": {"ordinary": 995, "event": 7000},
    "seven": {"ordinary": 5000, "event": 3000},
    "mgpp": {"ordinary": 5005, "event": 5000},
    "pins": {"ordinary": 6145, "event": 6150},
}
KINDS = ("ordinary", "event")


# ------------------------------------------------------------------- helpers


def make_method_tx(method: str) -> optax.GradientTransformation:
  """``experiments.methods.make_tx`` with this benchmark's settings."""
  return methods_lib.make_tx(
      method, learning_rate=LR, sparsity=SPARSITY, total_steps=TOTAL_STEPS,
      where="bert", num_examples=NUM_EXAMPLES)


def set_step(state: Any, step: int) -> Any:
  """Sets every pruning step counter in ``state`` to ``step``.

  ``PruneState.count`` (and ``MgppPriorState.count`` inside it) become
  ``step`` and ``PruneState.num_pruned`` 0, so that ``num_pruned > 0`` after
  the update says that it selected a mask. Other states (the clip's, the
  inner AdamW's) are returned as they are.

  Args:
    state: an optimizer state built by :func:`make_method_tx`.
    step: the step index the next update runs at.

  Returns:
    The state with the counters replaced (no array is copied).
  """
  count = jnp.asarray(step, jnp.int32)
  if isinstance(state, jaxprune.PruneState):
    return state._replace(count=count, inner_state=set_step(
        state.inner_state, step), num_pruned=jnp.zeros_like(state.num_pruned))
  if isinstance(state, jaxprune.MgppPriorState):
    return state._replace(count=count)
  if isinstance(state, tuple) and not hasattr(state, "_fields"):
    return tuple(set_step(s, step) for s in state)
  return state


def find_prune_state(state: Any) -> jaxprune.PruneState | None:
  """The first :class:`jaxprune.PruneState` inside a (chained) state."""
  if isinstance(state, jaxprune.PruneState):
    return state
  if isinstance(state, tuple) and not hasattr(state, "_fields"):
    for s in state:
      found = find_prune_state(s)
      if found is not None:
        return found
  return None


def environment() -> dict:
  """Versions and machine facts recorded with every result."""
  return {"jax": jax.__version__, "backend": jax.default_backend(),
          "optax": optax.__version__, "python": platform.python_version(),
          "cpu_cores": os.cpu_count(), "platform": platform.platform()}


def _mean_ratio(t: list[float], d: list[float]) -> float:
  return float(np.mean(t) / np.mean(d) - 1.0)


# ------------------------------------------------------------ training steps


def train_section(args, model, params0, batch) -> dict:
  """Dense vs each method's ordinary and event steps, round-robin."""
  tx_dense = make_method_tx("dense")
  dense = {"params": po.copy_tree(params0)}
  dense["state"] = tx_dense.init(dense["params"])
  t0 = time.perf_counter()
  dense_fn = po.make_step(model, tx_dense).lower(
      dense["params"], dense["state"], batch).compile()
  compile_s = {"dense": time.perf_counter() - t0}
  print(f"compile dense     train step: {compile_s['dense']:6.1f} s",
        flush=True)

  def run_dense():
    t0 = time.perf_counter()
    dense["params"], dense["state"], loss = dense_fn(dense["params"],
                                                     dense["state"], batch)
    jax.block_until_ready((dense["params"], dense["state"], loss))
    return time.perf_counter() - t0

  results = {}
  for method in args.methods:
    tx = make_method_tx(method)
    v = {"params": po.copy_tree(params0)}
    v["state"] = set_step(tx.init(v["params"]), STEPS[method]["ordinary"])
    t0 = time.perf_counter()
    fns = {}
    for kind in KINDS:  # one program per step kind (or one traced program)
      hint = (None if args.traced
              else jaxprune.step_kind(tx, STEPS[method][kind]))
      fns[kind] = po.make_step(model, tx, hint).lower(
          v["params"], v["state"], batch).compile()
    compile_s[method] = time.perf_counter() - t0
    print(f"\ncompile {method:9s} train steps: {compile_s[method]:6.1f} s",
          flush=True)

    def run(kind, v=v, fns=fns, method=method):
      s = STEPS[method][kind]
      v["state"] = set_step(v["state"], s)
      jax.block_until_ready(v["state"])
      t0 = time.perf_counter()
      v["params"], v["state"], loss = fns[kind](v["params"], v["state"],
                                                batch)
      jax.block_until_ready((v["params"], v["state"], loss))
      dt = time.perf_counter() - t0
      selected = bool(jnp.any(find_prune_state(v["state"]).num_pruned > 0))
      return dt, selected

    def streamed(fn, state_key, n):
      """``n`` steps back to back, one block at the end: s per step."""
      box = dense if state_key == "dense" else v
      jax.block_until_ready(box["state"])
      t0 = time.perf_counter()
      for _ in range(n):
        box["params"], box["state"], loss = fn(box["params"], box["state"],
                                               batch)
      jax.block_until_ready((box["params"], box["state"], loss))
      return (time.perf_counter() - t0) / n

    runners: dict[str, Callable[[], Any]] = {
        "dense": lambda: (run_dense(), None),
        "ordinary": lambda run=run: run("ordinary"),
        "event": lambda run=run: run("event"),
    }
    order = list(runners)
    for i in range(args.warmup):
      line = [f"{n} {runners[n]()[0]:6.3f}" for n in order]
      print(f"  warm-up {i + 1}: " + "   ".join(line), flush=True)
    rec = {n: {"t": [], "selected": []} for n in order}
    for i in range(args.rounds):
      rot = order[i % 3:] + order[:i % 3]
      for n in rot:
        dt, sel = runners[n]()
        rec[n]["t"].append(dt)
        rec[n]["selected"].append(sel)
      print(f"  round {i + 1:2d}: " + "   ".join(
          f"{n} {rec[n]['t'][-1]:6.3f}" + (
              "" if n == "dense" else
              f" [s={STEPS[method][n]}"
              f"{', selected' if rec[n]['selected'][-1] else ''}]")
          for n in order), flush=True)
    stream = None
    if args.streamed:
      v["state"] = set_step(v["state"], STEPS[method]["ordinary"])
      sd, so = [], []
      for i in range(2):  # dense and ordinary, alternating
        pair = [("dense", dense_fn), ("method", fns["ordinary"])]
        for name, fn in (pair if i % 2 == 0 else pair[::-1]):
          (sd if name == "dense" else so).append(
              streamed(fn, name, args.streamed))
      stream = {"steps": args.streamed, "dense_s_per_step": sd,
                "ordinary_s_per_step": so,
                "ordinary_overhead": _mean_ratio(so, sd)}
      print(f"  streamed ({args.streamed} ordinary steps back to back): "
            f"{po.pct(stream['ordinary_overhead'])} vs dense", flush=True)
    sparsity = jaxprune.actual_sparsity(v["params"], where="bert")
    d = rec["dense"]["t"]
    res = {"steps": STEPS[method], "dense_times_s": d,
           "dense_median_s": statistics.median(d),
           "actual_sparsity_after": sparsity, "streamed": stream,
           "path": "traced" if args.traced else "step kinds"}
    for kind in KINDS:
      t = rec[kind]["t"]
      res[kind] = {
          "times_s": t, "median_s": statistics.median(t),
          "selected": rec[kind]["selected"],
          "overhead_mean": _mean_ratio(t, d),
          "overhead_median_of_rounds": float(np.median(
              np.asarray(t) / np.asarray(d) - 1.0)),
      }
    res["selection_as_expected"] = (
        all(res["event"]["selected"])
        and not any(res["ordinary"]["selected"]))
    print(f"  {method}: ordinary {po.pct(res['ordinary']['overhead_mean'])}, "
          f"event {po.pct(res['event']['overhead_mean'])} vs dense (mean "
          f"over {args.rounds} rounds); selections as expected: "
          f"{res['selection_as_expected']}; zeros in the prunable leaves "
          f"after the last step {sparsity:.4f}", flush=True)
    results[method] = res
    del v, fns
  all_dense = [t for r in results.values() for t in r["dense_times_s"]]
  return {"methods": results, "compile_s": compile_s,
          "dense_median_s": statistics.median(all_dense) if all_dense
          else None}


# -------------------------------------------------------------------- pieces


def _scorer_for(method: str) -> transform.Scorer | None:
  """The scorer that ``make_method_tx(method)`` builds (factory defaults)."""
  t_i = int(round(0.1 * TOTAL_STEPS))
  if method == "platon":
    return jaxprune.platon_scorer()
  if method in ("magnitude", "mgpp"):
    return jaxprune.magnitude_scorer()
  if method == "taylor":
    return jaxprune.taylor_scorer(0.85)
  if method == "movement":
    return jaxprune.movement_scorer()
  if method == "seven":
    return jaxprune.seven_scorer(t_i, int(round(0.3 * TOTAL_STEPS)))
  if method == "pins":
    return jaxprune.pins_scorer(optax.constant_schedule(LR))
  raise ValueError(method)


def pieces_section(args, params, dense_median: float | None) -> dict:
  """Score update, selection and masking of each method, alone, jitted."""
  flags = where_lib.resolve("bert", params)
  pl = jax.tree_util.tree_leaves_with_path(params)
  paths = [where_lib.path_str(p) for (p, _), f in zip(pl, flags) if f]
  sel = transform.selected_leaves(params, flags)
  shapes = [tuple(x.shape) for x in sel]
  n = sum(int(x.size) for x in sel)
  reps = args.piece_repeats
  print(f"\n=== pieces alone, on the {len(sel)} prunable leaves ({n:,} "
        f"scalars), median of {reps}", flush=True)
  key = jax.random.key(args.seed + 3)
  grads = jax.tree.map(
      lambda x: 1e-3 * jax.random.normal(jax.random.fold_in(key, x.size),
                                         x.shape, x.dtype), params)
  g_sel = transform.selected_leaves(grads, flags)
  u_sel = [-LR * jnp.sign(g) for g in g_sel]  # stand-in inner updates
  new_p = [p + u for p, u in zip(sel, u_sel)]
  out: dict[str, dict] = {}

  f_mask = jax.jit(lambda ms, ps, us, ap: [
      jnp.where(ap & ~m, -p_, u_) for m, p_, u_ in zip(ms, ps, us)])
  f_gmask = jax.jit(lambda ms, gs: [jnp.where(m, g, jnp.zeros_like(g))
                                    for m, g in zip(ms, gs)])

  for method in args.methods:
    res: dict[str, Any] = {}
    granularity = "layer" if method == "movement" else "global"
    layout = patterns_lib.resolve(None).bind(paths, shapes, granularity,
                                             SPARSITY)
    k = layout.k(jnp.float32(SPARSITY), jnp.asarray(True))
    scorer = _scorer_for(method)
    step = jnp.asarray(STEPS[method]["event"], jnp.int32)

    # 1. Score update (+ the non-finite guard), state donated.
    if method == "mgpp":
      prior = jaxprune.mgpp_prior(
          NUM_EXAMPLES, anneal_start=int(round(0.125 * TOTAL_STEPS)),
          anneal_end=TOTAL_STEPS - 1, where="bert")
      f_prior = jax.jit(lambda st, g, p: prior.update(g, st, p)[0])
      pst = set_step(prior.init(params), int(step))
      med, times = po.timeit(lambda: f_prior(pst, grads, params), reps)
      note = "prior gradient (mgpp_prior update)"
      sstate = scorer.init(sel)
    else:
      def score_update(st, g, q, p, s, scorer=scorer):
        # As transform.prune calls it.
        new = scorer.update(st, g, q, p, s)
        if scorer.guards_nonfinite:
          return new
        ok = [jnp.isfinite(g_ * q_) for g_, q_ in zip(g, q)]
        return transform._guard(new, st, ok)  # pylint: disable=protected-access
      f_sc = jax.jit(score_update, donate_argnums=(0,))
      sstate = scorer.init(sel)
      # Reach a nonzero state through window boundaries (PLATON, PINS).
      for s in (0, 10):
        sstate = f_sc(sstate, g_sel, new_p, sel, jnp.int32(s))
      med, times, sstate = po.timeit_donating(
          lambda st: f_sc(st, g_sel, new_p, sel, step), sstate, reps)
      note = "scorer.update + non-finite guard"
    res["score_update"] = {"median_s": med, "times_s": times, "what": note}

    # 2. Selection: scores + the pattern's select at k = floor(0.9 N).
    monotone = method == "seven"

    def select(st, q, ms, k, scorer=scorer, layout=layout,
               monotone=monotone):
      scores = jax.tree_util.tree_leaves(scorer.scores(st, q))
      if monotone:
        scores = [jnp.where(m, s, -jnp.inf) for s, m in zip(scores, ms)]
      return layout.select(scores, k)

    f_sel = jax.jit(select)
    if monotone:  # earlier mask at 80% sparsity: pruned weights rank -inf
      k_prev = layout.k(jnp.float32(0.8), jnp.asarray(False))
      prev, _ = f_sel(sstate, new_p, [jnp.ones(s, jnp.bool_) for s in shapes],
                      k_prev)
    else:
      prev = [jnp.ones(s, jnp.bool_) for s in shapes]
    med, times = po.timeit(lambda: f_sel(sstate, new_p, prev, k), reps)
    masks, _ = f_sel(sstate, new_p, prev, k)
    pruned = sum(int(m.size) - int(jnp.sum(m)) for m in masks)
    res["selection"] = {"median_s": med, "times_s": times,
                        "pruned": pruned, "k": int(jnp.sum(k)),
                        "exact": pruned == int(jnp.sum(k))}

    # 3. Masking of the updates (and of the gradients, persistent masks).
    med, times = po.timeit(lambda: f_mask(masks, sel, u_sel, jnp.bool_(True)),
                           reps)
    if method in ("magnitude", "seven"):
      med_g, times_g = po.timeit(lambda: f_gmask(masks, g_sel), reps)
      med, times = med + med_g, [a + b for a, b in zip(times, times_g)]
    res["masking"] = {"median_s": med, "times_s": times,
                      "persistent": method in ("magnitude", "seven")}
    if dense_median:
      for piece in ("score_update", "selection", "masking"):
        res[piece]["fraction_of_dense_step"] = (res[piece]["median_s"]
                                                / dense_median)
    print(f"  {method:9s} score update {res['score_update']['median_s']:7.4f}"
          f" s   selection {res['selection']['median_s']:7.4f} s (exact k: "
          f"{res['selection']['exact']})   masking "
          f"{res['masking']['median_s']:7.4f} s", flush=True)
    out[method] = res
    del sstate, masks, prev
  return {"n": n, "leaves": len(sel), "methods": out}


# --------------------------------------------------------------------- table


def markdown_table(train: dict | None, pieces: dict | None,
                   methods: list[str]) -> str:
  """The results as a Markdown table (overheads in % of a dense step).

  Step columns: the overhead of the mean step time over the mean dense step
  time of the same rounds, then the median of the per-round ratios (less
  sensitive to one slow step on a shared machine); pieces: standalone
  median seconds and % of the median dense step.
  """
  d = train["dense_median_s"] if train else None
  head = ("| method | dense step (median) | ordinary step: mean / median "
          "overhead | mask-event step: mean / median overhead | score update "
          "| selection | masking |")
  lines = [head, "|---|---|---|---|---|---|---|"]

  def piece(m, name):
    if not pieces:
      return "-"
    s = pieces["methods"][m][name]["median_s"]
    return f"{s:.3f} s" + (f" ({100 * s / d:.1f}%)" if d else "")

  for m in methods:
    cells = [m]
    if train:
      r = train["methods"][m]
      cells.append(f"{r['dense_median_s']:.2f} s")
      for kind in KINDS:
        k = r[kind]
        cells.append(f"{100 * k['overhead_mean']:+.1f}% / "
                     f"{100 * k['overhead_median_of_rounds']:+.1f}%")
    else:
      cells += ["-", "-", "-"]
    cells += [piece(m, "score_update"), piece(m, "selection"),
              piece(m, "masking")]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


# ---------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict:
  """Runs the benchmark; returns the JSON-able results."""
  p = argparse.ArgumentParser(
      description=__doc__.split("\n\n")[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--model-size", choices=("base", "tiny"), default="base")
  p.add_argument("--methods", nargs="+", choices=PRUNING_METHODS,
                 default=list(PRUNING_METHODS))
  p.add_argument("--rounds", type=int, default=4,
                 help="timed round-robin rounds (dense, ordinary, event) per "
                 "method")
  p.add_argument("--warmup", type=int, default=1,
                 help="untimed rounds per method after compiling")
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--seq", type=int, default=128)
  p.add_argument("--no-train", dest="train", action="store_false",
                 help="skip the train-step section")
  p.add_argument("--no-pieces", dest="pieces", action="store_false",
                 help="skip the pieces section")
  p.add_argument("--piece-repeats", type=int, default=3)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--traced", action="store_true",
                 help="time each method's traced step (one program with a "
                 "cond) instead of one program per step kind")
  p.add_argument("--streamed", type=int, default=10,
                 help="ordinary steps per streamed run (0: none)")
  p.add_argument("--out", default=os.path.join(_ROOT, "benchmarks", "results",
                                                "method_overhead.json"))
  args = p.parse_args(argv)
  if args.rounds < 1 or args.warmup < 0 or args.piece_repeats < 1:
    p.error("--rounds and --piece-repeats must be >= 1, --warmup >= 0")

  t_start = time.perf_counter()
  load_before = os.getloadavg()
  print("jaxprune method overhead benchmark")
  print(f"  jax {jax.__version__} backend={jax.default_backend()}; cpu cores="
        f"{os.cpu_count()}; load average {load_before[0]:.2f} "
        f"{load_before[1]:.2f} {load_before[2]:.2f}; {platform.platform()}")
  model, config = po.build_model(args.model_size, args.seed)
  params = model.params
  flags = where_lib.resolve("bert", params)
  n_all = sum(int(x.size) for x in jax.tree_util.tree_leaves(params))
  n_sel = sum(int(x.size) for x in transform.selected_leaves(params, flags))
  print(f"  model: BertForSequenceClassification ({args.model_size}: "
        f"{config.num_hidden_layers} layers x {config.hidden_size}), "
        f"{n_all:,} params, {n_sel:,} prunable (where='bert'); batch "
        f"{args.batch} x seq {args.seq}; methods {' '.join(args.methods)}")
  batch = po.random_batch(config, args.batch, args.seq, args.seed)
  train = train_section(args, model, params, batch) if args.train else None
  pieces = (pieces_section(args, params,
                           train["dense_median_s"] if train else None)
            if args.pieces else None)
  table = markdown_table(train, pieces, args.methods)
  load_after = os.getloadavg()
  total = time.perf_counter() - t_start
  print(f"\n=== per-step cost vs the dense train step"
        + (f" (median {train['dense_median_s']:.3f} s)" if train else "")
        + f", {args.model_size}, batch {args.batch} x seq {args.seq}")
  print("(step columns: overhead of the mean step over the mean dense step "
        "of the same rounds / median of the per-round ratios; pieces: "
        "standalone median, % of the median dense step)\n")
  print(table)
  print(f"\ntotal benchmark time: {total:.0f} s; load average before "
        f"{load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)")
  out = {
      "benchmark": "method_overhead",
      "config": vars(args),
      "environment": environment(),
      "loadavg_before": list(load_before),
      "loadavg_after": list(load_after),
      "model": {"size": args.model_size, "params": n_all, "prunable": n_sel,
                "batch": args.batch, "seq": args.seq},
      "settings": {"learning_rate": LR, "sparsity": SPARSITY,
                   "total_steps": TOTAL_STEPS, "num_examples": NUM_EXAMPLES,
                   "where": "bert", "steps": STEPS},
      "train": train,
      "pieces": pieces,
      "markdown": table,
      "total_s": total,
  }
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(out, f, indent=1)
  print(f"results written to {args.out}")
  return out


if __name__ == "__main__":
  main()
