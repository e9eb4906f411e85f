"""Movement pruning's per-step masks, compiled for an H100 on this CPU.

Soft movement (``min_keep``) and movement as the authors define it (top-k
per matrix) compute their masks in every forward pass, so a ``conditional``
there is a host synchronisation per step on a GPU. This compiles the masks
of BERT-base's 72 encoder matrices (84,934,656 scores) with the GPU/TPU
search, deviceless as ``benchmarks/gpu_proxy.py`` does (its venv:
``make gpu-proxy`` installs it), and prints kernels, ``conditional`` ops,
``while`` ops of unknown trip count and bytes per score (every branch, and
the cheapest path), one JSON line per variant.

Run: ``.venv-proxy/bin/python benchmarks/movement_masks_proxy.py``
(about a minute).
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

import jaxprune  # noqa: E402  pylint: disable=wrong-import-position
from jaxprune import selection  # noqa: E402  pylint: disable=wrong-import-position


def bert_base_matrices(sharding) -> dict:
  shapes = []
  for _ in range(12):
    shapes += [(768, 768)] * 4 + [(768, 3072), (3072, 768)]
  return {f"m{i:02d}": jax.ShapeDtypeStruct(s, jnp.float32, sharding=sharding)
          for i, s in enumerate(shapes)}


def measure(name: str, masks_fn, scores: dict) -> dict:
  n = sum(x.size for x in scores.values())
  with selection.search_mode("fixed"):
    r = gpu_proxy._compile(masks_fn, (scores,), ())  # pylint: disable=protected-access
  c = hlo_stats.hlo_counts(r["text"])
  return {"variant": name, "kernels": c["kernels"],
          "kernels_min_path": c["kernels_min_path"],
          "conditionals": c["conditionals"],
          "whiles_unknown_trip": c["whiles_unknown_trip"],
          "bytes_per_score": round(c["bytes"] / n, 1),
          "bytes_per_score_min_path": round(c["bytes_min_path"] / n, 1),
          "compile_s": r["compile_s"]}


def main(argv=None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.parse_args(argv)
  scores = bert_base_matrices(gpu_proxy.target_sharding())
  step = 500  # mid-ramp of a 1000-step schedule
  soft = jaxprune.soft_movement(total_steps=1000)
  topk = jaxprune.topk_movement(sparsity=0.9, total_steps=1000, where=None)
  rows = [measure("soft_movement", lambda s: soft.masks(s, step), scores),
          measure("topk_movement", lambda s: topk.masks(s, step), scores)]
  for row in rows:
    print(json.dumps(row))


if __name__ == "__main__":
  main()
