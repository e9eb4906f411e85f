"""Why movement pruning's first masks break the demo model: outlier dimensions.

Takes the checkpoint of a ``method=movement`` run at the end of its warm-up
(the dense weights and the learned scores just before the first mask) and
prunes the same fraction of every scored matrix in several ways, without
training: by the learned scores (what movement does at its first mask
event), by magnitude, at random, and the controls that test the hypothesis.

The hypothesis (issue 17): movement's masks concentrate on the rows and
columns that read from or write to BERT's few *outlier* hidden dimensions.
Those dimensions are found as Kovaleva et al. (2021, "BERT Busters") do, from
the pretrained LayerNorms alone: a dimension is an outlier if its LayerNorm
scale or bias is more than 3 standard deviations from the mean in at least
half of the encoder's LayerNorms. A matrix's *line* of dimension ``d`` is
row ``d`` of the kernels that read the hidden state (Q, K, V, FFN in) and
column ``d`` of those that write it (attention output, FFN out).

A *unit* is a line along the other axis: an FFN neuron (a column of FFN in,
a row of FFN out) or an attention head dimension (a column of Q, K or V, a
row of the attention output).

Controls, each pruning exactly as many entries per matrix as movement:

* ``movement, outlier lines spared``: the lowest scores outside the outlier
  lines only;
* ``random, movement's outlier count``: at random, but with as many entries
  in the outlier lines as movement pruned there;
* ``random, movement's count per unit``: in every unit as many entries as
  movement pruned there, chosen at random within the unit.

Run (after ``python -m experiments.run --config experiments/configs/demo.py
--set method=movement dense_baseline=False ckpt_every=60 out=runs/mv``,
stopped once ``runs/mv/ckpt/60`` exists)::

    python -m experiments.movement_outliers --run runs/mv --step 60 \\
        --set method=movement dense_baseline=False ckpt_every=60 \\
        --out results/movement_outliers.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
from typing import Any, Sequence

import jax
import numpy as np

from experiments import config as config_lib
from experiments import run as run_lib
from jaxprune.where import path_str

__all__ = ["outlier_dims", "line_axis", "main"]

_READS = re.compile(r"attention/self/(query|key|value)/kernel$"
                    r"|intermediate/dense/kernel$")
_WRITES = re.compile(r"attention/output/dense/kernel$|/output/dense/kernel$")


def outlier_dims(params: Any, z: float = 3.0) -> np.ndarray:
  """Hidden dimensions whose LayerNorm scale or bias is more than ``z``
  standard deviations from the mean in at least half of the encoder's
  LayerNorms (Kovaleva et al., 2021)."""
  flags: dict[str, np.ndarray] = {}
  for name, x in _named(params).items():
    if "encoder" in name and "LayerNorm" in name:
      x = np.asarray(x, np.float64)
      norm = name.rsplit("/", 1)[0]
      flags[norm] = flags.get(norm, False) | (
          np.abs(x - x.mean()) > z * x.std())
  votes = np.sum(list(flags.values()), axis=0)
  return np.flatnonzero(votes >= len(flags) / 2)


def line_axis(name: str) -> int | None:
  """0 if the kernel's rows are hidden dimensions (it reads the hidden
  state), 1 if its columns are (it writes it), None otherwise."""
  if _READS.search(name):
    return 0
  if _WRITES.search(name):
    return 1
  return None


def _lowest(values: np.ndarray, k: int, allowed: np.ndarray) -> np.ndarray:
  """Mask (True = pruned) of the ``k`` lowest ``values`` among ``allowed``,
  ties by position (a stable sort)."""
  flat = np.where(allowed.ravel(), values.ravel(), np.inf)
  pruned = np.zeros(flat.size, bool)
  pruned[np.argsort(flat, kind="stable")[:k]] = True
  return pruned.reshape(values.shape)


def _masks(kernels: dict, scores: dict, fraction: float, outliers, rng):
  """Every rule's pruned-entry masks, per kernel."""
  rules: dict[str, dict] = {r: {} for r in (
      "movement", "magnitude", "random", "movement, outlier lines spared",
      "random, movement's outlier count",
      "random, movement's count per unit")}
  for name, w in kernels.items():
    k = int(np.floor(w.size * fraction))
    everywhere = np.ones(w.shape, bool)
    lines = np.zeros(w.shape, bool)
    if line_axis(name) == 0:
      lines[outliers, :] = True
    else:
      lines[:, outliers] = True
    mv = _lowest(scores[name], k, everywhere)
    rules["movement"][name] = mv
    rules["magnitude"][name] = _lowest(np.abs(w), k, everywhere)
    rules["random"][name] = _lowest(rng.random(w.shape), k, everywhere)
    rules["movement, outlier lines spared"][name] = _lowest(
        scores[name], k, ~lines)
    k_in = int((mv & lines).sum())
    r = rng.random(w.shape)
    rules["random, movement's outlier count"][name] = (
        _lowest(r, k_in, lines) | _lowest(r, k - k_in, ~lines))
    # Lines along the other axis: FFN neurons and attention head dims.
    other = 1 - line_axis(name)
    per_unit = mv.sum(axis=1 - other)
    ranks = np.argsort(np.argsort(rng.random(w.shape), axis=1 - other,
                                  kind="stable"), axis=1 - other,
                       kind="stable")
    rules["random, movement's count per unit"][name] = (
        ranks < np.expand_dims(per_unit, 1 - other))
  return rules


def _named(tree: Any) -> dict[str, Any]:
  return {path_str(p): x for p, x in jax.tree_util.tree_leaves_with_path(tree)}


def _restore(run_dir: str, step: int) -> Any:
  import orbax.checkpoint as ocp
  manager = ocp.CheckpointManager(os.path.join(run_dir, "ckpt"),
                                  item_handlers=ocp.StandardCheckpointHandler())
  if step not in manager.all_steps():
    raise ValueError(f"--step {step}: {run_dir}/ckpt has steps "
                     f"{sorted(manager.all_steps())}")
  return manager.restore(step, args=ocp.args.StandardRestore())


def main(argv: Sequence[str] | None = None) -> dict:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--config", default="experiments/configs/demo.py",
                  help="the run's config file")
  ap.add_argument("--set", nargs="*", default=[],
                  help="the run's overrides (method=movement ...)")
  ap.add_argument("--run", required=True,
                  help="folder of that run, with ckpt/<step>")
  ap.add_argument("--step", type=int, required=True)
  ap.add_argument("--fraction", type=float, default=0.05,
                  help="fraction of every matrix to prune, in (0, 1)")
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--out", default=None, help="JSON file for the results")
  args = ap.parse_args(argv)
  if not 0 < args.fraction < 1:
    ap.error(f"--fraction must be in (0, 1), got {args.fraction}")
  cfg = config_lib.load(args.config, args.set)
  if cfg.method != "movement":
    raise ValueError(f"--run {args.run}: method {cfg.method!r}, not movement")
  task = run_lib.prepare_task(cfg)
  saved = _restore(args.run, args.step)
  params = saved["params"]["params"]
  scores = _named(saved["params"]["scores"])
  outliers = outlier_dims(task.params)
  named = _named(params)
  treedef = jax.tree_util.tree_structure(params)
  kernels = {n: np.asarray(x) for n, x in named.items()
             if line_axis(n) is not None and n in scores}
  scores = {n: np.asarray(scores[n]) for n in kernels}
  rules = _masks(kernels, scores, args.fraction, outliers,
                 np.random.default_rng(args.seed))
  result = {"run": args.run, "step": args.step, "fraction": args.fraction,
            "outlier_dims": outliers.tolist(),
            "hidden_size": int(next(iter(kernels.values())).shape[0]),
            "dense_at_step": task.evaluate(params), "rules": {}}
  for rule, pruned in rules.items():
    in_lines = total = line_entries = units = crowded = 0
    for name, m in pruned.items():
      ax = line_axis(name)
      sel = m[outliers, :] if ax == 0 else m[:, outliers]
      in_lines += int(sel.sum())
      line_entries += sel.size
      total += int(m.sum())
      unit_frac = m.mean(axis=ax)   # per neuron / head dim
      units += unit_frac.size
      crowded += int((unit_frac > 5 * args.fraction).sum())
    metrics = task.evaluate(jax.tree_util.tree_unflatten(treedef, [
        np.where(pruned[n], 0.0, kernels[n]) if n in pruned else x
        for n, x in named.items()]))
    result["rules"][rule] = {
        "metrics": metrics, "pruned": total,
        "share_in_outlier_lines": in_lines / total,
        "outlier_lines_pruned_fraction": in_lines / line_entries,
        "units_over_5x_fraction": crowded, "units": units}
    print(f"{rule:36s} {task.primary} {metrics[task.primary]:6.2f}  "
          f"pruned in outlier lines: {in_lines / line_entries:6.1%} of "
          f"their entries; units with over {5 * args.fraction:.0%} "
          f"pruned: {crowded} of {units}")
  if args.out:
    with open(args.out, "w") as f:
      json.dump(result, f, indent=1)
  return result


if __name__ == "__main__":
  main()
