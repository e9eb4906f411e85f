"""Would a stacked state layout keep XLA:GPU's fusion? A prototype, for an H100.

PLATON's state holds ``Iwin``, ``Ibar``, ``Ubar`` and a mask per prunable leaf:
for BERT-base, 576 arrays that every call of a train step passes in and out
(``benchmarks/dispatch.py`` measures what each costs the host). ``Ibar``,
``Ubar`` and the masks are written only at window boundaries and selections,
so they could live in a few stacked arrays, one per leaf shape, without
touching the ordinary step's writes. This script does not use jaxprune: it
writes the element-wise part of an ordinary final-phase step (AdamW, the
``Iwin`` update from ``|theta' * g|`` and the masking) and of a window
boundary (the ``Ibar`` and ``Ubar`` EMAs) by hand, over BERT-base's prunable
leaves (``gpu_proxy.bert_param_shapes``: per layer, the kernels and biases
of Q, K, V, the attention output and both FFN projections), once with one
array per leaf and once with the masks (ordinary step) or ``Ibar``/``Ubar``
(boundary) stacked per shape, and compiles both for an H100 as
``benchmarks/gpu_proxy.py`` does. Printed per variant, one JSON line each
(``hlo_stats.hlo_counts``): kernels, copies, estimated bytes per prunable
weight and jit input buffers.

What came of it: the masks are stacked (``jaxprune.stacking``). ``Ibar`` and
``Ubar`` are not: in jaxprune's whole update, which also computes AdamW and
the finiteness guard per leaf, their stacked EMAs cost the boundary step
21 and the selection step 43 more bytes per weight on the H100 proxy
(``docs/performance.md``), which this boundary-only prototype does not show.

Run (its venv: ``make gpu-proxy`` installs it; about 30 seconds)::

    .venv-proxy/bin/python benchmarks/stacked_state_proxy.py
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpu_proxy  # noqa: E402  pylint: disable=wrong-import-position
import hlo_stats  # noqa: E402  pylint: disable=wrong-import-position

B1, B2, LR, EPS, WD = 0.9, 0.999, 8e-5, 1e-8, 0.01


def prunable_shapes(layers: int) -> list[tuple[int, ...]]:
  """Shapes of BERT's prunable leaves, in the params' leaf order."""
  enc = gpu_proxy.bert_param_shapes(layers)["bert"]["encoder"]["layer"]
  out = []
  for i in range(layers):
    layer = enc[str(i)]
    for dense in (layer["attention"]["self"]["query"],
                  layer["attention"]["self"]["key"],
                  layer["attention"]["self"]["value"],
                  layer["attention"]["output"]["dense"],
                  layer["intermediate"]["dense"], layer["output"]["dense"]):
      out += [dense["kernel"].shape, dense["bias"].shape]
  return out


def _adamw(p, g, mu, nu):
  mu = B1 * mu + (1 - B1) * g
  nu = B2 * nu + (1 - B2) * g * g
  return -LR * (mu / 0.1 / (jnp.sqrt(nu / 0.01) + EPS) + WD * p), mu, nu


def ordinary(mask_of):
  """The ordinary step; ``mask_of(masks, j)`` reads leaf ``j``'s mask."""
  def step(p, g, mu, nu, iwin, masks, local):
    out = []
    for j, (pj, gj) in enumerate(zip(p, g)):
      u, m1, n1 = _adamw(pj, gj, mu[j], nu[j])
      new = pj + u
      iw = (iwin[j] * local + jnp.abs(new * gj)) / (local + 1)
      out.append((jnp.where(mask_of(masks, j), new, 0.0), m1, n1, iw))
    return [list(x) for x in zip(*out)]
  return step


def boundary_per_leaf(ibar, ubar, iwin):
  ib = [B1 * a + (1 - B1) * w for a, w in zip(ibar, iwin)]
  ub = [B2 * u + (1 - B2) * jnp.abs(w - a) for u, w, a in zip(ubar, iwin, ib)]
  return ib, ub


def boundary_stacked(groups):
  def step(ibar, ubar, iwin):
    win = {k: jnp.stack([iwin[j] for j in js]) for k, js in groups.items()}
    ib = {k: B1 * ibar[k] + (1 - B1) * win[k] for k in ibar}
    ub = {k: B2 * ubar[k] + (1 - B2) * jnp.abs(win[k] - ib[k]) for k in ubar}
    return ib, ub
  return step


def main(argv=None) -> list[dict]:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--layers", type=int, default=12)
  p.add_argument("--out", default=None, help="also write the JSON lines here")
  args = p.parse_args(argv)
  if args.layers < 1:
    p.error(f"--layers must be >= 1, got {args.layers}")
  sharding = gpu_proxy.target_sharding()
  shapes = prunable_shapes(args.layers)
  n = sum(int(jnp.prod(jnp.array(s))) for s in shapes)
  groups: dict[str, list[int]] = {}
  for j, s in enumerate(shapes):
    groups.setdefault(str(s), []).append(j)
  slot = {j: (k, i) for k, js in groups.items() for i, j in enumerate(js)}

  def spec(shape, dtype=jnp.float32):
    return jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)

  leaves = [spec(s) for s in shapes]
  masks = [spec(s, jnp.bool_) for s in shapes]

  def stacks(dtype):
    return {k: spec((len(js),) + shapes[js[0]], dtype)
            for k, js in groups.items()}

  local = spec(())
  variants = [
      ("ordinary, a mask per leaf", ordinary(lambda m, j: m[j]),
       (leaves, leaves, leaves, leaves, leaves, masks, local), (0, 2, 3, 4)),
      ("ordinary, masks stacked per shape",
       ordinary(lambda m, j: m[slot[j][0]][slot[j][1]]),
       (leaves, leaves, leaves, leaves, leaves, stacks(jnp.bool_), local),
       (0, 2, 3, 4)),
      ("boundary, Ibar/Ubar per leaf", boundary_per_leaf,
       (leaves, leaves, leaves), (0, 1)),
      ("boundary, Ibar/Ubar stacked per shape", boundary_stacked(groups),
       (stacks(jnp.float32), stacks(jnp.float32), leaves), (0, 1)),
  ]
  print(f"{len(shapes)} prunable leaves in {len(groups)} shapes, "
        f"{n:,} weights; compiled for an H100")
  rows = []
  for name, fn, fargs, donate in variants:
    with gpu_proxy.traced_as_gpu():
      lowered = jax.jit(fn, donate_argnums=donate).lower(*fargs)
    c = hlo_stats.hlo_counts(lowered.compile().as_text())
    row = {"variant": name, "layers": args.layers, "kernels": c["kernels"],
           "copies": c["copies"], "bytes_per_weight": round(c["bytes"] / n, 3),
           "input_buffers": len(jax.tree.leaves(fargs))}
    rows.append(row)
    print(json.dumps(row), flush=True)
  if args.out:
    with open(args.out, "w") as f:
      f.writelines(json.dumps(r) + "\n" for r in rows)
  return rows


if __name__ == "__main__":
  main()
