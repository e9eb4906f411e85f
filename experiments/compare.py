"""Every method at several sparsities on one task, same budget and data order.

Every cell (method, sparsity, seed) is one run of :mod:`experiments.run`
from the same config (default: the demo's, ``experiments/configs/demo.py``),
so every method gets the same data order, budget and inner optimizer. The
dense baseline runs once per seed and is shared by every sparsity (and is
the fine-tuned model that ``cam_cut``/``smooth_cut`` score). A cell's result
is written to ``<out>/<method>_<sparsity>_s<seed>.json`` (default
``results/compare_cells``, a few KB, committed) when it finishes and is not
rerun: an interrupted comparison resumes where it stopped, on another
machine too; the run folders (checkpoints, logs, reports) and the dense
params go to ``--runs``. Where a seed's dense cell exists but its params
are not in ``--runs`` (not committed), the cells that need them (Cam-Cut,
Smooth-Cut, ``+kd``) first train the dense model again and report whether
it reaches the cell's accuracy.
``METHOD+kd`` runs ``METHOD`` distilled from the seed's dense run. The
table gives mean ± std over seeds and PLATON's per-seed paired difference
to every other method.

Writes ``<results>/compare.csv`` (one row per cell), ``compare.md`` (mean
and spread over seeds per method and sparsity) and ``compare.png`` (accuracy
against sparsity, one line per method).

Usage::

    python -m experiments.compare                       # 3 seeds, 600 steps
    python -m experiments.compare --methods platon platon+kd magnitude \\
        --sparsities 0.9                # +kd: distilled from the dense run
    python -m experiments.compare --seeds 1 --set steps=150  # CPU budget
    python -m experiments.compare --config experiments/configs/text.py \\
        --set data=glue/sst2 model=bert-base-uncased     # GPU/TPU

Example:
  >>> from experiments import compare
  >>> compare.summarize([{"method": "platon", "sparsity": 0.8, "seed": s,
  ...                     "accuracy": a} for s, a in ((0, 0.8), (1, 0.9))])
  {('platon', 0.8): (0.85, 0.05, 2)}
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
from typing import Any, Iterable, Sequence

#: Every method with a sparsity target (soft movement has none: its
#: regulariser weight decides the sparsity; see the demo's --final-lambda).
DEFAULT_METHODS = ("platon", "magnitude", "taylor", "movement", "seven",
                   "mgpp", "pins", "cam_cut", "smooth_cut", "pins_sr")
FIELDS = ("method", "sparsity", "seed", "accuracy", "actual_sparsity",
          "steps", "train_seconds", "dense_accuracy")


def cell_name(method: str, sparsity: float, seed: int) -> str:
  """``platon_0.8_s0`` (dense: ``dense_s0``)."""
  if method == "dense":
    return f"dense_s{seed}"
  return f"{method}_{sparsity:g}_s{seed}"


def summarize(rows: Iterable[dict]) -> dict[tuple[str, float], tuple]:
  """``(method, sparsity) -> (mean, population std, n)`` of ``accuracy``."""
  groups: dict[tuple[str, float], list[float]] = {}
  for r in rows:
    groups.setdefault((r["method"], float(r["sparsity"])), []).append(
        float(r["accuracy"]))
  out = {}
  for key, vals in groups.items():
    mean = sum(vals) / len(vals)
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals))
    out[key] = (round(mean, 10), round(std, 10), len(vals))
  return out


def _row(name: str, stats: dict, sparsities: Sequence[float],
         sign: str = "") -> str:
  """``| name | mean ± std (n) | ... |`` in percent, ``—`` where missing."""
  cells = []
  for s in sparsities:
    v = stats.get(s)
    cells.append("—" if v is None else
                 f"{100 * v[0]:{sign}.1f} ± {100 * v[1]:.1f} ({v[2]})")
  return f"| {name} | " + " | ".join(cells) + " |"


def markdown(rows: Sequence[dict], sparsities: Sequence[float]) -> str:
  """Accuracy (%) per method and sparsity: ``mean ± std (n)``; then
  PLATON's per-seed paired difference to every other method."""
  stats = summarize(rows)
  by = lambda table, m: {s: v for (mm, s), v in table.items() if mm == m}
  dense = [v for (m, _), v in stats.items() if m == "dense"]
  methods = [m for m in dict.fromkeys(r["method"] for r in rows)
             if m != "dense"]
  head = "| method | " + " | ".join(f"{s:g}" for s in sparsities) + " |"
  rule = "|---" * (len(sparsities) + 1) + "|"
  lines = [head, rule]
  if dense:
    lines.append(_row("dense (reference, sparsity 0)",
                      {float(s): dense[0] for s in sparsities}, sparsities))
  lines += [_row(m, by(stats, m), sparsities) for m in methods]
  paired = paired_differences(rows, "platon")
  if paired:
    lines += ["", "PLATON minus each method, per seed (points; mean ± std "
              "over the seeds both ran, n):", "", head, rule]
    lines += [_row(m, by(paired, m), sparsities, "+") for m in methods
              if m != "platon"]
  return "\n".join(lines) + "\n"


def paired_differences(rows: Iterable[dict], reference: str
                       ) -> dict[tuple[str, float], tuple]:
  """``(method, sparsity) -> (mean, population std, n)`` of the per-seed
  difference ``reference - method`` over the seeds where both ran."""
  acc = {(r["method"], float(r["sparsity"]), r["seed"]): float(r["accuracy"])
         for r in rows}
  groups: dict[tuple[str, float], list[float]] = {}
  for (m, s, seed), a in acc.items():
    ref = acc.get((reference, s, seed))
    if m not in (reference, "dense") and ref is not None:
      groups.setdefault((m, s), []).append(ref - a)
  return summarize({"method": m, "sparsity": s, "seed": i, "accuracy": d}
                   for (m, s), ds in groups.items() for i, d in enumerate(ds))


def plot(rows: Sequence[dict], path: str) -> None:
  """Mean accuracy against sparsity, one line per method (dense dashed)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  stats = summarize(rows)
  fig, ax = plt.subplots(figsize=(7, 4.5))
  # Colours repeat after 10 lines; markers cycle with period 3, so that up
  # to 30 methods keep distinct (colour, marker) pairs.
  methods = [m for m in dict.fromkeys(r["method"] for r in rows)
             if m != "dense"]
  for m in dict.fromkeys(r["method"] for r in rows):
    pts = sorted((s, v[0], v[1]) for (mm, s), v in stats.items() if mm == m)
    if m == "dense":
      ax.axhline(100 * pts[0][1], ls="--", color="k", label="dense")
      continue
    i = methods.index(m)
    xs, ys, es = zip(*pts)
    ax.errorbar(xs, [100 * y for y in ys], yerr=[100 * e for e in es],
                marker="o^s"[i % 3], color=f"C{i % 10}",
                ls=":" if m.endswith("+kd") else "-", capsize=3, label=m)
  ax.set_xlabel("sparsity of the encoder's prunable weights")
  ax.set_ylabel("test accuracy (%)")
  ax.legend(fontsize=8, ncol=2)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def _write_json(path: str, obj: Any) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2)
  os.replace(tmp, path)  # atomic: a killed run leaves no half cell


def write_tables(rows: Sequence[dict], sparsities: Sequence[float],
                 results: str, settings: str) -> None:
  os.makedirs(results, exist_ok=True)
  with open(os.path.join(results, "compare.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
  with open(os.path.join(results, "compare.md"), "w") as f:
    f.write(settings + "\n\n" + markdown(rows, sparsities))
  plot(rows, os.path.join(results, "compare.png"))


def _load_params(path: str, like: Any) -> Any:
  from flax import serialization
  with open(path, "rb") as f:
    return serialization.from_bytes(like, f.read())


def _save_params(path: str, params: Any) -> None:
  import jax
  from flax import serialization
  tmp = path + ".tmp"
  with open(tmp, "wb") as f:
    f.write(serialization.to_bytes(jax.device_get(params)))
  os.replace(tmp, path)


def _dense_config(base, seed: int, runs: str):
  """The config of a seed's dense cell."""
  return base.as_dense().replace(
      seed=seed, out=os.path.join(runs, cell_name("dense", 0.0, seed)),
      dense_baseline=False)


def _rerun_dense(base, seed, args, task_for, dense_path, rows) -> None:
  """Trains a seed's dense model again whose cell exists but whose params
  do not (``--runs`` is not committed: a grid resumed on another machine).

  With the code, software and hardware of the cell's run it gives the
  cell's model again; otherwise the model may differ slightly, and a
  different accuracy is reported (the teacher or fine-tuned model of the
  seed's new cells then differs from the earlier cells').
  """
  from experiments import run
  cfg = _dense_config(base, seed, args.runs)
  print(f"{cell_name('dense', 0.0, seed)}: params not in {args.runs}; "
        "training the dense model again", flush=True)
  res = run.execute(cfg, task=task_for(cfg))
  _save_params(dense_path + ".msgpack", res.params)
  s = res.summary
  acc = s["metrics"][s["primary_metric"]] / 100
  want = next((r["accuracy"] for r in rows
               if r["method"] == "dense" and r["seed"] == seed), None)
  if want is not None and acc != want:
    print(f"warning: the dense model of seed {seed} trained again reaches "
          f"{100 * acc:.2f}, its cell says {100 * want:.2f}: the teacher "
          "and rewind point of this seed's new cells differ from the "
          "earlier ones'", flush=True)


def _cells(args, base) -> list[dict]:
  """Runs (or reads) every cell; one prepared task per seed."""
  from experiments import run, trainer
  rows = []
  for seed in range(args.seed0, args.seed0 + args.seeds):
    tasks: dict[bool, Any] = {}
    dense = None

    def task_for(cfg):
      key = cfg.method == "pins_sr"  # holds training examples out
      if key not in tasks:
        tasks[key] = run.prepare_task(cfg)
      return tasks[key]

    dense_path = os.path.join(args.runs, cell_name("dense", 0.0, seed))
    for method in ("dense",) + tuple(args.methods):
      for sparsity in ((0.0,) if method == "dense" else args.sparsities):
        path = os.path.join(args.out, cell_name(method, sparsity, seed))
        run_dir = os.path.join(args.runs, cell_name(method, sparsity, seed))
        if os.path.exists(path + ".json"):
          with open(path + ".json") as f:
            rows.append(json.load(f))
          continue
        if args.tables_only:
          continue
        name, kd = method.removesuffix("+kd"), method.endswith("+kd")
        if method == "dense":
          cfg = _dense_config(base, seed, args.runs)
        else:
          cfg = base.replace(method=name, seed=seed, out=run_dir,
                             dense_baseline=False, sparsity=sparsity,
                             **({"teacher": "dense"} if kd else {}))
        task = task_for(cfg)
        needs_dense = name in ("cam_cut", "smooth_cut") or kd
        if needs_dense and dense is None:
          if not os.path.exists(dense_path + ".msgpack"):
            _rerun_dense(base, seed, args, task_for, dense_path, rows)
          dense = trainer.Outcome(None, _load_params(
              dense_path + ".msgpack", task.params), [], 0.0, {})
        t0 = time.time()
        res = run.execute(cfg, task=task,
                          dense=dense if needs_dense else None)
        if method == "dense":
          _save_params(dense_path + ".msgpack", res.params)
          dense = trainer.Outcome(None, res.params, [], 0.0, {})
        s = res.summary
        row = {"method": method, "sparsity": sparsity, "seed": seed,
               "accuracy": s["metrics"][s["primary_metric"]] / 100,
               "metric": s["primary_metric"],
               "actual_sparsity": s["actual_sparsity"],
               "steps": s["total_steps"],
               "train_seconds": s["train_seconds"]["pruned"],
               "wall_seconds": time.time() - t0}
        _write_json(path + ".json", row)
        rows.append(row)
        print(f"{cell_name(method, sparsity, seed)}: {row['metric']} "
              f"{100 * row['accuracy']:.2f} at sparsity "
              f"{row['actual_sparsity']:.4f} ({row['wall_seconds']:.0f} s)",
              flush=True)
  dense_acc = {r["seed"]: r["accuracy"] for r in rows
               if r["method"] == "dense"}
  for r in rows:
    r["dense_accuracy"] = dense_acc.get(r["seed"])
  return rows


def main(argv: Sequence[str] | None = None) -> list[dict]:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--config", default="experiments/configs/demo.py",
                  help="the run config every cell starts from")
  ap.add_argument("--set", nargs="+", action="extend", default=[],
                  metavar="KEY=VALUE", help="config overrides for all cells")
  ap.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS))
  ap.add_argument("--sparsities", nargs="+", type=float,
                  default=[0.5, 0.8, 0.9])
  ap.add_argument("--seeds", type=int, default=3, help="number of seeds")
  ap.add_argument("--seed0", type=int, default=0, help="first seed")
  ap.add_argument("--out", default="results/compare_cells",
                  help="folder of the cells (a few KB of JSON each; the "
                  "dense params and run folders beside them are not "
                  "needed for the tables)")
  ap.add_argument("--runs", default="runs/compare",
                  help="folder of the cells' run folders (checkpoints, "
                  "logs, reports) and the dense params")
  ap.add_argument("--results", default="results")
  ap.add_argument("--tables-only", action="store_true",
                  help="write the tables from the finished cells; run none")
  args = ap.parse_args(argv)
  from experiments import config
  bad = [m for m in args.methods if m.removesuffix("+kd") not in
         config.METHODS or m.removesuffix("+kd") in ("dense", "pins_sr")
         and m.endswith("+kd") or m == "dense"]
  if bad:
    raise SystemExit(f"--methods: unknown {bad}; choose from "
                     f"{sorted(set(config.METHODS) - {'dense'})} (dense "
                     "always runs)")
  bad = [s for s in args.sparsities if not 0.0 < s < 1.0]
  if bad:
    raise SystemExit(f"--sparsities must be in (0, 1), got {bad}")
  if args.seeds < 1:
    raise SystemExit(f"--seeds must be >= 1, got {args.seeds}")
  try:
    base = config.load(args.config, args.set)
  except ValueError as e:
    raise SystemExit(f"error: {e}") from None
  os.makedirs(args.out, exist_ok=True)
  os.makedirs(args.runs, exist_ok=True)
  rows = _cells(args, base)
  settings = (f"{base.task} / {base.data_name}, model "
              f"{base.model or 'default'}: {base.steps or base.epochs} "
              f"{'steps' if base.steps else 'epochs'} of batch "
              f"{base.batch_size}, lr {base.lr:g}; seeds {args.seed0}.."
              f"{args.seed0 + args.seeds - 1}; Cam-/Smooth-Cut score "
              f"{base.score_batches} batches; PINS-SR holds {base.heldout} "
              "training examples out for its teacher; primary metric on the "
              "validation data, mean ± std (n seeds).")
  write_tables(rows, args.sparsities, args.results, settings)
  print(markdown(rows, args.sparsities))
  return rows


if __name__ == "__main__":
  main()
