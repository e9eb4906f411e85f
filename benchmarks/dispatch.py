"""Benchmark: the host's cost of calling a jitted update, per jit buffer.

What is measured
----------------
PLATON's state adds three arrays per prunable leaf (``Iwin``, ``Ibar``,
``Ubar``) and one mask stack per leaf shape (``jaxprune.stacking``) to every
call of a train step: for BERT-base's whole step, 2,096 jit buffers against
1,212 for dense AdamW (2,374 with one mask per leaf; ``benchmarks/gpu_proxy.py``
counts them). The host handles each buffer on every call (flattening,
checks, donation, the runtime's bookkeeping) before the device starts, so
this cost does not depend on the arrays' sizes. To see it apart from the
device's work, this script keeps BERT-base's tree (12 layers, every leaf of
``gpu_proxy.bert_param_shapes``) but caps every dimension at ``--dim`` (8),
so that the arrays are tiny and the kernels cost next to nothing, and times:

* an identity and a scale-every-leaf program over ``n`` donated float32
  arrays, for ``n`` in ``--sizes``: the cost per buffer;
* the update of dense AdamW and of PLATON at each step kind
  (``update_kinds.KINDS``), params and state donated, as in
  ``benchmarks/update_kinds.py``.

Each call is timed twice: until it returns (dispatch) and until its outputs
are ready (blocked). Medians of ``--calls`` calls after 3 untimed ones. The
CPU backend runs small programs on the calling thread, so on CPU both times
of the updates include the fixed cost of each of their kernels as well
(PLATON's selection kind has many: the counting passes run leaf by leaf on
CPU); the identity program has no kernel and shows the buffers' cost alone.

What it says about a GPU: the per-buffer cost is host work (jax's C++
dispatch and the PJRT client), so its order of magnitude carries over, but a
GPU host's CPU and runtime differ; only a GPU run gives the GPU's figure.
When steps are streamed (the host does not wait for each step), the host's
dispatch overlaps the previous step's device work and costs nothing as long
as it is shorter than that; a loop that blocks on every step pays it in full.

Run (about 2 minutes on 2 CPU cores)::

    PYTHONPATH=. .venv/bin/python benchmarks/dispatch.py
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp
import optax

import gpu_proxy as G  # pylint: disable=g-import-not-at-top
from method_overhead import set_step  # pylint: disable=g-import-not-at-top
from update_kinds import _jitted, kind_steps, write_result  # pylint: disable=g-import-not-at-top

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def time_calls(fn, state, calls: int, prepare):
  """Median (dispatch, blocked) seconds of ``state = fn(*prepare(state))``."""
  for _ in range(3):
    state = jax.block_until_ready(fn(*prepare(state)))
  dispatch, blocked = [], []
  for _ in range(calls):
    args = jax.block_until_ready(prepare(state))
    t0 = time.perf_counter()
    state = fn(*args)
    t1 = time.perf_counter()
    jax.block_until_ready(state)
    t2 = time.perf_counter()
    dispatch.append(t1 - t0)
    blocked.append(t2 - t0)
  return statistics.median(dispatch), statistics.median(blocked), state


def per_buffer(sizes, dim: int, calls: int) -> list[dict]:
  rows = []
  programs = {
      "identity": jax.jit(lambda t: t, donate_argnums=0),
      "scale": jax.jit(lambda t: [x * 1.0001 for x in t], donate_argnums=0),
  }
  for n in sizes:
    for name, fn in programs.items():
      tree = [jnp.full((dim, dim), float(i)) for i in range(n)]
      d, b, _ = time_calls(fn, tree, calls, prepare=lambda t: (t,))
      rows.append({"program": name, "buffers": n, "dispatch_s": d,
                   "blocked_s": b, "dispatch_us_per_buffer": 1e6 * d / n})
      print(f"  {name:8s} {n:5d} buffers: dispatch {1e3 * d:6.3f} ms "
            f"({1e6 * d / n:4.2f} us per buffer), blocked {1e3 * b:6.3f} ms",
            flush=True)
  return rows


def updates(dim: int, calls: int, layers: int) -> dict:
  shapes = G.bert_param_shapes(layers)
  key = jax.random.PRNGKey(0)
  params = jax.tree.map(
      lambda s: 0.02 * jax.random.normal(
          key, tuple(min(d, dim) for d in s.shape), s.dtype), shapes)
  grads = jax.tree.map(lambda p: 0.05 * p, params)
  dense = optax.adamw(G.LR)
  tx = G.make_tx("platon", clip_norm=None)
  jax.eval_shape(tx.init, params)
  variants = {"dense": (dense, _jitted(dense, None), None)}
  for name, (step, hint) in kind_steps(tx).items():
    variants[name] = (tx, _jitted(tx, hint), step)
  rows = {}
  for name, (t, fn, step) in variants.items():
    p = jax.tree.map(jnp.copy, params)
    prepare = ((lambda s: (s[0], s[1], grads)) if step is None else
               (lambda s, step=step: (s[0], set_step(s[1], step), grads)))
    state = (p, t.init(p))
    n_in = len(jax.tree.leaves((state, grads)))
    d, b, _ = time_calls(fn, state, calls, prepare)
    rows[name] = {"input_buffers": n_in, "dispatch_s": d, "blocked_s": b}
  d0, b0 = rows["dense"]["dispatch_s"], rows["dense"]["blocked_s"]
  for name, r in rows.items():
    r["dispatch_over_dense"] = r["dispatch_s"] / d0
    r["blocked_extra_s"] = r["blocked_s"] - b0
    print(f"  {name:9s} {r['input_buffers']:5d} input buffers: dispatch "
          f"{1e3 * r['dispatch_s']:6.3f} ms (x{r['dispatch_over_dense']:.2f} "
          f"dense), blocked {1e3 * r['blocked_s']:6.3f} ms "
          f"({1e3 * r['blocked_extra_s']:+.3f} ms)", flush=True)
  return rows


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--calls", type=int, default=100)
  p.add_argument("--dim", type=int, default=8,
                 help="every dimension of every leaf capped at this")
  p.add_argument("--layers", type=int, default=12,
                 help="encoder layers of the BERT tree (12: BERT-base)")
  p.add_argument("--sizes", default="600,1200,2400",
                 help="buffer counts of the per-buffer section")
  p.add_argument("--no-updates", dest="updates", action="store_false",
                 help="the per-buffer section only (no update compiles)")
  p.add_argument("--out", default=os.path.join(_ROOT, "benchmarks", "results",
                                               "dispatch.json"))
  args = p.parse_args(argv)
  if args.calls < 1:
    p.error(f"--calls must be >= 1, got {args.calls}")
  if args.layers < 1:
    p.error(f"--layers must be >= 1, got {args.layers}")
  if args.dim < 1:
    p.error(f"--dim must be >= 1, got {args.dim}")
  try:
    sizes = [int(x) for x in args.sizes.split(",")]
  except ValueError:
    p.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
  if not sizes or min(sizes) < 1:
    p.error(f"--sizes must be positive, got {args.sizes!r}")
  print(f"jax {jax.__version__}, backend {jax.default_backend()}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
  print(f"per buffer ({args.dim}x{args.dim} float32 arrays, donated), median "
        f"of {args.calls} calls:")
  buffers = per_buffer(sizes, args.dim, args.calls)
  rows = None
  if args.updates:
    print(f"updates over a {args.layers}-layer BERT's tree (dimensions capped "
          f"at {args.dim}), median of {args.calls} calls:")
    rows = updates(args.dim, args.calls, args.layers)
  return write_result("dispatch", args, {"per_buffer": buffers,
                                         "updates": rows})


if __name__ == "__main__":
  main()
