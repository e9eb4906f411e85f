"""The results folder of a run: ``summary.json``, ``report.md`` and plots.

Every run of :mod:`experiments.run` writes, in its folder:

* ``summary.json``: method, sparsity reached, final and best metrics, the
  dense baseline's (when run), times, per-layer sparsity, the config and
  the command that reproduces it;
* ``report.md``: the same in a few lines a person reads;
* ``curves.png``: the primary metric over steps (dense and pruned) and
  the scheduled sparsity;
* ``layer_sparsity.png``: sparsity of the prunable weights per layer;
* ``log_dense.jsonl`` / ``log.jsonl``: the training logs (from ``fit``).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import jax
import numpy as np

import jaxprune

__all__ = ["layer_report", "evals", "write"]


def layer_report(params: Any, where: Any) -> dict[str, float]:
  """Sparsity per layer (all prunable leaves under ``layer/<i>``)."""
  per_leaf = jaxprune.sparsity_report(params, where)
  sizes = {jaxprune.where.path_str(p): x.size
           for p, x in jax.tree_util.tree_leaves_with_path(params)}
  layers: dict[str, tuple[float, int]] = {}
  for path, frac in per_leaf.items():
    parts = path.split("/")
    key = ("/".join(parts[:parts.index("layer") + 2]) if "layer" in parts
           else path)
    z, n = layers.get(key, (0.0, 0))
    layers[key] = (z + frac * sizes[path], n + sizes[path])

  def order(item):
    last = item[0].split("/")[-1]
    return (0, int(last), "") if last.isdigit() else (1, 0, item[0])

  return {k: z / n for k, (z, n) in sorted(layers.items(), key=order)}


def evals(records: list[dict]) -> list[dict]:
  """``[{"step", **metrics}]`` of the records that hold an evaluation."""
  return [{"step": r["step"], **r["eval"]} for r in records if "eval" in r]


def _jsonable(x: Any) -> Any:
  if isinstance(x, dict):
    return {str(k): _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  if isinstance(x, (np.floating, np.integer)):
    x = x.item()
  if isinstance(x, float) and not math.isfinite(x):
    return None  # strict JSON has no NaN
  if isinstance(x, (str, int, float, bool)) or x is None:
    return x
  return repr(x)


def _plot_curves(path, dense, pruned, primary, method) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax1 = plt.subplots(figsize=(7, 4))
  for evs, label, style in ((dense, "dense", "--"), (pruned, method, "-")):
    pts = [(e["step"], e[primary]) for e in evs or () if primary in e]
    if pts:
      ax1.plot(*zip(*pts), style, marker="o", label=f"{label} {primary}")
  ax1.set_xlabel("step")
  ax1.set_ylabel(primary)
  ax2 = ax1.twinx()
  pts = [(e["step"], e.get("mask_sparsity", 0.0)) for e in pruned]
  if pts:
    ax2.plot(*zip(*pts), ":", color="gray", marker="s",
             label=f"{method} scheduled sparsity")
  ax2.set_ylabel("sparsity of prunable weights")
  ax2.set_ylim(0, 1)
  h1, l1 = ax1.get_legend_handles_labels()
  h2, l2 = ax2.get_legend_handles_labels()
  ax1.legend(h1 + h2, l1 + l2, loc="lower left", fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def _plot_layers(path, layers: dict[str, float], method: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  names = list(layers)
  fig, ax = plt.subplots(figsize=(max(5, 0.45 * len(names) + 2), 3.5))
  ax.bar(range(len(names)), [layers[n] for n in names], color="tab:blue")
  ax.set_xticks(range(len(names)))
  ax.set_xticklabels([n.split("/")[-1] if n.split("/")[-1].isdigit() else n
                      for n in names], rotation=90 if len(names) > 16 else 0,
                     fontsize=7)
  ax.set_ylim(0, 1)
  ax.set_xlabel("layer")
  ax.set_ylabel("sparsity")
  ax.set_title(f"{method}: sparsity of the prunable weights per layer",
               fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def _markdown(s: dict) -> str:
  primary = s["primary_metric"]
  lines = [f"# {s['task']} / {s['method']}", ""]
  data = s["data"].get("name", s["data"]) if isinstance(s["data"], dict) \
      else s["data"]
  lines.append(f"- model: {s['model']}; data: {data}")
  lines.append(f"- sparsity reached: {s['actual_sparsity']:.4f} of the "
               f"prunable weights (target {s['target_sparsity']})")
  value = s["metrics"].get(primary)
  line = f"- {primary}: {value:.2f}" if value is not None else \
      f"- {primary}: n/a"
  if s.get("dense_metrics"):
    d = s["dense_metrics"].get(primary)
    if d is not None and value is not None:
      line += f" (dense {d:.2f}, {value - d:+.2f})"
  lines.append(line)
  others = {k: v for k, v in s["metrics"].items()
            if k != primary and isinstance(v, float)}
  if others:
    lines.append("- other metrics: " + ", ".join(
        f"{k} {v:.4g}" for k, v in others.items()))
  t = s["train_seconds"]
  lines.append(f"- time: {s['seconds']:.0f} s in all; training "
               + ", ".join(f"{k} {v:.0f} s" for k, v in t.items()
                           if v is not None)
               + f"; {s['total_steps']} steps of batch {s['batch_size']}")
  if s.get("shrink"):
    sh = s["shrink"]
    lines.append(f"- shrunk: {sh['params_shrunk']:,} of "
                 f"{sh['params_dense']:,} params, max |logit diff| vs masked "
                 f"{sh['max_abs_logit_diff_vs_masked']:.2e}")
  lines += ["", "Reproduce:", "", "```", s["command"], "```", "",
            "Files: summary.json, curves.png, layer_sparsity.png, logs.", ""]
  return "\n".join(lines)


def write(out: str, summary: dict, dense_evals: list[dict] | None,
          pruned_evals: list[dict]) -> dict:
  """Writes the run folder (process 0 only); returns the JSON summary."""
  summary = _jsonable(summary)
  if jax.process_index() != 0:
    return summary
  os.makedirs(out, exist_ok=True)
  tmp = os.path.join(out, "summary.json.tmp")
  with open(tmp, "w") as f:
    json.dump(summary, f, indent=2)
  os.replace(tmp, os.path.join(out, "summary.json"))
  with open(os.path.join(out, "report.md"), "w") as f:
    f.write(_markdown(summary))
  _plot_curves(os.path.join(out, "curves.png"), dense_evals, pruned_evals,
               summary["primary_metric"], summary["method"])
  if summary.get("layer_sparsity"):
    _plot_layers(os.path.join(out, "layer_sparsity.png"),
                 summary["layer_sparsity"], summary["method"])
  return summary
