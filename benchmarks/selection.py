"""Benchmark: exact k-th smallest selection over BERT-base-shaped score leaves.

What is measured
----------------
For the prunable leaves of BERT-base (per encoder layer four ``(768, 768)``
attention kernels, ``(768, 3072)`` and ``(3072, 768)`` FFN kernels; 12 layers,
84,934,656 scores; ``--with-biases`` adds the 12 x 6 biases for 85,017,600)
filled with random float32 scores, and ``k = floor(0.9 N)`` (90% sparsity),
this script times side by side, in one process:

(a) ``jaxprune.selection.kth_smallest`` under ``jax.jit`` (threshold only);
(b) ``jaxprune.selection.prune_masks`` under ``jax.jit`` (threshold plus the
    exact-k keep-masks, ties broken deterministically);
(c) ``jnp.sort`` of the concatenated scores, then indexing (jitted; the
    concatenation is part of the timed function, as our selection works on
    the leaves directly);
(d) ``jax.lax.top_k`` of the concatenated scores for the ``N - k + 1``
    largest (jitted; slow on CPU, ``--skip-slow`` leaves (c) and (d) out);
(e) ``torch.kthvalue`` on a pre-concatenated CPU tensor (and, separately,
    ``torch.cat`` + ``kthvalue``), with ``torch.set_num_threads`` set to the
    machine's core count, if torch can be imported;
(f) applying a mask from a threshold, ``jnp.where(s < tau, 0, p)`` over all
    leaves (jitted), i.e. the cost floor of any pruning step.

Three score distributions (``--dists``, all by default): ``uniform`` in
[0, 1); ``lognormal`` = ``exp(N(-20, 4))``, spanning dozens of decades like
PLATON's ``Ibar * Ubar`` scores; ``ties`` = 50% exact zeros, the rest
log-normal. For ``ties`` the main table also times ``prune_masks`` at
``k = floor(0.3 N)`` where the threshold falls *inside* the block of zeros
and the tie-ranking (cumulative sum) path of ``prune_masks`` runs. A fourth,
``gap`` (only when named), is ``lognormal`` with its ``floor(0.9 N)``
smallest scores scaled by ``1e-20``: the threshold ends a block of scores 20
decades below the next, as pruned weights' scores can be.

Every function is compiled and run once before timing; the reported number
is the median wall time over ``--repeats`` runs (``--slow-repeats`` for
sort / top_k) with ``jax.block_until_ready``. Ratios are ours / torch.
Exactness is checked once per distribution: ``prune_masks`` prunes exactly
``k`` entries and its threshold equals ``np.partition(flat, k - 1)[k - 1]``
(also for ``kth_smallest``, ``jnp.sort``, ``top_k`` and ``torch``).

The scaling section (``--scaling``, on by default) times ``kth_smallest``
against ``jnp.sort`` on log-normal scores at 1M, 10M and 85M scores (and
340M with ``--big``, 1.36 GB of float32; ``jnp.sort`` is skipped there when
its estimate from the 85M time exceeds 2 minutes).

How to run
----------
From the repository root::

    PYTHONPATH=. .venv/bin/python benchmarks/selection.py
    PYTHONPATH=. .venv/bin/python benchmarks/selection.py --skip-slow --dists lognormal
    PYTHONPATH=. .venv/bin/python benchmarks/selection.py --layers 1 --no-scaling  # quick
    PYTHONPATH=. .venv/bin/python benchmarks/selection.py --big

Results are printed as tables and written as JSON to ``--out`` (default
``benchmarks/results/selection.json``).
"""

from __future__ import annotations

import argparse
import json
import math
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

from jaxprune import selection  # noqa: E402

try:
  import torch  # noqa: E402
  _TORCH_ERROR = None
except Exception as e:  # pylint: disable=broad-except
  torch = None
  _TORCH_ERROR = f"{type(e).__name__}: {e}"

HIDDEN, FFN = 768, 3072
DISTS = ("uniform", "lognormal", "ties")  # the default; also "gap"
SORT_SKIP_SECONDS = 120.0


def bert_shapes(layers: int, with_biases: bool) -> list[tuple[int, ...]]:
  """Shapes of BERT-base's prunable leaves, ``layers`` encoder layers."""
  shapes = []
  for _ in range(layers):
    shapes += [(HIDDEN, HIDDEN)] * 4 + [(HIDDEN, FFN), (FFN, HIDDEN)]
    if with_biases:
      shapes += [(HIDDEN,)] * 4 + [(FFN,), (HIDDEN,)]
  return shapes


def make_flat(dist: str, n: int, seed: int) -> np.ndarray:
  """``n`` float32 scores of distribution ``dist`` as one numpy array."""
  rng = np.random.default_rng(seed)
  if dist == "uniform":
    return rng.random(n, dtype=np.float32)
  if dist == "lognormal":
    x = rng.standard_normal(n, dtype=np.float32)
    x *= 4.0
    x -= 20.0
    return np.exp(x, out=x)
  if dist == "ties":
    x = rng.standard_normal(n, dtype=np.float32)
    x *= 4.0
    x -= 20.0
    np.exp(x, out=x)
    x[rng.random(n, dtype=np.float32) < 0.5] = 0.0
    return x
  if dist == "gap":
    x = make_flat("lognormal", n, seed)
    k = n * 9 // 10
    if k:
      x[x <= np.partition(x, k - 1)[k - 1]] *= np.float32(1e-20)
    return x
  raise ValueError(f"unknown distribution {dist!r}")


def split_leaves(flat: np.ndarray, shapes) -> list[jax.Array]:
  """Device arrays of the given shapes, taken consecutively from ``flat``."""
  out, pos = [], 0
  for s in shapes:
    size = math.prod(s)
    out.append(jnp.asarray(flat[pos:pos + size].reshape(s)))
    pos += size
  assert pos == flat.size
  return out


_FLT_MIN = float(np.finfo(np.float32).tiny)


def threshold_verdict(value: float, exact: float) -> str:
  """``OK`` if ``value == exact``; ``OK*`` if both are 0 or denormal.

  XLA:CPU flushes denormals to zero in comparisons, so a denormal threshold
  selects exactly like 0 there (``kth_smallest`` documents this).
  """
  if value == exact:
    return "OK"
  if abs(value) < _FLT_MIN and abs(exact) < _FLT_MIN:
    return "OK* (denormal == 0 under flush-to-zero)"
  return "MISMATCH"


def timeit(fn: Callable[[], Any], repeats: int, warmup: bool = True
           ) -> tuple[float, list[float]]:
  """Median wall seconds of ``fn()`` (results blocked on) over ``repeats``."""
  if warmup:
    jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return statistics.median(times), times


def aot(fn: Callable, *args):
  """Compiles ``jax.jit(fn)`` for ``args`` ahead of time (no warm-up run)."""
  return jax.jit(fn).lower(*args).compile()


# ---------------------------------------------------------------- jitted fns


def _kth(leaves, k):
  out = selection.kth_smallest(leaves, k)
  # (tau, below, ..., passes); older versions returned (tau, below, passes).
  tau, below, passes = out[0], out[1], out[-1]
  return tau[0], below[0], passes


def _masks(leaves, k):
  masks, tau = selection.prune_masks(leaves, k)
  return masks, tau[0]


def _masks_fixed(leaves, k):
  masks, tau = selection.prune_masks(leaves, k, search="fixed")
  return masks, tau[0]


def _sort_kth(leaves, k):
  flat = jnp.concatenate([x.reshape(-1) for x in leaves])
  return jnp.sort(flat)[k - 1]


def _make_topk_kth(n_top: int):
  def fn(leaves):
    flat = jnp.concatenate([x.reshape(-1) for x in leaves])
    vals, _ = jax.lax.top_k(flat, n_top)  # the n_top largest, descending
    return vals[n_top - 1]  # = the (N - n_top + 1)-th smallest
  return fn


def _apply_mask(params, scores, tau):
  return [jnp.where(s < tau, jnp.zeros_like(p), p)
          for p, s in zip(params, scores)]


def _num_pruned(masks) -> int:
  return int(sum(int(m.size) - int(jnp.sum(m)) for m in masks))


# ---------------------------------------------------------------- main table


def bench_dist(dist: str, shapes, args, ctx: dict) -> dict:
  """Runs (a)-(f) on one distribution; returns the results dict."""
  n = sum(math.prod(s) for s in shapes)
  k = n * 9 // 10
  print(f"\n=== distribution: {dist}  (N = {n:,}, k = floor(0.9 N) = {k:,})",
        flush=True)
  flat = make_flat(dist, n, seed=args.seed)
  leaves = split_leaves(flat, shapes)
  k_arr = jnp.int32(k)
  t_np = time.perf_counter()
  exact = float(np.partition(flat, k - 1)[k - 1])
  t_np = time.perf_counter() - t_np
  res: dict[str, Any] = {"n": n, "k": k, "exact_threshold": exact,
                         "numpy_partition_s": t_np, "rows": {}}
  rows = res["rows"]
  checks = res.setdefault("checks", {})

  def add(name, median, times, value=None, **extra):
    rows[name] = {"median_s": median, "times_s": times, **extra}
    verdict = ""
    if value is not None:
      verdict = threshold_verdict(float(value), exact)
      rows[name]["threshold"] = float(value)
      rows[name]["threshold_check"] = verdict
    print(f"  {name:<36s} {median:9.4f} s" +
          ("" if value is None else f"   tau={float(value):.6g} {verdict}") +
          "".join(f"  {a}={b}" for a, b in extra.items()), flush=True)

  # (a) kth_smallest
  kth = jax.jit(_kth)
  tau, below, passes = jax.block_until_ready(kth(leaves, k_arr))
  med, times = timeit(lambda: kth(leaves, k_arr), args.repeats)
  add("(a) ours kth_smallest", med, times, tau,
      passes=int(passes) + 1)  # +1: the sample-based first pass

  # (b) prune_masks
  pm = jax.jit(_masks)
  masks, tau_m = jax.block_until_ready(pm(leaves, k_arr))
  pruned = _num_pruned(masks)
  checks["prune_masks_num_pruned"] = pruned
  checks["prune_masks_num_pruned_equals_k"] = pruned == k
  checks["prune_masks_threshold_exact"] = threshold_verdict(
      float(tau_m), exact).startswith("OK")
  del masks
  med, times = timeit(lambda: pm(leaves, k_arr), args.repeats)
  add("(b) ours prune_masks", med, times, tau_m)
  print(f"      exactness: pruned {pruned:,} == k {k:,}: "
        f"{'OK' if pruned == k else 'FAIL'}; threshold == np.partition: "
        f"{threshold_verdict(float(tau_m), exact)}", flush=True)

  # (b3) prune_masks with the GPU/TPU search (7 fixed passes over buckets)
  if not args.skip_fixed:
    pf = jax.jit(_masks_fixed)
    masks_f, tau_f = jax.block_until_ready(pf(leaves, k_arr))
    checks["fixed_search_num_pruned_equals_k"] = _num_pruned(masks_f) == k
    checks["fixed_search_threshold_equals_adaptive"] = bool(
        float(tau_f) == float(tau_m))
    del masks_f
    med, times = timeit(lambda: pf(leaves, k_arr), args.repeats)
    add("(b3) ours prune_masks, fixed search", med, times, tau_f)

  if dist == "ties":
    k_tie = n * 3 // 10
    k_tie_arr = jnp.int32(k_tie)
    masks, tau_t = jax.block_until_ready(pm(leaves, k_tie_arr))
    pruned_t = _num_pruned(masks)
    exact_t = float(np.partition(flat, k_tie - 1)[k_tie - 1])
    del masks
    checks["ties_k30_num_pruned_equals_k"] = pruned_t == k_tie
    verdict = threshold_verdict(float(tau_t), exact_t)
    checks["ties_k30_threshold_exact"] = verdict.startswith("OK")
    med, times = timeit(lambda: pm(leaves, k_tie_arr), args.repeats)
    rows["(b2) ours prune_masks k=0.3N (tie)"] = {
        "median_s": med, "times_s": times, "k": k_tie,
        "threshold": float(tau_t), "exact_threshold": exact_t,
        "threshold_check": verdict}
    print(f"  {'(b2) ours prune_masks, k=0.3N (tie)':<36s} {med:9.4f} s"
          f"   tau={float(tau_t):.6g} (numpy {exact_t:g}) {verdict}; pruned "
          f"{pruned_t:,} == k {k_tie:,}: "
          f"{'OK' if pruned_t == k_tie else 'FAIL'}", flush=True)

  # (c) jnp.sort, (d) top_k
  if args.skip_slow:
    print("  (c) jnp.sort / (d) lax.top_k: skipped (--skip-slow)")
  else:
    sort_fn = aot(_sort_kth, leaves, k_arr)
    med, times = timeit(lambda: sort_fn(leaves, k_arr), args.slow_repeats,
                        warmup=False)
    add("(c) jnp.sort + index", med, times, sort_fn(leaves, k_arr))
    if dist == "lognormal":
      ctx["sort_85m_s"] = med
    n_top = n - k + 1
    topk_fn = aot(_make_topk_kth(n_top), leaves)
    med, times = timeit(lambda: topk_fn(leaves), args.slow_repeats,
                        warmup=False)
    add("(d) lax.top_k(N-k+1) + index", med, times, topk_fn(leaves))

  # (e) torch
  if torch is None:
    print(f"  (e) torch.kthvalue: skipped, torch not importable "
          f"({_TORCH_ERROR})")
  else:
    t_flat = torch.from_numpy(flat).to(args.torch_device)
    t_leaves, pos = [], 0
    for x in leaves:  # views of `flat`, one per leaf
      t_leaves.append(t_flat[pos:pos + x.size].view(*x.shape))
      pos += x.size

    def synced(t):  # torch's CUDA calls return before they finish
      if t.is_cuda:
        torch.cuda.synchronize()
      return t

    with torch.no_grad():
      med, times = timeit(lambda: synced(torch.kthvalue(t_flat, k).values),
                          args.repeats)
      add(f"(e) torch.kthvalue (pre-concat, {args.torch_device})", med, times,
          torch.kthvalue(t_flat, k).values.item())
      res["torch_s"] = med
      med, times = timeit(
          lambda: synced(torch.kthvalue(
              torch.cat([x.reshape(-1) for x in t_leaves]), k).values),
          args.repeats)
      add("(e2) torch.cat + kthvalue", med, times)
    del t_flat, t_leaves

  # (f) mask application
  params = split_leaves(make_flat("uniform", n, seed=args.seed + 1), shapes)
  apply_fn = jax.jit(_apply_mask)
  tau_j = jnp.float32(exact)
  med, times = timeit(lambda: apply_fn(params, leaves, tau_j), args.repeats)
  add("(f) mask apply where(s<tau,0,p)", med, times)
  del params, leaves, flat

  if "torch_s" in res:
    t = res["torch_s"]
    res["ratio_vs_torch"] = {name: r["median_s"] / t for name, r in
                             rows.items()}
  return res


def print_table(results: dict) -> None:
  """Side-by-side summary: rows = methods, columns = distributions."""
  dists = list(results)
  names = []
  for d in dists:
    for name in results[d]["rows"]:
      if name not in names:
        names.append(name)
  width = 38
  print("\nSummary: median wall seconds (ratio ours/torch.kthvalue in [])")
  header = f"{'method':<{width}s}" + "".join(f"{d:>24s}" for d in dists)
  print(header)
  print("-" * len(header))
  for name in names:
    line = f"{name:<{width}s}"
    for d in dists:
      r = results[d]["rows"].get(name)
      if r is None:
        line += f"{'-':>24s}"
        continue
      cell = f"{r['median_s']:.4f}"
      ratio = results[d].get("ratio_vs_torch", {}).get(name)
      if ratio is not None:
        cell += f" [{ratio:6.2f}x]"
      else:
        cell += " " * 10
      line += f"{cell:>24s}"
    print(line)
  line = f"{'np.partition (reference, 1 run)':<{width}s}"
  for d in dists:
    line += f"{results[d]['numpy_partition_s']:>14.4f}          "
  print(line)
  line = f"{'exact (pruned == k, tau == numpy)':<{width}s}"
  for d in dists:
    c = results[d]["checks"]
    ok = c["prune_masks_num_pruned_equals_k"] and c[
        "prune_masks_threshold_exact"]
    line += f"{('yes' if ok else 'NO'):>24s}"
  print(line)


# ---------------------------------------------------------------- scaling


def scaling(args, ctx: dict) -> list[dict]:
  """kth_smallest vs jnp.sort on log-normal scores of growing size."""
  print("\n=== scaling: log-normal scores, k = floor(0.9 N)", flush=True)
  configs = [
      ("1M", [(512, 512)] * 4),
      ("10M", [(1024, 1024)] * 10),
      ("85M", bert_shapes(12, False)),
  ]
  if args.big:
    configs.append(("340M", bert_shapes(48, False)))
  out = []
  print(f"  {'size':>6s} {'N':>13s} {'ours kth_smallest':>19s} {'passes':>7s} "
        f"{'jnp.sort':>22s} {'sort/ours':>10s}")
  kth = jax.jit(_kth)
  sort_85m = ctx.get("sort_85m_s")
  for label, shapes in configs:
    n = sum(math.prod(s) for s in shapes)
    k = n * 9 // 10
    flat = make_flat("lognormal", n, seed=args.seed + 7)
    leaves = split_leaves(flat, shapes)
    del flat
    k_arr = jnp.int32(k)
    _, _, passes = jax.block_until_ready(kth(leaves, k_arr))
    reps = args.repeats if n < 200_000_000 else max(1, args.slow_repeats)
    ours, _ = timeit(lambda: kth(leaves, k_arr), reps)
    row = {"label": label, "n": n, "ours_s": ours,
           "passes": int(passes) + 1}
    sort_txt = ""
    if args.skip_slow:
      sort_txt = "skipped (--skip-slow)"
    else:
      est = None
      if label == "85M" and sort_85m is not None:
        row["sort_s"] = sort_85m
        sort_txt = f"{sort_85m:.4f} (main table)"
      else:
        if n > 100_000_000 and sort_85m is not None:
          n0 = 84_934_656
          est = sort_85m * (n / n0) * math.log2(n) / math.log2(n0)
        if est is not None and est > SORT_SKIP_SECONDS:
          row["sort_skipped_est_s"] = est
          sort_txt = f"skipped (est. {est:.0f} s)"
        else:
          sort_fn = aot(_sort_kth, leaves, k_arr)
          reps_s = args.slow_repeats if n > 5_000_000 else args.repeats
          med, _ = timeit(lambda: sort_fn(leaves, k_arr), reps_s,
                          warmup=False)
          row["sort_s"] = med
          sort_txt = f"{med:.4f}"
          if label == "85M":
            sort_85m = med
    ratio = (f"{row['sort_s'] / ours:9.1f}x" if "sort_s" in row else
             f"{'-':>10s}")
    print(f"  {label:>6s} {n:>13,d} {ours:>17.4f} s {row['passes']:>7d} "
          f"{sort_txt:>22s} {ratio}", flush=True)
    out.append(row)
    del leaves
  return out


def main() -> None:
  p = argparse.ArgumentParser(
      description=__doc__.split("\n\n")[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--dists", nargs="+", choices=DISTS + ("gap",),
                 default=list(DISTS),
                 help="score distributions (default: all three)")
  p.add_argument("--with-biases", action="store_true",
                 help="add the 72 bias vectors (85,017,600 scores)")
  p.add_argument("--layers", type=int, default=12,
                 help="encoder layers in the main table (default 12 = "
                 "BERT-base; use 1 for a quick check)")
  p.add_argument("--repeats", type=int, default=5,
                 help="timed runs per fast method (median reported)")
  p.add_argument("--slow-repeats", type=int, default=3,
                 help="timed runs for jnp.sort and lax.top_k")
  p.add_argument("--skip-slow", action="store_true",
                 help="skip jnp.sort and lax.top_k")
  p.add_argument("--skip-fixed", action="store_true",
                 help="leave out (b3), the GPU/TPU search (slow on a CPU)")
  p.add_argument("--scaling", dest="scaling", action="store_true",
                 default=True, help="run the scaling section (default)")
  p.add_argument("--no-scaling", dest="scaling", action="store_false")
  p.add_argument("--big", action="store_true",
                 help="add 340M scores to the scaling section")
  p.add_argument("--torch-device", default="cpu",
                 help="device of the torch.kthvalue reference (cpu, cuda)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default=os.path.join(_ROOT, "benchmarks", "results",
                                                "selection.json"),
                 help="JSON output path")
  args = p.parse_args()

  cores = os.cpu_count() or 1
  if torch is not None:
    torch.set_num_threads(cores)
  print("jaxprune selection benchmark")
  print(f"  jax {jax.__version__} backend={jax.default_backend()} "
        f"devices={jax.devices()}; cpu cores={cores}; numpy {np.__version__}")
  print(f"  torch: {torch.__version__ + f' ({torch.get_num_threads()} threads)' if torch is not None else 'not available: ' + str(_TORCH_ERROR)}")
  print(f"  platform: {platform.platform()}; python {platform.python_version()}")
  shapes = bert_shapes(args.layers, args.with_biases)
  print(f"  leaves: {len(shapes)} ({args.layers} layers"
        f"{', with biases' if args.with_biases else ''}), "
        f"N = {sum(math.prod(s) for s in shapes):,}")

  ctx: dict = {}
  t_start = time.perf_counter()
  results = {d: bench_dist(d, shapes, args, ctx) for d in args.dists}
  print_table(results)
  scale = None
  if args.scaling:
    if args.layers != 12 and "sort_85m_s" in ctx:
      ctx.pop("sort_85m_s")  # the main table was not at 85M
    scale = scaling(args, ctx)
  total = time.perf_counter() - t_start
  print(f"\ntotal benchmark time: {total:.0f} s")

  out = {
      "benchmark": "selection",
      "config": vars(args),
      "environment": {
          "jax": jax.__version__, "backend": jax.default_backend(),
          "cpu_cores": cores, "numpy": np.__version__,
          "torch": None if torch is None else torch.__version__,
          "torch_threads": None if torch is None else torch.get_num_threads(),
          "platform": platform.platform(),
      },
      "results": results,
      "scaling": scale,
      "total_s": total,
  }
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(out, f, indent=1)
  print(f"results written to {args.out}")


if __name__ == "__main__":
  main()
