"""Every method at several sparsities on one task, same budget and data order.

Offline default: the demo task (pretrained MiniLM-L6 on the Rotten Tomatoes
review sentences, see :mod:`experiments.demo`). Each cell (method, sparsity,
seed) is one :func:`experiments.demo.run` with the demo's settings; the
dense baseline runs once per seed and is shared by every sparsity (and is
the fine-tuned model that ``cam_cut``/``smooth_cut`` score). A cell's result
is written to ``<out>/<method>_<sparsity>_s<seed>.json`` when it finishes
and is not rerun: an interrupted comparison resumes where it stopped.

Writes ``<results>/compare.csv`` (one row per cell), ``compare.md`` (mean
and spread over seeds per method and sparsity) and ``compare.png`` (accuracy
against sparsity, one line per method).

``--glue TASK`` runs the same grid through :mod:`experiments.glue` instead
(for a GPU/TPU: ``--model bert-base-uncased``), one results.json per cell.

Usage::

    python -m experiments.compare                       # 3 seeds, 600 steps
    python -m experiments.compare --seeds 1 --steps 150  # CPU budget
    python -m experiments.compare --glue sst2 --model bert-base-uncased \\
        --epochs 3 --seeds 3                             # GPU/TPU

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


def markdown(rows: Sequence[dict], sparsities: Sequence[float]) -> str:
  """Accuracy (%) per method and sparsity: ``mean ± std (n)``."""
  stats = summarize(rows)
  dense = [v for (m, _), v in stats.items() if m == "dense"]
  methods = [m for m in dict.fromkeys(r["method"] for r in rows)
             if m != "dense"]
  head = "| method | " + " | ".join(f"{s:g}" for s in sparsities) + " |"
  lines = [head, "|---" * (len(sparsities) + 1) + "|"]
  if dense:
    mean, std, n = dense[0]
    cell = f"{100 * mean:.1f} ± {100 * std:.1f} ({n})"
    lines.append("| dense (reference, sparsity 0) | "
                 + " | ".join([cell] * len(sparsities)) + " |")
  for m in methods:
    cells = []
    for s in sparsities:
      v = stats.get((m, float(s)))
      cells.append("—" if v is None else
                   f"{100 * v[0]:.1f} ± {100 * v[1]:.1f} ({v[2]})")
    lines.append(f"| {m} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def plot(rows: Sequence[dict], path: str) -> None:
  """Mean accuracy against sparsity, one line per method (dense dashed)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  stats = summarize(rows)
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for m in dict.fromkeys(r["method"] for r in rows):
    pts = sorted((s, v[0], v[1]) for (mm, s), v in stats.items() if mm == m)
    if m == "dense":
      ax.axhline(100 * pts[0][1], ls="--", color="k", label="dense")
      continue
    xs, ys, es = zip(*pts)
    ax.errorbar(xs, [100 * y for y in ys], yerr=[100 * e for e in es],
                marker="o", capsize=3, label=m)
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


def _actual_sparsity(params: Any, where: Any) -> float:
  import jaxprune
  return float(jaxprune.actual_sparsity(params, where))


def _demo_cells(args) -> list[dict]:
  import jax
  from flax import serialization

  from experiments import demo
  rows = []
  for seed in range(args.seed0, args.seed0 + args.seeds):
    cell_args = demo.parse_args(
        ["--steps", str(args.steps), "--seed", str(seed),
         "--eval-every", str(args.steps), "--skip-dense",
         "--score-batches", str(args.score_batches),
         *(["--model", args.model] if args.model else [])])
    loaded = None
    dense_params = None

    def task():
      nonlocal loaded
      if loaded is None:
        loaded = demo.text_task(cell_args)
      return loaded

    dense_path = os.path.join(args.out, cell_name("dense", 0.0, seed))
    for method in ("dense",) + tuple(args.methods):
      for sparsity in ((0.0,) if method == "dense" else args.sparsities):
        path = os.path.join(args.out, cell_name(method, sparsity, seed))
        if os.path.exists(path + ".json"):
          with open(path + ".json") as f:
            rows.append(json.load(f))
          continue
        if args.tables_only:
          continue
        model, params0, train_data, test_data, where, _ = task()
        if method in ("cam_cut", "smooth_cut") and dense_params is None:
          with open(dense_path + ".msgpack", "rb") as f:
            dense_params = serialization.from_bytes(params0, f.read())
        cell_args.sparsity = sparsity
        os.makedirs(path, exist_ok=True)
        t0 = time.time()
        res = demo.run(method, cell_args, model, params0, train_data,
                       test_data, where, path, dense_params=dense_params)
        if method == "dense":
          dense_params = res["params"]
          tmp = dense_path + ".msgpack.tmp"
          with open(tmp, "wb") as f:
            f.write(serialization.to_bytes(jax.device_get(dense_params)))
          os.replace(tmp, dense_path + ".msgpack")
        row = {"method": method, "sparsity": sparsity, "seed": seed,
               "accuracy": res["final"]["accuracy"],
               "actual_sparsity": _actual_sparsity(res["params"], where)
               if method != "dense" else 0.0,
               "steps": args.steps, "train_seconds": res["seconds"],
               "wall_seconds": time.time() - t0}
        _write_json(path + ".json", row)
        rows.append(row)
        print(f"{cell_name(method, sparsity, seed)}: accuracy "
              f"{row['accuracy']:.4f} at sparsity {row['actual_sparsity']:.4f}"
              f" ({row['wall_seconds']:.0f} s)", flush=True)
  dense = {r["seed"]: r["accuracy"] for r in rows if r["method"] == "dense"}
  for r in rows:
    r["dense_accuracy"] = dense.get(r["seed"])
  return rows


def _glue_cells(args) -> list[dict]:
  from experiments import glue
  rows = []
  for seed in range(args.seed0, args.seed0 + args.seeds):
    for method in ("dense",) + tuple(args.methods):
      for sparsity in ((0.0,) if method == "dense" else args.sparsities):
        out = os.path.join(args.out, cell_name(method, sparsity, seed))
        path = os.path.join(out, "results.json")
        if not os.path.exists(path):
          if args.tables_only:
            continue
          glue.main(["--task", args.glue, "--method", method,
                     "--sparsity", str(sparsity), "--seed", str(seed),
                     "--out", out, "--score-batches", str(args.score_batches),
                     *(["--model", args.model] if args.model else []),
                     *(["--steps", str(args.steps)] if args.steps else []),
                     *(["--epochs", str(args.epochs)] if args.epochs else []),
                     *(["--smoke"] if args.smoke else [])])
        with open(path) as f:
          r = json.load(f)
        rows.append({"method": method, "sparsity": sparsity, "seed": seed,
                     "accuracy": r["metrics"][r["primary_metric"]] / 100,
                     "actual_sparsity": r["actual_sparsity"],
                     "steps": r["total_steps"],
                     "train_seconds": r["train_seconds"]})
  dense = {r["seed"]: r["accuracy"] for r in rows if r["method"] == "dense"}
  for r in rows:
    r["dense_accuracy"] = dense.get(r["seed"])
  return rows


def main(argv: Sequence[str] | None = None) -> list[dict]:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS))
  ap.add_argument("--sparsities", nargs="+", type=float,
                  default=[0.5, 0.8, 0.9])
  ap.add_argument("--seeds", type=int, default=3, help="number of seeds")
  ap.add_argument("--seed0", type=int, default=0, help="first seed")
  ap.add_argument("--steps", type=int, default=None,
                  help="updates per run (demo default 600)")
  ap.add_argument("--epochs", type=float, default=None, help="--glue only")
  ap.add_argument("--score-batches", type=int, default=50,
                  help="cam_cut/smooth_cut: training batches scored")
  ap.add_argument("--model", default=None)
  ap.add_argument("--glue", default=None, metavar="TASK",
                  help="run a GLUE task through experiments.glue instead")
  ap.add_argument("--smoke", action="store_true", help="--glue only")
  ap.add_argument("--out", default=None, help="default runs/compare[_TASK]")
  ap.add_argument("--results", default="results")
  ap.add_argument("--tables-only", action="store_true",
                  help="write the tables from the finished cells; run none")
  args = ap.parse_args(argv)
  from experiments import demo, methods, model_aware
  known = set(methods.METHODS) | set(model_aware.METHODS)
  bad = [m for m in args.methods if m not in known or m == "dense"]
  if bad:
    raise SystemExit(f"--methods: unknown {bad}; choose from "
                     f"{sorted(known - {'dense'})} (dense always runs)")
  bad = [s for s in args.sparsities if not 0.0 < s < 1.0]
  if bad:
    raise SystemExit(f"--sparsities must be in (0, 1), got {bad}")
  if args.seeds < 1:
    raise SystemExit(f"--seeds must be >= 1, got {args.seeds}")
  if args.glue is None and (args.epochs or args.smoke):
    raise SystemExit("--epochs and --smoke go with --glue")
  args.out = args.out or os.path.join(
      "runs", "compare" if args.glue is None else f"compare_{args.glue}")
  os.makedirs(args.out, exist_ok=True)
  if args.glue is None:
    args.steps = args.steps or demo.parse_args([]).steps
    rows = _demo_cells(args)
    settings = (f"Demo task (MiniLM-L6, Rotten Tomatoes), {args.steps} steps"
                f" of batch 16, seq 64, AdamW 2e-4; seeds {args.seed0}.."
                f"{args.seed0 + args.seeds - 1}; Cam-/Smooth-Cut score "
                f"{args.score_batches} batches; accuracy on 1000 test "
                "sentences (PINS-SR: 500 training sentences held out for its"
                " teacher), mean ± std (n seeds).")
  else:
    rows = _glue_cells(args)
    settings = (f"GLUE {args.glue}, model {args.model or 'default'}; "
                f"seeds {args.seed0}..{args.seed0 + args.seeds - 1}; primary "
                "dev metric, mean ± std (n seeds).")
  write_tables(rows, args.sparsities, args.results, settings)
  print(markdown(rows, args.sparsities))
  return rows


if __name__ == "__main__":
  main()
