"""The demo script end to end on its ViT path (tiny budget, offline digits)."""
import json

from experiments import demo


def test_vit_demo_smoke(tmp_path):
  summary = demo.main(["--task", "vit", "--steps", "6", "--batch", "16",
                       "--eval-every", "3", "--test-size", "64",
                       "--sparsity", "0.5", "--out", str(tmp_path)])
  saved = json.loads((tmp_path / "summary.json").read_text())
  for key in ("method", "target_sparsity", "actual_sparsity", "metric",
              "value", "dense_value", "seconds"):
    assert key in saved
  assert saved["method"] == "platon" and saved["target_sparsity"] == 0.5
  # floor(0.5 N) of the prunable weights are zero at the end of the run.
  assert abs(saved["actual_sparsity"] - 0.5) < 1e-4
  assert (tmp_path / "curves.png").stat().st_size > 0
  assert summary["value"] == saved["value"]


import pytest  # noqa: E402


@pytest.mark.parametrize("method", ["soft_movement", "cam_cut",
                                    "pins_sr"])
def test_model_aware_methods_in_the_demo(tmp_path, method):
  # smooth_cut takes cam_cut's path with another scorer (tests/test_deepcuts.py,
  # and through the scripts in tests/test_experiments.py).
  summary = demo.main(["--task", "vit", "--steps", "6", "--batch", "16",
                       "--eval-every", "3", "--test-size", "64",
                       "--sparsity", "0.5", "--skip-dense", "--heldout", "64",
                       "--score-batches", "2", "--method", method,
                       "--out", str(tmp_path)])
  assert summary["method"] == method and 0 <= summary["value"] <= 1
  if method in ("cam_cut", "smooth_cut"):
    # per-tensor masks fixed from the first update: floor(0.5 n) per leaf
    assert abs(summary["actual_sparsity"] - 0.5) < 0.02
    assert summary["dense_value"] is not None   # the dense model it scored


def test_demo_structured_pattern(tmp_path):
  summary = demo.main(["--task", "vit", "--steps", "6", "--batch", "16",
                       "--eval-every", "3", "--test-size", "64",
                       "--sparsity", "0.5", "--skip-dense", "--pattern",
                       "heads_and_neurons", "--out", str(tmp_path)])
  assert summary["method"] == "platon" and 0 <= summary["value"] <= 1
  assert summary["actual_sparsity"] > 0.3   # whole heads and neurons zeroed
