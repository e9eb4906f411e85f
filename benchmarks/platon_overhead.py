"""Benchmark: PLATON's per-step overhead over a dense BERT-base train step (CPU).

What is measured
----------------
A ``jaxprune.models.BertForSequenceClassification`` with the bert-base
config (random init, nothing downloaded; ``--model-size tiny`` for a quick
check) is trained on one fixed batch of random token ids and labels
(``--batch`` 8 x ``--seq`` 128, softmax cross-entropy, deterministic forward
pass, i.e. no dropout). Two jitted train steps, both donating params and
optimizer state (``donate_argnums=(0, 1)``), are compared:

* dense: ``optax.adamw(8e-5)``;
* PLATON: ``jaxprune.platon(optax.adamw(8e-5), sparsity=0.9, where="bert",
  delta_t=10, total_steps=T, warmup_steps=0, final_steps=t_f)``.

The PLATON step is compiled once and run from two optimizer states:

* *cubic phase*: steps ``11 .. 10 + S`` (``S = --steps``), all inside the
  cubic ramp (``T - t_f >= 10 + S``): mask events, each with a selection,
  every 10th step (``s % 10 == 0``), nothing pruned in between;
* *final phase*: steps after ``T - t_f``: a mask event at every step. The
  selection itself only runs when the scores changed, i.e. at the PLATON
  window boundaries (every ``delta_t = 10`` steps); the other steps re-apply
  the stored masks.

To get there without running dozens of untimed BERT steps, each PLATON
state's ``count`` is set directly to ``W`` steps before a window boundary
(``W = --warmup``), so the warm-up steps end with a selection (the first one
prunes from the all-zero scores, exercising the tie path) and the timed
steps start one step after a boundary: every aligned window of 10 timed
steps contains exactly one selection. Dense, cubic and final steps are
interleaved round-robin in the same process (the order rotates every
round), each followed by ``jax.block_until_ready``.

Reported per phase: the dense median step time; the *mean overhead* over
each aligned window of 10 consecutive steps, ``(mean(platon) -
mean(dense)) / mean(dense)`` with the dense steps of the same rounds; the
*worst single step*, ``(max platon step - median dense) / median dense``;
and the median overhead of the steps with and without a selection. Targets
printed beside them (not asserted), this CPU's: final-phase mean <= 4%,
cubic-phase mean <= 3%, worst step <= 20%.

Single steps of the same program vary on a shared VM (dense steps over 31% and
47% of their median, max - min, in two runs of 2026-12-03), so the maximum
over 20 steps measures the machine's noise as much as the pruning.
The per-kind section (``--kind-rounds``, 0 to skip) therefore also re-runs one
step of each kind per phase (with and without a selection) several times,
interleaved with dense steps, and reports each kind's median over dense's
median: the costliest kind is the worst step without the noise. It also
divides each of those steps by the dense step of its own round (the machine's
speed drifts over seconds to minutes) and reports the median and mean of these
paired ratios per kind, and per phase the mean over a window of 10 steps
built from them (one with a selection, nine without), each with a 90%
bootstrap interval over the rounds: a target counts as met ("ok") only when
the interval's upper end is within it, as missed ("ABOVE") when its lower end
is above, and as "undecided" otherwise.

The pieces section (``--no-pieces`` to skip) times, on the actual prunable
leaves of the model (85,017,600 scalars for bert-base: kernels and biases of
Q, K, V, attention output and both FFN projections), each part of the
pruner alone, all jitted, donated where the train step donates:
``adamw`` update alone vs the whole PLATON update alone (no model) at each
step type; the PLATON score update (inside a window and at a boundary, as
``jaxprune.platon_scorer`` writes it, with the non-finite guard: one
element-wise pass updating Iwin, Ibar and Ubar; and, for comparison, an Iwin-only update that leaves Ibar and
Ubar untouched, the lower bound for a step inside a window); ``prune_masks`` at ``k = floor(0.9 N)``;
the masking ``where(~m, -p, u)``; the selection ``lax.cond`` built as in
``transform.prune`` (taken, and not taken: the "keep" path of a step without
selection); and ``theta' = p + u``. Standalone times can exceed what a piece
adds inside the train step: there XLA:CPU may overlap independent work (for
instance copies of the optimizer state) with the forward/backward pass, so
the train-step numbers above are the ones the targets refer to.

How to run
----------
From the repository root (bert-base: about 8-10 minutes on 2 CPU cores)::

    PYTHONPATH=. .venv/bin/python benchmarks/platon_overhead.py
    PYTHONPATH=. .venv/bin/python benchmarks/platon_overhead.py --model-size tiny --steps 10
    PYTHONPATH=. .venv/bin/python benchmarks/platon_overhead.py --no-pieces
    PYTHONPATH=. .venv/bin/python benchmarks/platon_overhead.py --pool a.json b.json

Results are printed and written as JSON to ``--out`` (default
``benchmarks/results/platon_overhead.json``).
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
if _ROOT not in sys.path:
  sys.path.insert(0, _ROOT)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import jaxprune  # noqa: E402
from jaxprune import selection  # noqa: E402
from jaxprune import where as where_lib  # noqa: E402

try:
  from jaxprune import models
  _HF_ERROR = None
except Exception as e:  # pylint: disable=broad-except
  models = None
  _HF_ERROR = f"{type(e).__name__}: {e}"

LR = 8e-5
SPARSITY = 0.9
DELTA_T = 10
# Issue 14's targets for this CPU (its GPU targets are 5% and 25%).
TARGETS = {"final_mean": 0.04, "final_worst": 0.20, "cubic_mean": 0.03,
           "cubic_worst": 0.20}


# ------------------------------------------------------------------- helpers


def timeit(fn: Callable[[], Any], repeats: int, warmup: bool = True
           ) -> tuple[float, list[float]]:
  """Median wall seconds of ``fn()`` (blocked on) over ``repeats`` runs."""
  if warmup:
    jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return statistics.median(times), times


def timeit_donating(fn: Callable, state: Any, repeats: int
                    ) -> tuple[float, list[float], Any]:
  """Like :func:`timeit` for ``state = fn(state)`` with a donated ``state``."""
  state = jax.block_until_ready(fn(state))
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    state = jax.block_until_ready(fn(state))
    times.append(time.perf_counter() - t0)
  return statistics.median(times), times, state


def copy_tree(tree):
  return jax.tree.map(lambda x: jnp.array(x, copy=True), tree)


def po_pct(x: float) -> str:
  return pct(x)


def pct(x: float) -> str:
  return f"{100.0 * x:+7.2f}%"


def build_model(size: str, seed: int):
  if models is None:
    sys.exit(f"flax is required for this benchmark: {_HF_ERROR}"
             "\n  install with: pip install -e '.[train]'")
  if size == "base":
    # bert-base-uncased: 12 x 768, FFN 3072
    config = models.BertConfig(num_labels=2)
  else:
    config = models.BertConfig(vocab_size=1000, hidden_size=128,
                               heads_per_layer=(2, 2), head_dim=64,
                               intermediate_sizes=(512, 512),
                               max_position_embeddings=512, num_labels=2)
  model = models.FunctionalModel(
      models.build(config, "sequence_classification", seed=seed))
  return model, config


def make_step(model, tx, kind=None):
  """A donating jitted train step; ``kind`` a :class:`jaxprune.StepKind`
  (static: one program per kind) or ``None`` for the traced step."""
  def loss_fn(params, batch):
    logits = model(batch["input_ids"], attention_mask=batch["attention_mask"],
                   params=params, train=False).logits
    return optax.softmax_cross_entropy_with_integer_labels(
        logits, batch["labels"]).mean()

  def step(params, opt_state, batch):
    loss, grads = jax.value_and_grad(loss_fn)(params, batch)
    extra = {} if kind is None else {"step_kind": kind}
    updates, opt_state = tx.update(grads, opt_state, params, **extra)
    return optax.apply_updates(params, updates), opt_state, loss

  return jax.jit(step, donate_argnums=(0, 1))


def schedule_numbers(steps: int, warmup: int, streamed: int = 0) -> dict:
  """Step counts so that each variant's timed steps and then its
  ``streamed`` back-to-back steps stay in its phase (cubic / final)."""
  run = steps + streamed
  end = DELTA_T * -(-(DELTA_T + run) // DELTA_T)  # >= 10 + run, x10
  final_steps = run + 2 * DELTA_T
  total = end + final_steps
  return {
      "total_steps": total, "warmup_steps": 0, "final_steps": final_steps,
      "cubic_end": end,
      "cubic_start_count": DELTA_T - warmup + 1,
      "final_start_count": end + DELTA_T - warmup + 1,
  }


# ------------------------------------------------------------ training steps


def _streamed_steps(args) -> int:
  return args.streamed * args.streamed_rounds if args.streamed else 0


def train_section(args, model, params0, batch) -> tuple[dict, Any, Any]:
  sched = schedule_numbers(args.steps, args.warmup, _streamed_steps(args))
  print(f"\nPLATON schedule: total_steps={sched['total_steps']}, "
        f"warmup_steps=0, final_steps={sched['final_steps']}, delta_t="
        f"{DELTA_T}: cubic phase 1..{sched['cubic_end']}, final phase "
        f"> {sched['cubic_end']}")
  tx_dense = optax.adamw(LR)
  tx_platon = jaxprune.platon(
      optax.adamw(LR), sparsity=SPARSITY, total_steps=sched["total_steps"],
      warmup_steps=0, final_steps=sched["final_steps"], delta_t=DELTA_T,
      where="bert")

  variants = {
      "dense": {"tx": tx_dense},
      "cubic": {"tx": tx_platon, "start": sched["cubic_start_count"]},
      "final": {"tx": tx_platon, "start": sched["final_start_count"]},
  }
  t0 = time.perf_counter()
  for name, v in variants.items():
    v["params"] = copy_tree(params0)
    state = v["tx"].init(v["params"])
    if "start" in v:
      state = state._replace(count=jnp.asarray(v["start"], jnp.int32))
    v["state"] = state
  jax.block_until_ready([v["state"] for v in variants.values()])
  print(f"init of 3 param copies + optimizer states: "
        f"{time.perf_counter() - t0:.1f} s")

  compile_s = {}
  programs = {}

  def program(name, s):
    """The compiled step of variant ``name`` at step ``s``: dense, PLATON
    traced (``--traced``) or PLATON's program for the kind of step ``s``."""
    kind = None
    if name != "dense" and not args.traced:
      kind = jaxprune.step_kind(tx_platon, s)
    key = "dense" if name == "dense" else kind
    if key not in programs:
      v = variants[name]
      t0 = time.perf_counter()
      tx = tx_dense if name == "dense" else tx_platon
      programs[key] = make_step(model, tx, kind).lower(
          v["params"], v["state"], batch).compile()
      label = "dense" if name == "dense" else (kind or "traced")
      compile_s[str(label)] = time.perf_counter() - t0
      print(f"compile {label}: {compile_s[str(label)]:6.1f} s", flush=True)
    return programs[key]

  for v in variants.values():  # host-side step counters
    v["s"] = v.get("start", 0)

  def run(name):
    v = variants[name]
    s = v["s"] if name != "dense" else None
    fn = program(name, v["s"])
    t0 = time.perf_counter()
    v["params"], v["state"], loss = fn(v["params"], v["state"], batch)
    jax.block_until_ready((v["params"], v["state"], loss))
    v["s"] += 1
    return time.perf_counter() - t0, s, float(loss)

  def streamed(name, n):
    """``n`` steps dispatched back to back, one block at the end."""
    v = variants[name]
    fns = [program(name, v["s"] + i) for i in range(n)]  # compiled first
    jax.block_until_ready(v["state"])
    t0 = time.perf_counter()
    for fn in fns:
      v["params"], v["state"], loss = fn(v["params"], v["state"], batch)
    jax.block_until_ready((v["params"], v["state"], loss))
    v["s"] += n
    return (time.perf_counter() - t0) / n

  order = list(variants)
  print(f"warm-up: {args.warmup} steps each", flush=True)
  for i in range(args.warmup):
    for name in order:
      dt, s, loss = run(name)
      print(f"  warm-up {name:5s} step s={s if s is not None else '-':>3} "
            f"{dt:7.3f} s  loss {loss:.4f}", flush=True)

  rec = {name: {"t": [], "s": []} for name in order}
  print(f"timed: {args.steps} rounds, round-robin (order rotates)",
        flush=True)
  for i in range(args.steps):
    rot = order[i % 3:] + order[:i % 3]
    line = []
    for name in rot:
      dt, s, _ = run(name)
      rec[name]["t"].append(dt)
      rec[name]["s"].append(s)
    for name in order:
      s = rec[name]["s"][-1]
      sel = " (select)" if s is not None and s % DELTA_T == 0 else ""
      line.append(f"{name} {rec[name]['t'][-1]:6.3f}"
                  + ("" if s is None else f" [s={s}]{sel}"))
    print(f"  round {i + 1:3d}: " + "   ".join(line), flush=True)

  stream = {}
  if args.streamed:
    print(f"streamed: {args.streamed} steps back to back per variant, one "
          "block at the end, rounds rotate", flush=True)
    per = {name: [] for name in order}
    for i in range(args.streamed_rounds):
      for name in order[i % 3:] + order[:i % 3]:
        per[name].append(streamed(name, args.streamed))
      print(f"  round {i + 1}: " + "   ".join(
          f"{n} {per[n][-1]:6.3f} s/step" for n in order), flush=True)
    d = float(np.mean(per["dense"]))
    stream = {n: {"s_per_step": per[n], "mean_s_per_step": float(
        np.mean(per[n])), "overhead": float(np.mean(per[n]) / d - 1.0)}
              for n in order}
    stream["steps_per_round"] = args.streamed
    for n in ("cubic", "final"):
      print(f"  streamed {n}: {po_pct(stream[n]['overhead'])} vs dense",
            flush=True)

  sparsity_final = jaxprune.actual_sparsity(variants["final"]["params"],
                                            where="bert")
  sparsity_cubic = jaxprune.actual_sparsity(variants["cubic"]["params"],
                                            where="bert")
  res = analyse(rec, sched)
  res["compile_s"] = compile_s
  res["streamed"] = stream
  res["path"] = "traced" if args.traced else "step kinds"
  res["schedule"] = sched
  res["actual_sparsity_after"] = {"final": sparsity_final,
                                  "cubic": sparsity_cubic}
  last_c = rec["cubic"]["s"][-1]
  print(f"\nsanity: fraction of zeros in the prunable leaves after the last "
        f"timed step: final phase {sparsity_final:.4f} (target {SPARSITY}); "
        f"cubic phase {sparsity_cubic:.4f} (last step s={last_c}, "
        f"{'a mask event' if last_c % DELTA_T == 0 else 'no mask event'})")
  if args.kind_rounds:
    res["kinds"] = kinds_section(args, variants, rec, run)
  # Hand back the final variant's trained params (for the pieces section).
  params_final = variants["final"]["params"]
  for v in variants.values():
    v.clear()
  return res, params_final, tx_platon


def kinds_section(args, variants: dict, rec: dict, run: Callable) -> dict:
  """Each step kind's cost, repeated: the single-step maximum is noisy.

  One step of each kind per phase (the last timed step with a selection and
  the last without) is run ``--kind-rounds`` times, its variant's counter set
  back to that step before each call (the state and params stay live, as in
  training), interleaved with dense steps in rotating order. Reported: each
  kind's median wall time over dense's median (and its fastest run over
  dense's fastest, the least disturbed pair); the costliest kind's figure is
  the worst-step overhead net of the machine's step-to-step noise, which the
  dense steps' spread shows beside it.
  """
  picks = {}
  for phase in ("cubic", "final"):
    steps = rec[phase]["s"]
    for sel, label in ((True, "selection"), (False, "no selection")):
      cand = [s for s in steps if (s % DELTA_T == 0) == sel]
      if cand:
        picks[f"{phase}, {label}"] = (phase, cand[-1])
  names = ["dense"] + list(picks)
  times = {n: [] for n in names}
  print(f"\nper step kind: {args.kind_rounds} rounds, each kind re-run at one "
        "step (counter set back), interleaved with dense, order rotates",
        flush=True)

  def one(name):
    if name == "dense":
      return run("dense")[0]
    phase, s = picks[name]
    v = variants[phase]
    v["s"] = s
    v["state"] = v["state"]._replace(count=jnp.asarray(s, jnp.int32))
    return run(phase)[0]

  for i in range(args.kind_rounds):
    for name in names[i % len(names):] + names[:i % len(names)]:
      times[name].append(one(name))
    print(f"  round {i + 1:3d}: " + "   ".join(
        f"{n} {times[n][-1]:6.3f}" for n in names), flush=True)
  return summarise_kinds(times, {n: s for n, (_, s) in picks.items()})


def summarise_kinds(times: dict, steps: dict) -> dict:
  """Per kind (``steps``: name -> its step): median over dense's median, the
  fastest run over dense's fastest, and :func:`paired_estimates`."""
  d = times["dense"]
  d_med = float(np.median(d))
  out = {"dense": {"median_s": d_med, "times_s": d,
                   "spread": float((max(d) - min(d)) / d_med)},
         "rounds": len(d)}
  for name, s in steps.items():
    med = float(np.median(times[name]))
    out[name] = {"step": s, "times_s": times[name], "median_s": med,
                 "overhead": med / d_med - 1.0,
                 "overhead_of_minima": min(times[name]) / min(d) - 1.0}
  out["worst_kind"] = max(steps, key=lambda n: out[n]["overhead"])
  out.update(paired_estimates(times, steps))
  return out


def _interval(values: np.ndarray, stat: Callable, n: int = 4000,
              seed: int = 0) -> list[float]:
  """A 90% bootstrap interval of ``stat`` over rounds (resampled rows)."""
  rng = np.random.default_rng(seed)
  idx = rng.integers(0, len(values), size=(n, len(values)))
  boot = np.array([stat(values[i]) for i in idx])
  return [float(np.percentile(boot, 5)), float(np.percentile(boot, 95))]


def paired_estimates(times: dict, picks: dict) -> dict:
  """Overheads from each round's own dense step, with 90% intervals.

  The machine's speed drifts over seconds to minutes, so each kind's step is
  divided by the dense step of the same round (run next to it) before
  averaging: ``r_i = t_kind,i / t_dense,i``. Per kind: the median and the
  mean of ``r_i - 1``. Per phase: the mean overhead of a window of
  ``DELTA_T`` steps, one with a selection and ``DELTA_T - 1`` without,
  ``m_i = (r_sel,i + (DELTA_T - 1) r_other,i) / DELTA_T - 1``, averaged over
  rounds. Intervals: percentile bootstrap over rounds (4,000 resamples).
  """
  d = np.asarray(times["dense"])
  ratios = {n: np.asarray(times[n]) / d for n in picks}
  out = {"paired": {}, "phase_mean_from_kinds": {}}
  for n, r in ratios.items():
    out["paired"][n] = {
        "median": float(np.median(r) - 1.0),
        "median_interval": [x - 1.0 for x in _interval(r, np.median)],
        "mean": float(r.mean() - 1.0),
        "mean_interval": [x - 1.0 for x in _interval(r, np.mean)]}
  for phase in ("cubic", "final"):
    sel, other = f"{phase}, selection", f"{phase}, no selection"
    if sel in ratios and other in ratios:
      m = (ratios[sel] + (DELTA_T - 1) * ratios[other]) / DELTA_T - 1.0
      out["phase_mean_from_kinds"][phase] = {
          "mean": float(m.mean()), "interval": _interval(m, np.mean),
          "target": TARGETS[f"{phase}_mean"]}
  return out


def pool_kinds(paths: list[str]) -> dict:
  """The per-kind sections of several results files as one, for
  :func:`print_kinds`: rounds concatenated, each paired within its run."""
  runs = []
  for path in paths:
    with open(path) as f:
      kinds = json.load(f).get("train", {}).get("kinds")
    if not kinds or "dense" not in kinds:
      raise SystemExit(f"--pool: {path} has no per-kind section (it was run "
                       "with --kind-rounds 0)")
    runs.append(kinds)
  steps = {n: r["step"] for n, r in runs[0].items()
           if isinstance(r, dict) and "overhead" in r}
  for path, kinds in zip(paths, runs):
    got = {n: kinds[n]["step"] for n in steps if n in kinds}
    if got != steps:
      raise SystemExit(f"--pool: {path} has the kinds at steps {got}, "
                       f"{paths[0]} at {steps}: pool runs of one setting")
  times = {n: sum((k[n]["times_s"] for k in runs), [])
           for n in ["dense"] + list(steps)}
  print(f"pooled {len(paths)} runs: " + ", ".join(paths))
  return summarise_kinds(times, steps)


def print_kinds(k: dict) -> None:
  d = k["dense"]
  print(f"\n=== per step kind, median of {k['rounds']} repeats each "
        f"(dense median {d['median_s']:.3f} s; dense steps spread "
        f"{100 * d['spread']:.0f}% of it, min to max)")
  for name, r in k.items():
    if isinstance(r, dict) and "overhead" in r:
      print(f"  {name:<22s} s={r['step']:<4d} median {r['median_s']:.3f} s "
            f"{pct(r['overhead'])}   fastest of its runs over dense's "
            f"fastest {pct(r['overhead_of_minima'])}")
  w = k[k["worst_kind"]]["overhead"]
  ok = "ok" if w <= TARGETS["final_worst"] else "ABOVE"
  print(f"  costliest kind: {k['worst_kind']}, {pct(w)} "
        f"(worst-step target <={100 * TARGETS['final_worst']:.0f}% {ok})")
  if "paired" not in k:
    return
  print("  paired with the same round's dense step (90% bootstrap intervals):")
  for name, r in k["paired"].items():
    lo, hi = r["median_interval"]
    mlo, mhi = r["mean_interval"]
    print(f"  {name:<22s} median {pct(r['median'])} [{pct(lo)}, {pct(hi)}]"
          f"   mean {pct(r['mean'])} [{pct(mlo)}, {pct(mhi)}]")
  name = max(k["paired"], key=lambda n: k["paired"][n]["median"])
  r = k["paired"][name]
  lo, hi = r["median_interval"]
  t = TARGETS["final_worst"]
  ok = "ok" if hi <= t else "ABOVE" if lo > t else "undecided"
  print(f"  costliest kind, paired: {name}, {pct(r['median'])} "
        f"[{pct(lo)}, {pct(hi)}]  worst-step target <={100 * t:.0f}% {ok}")
  for phase, r in k["phase_mean_from_kinds"].items():
    lo, hi = r["interval"]
    ok = ("ok" if hi <= r["target"] else
          "ABOVE" if lo > r["target"] else "undecided")
    print(f"  {phase} window mean ({DELTA_T - 1} steps without and 1 with a "
          f"selection) {pct(r['mean'])} [{pct(lo)}, {pct(hi)}]  target "
          f"<={100 * r['target']:.0f}% {ok}")


def analyse(rec: dict, sched: dict) -> dict:
  dense = np.asarray(rec["dense"]["t"])
  d_med = float(np.median(dense))
  out = {"dense": {"median_s": d_med, "mean_s": float(dense.mean()),
                   "times_s": dense.tolist()}}
  for name in ("final", "cubic"):
    t = np.asarray(rec[name]["t"])
    s = np.asarray(rec[name]["s"])
    is_sel = s % DELTA_T == 0
    windows = []
    # Aligned windows of 10 consecutive steps: s = 10m+1 .. 10m+10.
    start = 0
    while start + DELTA_T <= len(t):
      sl = slice(start, start + DELTA_T)
      dm = float(dense[sl].mean())
      windows.append({"steps": [int(s[sl][0]), int(s[sl][-1])],
                      "platon_mean_s": float(t[sl].mean()),
                      "dense_mean_s": dm,
                      "overhead": float((t[sl].mean() - dm) / dm)})
      start += DELTA_T
    if windows:
      mean_ovh = float(np.mean([w["overhead"] for w in windows]))
    else:  # fewer than 10 timed steps: use all of them
      mean_ovh = float((t.mean() - dense.mean()) / dense.mean())
    per_step = (t - dense) / dense
    out[name] = {
        "steps": s.tolist(), "times_s": t.tolist(),
        "median_s": float(np.median(t)),
        "windows": windows,
        "mean_overhead": mean_ovh,
        "worst_step_s": float(t.max()),
        "worst_step": int(s[int(t.argmax())]),
        "worst_overhead": float((t.max() - d_med) / d_med),
        "median_overhead_selection_steps":
            float(np.median(per_step[is_sel])) if is_sel.any() else None,
        "median_overhead_other_steps":
            float(np.median(per_step[~is_sel])) if (~is_sel).any() else None,
    }
  return out


def print_train(res: dict) -> None:
  d = res["dense"]
  print("\n=== train step: PLATON vs dense (wall seconds per step)")
  print(f"dense adamw step: median {d['median_s']:.3f} s, mean "
        f"{d['mean_s']:.3f} s over {len(d['times_s'])} steps")
  print(f"{'phase':<7s} {'median':>8s} {'window mean ovh':>16s} "
        f"{'target':>8s} {'worst step ovh':>15s} {'target':>8s} "
        f"{'sel. steps':>11s} {'other steps':>12s}")
  for name, key in (("final", "final"), ("cubic", "cubic")):
    r = res[name]
    mean_t = TARGETS[f"{key}_mean"]
    worst_t = TARGETS.get(f"{key}_worst")
    ok_m = "ok" if r["mean_overhead"] <= mean_t else "ABOVE"
    worst_txt = (f"<={100 * worst_t:.0f}% "
                 f"{'ok' if r['worst_overhead'] <= worst_t else 'ABOVE'}"
                 if worst_t is not None else "-")
    sel = r["median_overhead_selection_steps"]
    oth = r["median_overhead_other_steps"]
    print(f"{name:<7s} {r['median_s']:7.3f}s {pct(r['mean_overhead']):>16s} "
          f"{f'<={100 * mean_t:.0f}% {ok_m}':>8s} "
          f"{pct(r['worst_overhead']):>11s} (s={r['worst_step']}) "
          f"{worst_txt:>8s} "
          f"{pct(sel) if sel is not None else '-':>11s} "
          f"{pct(oth) if oth is not None else '-':>12s}")
    for w in r["windows"]:
      print(f"        window s={w['steps'][0]}..{w['steps'][1]}: platon "
            f"{w['platon_mean_s']:.3f} s vs dense {w['dense_mean_s']:.3f} s "
            f"-> {pct(w['overhead'])}")
  print("(sel. steps / other steps: median per-round overhead of the steps "
        "with / without a selection)")


# -------------------------------------------------------------------- pieces


def pieces_section(args, params, tx_platon) -> dict:
  """Times the pruner's parts alone on the model's prunable leaves."""
  flags = where_lib.resolve("bert", params)
  p_leaves = jax.tree_util.tree_leaves(params)
  sel = [x for x, f in zip(p_leaves, flags) if f]
  n = sum(int(x.size) for x in sel)
  reps = args.piece_repeats
  print(f"\n=== pieces alone, on the {len(sel)} prunable leaves "
        f"({n:,} scalars), median of {reps}")
  rows: dict[str, dict] = {}

  def add(name, med, times, note=""):
    rows[name] = {"median_s": med, "times_s": times}
    print(f"  {name:<58s} {med:8.4f} s {note}", flush=True)

  key = jax.random.key(args.seed + 3)
  grads = jax.tree.map(
      lambda x: 1e-3 * jax.random.normal(jax.random.fold_in(key, x.size),
                                         x.shape, x.dtype), params)

  # 1. Whole optimizer updates alone (no model): adamw vs PLATON.
  def upd(tx):
    def f(p, state, g):
      u, state = tx.update(g, state, p)
      return optax.apply_updates(p, u), state
    return jax.jit(f, donate_argnums=(0, 1))

  tx_dense = optax.adamw(LR)
  f_dense = upd(tx_dense)
  st = (copy_tree(params), tx_dense.init(params))
  med, times, st = timeit_donating(lambda s: f_dense(s[0], s[1], grads), st,
                                   reps)
  add("adamw update + apply (no model)", med, times)
  dense_upd = med
  del st

  f_pl = upd(tx_platon)
  sched = schedule_numbers(args.steps, args.warmup, _streamed_steps(args))
  end = sched["cubic_end"]
  p = copy_tree(params)
  state = tx_platon.init(p)
  # Give the scores a nonzero state: one window boundary and a few steps.
  for s in (end + 9, end + 10, end + 11):
    state = state._replace(count=jnp.asarray(s, jnp.int32))
    p, state = f_pl(p, state, grads)
  jax.block_until_ready(state)
  cases = [
      ("PLATON update, final phase, no selection (s=10m+5)", end + 15),
      ("PLATON update, final phase, selection (s=10m)", end + 20),
      ("PLATON update, cubic phase, no event (s=10m+5)", 15),
      ("PLATON update, cubic phase, event+selection (s=10m)", 20),
  ]
  platon_upd = {}
  for name, s in cases:
    times = []
    for r in range(reps + 1):
      state = state._replace(count=jnp.asarray(s, jnp.int32))
      jax.block_until_ready(state.count)
      t0 = time.perf_counter()
      p, state = jax.block_until_ready(f_pl(p, state, grads))
      if r:
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    platon_upd[name] = med
    add(name, med, times, f"(+{med - dense_upd:.4f} s vs adamw)")
  scores_state = state.scorer_state
  masks_state = state.masks
  del p, state

  # 2. Score update (platon scorer) alone, donating its state.
  scorer = jaxprune.platon_scorer(0.85, 0.95, DELTA_T)
  g_sel = [x for x, f in zip(jax.tree_util.tree_leaves(grads), flags) if f]
  sc_leaves = [jax.tree_util.tree_leaves(t) for t in scores_state]
  sstate = jaxprune.PlatonScoreState(*[copy_tree(l) for l in sc_leaves])
  newp = [copy_tree(x) for x in sel]
  # (Arrays are passed as arguments, never closed over: no jit constants.)
  f_sc = jax.jit(lambda st, g, q, s: scorer.update(st, g, q, None, s),
                 donate_argnums=(0,))
  for name, s in (("score update, inside a window", 5),
                  ("score update, window boundary", 10)):
    s_arr = jnp.asarray(s, jnp.int32)
    med, times, sstate = timeit_donating(
        lambda st: f_sc(st, g_sel, newp, s_arr), sstate, reps)
    add(name, med, times)

  def inside_direct(st, g, q, step):
    lf = (step % DELTA_T).astype(jnp.float32)
    sens = [jnp.abs(p_ * g_) for p_, g_ in zip(q, g)]
    iwin = [(w * lf + i) / (lf + 1.0) for w, i in zip(st.iwin, sens)]
    return jaxprune.PlatonScoreState(iwin, st.ibar, st.ubar)

  f_in = jax.jit(inside_direct, donate_argnums=(0,))
  s_arr = jnp.asarray(5, jnp.int32)
  med, times, sstate = timeit_donating(
      lambda st: f_in(st, g_sel, newp, s_arr), sstate, reps)
  add("score update, Iwin only (lower bound inside a window)", med, times)
  del sstate
  scores = [b * u for b, u in zip(sc_leaves[1], sc_leaves[2])]

  # 3. Selection.
  k = jnp.int32(n * 9 // 10)
  f_sel = jax.jit(lambda sc, k: selection.prune_masks(sc, k))
  med, times = timeit(lambda: f_sel(scores, k), reps)
  masks, tau = f_sel(scores, k)
  pruned = sum(int(m.size) - int(jnp.sum(m)) for m in masks)
  add(f"selection prune_masks, k=floor(0.9 N)", med, times,
      f"(pruned {pruned:,} == k {int(k):,}: {pruned == int(k)})")
  f_kth = jax.jit(lambda sc, k: selection.kth_smallest(sc, k)[0])
  med, times = timeit(lambda: f_kth(scores, k), reps)
  add("  of which kth_smallest (threshold only)", med, times)

  # 4. Mask application, as in transform.prune.
  u_sel = [x for x, f in zip(jax.tree_util.tree_leaves(grads), flags) if f]
  f_mask = jax.jit(lambda ms, ps, us, ap: [
      jnp.where(ap & ~m, -p_, u_) for m, p_, u_ in zip(ms, ps, us)])
  med, times = timeit(lambda: f_mask(masks, sel, u_sel, jnp.bool_(True)),
                      reps)
  add("mask application where(apply & ~m, -p, u)", med, times)

  # 5. The selection cond as in transform.prune: the select branch closes
  #    over the score state (ibar, ubar), the keep branch returns the stored
  #    masks (donated, as the optimizer state is in the train step).
  ibar = [jnp.array(x, copy=True) for x in sc_leaves[1]]
  ubar = [jnp.array(x, copy=True) for x in sc_leaves[2]]
  m_keep = [jnp.array(m, copy=True) for m in
            jax.tree_util.tree_leaves(masks_state)]

  def sel_cond(ms, tau, ib, ub, k, pred):
    def select(_):
      m, t = selection.prune_masks([b * u for b, u in zip(ib, ub)], k)
      return m, t
    return jax.lax.cond(pred, select, lambda _: (list(ms), tau), None)

  f_cond = jax.jit(sel_cond, donate_argnums=(0, 1))
  tau0 = jnp.zeros((1,), jnp.float32)
  for name, pred in (
      ("selection cond, not taken (keep the stored masks)", False),
      ("selection cond, taken (scores = ibar*ubar, prune_masks)", True)):
    pr = jnp.bool_(pred)
    med, times, (m_keep, tau0) = timeit_donating(
        lambda st: f_cond(st[0], st[1], ibar, ubar, k, pr), (m_keep, tau0),
        reps)
    add(name, med, times)
  del ibar, ubar, m_keep
  # 6. theta' = p + u on the prunable leaves (computed every step).
  f_newp = jax.jit(lambda ps, us: [p_ + u_ for p_, u_ in zip(ps, us)])
  med, times = timeit(lambda: f_newp(sel, u_sel), reps)
  add("theta' = p + u on the prunable leaves", med, times)

  return {"n": n, "rows": rows, "adamw_update_s": dense_upd,
          "platon_update_s": platon_upd}


# ---------------------------------------------------------------------- main


def random_batch(config: Any, batch: int, seq: int, seed: int,
                 tokens: str = "random") -> dict:
  """One fixed batch of token ids and random binary labels.

  ``tokens="random"``: random ids; ``"same"``: every id the same (a
  degenerate, tie-heavy batch: the scores it produces are far from random).
  """
  rng = np.random.default_rng(seed)
  ids = rng.integers(0, config.vocab_size, (batch, seq))
  if tokens == "same":
    ids = np.full((batch, seq), 1000 % config.vocab_size)
  return {
      "input_ids": jnp.asarray(ids, jnp.int32),
      "attention_mask": jnp.ones((batch, seq), jnp.int32),
      "labels": jnp.asarray(rng.integers(0, 2, (batch,)), jnp.int32),
  }


def main() -> None:
  p = argparse.ArgumentParser(
      description=__doc__.split("\n\n")[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--model-size", choices=("base", "tiny"), default="base")
  p.add_argument("--steps", type=int, default=20,
                 help="timed steps per variant (dense, cubic, final)")
  p.add_argument("--warmup", type=int, default=3,
                 help="untimed steps per variant, 1..10 (the last one of the "
                 "PLATON variants is a selection)")
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--seq", type=int, default=128)
  p.add_argument("--tokens", choices=("random", "same"), default="random",
                 help="the batch's token ids: random, or every id the same "
                 "(tie-heavy scores)")
  p.add_argument("--pieces", dest="pieces", action="store_true", default=True,
                 help="time the pruner's pieces alone (default)")
  p.add_argument("--no-pieces", dest="pieces", action="store_false")
  p.add_argument("--piece-repeats", type=int, default=5)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--traced", action="store_true",
                 help="time PLATON's traced step (one program with a cond) "
                 "instead of one program per step kind")
  p.add_argument("--streamed", type=int, default=10,
                 help="steps per streamed run (0: none): what training "
                 "sees when the host does not wait for each step")
  p.add_argument("--streamed-rounds", type=int, default=2)
  p.add_argument("--kind-rounds", type=int, default=8,
                 help="repeats of each step kind at a fixed step (0: skip): "
                 "the worst-step figure without the machine's noise")
  p.add_argument("--out", default=os.path.join(_ROOT, "benchmarks", "results",
                                                "platon_overhead.json"))
  p.add_argument("--pool", nargs="+", metavar="JSON",
                 help="run nothing: pool the per-kind rounds of these "
                 "results files (each round paired within its own run) and "
                 "print the paired estimates")
  args = p.parse_args()
  if args.pool:
    print_kinds(pool_kinds(args.pool))
    return
  if not 1 <= args.warmup <= DELTA_T:
    p.error(f"--warmup must be in 1..{DELTA_T}")
  if args.steps < 1:
    p.error("--steps must be >= 1")
  if args.kind_rounds < 0:
    p.error(f"--kind-rounds must be >= 0, got {args.kind_rounds}")

  t_start = time.perf_counter()
  print("jaxprune PLATON overhead benchmark")
  print(f"  jax {jax.__version__} backend={jax.default_backend()}; cpu cores="
        f"{os.cpu_count()}; load average {os.getloadavg()[0]:.2f}; "
        f"{platform.platform()}")
  model, config = build_model(args.model_size, args.seed)
  params = model.params
  flags = where_lib.resolve("bert", params)
  n_all = sum(int(x.size) for x in jax.tree_util.tree_leaves(params))
  n_sel = sum(int(x.size) for x, f in
              zip(jax.tree_util.tree_leaves(params), flags) if f)
  print(f"  model: BertForSequenceClassification ({args.model_size}: "
        f"{config.num_hidden_layers} layers x {config.hidden_size}, FFN "
        f"{config.intermediate_size}), {n_all:,} params, {n_sel:,} prunable "
        f"(where='bert'); batch {args.batch} x seq {args.seq}")
  batch = random_batch(config, args.batch, args.seq, args.seed, args.tokens)

  train, params_final, tx_platon = train_section(args, model, params, batch)
  print_train(train)
  if train.get("kinds"):
    print_kinds(train["kinds"])
  pieces = None
  if args.pieces:
    del params_final
    pieces = pieces_section(args, params, tx_platon)
    d_med = train["dense"]["median_s"]
    print(f"\n  pieces relative to the dense train step ({d_med:.3f} s):")
    for name, r in pieces["rows"].items():
      print(f"    {name:<58s} {100 * r['median_s'] / d_med:6.2f}%")
  total = time.perf_counter() - t_start
  print(f"\ntotal benchmark time: {total:.0f} s (load average now "
        f"{os.getloadavg()[0]:.2f})")

  out = {
      "benchmark": "platon_overhead",
      "config": vars(args),
      "environment": {"jax": jax.__version__, "backend": jax.default_backend(),
                      "cpu_cores": os.cpu_count(),
                      "platform": platform.platform()},
      "model": {"size": args.model_size, "params": n_all, "prunable": n_sel},
      "targets": TARGETS,
      "train": train,
      "pieces": pieces,
      "total_s": total,
  }
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(out, f, indent=1)
  print(f"results written to {args.out}")


if __name__ == "__main__":
  main()
