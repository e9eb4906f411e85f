"""Collects every run's ``summary.json`` under a folder into a Markdown table.

One row per run: task, method, target and actual sparsity, the task's
metrics of the final model (percent; ``best`` columns when asked), steps,
wall time and whether it was a smoke run.

Usage::

    python -m experiments.collect_results runs/            # to stdout
    python -m experiments.collect_results runs/ --out results.md --best
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Sequence

__all__ = ["find_results", "format_metrics", "markdown_table", "main"]

# Column order of the metrics, the papers' order for each task.
_ORDER = ("matched_accuracy", "mismatched_accuracy", "accuracy", "exact_match",
          "f1", "mcc",
          "pearson", "spearman")
_SHORT = {"matched_accuracy": "m", "mismatched_accuracy": "mm",
          "accuracy": "acc", "f1": "F1", "mcc": "MCC", "pearson": "P",
          "spearman": "S", "exact_match": "EM"}


def find_results(root: str) -> list[dict]:
  """All ``summary.json`` records below ``root`` (with their ``path``)."""
  found = []
  for folder, _, files in sorted(os.walk(root)):
    if "summary.json" in files:
      path = os.path.join(folder, "summary.json")
      with open(path) as f:
        record = json.load(f)
      record["path"] = os.path.relpath(folder, root)
      found.append(record)
  return found


def format_metrics(values: dict) -> str:
  """``{"accuracy": 84.31, "f1": 88.8}`` -> ``"acc 84.31 / F1 88.80"``."""
  keys = [k for k in _ORDER if k in values] + sorted(
      k for k in values if k not in _ORDER and k not in ("step",
                                                         "mask_sparsity"))
  parts = []
  for k in keys:
    v = values[k]
    parts.append(f"{_SHORT.get(k, k)} " + ("n/a" if v is None else
                                          f"{v:.2f}"))
  return " / ".join(parts)


def _fmt_sparsity(x) -> str:
  return "n/a" if x is None else f"{100 * x:.2f}%"


def markdown_table(records: Sequence[dict], best: bool = False) -> str:
  """The Markdown table of ``records`` (sorted by task, method, sparsity)."""
  head = ["task", "method", "model", "target", "actual", "metrics (final)"]
  if best:
    head.append("best eval (step)")
  head += ["steps", "time", "run"]
  lines = ["| " + " | ".join(head) + " |",
           "|" + "---|" * len(head)]
  key = lambda r: (r.get("task", ""), r.get("method", ""),
                   r.get("target_sparsity") or 0.0, r.get("path", ""))
  for r in sorted(records, key=key):
    data = (r.get("config") or {}).get("data")
    row = [str(data or r.get("task")), str(r.get("method")),
           str(r.get("model")),
           _fmt_sparsity(r.get("target_sparsity")),
           _fmt_sparsity(r.get("actual_sparsity")),
           format_metrics(r.get("metrics") or {})]
    if best:
      b = r.get("best") or {}
      row.append(f"{format_metrics(b)} ({b.get('step', '-')})")
    seconds = r.get("seconds")
    row += [str(r.get("total_steps")),
            "n/a" if seconds is None else f"{seconds / 60:.1f} min",
            r.get("path", "") + (" (smoke)" if data == "smoke" else "")]
    lines.append("| " + " | ".join(row) + " |")
  return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> str:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("root", help="folder searched for summary.json")
  ap.add_argument("--out", default=None, help="Markdown file (default stdout)")
  ap.add_argument("--best", action="store_true",
                  help="also show the best eval by each task's main metric")
  args = ap.parse_args(argv)
  records = find_results(args.root)
  if not records:
    raise SystemExit(f"no summary.json under {args.root!r}")
  table = markdown_table(records, best=args.best)
  if args.out:
    with open(args.out, "w") as f:
      f.write(table)
  else:
    print(table, end="")
  return table


if __name__ == "__main__":
  main()
