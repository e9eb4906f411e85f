"""experiments/compare.py: the grid, the resume, the tables (fake training)."""
import csv
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from experiments import compare
from experiments import run


def test_summarize_and_markdown_by_hand():
  rows = [{"method": "dense", "sparsity": 0.0, "seed": 0, "accuracy": 0.86},
          {"method": "dense", "sparsity": 0.0, "seed": 1, "accuracy": 0.84},
          {"method": "platon", "sparsity": 0.5, "seed": 0, "accuracy": 0.8},
          {"method": "platon", "sparsity": 0.5, "seed": 1, "accuracy": 0.9}]
  stats = compare.summarize(rows)
  assert stats[("dense", 0.0)] == (0.85, 0.01, 2)
  assert stats[("platon", 0.5)] == (0.85, 0.05, 2)
  table = compare.markdown(rows, [0.5, 0.8])
  assert "| dense (reference, sparsity 0) | 85.0 ± 1.0 (2) | 85.0 ± 1.0 (2) |" in table
  assert "| platon | 85.0 ± 5.0 (2) | — |" in table


def test_paired_differences_by_hand():
  rows = [{"method": m, "sparsity": 0.9, "seed": seed, "accuracy": a}
          for m, seed, a in (("platon", 0, 0.80), ("platon", 1, 0.70),
                             ("platon", 2, 0.75), ("magnitude", 0, 0.70),
                             ("magnitude", 1, 0.70), ("taylor", 1, 0.60))]
  d = compare.paired_differences(rows, "platon")
  # magnitude: seeds 0 and 1 only: 0.10 and 0.00 -> mean 0.05, std 0.05
  assert d[("magnitude", 0.9)] == pytest.approx((0.05, 0.05, 2))
  assert d[("taylor", 0.9)] == pytest.approx((0.10, 0.0, 1))
  table = compare.markdown(rows, [0.9])
  assert "| magnitude | +5.0 ± 5.0 (2) |" in table
  assert "| taylor | +10.0 ± 0.0 (1) |" in table


@pytest.fixture
def fake_demo(monkeypatch):
  """The runner without training: accuracy from (method, sparsity, seed)."""
  calls = []

  class Task:
    params = {"w": jnp.ones((4,))}

  def execute(cfg, task=None, dense=None, command=None):
    calls.append((cfg.method + ("+kd" if cfg.teacher else ""),
                  cfg.sparsity if cfg.method != "dense" else 0.0,
                  cfg.seed, dense is not None))
    acc = 0.9 - 0.1 * (cfg.method != "dense") * cfg.sparsity + 0.01 * cfg.seed
    summary = {"metrics": {"accuracy": 100 * acc},
               "primary_metric": "accuracy", "actual_sparsity": 0.5,
               "total_steps": cfg.steps,
               "train_seconds": {"pruned": 1.0}}
    return run.Result(summary, {"w": jnp.zeros((4,))}, None, task)

  monkeypatch.setattr(run, "prepare_task", lambda cfg: Task())
  monkeypatch.setattr(run, "execute", execute)
  return calls


def test_grid_resumes_and_writes_tables(tmp_path, fake_demo, capsys):
  argv = ["--methods", "platon", "cam_cut", "platon+kd", "--sparsities",
          "0.5", "0.9",
          "--seeds", "2", "--set", "steps=3", "--out", str(tmp_path / "cells"),
          "--runs", str(tmp_path / "runs"),
          "--results", str(tmp_path / "res")]
  rows = compare.main(argv)
  assert len(rows) == 2 * (1 + 3 * 2) == len(fake_demo)
  # Dense first for each seed; cam_cut and the distilled PLATON (a teacher:
  # the seed's dense run) get the dense params.
  assert fake_demo[0] == ("dense", 0.0, 0, False)
  assert all(c[3] for c in fake_demo if c[0] in ("cam_cut", "platon+kd"))
  assert ("platon+kd", 0.9, 1, True) in fake_demo
  assert os.path.exists(tmp_path / "runs" / "dense_s1.msgpack")
  with open(tmp_path / "res" / "compare.csv") as f:
    table = list(csv.DictReader(f))
  assert len(table) == 14
  row = next(r for r in table if r["method"] == "platon"
             and r["sparsity"] == "0.9" and r["seed"] == "1")
  assert float(row["accuracy"]) == pytest.approx(0.9 - 0.09 + 0.01)
  assert float(row["dense_accuracy"]) == pytest.approx(0.91)
  md = open(tmp_path / "res" / "compare.md").read()
  assert "| platon | 85.5 ± 0.5 (2) | 81.5 ± 0.5 (2) |" in md
  assert os.path.getsize(tmp_path / "res" / "compare.png") > 0

  # --tables-only runs nothing and tables what is there.
  os.remove(tmp_path / "cells" / "cam_cut_0.9_s1.json")
  del fake_demo[:]
  partial = compare.main([*argv, "--tables-only"])
  assert fake_demo == [] and len(partial) == len(rows) - 1
  # Finished cells are not rerun; a removed one (and only it) is, and
  # cam_cut reloads the saved dense params.
  again = compare.main(argv)
  assert fake_demo == [("cam_cut", 0.9, 1, True)]
  key = lambda r: json.dumps({k: v for k, v in r.items()
                              if k != "wall_seconds"}, sort_keys=True)
  assert sorted(map(key, again)) == sorted(map(key, rows))

  # Resumed elsewhere (the run folders are not committed): the dense model
  # is trained again for the cells that need its params, once per seed,
  # and its cell is kept.
  os.remove(tmp_path / "runs" / "dense_s1.msgpack")
  os.remove(tmp_path / "cells" / "cam_cut_0.9_s1.json")
  os.remove(tmp_path / "cells" / "platon+kd_0.5_s1.json")
  cell = tmp_path / "cells" / "dense_s1.json"
  cell.write_text(cell.read_text().replace('"accuracy": 0.91',
                                           '"accuracy": 0.5'))
  del fake_demo[:]
  capsys.readouterr()
  compare.main(argv)
  assert ("the dense model of seed 1 trained again reaches 91.00, its cell "
          "says 50.00") in capsys.readouterr().out
  assert fake_demo == [("dense", 0.0, 1, False), ("cam_cut", 0.9, 1, True),
                       ("platon+kd", 0.5, 1, True)]
  assert os.path.exists(tmp_path / "runs" / "dense_s1.msgpack")


@pytest.mark.parametrize("argv, match", [
    (["--methods", "nope"], "--methods"),
    (["--methods", "dense"], "--methods"),
    (["--sparsities", "1.0"], "--sparsities"),
    (["--seeds", "0"], "--seeds"),
    (["--set", "sparsty=0.5"], "did you mean 'sparsity'"),
])
def test_bad_arguments(argv, match, tmp_path):
  with pytest.raises(SystemExit, match=match):
    compare.main([*argv, "--out", str(tmp_path)])


def test_grid_smoke_through_the_runner(tmp_path):
  rows = compare.main(["--methods", "magnitude", "--sparsities", "0.5",
                       "--seeds", "1", "--set", "data=smoke", "model=tiny",
                       "steps=3", "batch_size=8", "seq_len=32",
                       "eval_batch_size=16", "progress=False",
                       "step_kinds=False",
                       "method_args={'warmup_steps': 1, 'final_steps': 1, "
                       "'delta_t': 1}",
                       "--out", str(tmp_path / "cells"),
                       "--runs", str(tmp_path / "runs"),
                       "--results", str(tmp_path / "res")])
  assert [r["method"] for r in rows] == ["dense", "magnitude"]
  assert rows[1]["actual_sparsity"] == pytest.approx(0.5, abs=1e-3)
  assert np.isfinite(rows[1]["accuracy"])
  assert (tmp_path / "runs" / "magnitude_0.5_s0" / "report.md").exists()
  assert (tmp_path / "cells" / "magnitude_0.5_s0.json").exists()
