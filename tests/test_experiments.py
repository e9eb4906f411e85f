"""The paper experiment scripts: helpers, configs and an offline smoke run of
every script (GLUE classification, regression and MNLI, SQuAD, ViT), each in
process through its ``main(argv)``, checked through ``results.json``."""

import glob
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments import collect_results, common, glue, methods, squad, vit
from experiments.tasks import optim, text

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "experiments", "configs", "*",
                                        "*.py")))
# Training-set sizes of the dev-evaluated tasks (SQuAD: windows at 384/128).
TRAIN_SIZE = {"mnli": 392702, "qqp": 363846, "qnli": 104743, "sst2": 67349,
              "cola": 8551, "stsb": 5749, "mrpc": 3668, "rte": 2490,
              "squad": 88641, "cifar100": 50000, "imagenet": 1281167}


# --- helpers -----------------------------------------------------------------

def test_to_steps():
  assert common.to_steps(7, 100, 1000) == 7
  assert common.to_steps("2 epochs", 100, 1000) == 200
  assert common.to_steps("1 epoch", 100, 1000) == 100
  assert common.to_steps("30 steps", 100, 1000) == 30
  assert common.to_steps(0.1, 100, 1000) == 100
  for bad in ("two epochs", 1.5, True):
    with pytest.raises(ValueError):
      common.to_steps(bad, 100, 1000)


def test_where_variants():
  import jaxprune
  params = {"bert": {"encoder": {"layer": {"0": {"attention": {"self": {
      "query": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}}}}}},
      "pooler": {"dense": {"kernel": jnp.ones((2, 2))}}}}
  count = lambda w: sum(jaxprune.where.resolve(common.resolve_where(w),
                                               params))
  assert count("bert") == 2
  assert count("bert_kernels") == 1
  assert count("bert_kernels_pooler") == 2
  with pytest.raises(ValueError, match="where"):
    common.resolve_where("gpt")


def test_lr_schedules():
  s = optim.lr_schedule("warmup_linear", 1.0, 100, 10)
  assert [float(s(c)) for c in (0, 5, 10, 50, 100)] == pytest.approx(
      [0.0, 0.5, 0.9, 0.5, 0.0])
  s = optim.lr_schedule("linear", 2.0, 100, 0, end_factor=0.1)
  assert float(s(0)) == pytest.approx(2.0)
  assert float(s(100)) == pytest.approx(0.2)
  assert float(optim.lr_schedule("constant", 3.0, 10)(7)) == 3.0


def test_mtdnn_adamax_matches_a_hand_loop():
  params = {"dense": {"kernel": jnp.array([[1.0, -2.0]]),
                      "bias": jnp.array([0.5])}}
  grads = [{"dense": {"kernel": jnp.array([[0.1, -0.3]]),
                      "bias": jnp.array([0.2])}},
           {"dense": {"kernel": jnp.array([[-0.2, 0.1]]),
                      "bias": jnp.array([0.05])}}]
  tx = optim.mtdnn_adamax(0.1, weight_decay=0.01)
  state = tx.init(params)
  p = jax.tree.map(np.asarray, params)
  m = jax.tree.map(np.zeros_like, p)
  u = jax.tree.map(np.zeros_like, p)
  for g in grads:
    upd, state = tx.update(g, state, params)
    params = optax.apply_updates(params, upd)
    for name in ("kernel", "bias"):
      gi = np.asarray(g["dense"][name])
      m["dense"][name] = 0.9 * m["dense"][name] + 0.1 * gi
      u["dense"][name] = np.maximum(0.999 * u["dense"][name],
                                    np.abs(gi) + 1e-6)
      step = m["dense"][name] / (u["dense"][name] + 1e-6)
      if name == "kernel":  # no decay on biases
        step = step + 0.01 * p["dense"][name]
      p["dense"][name] = p["dense"][name] - 0.1 * step
  for name in ("kernel", "bias"):
    np.testing.assert_allclose(params["dense"][name], p["dense"][name],
                               rtol=1e-5)


def test_resize_matches_jax_image_resize_and_crops():
  rng = np.random.default_rng(0)
  img = rng.uniform(0, 255, (7, 5, 3)).astype(np.float32)
  ours = vit.resize_bilinear(img, 16, 11)
  ref = jax.image.resize(jnp.asarray(img), (16, 11, 3), "linear")
  np.testing.assert_allclose(ours, np.asarray(ref), atol=1e-3)
  np.testing.assert_allclose(vit.resize_bilinear(img, 7, 5), img, atol=1e-4)
  crop = vit.random_resized_crop(img, 8, np.random.default_rng(1))
  assert crop.shape == (8, 8, 3)
  assert vit.center_crop(img, 4, 0.875).shape == (4, 4, 3)
  x = vit.normalize(np.full((2, 4, 4, 3), 255.0))
  assert x.shape == (2, 3, 4, 4) and np.all(x == 1.0)


def test_squad_features_point_at_the_answers():
  tok = text.smoke_tokenizer()
  data = squad.smoke_dataset(0)["train"]
  cfg = {"max_seq_len": 48, "doc_stride": 16}
  feats = squad.train_features(tok, data, cfg)
  enc = squad._window(tok, data["question"], data["context"], cfg)
  found = 0
  for i, (s, e) in enumerate(zip(feats["start_positions"],
                                 feats["end_positions"])):
    if s == 0:
      continue
    ex = enc["overflow_to_sample_mapping"][i]
    off = enc["offset_mapping"][i]
    span = data["context"][ex][off[s][0]:off[e][1]]
    assert span == data["answers"][ex]["text"][0]
    found += 1
  assert found >= len(data["id"])  # every answer lies in some window
  assert len(feats["start_positions"]) > len(data["id"])  # windows overflow


def test_best_spans_hand_example():
  context = "alpha beta gamma"
  # window tokens: [CLS] q [SEP] alpha beta gamma [SEP]
  offsets = np.array([[-1, -1], [-1, -1], [-1, -1], [0, 5], [6, 10],
                      [11, 16], [-1, -1]])
  feats = {"example": np.array([0]), "offsets": offsets[None]}
  start = np.array([[9.0, 0, 0, 1.0, 3.0, 0, 0]])   # CLS is not context
  end = np.array([[9.0, 0, 0, 0, 1.0, 2.0, 0]])
  assert squad.best_spans(start, end, feats, [context], 20, 30) == [
      "beta gamma"]
  # a one-token limit forces a single token: beta (3+1) beats gamma (0+2)
  assert squad.best_spans(start, end, feats, [context], 20, 1) == ["beta"]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: "/".join(
    p.split(os.sep)[-2:]))
def test_config_loads_and_fits_the_paper_run(path):
  cfg = {**common.BASE_DEFAULTS, **common.load_config(path),
         "config_method": None}
  assert cfg["task"] in TRAIN_SIZE and 0 < cfg["sparsity"] < 1
  total, per_epoch = common.steps_for(cfg, TRAIN_SIZE[cfg["task"]])
  args = common.method_overrides(cfg, per_epoch, total)
  if cfg["method"] == "platon" and cfg["task"] == "mnli":
    assert total == 98176  # PLATON's MNLI script: 12,272 x 8
  if "final_steps" in args:
    assert args.get("warmup_steps", 0) + args["final_steps"] < total
  if cfg["method"] not in methods.METHODS:
    pytest.skip(f"{cfg['method']} is not in experiments.methods yet")
  params = {"bert": {"encoder": {"layer": {"0": {"attention": {"self": {
      "query": {"kernel": jnp.ones((4, 4)), "bias": jnp.ones(4)}}}}}}},
      "vit": {"encoder": {"layer": {"0": {"attention": {"attention": {
          "query": {"kernel": jnp.ones((4, 4)), "bias": jnp.ones(4)}}}}}}}}
  where = common.resolve_where(cfg["where"])
  tx, _ = common.build_tx(cfg, total_steps=total, steps_per_epoch=per_epoch,
                          num_examples=TRAIN_SIZE[cfg["task"]], where=where)
  tx.init(params)


# --- smoke runs ---------------------------------------------------------------

@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
  """One folder for all smoke runs of this module (collected at the end)."""
  return tmp_path_factory.mktemp("runs")


def _run(module, runs_dir, name, *argv):
  out = str(runs_dir / name)
  result = module.main(["--smoke", "--no-progress", "--out", out, *argv])
  with open(os.path.join(out, "results.json")) as f:
    saved = json.load(f)
  assert saved["task"] == result["task"] and saved["smoke"] is True
  assert os.path.isdir(os.path.join(out, "ckpt"))
  assert os.path.exists(os.path.join(out, "log.jsonl"))
  assert saved["total_steps"] == 6 and saved["seconds"] > 0
  return saved


def _check_sparsity(r, target):
  assert r["target_sparsity"] == target
  assert abs(r["actual_sparsity"] - target) < 1e-3


def test_glue_classification_from_a_paper_config(runs_dir):
  r = _run(glue, runs_dir, "cola", "--config",
           os.path.join(ROOT, "experiments/configs/platon/cola_90.py"))
  assert r["task"] == "cola" and r["method"] == "platon"
  assert r["config"]["optimizer"]["name"] == "mtdnn_adamax"
  assert r["method_args"]["beta2"] == 0.95
  assert -100 <= r["metrics"]["mcc"] <= 100
  _check_sparsity(r, 0.9)


def test_glue_two_four_pattern(tmp_path):
  # Its own folder: the collect_results test counts the runs in runs_dir.
  r = _run(glue, tmp_path, "sst2_24", "--task", "sst2", "--method",
           "magnitude", "--sparsity", "0.5", "--pattern", "2:4")
  # Kernels exactly 2:4; the biases in where="bert" stay dense under N:M.
  assert r["config"]["pattern"] == "2:4"
  assert 0.45 < r["actual_sparsity"] < 0.5


def test_glue_regression_stsb_dense(runs_dir):
  r = _run(glue, runs_dir, "stsb", "--task", "stsb", "--method", "dense")
  assert set(r["metrics"]) >= {"pearson", "spearman"}
  assert r["config"]["model"] == "tiny random BERT (smoke)"
  assert r["target_sparsity"] == 0.0 and r["actual_sparsity"] < 0.01


def test_glue_mnli_two_dev_sets_from_jsonl_files(runs_dir, tmp_path):
  for split, cols in glue.smoke_dataset("mnli", 0).items():
    with open(tmp_path / f"{split}.jsonl", "w") as f:
      for row in zip(*cols.values()):
        f.write(json.dumps(dict(zip(cols, row))) + "\n")
  r = _run(glue, runs_dir, "mnli", "--task", "mnli", "--method", "magnitude",
           "--sparsity", "0.7", "--data-dir", str(tmp_path))
  assert r["config"]["data_dir"] == str(tmp_path)
  assert set(r["metrics"]) >= {"matched_accuracy", "mismatched_accuracy"}
  assert r["eval_examples"] == {"validation_matched": 20,
                                "validation_mismatched": 20}
  _check_sparsity(r, 0.7)


def test_glue_mrpc_sharded_data_parallel(runs_dir):
  assert jax.device_count() == 8  # tests/conftest.py
  r = _run(glue, runs_dir, "mrpc", "--task", "mrpc", "--parallel", "sharded",
           "--sparsity", "0.8")
  assert set(r["metrics"]) >= {"accuracy", "f1"}
  _check_sparsity(r, 0.8)


def test_squad_smoke(runs_dir):
  r = _run(squad, runs_dir, "squad", "--method", "taylor", "--sparsity", "0.6")
  assert 0 <= r["metrics"]["exact_match"] <= r["metrics"]["f1"] <= 100
  assert r["eval_windows"] > r["eval_examples"] == 8
  _check_sparsity(r, 0.6)
  # A second call finds the finished run's checkpoint: no training, the
  # same final model and metrics.
  again = _run(squad, runs_dir, "squad", "--method", "taylor", "--sparsity",
               "0.6")
  assert again["metrics"] == r["metrics"]
  assert again["train_seconds"] < r["train_seconds"]


def test_vit_smoke_pmap_in_a_fresh_interpreter(runs_dir):
  # After a pmap program, a sharded-jit program in the same process can
  # deadlock on XLA:CPU's fake devices (see tests/test_distributed.py), so
  # the pmap run gets its own interpreter, with 2 fake devices (cheaper to
  # compile on this 2-core CPU than 8).
  out = str(runs_dir / "vit")
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=2")
  subprocess.run([sys.executable, "-m", "experiments.vit", "--smoke",
                  "--no-progress", "--parallel", "pmap", "--out", out],
                 check=True, env=env, cwd=ROOT, capture_output=True)
  with open(os.path.join(out, "results.json")) as f:
    r = json.load(f)
  assert r["devices"].startswith("2 x") and r["config"]["parallel"] == "pmap"
  assert 0 <= r["metrics"]["accuracy"] <= 100 and r["num_labels"] == 5
  _check_sparsity(r, 0.9)


# Model-aware methods (own folders: collect_results counts runs_dir).
def test_glue_soft_movement_sharded(tmp_path):
  # Sharded over 8 fake devices: the per-step additions split like the batch.
  r = _run(glue, tmp_path, "sst2_soft", "--task", "sst2", "--method",
           "soft_movement", "--final-lambda", "50", "--scores-lr", "0.1",
           "--parallel", "sharded")
  assert r["method"] == "soft_movement" and r["method_args"]["final_lambda"] == 50
  assert r["method_args"]["scores_lr"] == 0.1
  # Its regulariser decides the sparsity (6 steps: the threshold has barely
  # left its warm-up); the model and the metrics come from the masked params.
  assert 0 <= r["actual_sparsity"] < 1 and "accuracy" in r["metrics"]


def test_glue_cam_cut_fine_tunes_dense_then_rewinds(tmp_path):
  r = _run(glue, tmp_path, "rte_cam", "--task", "rte", "--method", "cam_cut",
           "--sparsity", "0.8", "--score-batches", "2")
  assert os.path.exists(tmp_path / "rte_cam" / "dense" / "log.jsonl")
  assert "accuracy" in r["dense"]["metrics"]
  _check_sparsity(r, 0.8)


def test_squad_smooth_cut(tmp_path):
  r = _run(squad, tmp_path, "squad_smooth", "--method", "smooth_cut",
           "--sparsity", "0.5", "--score-batches", "1")
  assert 0 <= r["metrics"]["f1"] <= 100
  _check_sparsity(r, 0.5)


def test_glue_pins_self_regularization_refreshes_its_teacher(tmp_path):
  r = _run(glue, tmp_path, "sst2_pins_sr", "--task", "sst2", "--method",
           "pins_sr", "--sparsity", "0.6", "--eval-every", "3")
  assert r["teacher"]["refreshes"] >= 1 and r["teacher"]["best"] is not None
  _check_sparsity(r, 0.6)


def test_pins_sr_needs_a_classification_head(tmp_path):
  with pytest.raises(ValueError, match="pins_sr.*classification head"):
    glue.main(["--smoke", "--no-progress", "--task", "stsb", "--method",
               "pins_sr", "--out", str(tmp_path / "stsb")])


def test_collect_results_over_the_smoke_runs(runs_dir):
  table = collect_results.main([str(runs_dir), "--best"])
  lines = table.strip().splitlines()
  assert len(lines) == 2 + 6  # header, rule, one row per run above
  for name in ("cola", "stsb", "mnli", "mrpc", "squad", "cifar100"):
    assert name in table
  assert all("(smoke)" in line for line in lines[2:])
  assert "m " in table and "EM " in table and "P " in table
