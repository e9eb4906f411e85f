"""Smoke tests of the benchmark scripts at tiny sizes (no timing assertions).

Each script runs in a subprocess (``benchmarks/sharding.py`` must set
``XLA_FLAGS`` before jax is imported) and its JSON output is checked for the
expected keys. The persistent pruning-state sizes of ``benchmarks/memory.py``
come from ``jax.eval_shape`` and are deterministic: they are checked against
the sizes derived by hand from each method's state definition.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from tests import xla_flags

pytest.importorskip("flax")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")
if BENCH not in sys.path:
  sys.path.insert(0, BENCH)
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)


def _run(script: str, out: str, *args: str) -> dict:
  env = dict(os.environ)
  env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
  env["XLA_FLAGS"] = xla_flags.fast_compile()   # no fake devices, cheap compiles
  proc = subprocess.run(
      [sys.executable, os.path.join(BENCH, script), "--out", out, *args],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  with open(out) as f:
    return json.load(f)


def test_method_overhead_pieces_tiny(tmp_path):
  out = _run("method_overhead.py", str(tmp_path / "m.json"), "--model-size",
             "tiny", "--no-train", "--piece-repeats", "1", "--methods",
             "movement")
  for key in ("environment", "loadavg_before", "loadavg_after", "train",
              "pieces", "markdown", "settings"):
    assert key in out
  for m in ("movement",):
    pieces = out["pieces"]["methods"][m]
    assert {"score_update", "selection", "masking"} <= set(pieces)
    assert pieces["selection"]["exact"]


@pytest.mark.skipif(not os.environ.get("JAXPRUNE_SLOW_BENCH_TESTS"),
                    reason="compiles two BERT train steps (~30 s on a loaded "
                    "2-core CPU); set JAXPRUNE_SLOW_BENCH_TESTS=1")
def test_method_overhead_train_tiny(tmp_path):
  out = _run("method_overhead.py", str(tmp_path / "m.json"), "--model-size",
             "tiny", "--rounds", "1", "--warmup", "0", "--no-pieces",
             "--batch", "2", "--seq", "16", "--methods", "platon")
  r = out["train"]["methods"]["platon"]
  assert r["selection_as_expected"], r
  for kind in ("ordinary", "event"):
    assert {"times_s", "median_s", "overhead_mean"} <= set(r[kind])


@pytest.mark.skipif(not os.environ.get("JAXPRUNE_SLOW_BENCH_TESTS"),
                    reason="compiles a BERT selection update (~10 s); set "
                    "JAXPRUNE_SLOW_BENCH_TESTS=1")
def test_update_kinds_one_layer(tmp_path):
  out = _run("update_kinds.py", str(tmp_path / "u.json"), "--layers", "1",
             "--rounds", "1", "--warmup", "1")
  assert set(out["results"]) == {"dense", "boundary", "final", "select"}
  for row in out["results"].values():
    assert len(row["times_s"]) == 1 and row["median_s"] > 0


def test_memory_tiny(tmp_path):
  out = _run("memory.py", str(tmp_path / "mem.json"), "--model-size", "tiny",
             "--methods", "platon", "--traced-only", "--train-step-methods")
  assert {"state", "transient", "markdown", "loadavg_before"} <= set(out)
  assert set(out["state"]) == {"platon"}
  assert out["state"]["platon"]["bytes_per_weight"] == 13
  rows = out["transient"]["rows"]
  assert any(r.get("what") == "prune_masks" for r in rows.values())
  assert any(r.get("method") == "platon" and r.get("step") == "traced"
             for r in rows.values())


def test_sharding_tiny(tmp_path):
  out = _run("sharding.py", str(tmp_path / "sh.json"), "--layers", "1",
             "--fractions", "0.9", "--hidden", "64", "--ffn", "256",
             "--repeats", "1")
  assert out["environment"]["devices"] == 8
  assert out["all_identical"]
  assert {"rows", "markdown", "loadavg_before", "loadavg_after"} <= set(out)


#: Per prunable weight, by hand from each method's state definition:
#: float32 score arrays (4 bytes each) + the bool mask (1 byte).
#: PLATON / PINS: Iwin, Ibar, Ubar; SEVEN: importance, m, v; Taylor (EMA)
#: and movement: one score array; magnitude and MGPP: no score state.
EXPECTED_FLOAT32_ARRAYS = {"platon": 3, "pins": 3, "seven": 3, "taylor": 1,
                           "movement": 1, "magnitude": 0, "mgpp": 0}


@pytest.mark.parametrize("method", sorted(EXPECTED_FLOAT32_ARRAYS))
def test_pruning_state_bytes_tiny(method):
  import memory  # benchmarks/memory.py
  import platon_overhead
  from jaxprune import where as where_lib

  params = memory.param_shapes("tiny")
  # The shapes come from the benchmark model itself.
  model, _ = platon_overhead.build_model("tiny", 0)
  assert (jax.tree.map(lambda x: (x.shape, x.dtype), params)
          == jax.tree.map(lambda x: (x.shape, x.dtype), model.params))
  flags = where_lib.resolve("bert", params)
  sel = [x for x, f in zip(jax.tree_util.tree_leaves(params), flags) if f]
  n = sum(int(np.prod(x.shape)) for x in sel)
  r = memory.state_breakdown(method, params)
  assert r["n"] == n
  per_weight = 4 * EXPECTED_FLOAT32_ARRAYS[method] + 1
  assert r["per_weight_bytes"] == per_weight * n
  assert r["bytes_per_weight"] == per_weight
  assert r["bytes_per_weight"] <= memory.TARGET_BYTES_PER_WEIGHT
  assert r["meets_target"]
  # Constant part: count (int32) + stale (bool) + threshold and num_pruned
  # (float32 / int32 per group: one group, or one per leaf for movement's
  # per-layer selection) + MGPP's prior step counter (int32).
  groups = len(sel) if method == "movement" else 1
  # count (4), stale and kind_mismatch (1 + 1), threshold + num_pruned (8/group)
  constant = 4 + 2 + 8 * groups + (4 if method == "mgpp" else 0)
  assert r["constant_bytes"] == constant
  assert r["total_bytes"] == per_weight * n + constant


def test_gpu_proxy_shapes():
  """The proxy's hand-built BERT tree: 85,017,600 prunable weights at 12
  layers (where="bert"), and the same tree as the model it compiles."""
  import gpu_proxy  # pylint: disable=g-import-not-at-top
  assert gpu_proxy.num_prunable(gpu_proxy.bert_param_shapes(12)) == 85_017_600
  _, params, batch = gpu_proxy.make_model(1, 2, 16)
  hand = gpu_proxy.bert_param_shapes(1)
  assert (jax.tree_util.tree_structure(params)
          == jax.tree_util.tree_structure(hand))
  assert ([x.shape for x in jax.tree_util.tree_leaves(params)]
          == [x.shape for x in jax.tree_util.tree_leaves(hand)])
  assert batch["input_ids"].shape == (2, 16)


def _has_cuda_plugin() -> bool:
  import importlib.util  # pylint: disable=g-import-not-at-top
  try:
    return importlib.util.find_spec("jax_plugins.xla_cuda12") is not None
  except ImportError:  # no jax_plugins package at all
    return False


@pytest.mark.skipif(not _has_cuda_plugin(),
                    reason="needs jax-cuda12-plugin (the gpu-proxy extra; "
                    "`make gpu-proxy` venv), not installed for `make test`")
def test_gpu_proxy_tiny(tmp_path):
  out = tmp_path / "p.json"
  env = dict(os.environ)
  env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
  env.pop("XLA_FLAGS", None)   # the GPU compile as users get it
  proc = subprocess.run(
      [sys.executable, os.path.join(BENCH, "gpu_proxy.py"), "--layers", "1",
       "--what", "update", "--methods", "magnitude", "--json", str(out)],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  with open(out) as f:
    res = json.load(f)
  assert res["complete"]
  assert res["target"]["device_kind"].startswith("NVIDIA H100")
  entries = {(e["method"], e["kind"]): e for e in res["entries"]}
  dense = entries[("dense", "dense")]
  assert dense["conditionals"] == 0 and dense["whiles_unknown_trip"] == 0
  for e in res["entries"]:
    for key in ("kernels", "fusions", "copies", "custom_calls", "sorts",
                "conditionals", "whiles_unknown_trip", "whiles_known_trip",
                "buffers", "bytes_per_weight", "bytes_per_weight_over_dense"):
      assert key in e


def test_dispatch_one_layer(tmp_path):
  out = _run("dispatch.py", str(tmp_path / "d.json"), "--layers", "1",
             "--calls", "1", "--sizes", "3", "--dim", "2")
  assert [(r["program"], r["buffers"]) for r in out["per_buffer"]] == [
      ("identity", 3), ("scale", 3)]
  rows = out["updates"]
  assert set(rows) == {"dense", "boundary", "final", "select"}
  # One layer: 6 prunable matrices and their biases (12 leaves, in two
  # shapes at --dim 2: (2, 2) and (2,)): Iwin, Ibar and Ubar per leaf, a
  # mask stack per shape, and 5 scalars (count, stale, kind_mismatch,
  # threshold, num_pruned) beyond dense's params, moments and gradients.
  assert {r["input_buffers"] - rows["dense"]["input_buffers"]
          for n, r in rows.items() if n != "dense"} == {3 * 12 + 2 + 5}
  assert rows["dense"]["dispatch_over_dense"] == 1.0


def _kinds_file(path, dense, sel, other):
  """A results file with only a per-kind section (cubic and final alike)."""
  kinds = {"dense": {"times_s": dense}}
  for phase, s in (("cubic", 30), ("final", 80)):
    kinds[f"{phase}, selection"] = {"step": s, "times_s": sel,
                                    "overhead": 0.0}
    kinds[f"{phase}, no selection"] = {"step": s - 1, "times_s": other,
                                       "overhead": 0.0}
  with open(path, "w") as f:
    json.dump({"train": {"kinds": kinds}}, f)
  return str(path)


def test_platon_overhead_paired_and_pooled(tmp_path, capsys):
  import platon_overhead
  # Run a: the machine slows down 2x in round 2; each step is paired with
  # its own round's dense step, so the ratios stay 1.1 (selection) and 1.0.
  a = _kinds_file(tmp_path / "a.json", [1.0, 2.0], [1.1, 2.2], [1.0, 2.0])
  # Run b: selection 1.3x, the others 1.02x, on a steady machine.
  b = _kinds_file(tmp_path / "b.json", [3.0, 3.0], [3.9, 3.9], [3.06, 3.06])
  k = platon_overhead.pool_kinds([a, b])
  assert k["rounds"] == 4
  sel = k["paired"]["final, selection"]
  # Ratios 1.1, 1.1, 1.3, 1.3: median and mean 1.2.
  assert sel["median"] == pytest.approx(0.2)
  assert sel["mean"] == pytest.approx(0.2)
  lo, hi = sel["mean_interval"]
  assert 0.1 - 1e-12 <= lo <= 0.2 <= hi <= 0.3 + 1e-12
  # Window of 10: one selection, nine others, per round, then the mean:
  # (1.1 + 9 * 1.0) / 10 - 1 = 0.01 in run a, (1.3 + 9 * 1.02) / 10 - 1
  # = 0.048 in run b.
  m = k["phase_mean_from_kinds"]["cubic"]
  assert m["mean"] == pytest.approx((0.01 + 0.048) / 2)
  assert m["target"] == 0.03
  # Unpaired medians mix the runs' machine speeds: dense median 2.5 s.
  assert k["dense"]["median_s"] == pytest.approx(2.5)
  platon_overhead.print_kinds(k)
  text = capsys.readouterr().out
  assert "costliest kind, paired: cubic, selection" in text
  assert "cubic window mean" in text and "undecided" in text
  empty = tmp_path / "empty.json"
  empty.write_text(json.dumps({"train": {}}))
  with pytest.raises(SystemExit, match="empty.json has no per-kind section"):
    platon_overhead.pool_kinds([a, str(empty)])
  other = json.loads(open(b).read())
  other["train"]["kinds"]["final, selection"]["step"] = 40
  (tmp_path / "c.json").write_text(json.dumps(other))
  with pytest.raises(SystemExit, match="c.json has the kinds at steps"):
    platon_overhead.pool_kinds([a, str(tmp_path / "c.json")])


def test_platon_overhead_kinds_tiny(tmp_path):
  out = _run("platon_overhead.py", str(tmp_path / "p.json"), "--model-size",
             "tiny", "--steps", "10", "--warmup", "1", "--streamed", "0",
             "--no-pieces", "--batch", "2", "--seq", "16", "--kind-rounds", "2")
  train = out["train"]
  assert train["actual_sparsity_after"]["final"] == pytest.approx(0.9, abs=1e-3)
  kinds = train["kinds"]
  # The cubic phase ends at s = 20 (one window, then the 10 timed steps),
  # the final phase starts after; one warm-up step at s = 10 and 30, so the
  # timed steps are 11..20 and 31..40: the last of each with a selection
  # (s % 10 == 0) and the last without.
  assert {n: r["step"] for n, r in kinds.items() if isinstance(r, dict)
          and "step" in r} == {
      "cubic, selection": 20, "cubic, no selection": 19,
      "final, selection": 40, "final, no selection": 39}
  assert all(len(r["times_s"]) == 2 for r in kinds.values()
             if isinstance(r, dict) and "times_s" in r)
  assert kinds["worst_kind"] in kinds
