"""Benchmark: exact selection on 8 (fake) CPU devices vs one device.

What is measured
----------------
The script sets ``XLA_FLAGS=--xla_force_host_platform_device_count=8``
(``--devices``) before importing jax, so XLA:CPU exposes 8 devices that share
this machine's cores. Score leaves shaped like BERT-base's prunable leaves
(``benchmarks/selection.py``'s ``bert_shapes``: 6 kernels and 6 biases per
encoder layer; ``--layers`` 12 gives 85,017,600 scores, 1 layer 7,084,800)
are filled with the ``ties`` distribution of ``benchmarks/selection.py``
(50% exact zeros, the rest log-normal ``exp(N(-20, 4))``) and put either on
one device or sharded over all devices along their first axis
(``NamedSharding(Mesh(devices, ("d",)), P("d"))``, 768 and 3072 rows split
8 ways). Then, jitted,

* ``jaxprune.selection.kth_smallest`` (threshold only) and
* ``jaxprune.selection.prune_masks`` (threshold + exact-k masks)

run at ``k = floor(0.9 N)`` (threshold among the log-normal scores) and
``k = floor(0.3 N)`` (threshold inside the block of zeros: the tie-ranking
path of ``prune_masks``, which breaks ties by leaf and row-major order and
must do so identically when a leaf is split across devices). The results of
the two placements are compared exactly: thresholds, ``below`` counts and
every mask bit; ``prune_masks`` must prune exactly ``k``. Times are medians
of ``--repeats`` runs after one warm-up run, both placements interleaved.
With fake devices on 2 cores the sharded times measure the cost of the
partitioned program (per-device counts plus all-reduces), not a speed-up.

Measured here (see ``benchmarks/results/sharding_85m_run.log``): at
``k = 0.3 N`` the sharded tie path is very slow (``prune_masks`` 47 s per
call at 85M against 0.97 s on one device) and at 7M it did not finish within
4 minutes, so the committed JSON was produced with ``--fractions 0.9``.

How to run
----------
From the repository root (about 2-4 minutes on 2 CPU cores)::

    PYTHONPATH=. .venv/bin/python benchmarks/sharding.py
    PYTHONPATH=. .venv/bin/python benchmarks/sharding.py --layers 1 --repeats 1
    PYTHONPATH=. .venv/bin/python benchmarks/sharding.py --layers 2 \\
        --hidden 64 --ffn 256 --repeats 1   # seconds: a smoke test

Results are printed (a Markdown table) and written as JSON to ``--out``
(default ``benchmarks/results/sharding.json``).
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


def _set_device_count(argv: list[str] | None) -> int:
  """Reads ``--devices`` early and sets ``XLA_FLAGS`` before jax loads."""
  args = sys.argv[1:] if argv is None else argv
  count = 8
  for i, a in enumerate(args):
    if a == "--devices" and i + 1 < len(args):
      count = int(args[i + 1])
    elif a.startswith("--devices="):
      count = int(a.split("=", 1)[1])
  if "jax" in sys.modules:
    return count  # too late to change; main() checks the device count
  flags = os.environ.get("XLA_FLAGS", "")
  flag = f"--xla_force_host_platform_device_count={count}"
  if "xla_force_host_platform_device_count" not in flags:
    os.environ["XLA_FLAGS"] = (flags + " " + flag).strip()
  return count


if __name__ == "__main__":
  _set_device_count(None)

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_HERE = os.path.dirname(os.path.abspath(__file__))
for _p in (_ROOT, _HERE):
  if _p not in sys.path:
    sys.path.insert(0, _p)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P  # noqa: E402

from jaxprune import selection  # noqa: E402
import selection as selection_bench  # noqa: E402  (benchmarks/selection.py)


def _wall(fn: Callable[[], Any]) -> float:
  """Wall seconds of one blocked call of ``fn``."""
  t0 = time.perf_counter()
  jax.block_until_ready(fn())
  return time.perf_counter() - t0


def leaf_shapes(layers: int, hidden: int, ffn: int) -> list[tuple[int, ...]]:
  """BERT-style prunable leaf shapes (``benchmarks/selection.py`` at 768/3072)."""
  if (hidden, ffn) == (selection_bench.HIDDEN, selection_bench.FFN):
    return selection_bench.bert_shapes(layers, with_biases=True)
  shapes = []
  for _ in range(layers):
    shapes += [(hidden, hidden)] * 4 + [(hidden, ffn), (ffn, hidden)]
    shapes += [(hidden,)] * 4 + [(ffn,), (hidden,)]
  return shapes


def bench_size(layers: int, args, mesh: Mesh) -> list[dict]:
  """Both placements and both functions at two ``k`` for one size."""
  shapes = leaf_shapes(layers, args.hidden, args.ffn)
  n = sum(int(np.prod(s)) for s in shapes)
  flat = selection_bench.make_flat("ties", n, args.seed)
  one = jax.devices()[0]
  sharded = NamedSharding(mesh, P("d"))
  single, multi, pos = [], [], 0
  for s in shapes:
    size = int(np.prod(s))
    x = flat[pos:pos + size].reshape(s)
    pos += size
    single.append(jax.device_put(x, one))
    multi.append(jax.device_put(x, sharded))
  del flat
  f_kth = jax.jit(lambda leaves, k: selection.kth_smallest(leaves, k)[:2])
  f_masks = jax.jit(lambda leaves, k: selection.prune_masks(leaves, k))
  rows = []
  for frac in args.fractions:
    k_val = int(n * frac)
    k = jnp.asarray([k_val], jnp.int32)
    row: dict[str, Any] = {"layers": layers, "n": n, "k": k_val,
                           "k_fraction": frac,
                           "devices": len(mesh.devices.flat)}
    for name, fn in (("kth_smallest", f_kth), ("prune_masks", f_masks)):
      t0 = time.perf_counter()
      out1 = jax.block_until_ready(fn(single, k))
      c1 = time.perf_counter() - t0
      t0 = time.perf_counter()
      out8 = jax.block_until_ready(fn(multi, k))
      c8 = time.perf_counter() - t0
      t1, t8 = [], []
      for r in range(args.repeats):  # interleaved, order alternates
        pair = [("1", single, t1), ("8", multi, t8)]
        for _, leaves, times in (pair if r % 2 == 0 else pair[::-1]):
          times.append(_wall(lambda leaves=leaves: fn(leaves, k)))
      if name == "kth_smallest":
        same = all(bool(np.array_equal(np.asarray(a), np.asarray(b)))
                   for a, b in zip(out1, out8))
        detail = {"tau": float(out1[0][0]), "below": int(out1[1][0])}
      else:
        (m1, tau1), (m8, tau8) = out1, out8
        same = bool(np.array_equal(np.asarray(tau1), np.asarray(tau8))) and all(
            bool(np.array_equal(np.asarray(a), np.asarray(b)))
            for a, b in zip(m1, m8))
        pruned1 = sum(int(m.size) - int(jnp.sum(m)) for m in m1)
        pruned8 = sum(int(m.size) - int(jnp.sum(m)) for m in m8)
        detail = {"tau": float(tau1[0]), "pruned_1": pruned1,
                  "pruned_8": pruned8,
                  "exact_k": pruned1 == k_val and pruned8 == k_val,
                  "mask_sharding": str(m8[0].sharding)}
      row[name] = {"one_device_s": statistics.median(t1),
                   "sharded_s": statistics.median(t8),
                   "one_device_times_s": t1, "sharded_times_s": t8,
                   "first_call_s": {"one_device": c1, "sharded": c8},
                   "identical": same, **detail}
      print(f"  {n:>11,} scores, k = {frac:.1f} N, {name:<12s}: 1 device "
            f"{row[name]['one_device_s']:7.3f} s, {row['devices']} devices "
            f"{row[name]['sharded_s']:7.3f} s; identical: {same}"
            + (f"; pruned exactly k: {detail['exact_k']}"
               if "exact_k" in detail else ""), flush=True)
      del out1, out8
    rows.append(row)
  return rows


def markdown_table(rows: list[dict]) -> str:
  """The results as a Markdown table."""
  lines = ["| scores | k | function | 1 device | 8 devices (sharded) | "
           "identical results |", "|---|---|---|---|---|---|"]
  for row in rows:
    for name in ("kth_smallest", "prune_masks"):
      r = row[name]
      ok = r["identical"] and r.get("exact_k", True)
      lines.append(
          f"| {row['n']:,} | {row['k_fraction']:.1f} N | {name} | "
          f"{r['one_device_s']:.3f} s | {r['sharded_s']:.3f} s | "
          f"{'yes' if ok else 'NO'} |")
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
  """Runs the benchmark; returns the JSON-able results."""
  p = argparse.ArgumentParser(
      description=__doc__.split("\n\n")[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--devices", type=int, default=8,
                 help="fake CPU devices (set in XLA_FLAGS before jax loads)")
  p.add_argument("--layers", type=int, nargs="+", default=[12, 1],
                 help="BERT-base encoder layers per size (12: 85,017,600 "
                 "scores; 1: 7,084,800)")
  p.add_argument("--hidden", type=int, default=selection_bench.HIDDEN,
                 help="hidden size of the leaf shapes (a multiple of "
                 "--devices; smaller for a quick check)")
  p.add_argument("--ffn", type=int, default=selection_bench.FFN,
                 help="FFN size of the leaf shapes (a multiple of --devices)")
  p.add_argument("--fractions", type=float, nargs="+", default=[0.9, 0.3],
                 help="k = floor(fraction * N); 0.3 puts the threshold in "
                 "the 50%% block of zeros (the tie-ranking path)")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default=os.path.join(_ROOT, "benchmarks", "results",
                                                "sharding.json"))
  args = p.parse_args(argv)
  if len(jax.devices()) < args.devices:
    sys.exit(f"{len(jax.devices())} devices, {args.devices} wanted: run this "
             "script directly (it sets XLA_FLAGS=--xla_force_host_platform_"
             "device_count before importing jax)")
  t_start = time.perf_counter()
  load_before = os.getloadavg()
  mesh = Mesh(np.asarray(jax.devices()[:args.devices]), ("d",))
  print("jaxprune sharded selection benchmark")
  print(f"  jax {jax.__version__} backend={jax.default_backend()}; "
        f"{len(jax.devices())} devices; cpu cores={os.cpu_count()}; load "
        f"average {load_before[0]:.2f}; XLA_FLAGS="
        f"{os.environ.get('XLA_FLAGS', '')!r}")
  rows: list[dict] = []
  out: dict[str, Any] = {}

  def write(done: bool) -> None:
    """Writes the JSON (after every size too, so a stopped run keeps rows)."""
    load_after = os.getloadavg()
    table = markdown_table(rows)
    all_ok = all(r[f]["identical"] and r[f].get("exact_k", True)
                 for r in rows for f in ("kth_smallest", "prune_masks"))
    out.clear()
    out.update(_result(args, load_before, load_after, rows, all_ok, table,
                       time.perf_counter() - t_start, done))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
      json.dump(out, f, indent=1)

  for layers in args.layers:
    rows += bench_size(layers, args, mesh)
    write(done=False)
  write(done=True)
  print("\n" + out["markdown"])
  print(f"\nall results identical on 1 and {args.devices} devices: "
        f"{out['all_identical']}")
  print(f"total benchmark time: {out['total_s']:.0f} s; load average before "
        f"{load_before[0]:.2f}, after {out['loadavg_after'][0]:.2f} (1 min)")
  print(f"results written to {args.out}")
  return out


def _result(args, load_before, load_after, rows, all_ok, table, total,
            done) -> dict:
  """The JSON-able results."""
  return {
      "benchmark": "sharding",
      "config": vars(args),
      "environment": {"jax": jax.__version__,
                      "backend": jax.default_backend(),
                      "devices": len(jax.devices()),
                      "cpu_cores": os.cpu_count(),
                      "xla_flags": os.environ.get("XLA_FLAGS", ""),
                      "python": platform.python_version(),
                      "platform": platform.platform()},
      "loadavg_before": list(load_before),
      "loadavg_after": list(load_after),
      "rows": rows,
      "all_identical": all_ok,
      "markdown": table,
      "total_s": total,
      "complete": done,
  }


if __name__ == "__main__":
  main()
