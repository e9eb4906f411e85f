"""experiments.run end to end on tiny configs: every task family, every
own-data format, the structured path, the model-aware methods, resume, and
the reports; plus every kind of bad value, refused before anything loads."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments import collect_results, run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# One traced train-step program per run (step_kinds=False): a 4-step run
# would compile every step kind for one step each. The tests marked KINDS
# run the default per-kind programs, one per parallelism.
TINY = ["model=tiny", "steps=4", "batch_size=8", "eval_batch_size=16",
        "seq_len=32", "progress=False", "log_every=2", "step_kinds=False"]
KINDS = "step_kinds=True"
FAST = "method_args={'warmup_steps': 1, 'final_steps': 1, 'delta_t': 1}"


def _run(out, *sets, config=None):
  summary = run.main((["--config", os.path.join(ROOT, config)] if config
                      else []) + ["--set", *TINY, f"out={out}", *sets])
  saved = json.loads((out / "summary.json").read_text())
  assert saved["method"] == summary["method"]
  for name in ("report.md", "curves.png", "layer_sparsity.png", "log.jsonl"):
    assert (out / name).stat().st_size > 0, name
  report = (out / "report.md").read_text()
  assert "python -m experiments.run " in report
  assert f"sparsity reached: {saved['actual_sparsity']:.4f}" in report
  return saved


def _close(saved, target):
  assert saved["target_sparsity"] == target
  assert abs(saved["actual_sparsity"] - target) < 2e-3


# --- bad values: refused before any data or model is loaded -----------------

BAD = [
    (["sparsty=0.8"], "unknown config key 'sparsty' (did you mean 'sparsity'?)"),
    (["sparsity=1.5"], "'sparsity' must be in [0, 1), got 1.5"),
    (["steps=0"], "'steps' must be >= 1"),
    (["batch_size=-3"], "'batch_size' must be > 0, got -3"),
    (["batch_size=abc"], "'batch_size' must be int, got 'abc'"),
    (["lr=fast"], "'lr' must be float, got 'fast'"),
    (["method=platn"], "did you mean 'platon'"),
    (["where=gpt"], "'where' must be one of"),
    (["data=glue/sst3"], "did you mean 'glue/sst2'"),
    (["optimizer.name=sgd"], "'optimizer.name' must be one of adamw"),
    (["method_args.betta1=0.8"], "'method_args.betta1' for method 'platon'"),
    (["pattern=4:2"], "'pattern' must be unstructured"),
    (["eval_every=often"], "'eval_every' must be a step count"),
    (["train_file=missing.csv", "split_fraction=0.1"], "missing.csv"),
    (["task=image", "image_folder=no_such_dir"], "no_such_dir"),
    (["model=./no_such_model"], "'model' must be a folder with config.json"),
    (["train_file=x.csv", "data=smoke"], "set only one of"),
    (["teacher=./nowhere"], "'teacher' must be 'dense'"),
    (["method=pins_sr", "teacher=dense"], "own self-teacher"),
]


@pytest.mark.parametrize("sets,message", BAD, ids=[b[0][0] for b in BAD])
def test_bad_values_are_refused_before_anything_loads(sets, message,
                                                      monkeypatch, tmp_path):
  monkeypatch.chdir(tmp_path)

  def loaded(*a, **k):
    raise AssertionError("a task was prepared despite a bad config")

  monkeypatch.setattr(run, "prepare_task", loaded)
  with pytest.raises(SystemExit) as e:
    run.main(["--set", *sets])
  assert message in str(e.value)


def test_missing_config_file_and_bad_set_syntax(tmp_path):
  with pytest.raises(SystemExit, match="no such file 'nope.py'"):
    run.main(["--config", "nope.py"])
  with pytest.raises(SystemExit, match="key=value"):
    run.main(["--set", "steps"])
  bad = tmp_path / "bad.py"
  bad.write_text("def get_config():\n  return {'batch': 4}\n")
  with pytest.raises(SystemExit, match="'batch' .did you mean 'batch_size'"):
    run.main(["--config", str(bad)])


def test_every_config_file_in_the_repo_checks(tmp_path):
  from experiments import config
  for name in ("demo", "demo_vit", "structured", "text", "image"):
    cfg = config.load(os.path.join(ROOT, "experiments/configs", name + ".py"))
    assert cfg.method == "platon"
  demo = config.load(os.path.join(ROOT, "experiments/configs/demo.py"))
  assert (demo.steps, demo.batch_size, demo.seq_len, demo.lr,
          demo.dense_baseline) == (600, 16, 64, 2e-4, True)


@pytest.mark.parametrize("model,head,tiny", [
    ("tiny", "sequence_classification", None),
    (None, "sequence_classification", None),   # the offline MiniLM folder
    ("scratch", "image_classification", "vit")])
@pytest.mark.parametrize("shared", [True, False])
def test_shared_attention_dropout_key_reaches_the_model(model, head, tiny,
                                                        shared):
  from experiments import config
  from experiments.tasks import base
  from experiments.tasks import text
  from jaxprune import models
  cfg = config.from_dict({"task": "image" if tiny else "text", "model": model,
                          "shared_attention_dropout": shared})
  tiny_config = ((lambda: models.ViTConfig(
      image_size=8, patch_size=4, num_channels=1, hidden_size=16,
      heads_per_layer=(2,), head_dim=8, intermediate_sizes=(32,),
      num_labels=2)) if tiny else (lambda: text.tiny_bert_config(
          64, num_labels=2)))
  m, _ = base.load_model(cfg.replace(random_init=model is None), head, 2,
                         tiny_config)
  assert m.config.shared_attention_dropout is shared
  with pytest.raises(SystemExit, match="shared_attention_dropout"):
    run.main(["--set", "shared_attention_dropout=1"])


# --- own data, one test per format ------------------------------------------

def test_csv_with_three_classes(tmp_path):
  rows = ["text,label"] + [f"{w} movie number {i},{c}" for i, (w, c) in
                           enumerate([("good", "pos"), ("bad", "neg"),
                                      ("dull", "meh")] * 8)]
  (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
  s = _run(tmp_path / "run", f"train_file={tmp_path / 'train.csv'}",
           "split_fraction=0.25", "method=magnitude", "sparsity=0.5", FAST)
  assert s["labels"] == ["meh", "neg", "pos"]
  assert s["config"]["step_kinds"] is False   # one traced program
  assert s["train_examples"] == 18 and s["eval_examples"] == {"validation": 6}
  assert "accuracy" in s["metrics"]
  _close(s, 0.5)


def test_json_lines_regression(tmp_path):
  rng = np.random.default_rng(0)
  for name, n in (("train", 24), ("dev", 8)):
    with open(tmp_path / f"{name}.jsonl", "w") as f:
      for i in range(n):
        f.write(json.dumps({"a": f"the cat sat {i}", "b": "on the mat",
                            "score": float(rng.uniform(0, 5))}) + "\n")
  s = _run(tmp_path / "run", f"train_file={tmp_path / 'train.jsonl'}",
           f"validation_file={tmp_path / 'dev.jsonl'}", "text_column=a",
           "text_pair_column=b", "label_column=score", "regression=True",
           "method=platon", "sparsity=0.5", FAST, KINDS)
  assert set(s["metrics"]) >= {"pearson", "spearman"}
  assert s["primary_metric"] == "pearson" and s["labels"] == "regression"
  assert s["config"]["step_kinds"] is True    # one program per kind
  _close(s, 0.5)


def test_a_datasets_dataset_built_here(tmp_path):
  datasets = pytest.importorskip("datasets")
  feats = datasets.Features({"sentence": datasets.Value("string"),
                             "label": datasets.ClassLabel(
                                 names=["no", "yes"])})
  split = lambda n: datasets.Dataset.from_dict(
      {"sentence": [f"a good film {i}" if i % 2 else f"a bad film {i}"
                    for i in range(n)], "label": [i % 2 for i in range(n)]},
      features=feats)
  datasets.DatasetDict({"train": split(24), "validation": split(8)}
                       ).save_to_disk(str(tmp_path / "ds"))
  s = _run(tmp_path / "run", f"dataset={tmp_path / 'ds'}",
           "text_column=sentence", "method=taylor", "sparsity=0.6", FAST)
  assert s["labels"] == ["no", "yes"]
  _close(s, 0.6)


def test_image_folder(tmp_path):
  from PIL import Image
  rng = np.random.default_rng(0)
  for c, colour in enumerate(("red", "green", "blue")):
    (tmp_path / "img" / colour).mkdir(parents=True)
    for i in range(6):
      x = rng.integers(0, 60, (12, 12, 3)).astype(np.uint8)
      x[..., c] += 150
      Image.fromarray(x).save(tmp_path / "img" / colour / f"{i}.png")
  s = _run(tmp_path / "run", "task=image", f"image_folder={tmp_path / 'img'}",
           "split_fraction=0.25", "image_size=8", "sparsity=0.5", FAST)
  assert s["labels"] == ["blue", "green", "red"]
  assert s["task"] == "image" and "accuracy" in s["metrics"]
  _close(s, 0.5)


# --- task families, structured, model-aware ---------------------------------

def test_structured_heads_and_neurons_shrink(tmp_path):
  s = _run(tmp_path / "st", "data=smoke", "pattern=heads_and_neurons",
           "sparsity=0.5", "shrink=True", FAST)
  sh = s["shrink"]
  assert sh["params_shrunk"] < sh["params_dense"]
  assert sum(sh["heads_per_layer"]) == 2   # 2 of the tiny model's 4 heads
  assert sh["max_abs_logit_diff_vs_masked"] < 1e-4
  assert (tmp_path / "st" / "shrunk_model" / "config.json").exists()


def test_soft_movement_sharded_on_a_paper_config(tmp_path):
  # PLATON's SST-2 config (MT-DNN Adamax, warmup_linear LR) with another
  # method, sharded over 8 fake devices, on smoke data and a tiny model.
  s = _run(tmp_path / "soft", "data=smoke", "model=tiny",
           "method=soft_movement", "final_lambda=50", "scores_lr=0.1",
           "parallel=sharded", "epochs=1", "steps=4",
           "method_args={'warmup_steps': 1, 'final_steps': 1}",
           config="experiments/configs/platon/sst2_90.py")
  assert s["config"]["optimizer"]["name"] == "mtdnn_adamax"
  assert s["config"]["final_lambda"] == 50
  assert 0 <= s["actual_sparsity"] < 1 and "accuracy" in s["metrics"]
  assert s["devices"].startswith("8 x")


def test_movement_as_the_authors_distilled_from_the_dense_run(tmp_path):
  s = _run(tmp_path / "mv", "data=smoke", "method=movement", "sparsity=0.5",
           "teacher=dense", "method_args={'warmup_steps': 1, 'final_steps': 1}")
  assert s["where"] == "bert_kernels"   # Q/K/V/O/FFN kernels only
  assert (tmp_path / "mv" / "log_dense.jsonl").exists()
  assert s["config"]["teacher"] == "dense" and "accuracy" in s["metrics"]
  _close(s, 0.5)   # exactly floor(0.5 n) of every kernel


def test_qa_with_smooth_cut(tmp_path):
  # The QA family, and single shot: the dense model is fine-tuned first
  # (same budget), scored on one batch, and the pretrained params are
  # rewound under per-tensor masks (Cam-Cut differs only in its scorer:
  # tests/test_deepcuts.py).
  s = _run(tmp_path / "sm", "task=qa", "data=smoke", "seq_len=48",
           "doc_stride=16", "method=smooth_cut", "sparsity=0.5",
           "score_batches=1")
  assert 0 <= s["metrics"]["exact_match"] <= s["metrics"]["f1"] <= 100
  assert s["eval_windows"] > s["eval_examples"] == 8
  assert (tmp_path / "sm" / "log_dense.jsonl").exists()
  assert "f1" in s["dense_metrics"]
  assert abs(s["actual_sparsity"] - 0.5) < 0.02   # per-tensor masks


def test_pins_sr_refreshes_its_teacher_on_held_out_examples(tmp_path):
  s = _run(tmp_path / "sr", "data=smoke", "method=pins_sr", "sparsity=0.6",
           "heldout=8", "eval_every=2", FAST)
  assert s["teacher"]["refreshes"] >= 1 and s["teacher"]["best"] is not None
  assert s["train_examples"] == 24   # 32 smoke sentences, 8 held out
  _close(s, 0.6)


def test_pins_sr_needs_a_classification_head(tmp_path):
  with pytest.raises(ValueError, match="pins_sr.*classification head"):
    run.main(["--set", *TINY, "data=smoke", "regression=True",
              "method=pins_sr", "heldout=8", f"out={tmp_path}"])


def test_image_smoke_pmap_in_a_fresh_interpreter(tmp_path):
  # After a pmap program, a sharded-jit program in the same process can
  # deadlock on XLA:CPU's fake devices (see tests/test_distributed.py), so
  # the pmap run gets its own interpreter with 2 fake devices.
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=os.environ["XLA_FLAGS"].replace(
                 "device_count=8", "device_count=2"))
  subprocess.run([sys.executable, "-m", "experiments.run", "--set", *TINY,
                  "task=image", "data=smoke", "parallel=pmap", FAST, KINDS,
                  f"out={tmp_path}"], check=True, env=env, cwd=ROOT,
                 capture_output=True)
  s = json.loads((tmp_path / "summary.json").read_text())
  assert s["devices"].startswith("2 x") and s["config"]["parallel"] == "pmap"
  assert s["labels"] == 5
  _close(s, 0.9)


def test_collect_results(tmp_path):
  for name, data in (("a", "smoke"), ("b", "smoke")):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps({
        "task": "text", "method": "platon", "model": "tiny",
        "target_sparsity": 0.9, "actual_sparsity": 0.9,
        "metrics": {"accuracy": 80.0}, "best": {"accuracy": 81.0, "step": 4},
        "total_steps": 4, "seconds": 60.0, "config": {"data": data}}))
  table = collect_results.main([str(tmp_path), "--best"])
  lines = table.strip().splitlines()
  assert len(lines) == 4 and all("(smoke)" in x for x in lines[2:])
  assert "acc 80.00" in table and "acc 81.00 (4)" in table
