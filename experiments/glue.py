"""GLUE fine-tuning with pruning (the PLATON / MGPP / SEVEN / PINS setups).

All eight tasks of the papers: CoLA (Matthews corr.), SST-2 (acc), MRPC and
QQP (acc and F1), STS-B (Pearson and Spearman; a 1-output regression head
trained with MSE), MNLI (matched and mismatched acc), QNLI and RTE (acc),
evaluated on the dev sets. Data come from ``datasets.load_dataset(
"nyu-mll/glue", task)`` (needs the hub or a local datasets cache), or from
``--data-dir`` with ``train.jsonl`` and ``validation.jsonl`` (MNLI:
``validation_matched.jsonl``, ``validation_mismatched.jsonl``) in GLUE's
columns.

Usage::

    python -m experiments.glue --config experiments/configs/platon/mnli_90.py
    python -m experiments.glue --task rte --method magnitude --sparsity 0.8
    python -m experiments.glue --task stsb --smoke     # offline, seconds

``--smoke`` trains a tiny random BERT on a few generated sentences (the
offline MiniLM tokenizer), with the same code path as a real run.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Sequence

import jax
import numpy as np

from experiments import common, metrics
from experiments.tasks import text
from jaxprune import train


@dataclasses.dataclass(frozen=True)
class GlueTask:
  """Columns, head size, dev splits and metrics of one GLUE task."""
  keys: tuple[str, str | None]
  num_labels: int
  eval_splits: tuple[str, ...] = ("validation",)
  metrics: tuple[str, ...] = ("accuracy",)


TASKS: dict[str, GlueTask] = {
    "cola": GlueTask(("sentence", None), 2, metrics=("mcc",)),
    "sst2": GlueTask(("sentence", None), 2),
    "mrpc": GlueTask(("sentence1", "sentence2"), 2,
                     metrics=("accuracy", "f1")),
    "qqp": GlueTask(("question1", "question2"), 2,
                    metrics=("accuracy", "f1")),
    "stsb": GlueTask(("sentence1", "sentence2"), 1,
                     metrics=("pearson", "spearman")),
    "mnli": GlueTask(("premise", "hypothesis"), 3,
                     eval_splits=("validation_matched",
                                  "validation_mismatched")),
    "qnli": GlueTask(("question", "sentence"), 2),
    "rte": GlueTask(("sentence1", "sentence2"), 2),
}

DEFAULTS = {"task": "sst2", "model": "bert-base-uncased", "where": "bert",
            "max_seq_len": 128, "dataset": "nyu-mll/glue", "data_dir": None,
            "lr": 2e-5}
SMOKE = {"batch_size": 8, "steps": 6, "eval_batch_size": 16,
         "max_seq_len": 32, "train_examples": 32, "eval_examples": 20}


def compute_metrics(task: str, labels: np.ndarray, outputs: np.ndarray,
                    prefix: str = "") -> dict[str, float]:
  """The task's metrics in percent, from logits (or scores for STS-B)."""
  spec = TASKS[task]
  if spec.num_labels == 1:
    return {prefix + "pearson": 100 * metrics.pearson(labels, outputs),
            prefix + "spearman": 100 * metrics.spearman(labels, outputs)}
  pred = np.argmax(outputs, -1)
  fns = {"accuracy": metrics.accuracy, "f1": metrics.f1,
         "mcc": metrics.matthews}
  return {prefix + m: 100 * fns[m](labels, pred) for m in spec.metrics}


def primary_metric(task: str) -> str:
  """The metric that picks the best eval (the first one the papers list)."""
  spec = TASKS[task]
  first = "pearson" if spec.num_labels == 1 else spec.metrics[0]
  return ("matched_" + first) if task == "mnli" else first


def smoke_dataset(task: str, seed: int) -> dict[str, dict[str, list]]:
  """A few generated examples per split with the task's GLUE columns."""
  rng = np.random.default_rng(seed)
  spec = TASKS[task]

  def split(n):
    cols: dict[str, list] = {k: [] for k in spec.keys if k}
    cols["label"] = []
    for _ in range(n):
      first = text.sentence(rng, int(rng.integers(3, 9)))
      for k in spec.keys:
        if k:
          cols[k].append(first if k == spec.keys[0] else
                         text.sentence(rng, int(rng.integers(3, 9))))
      good = "good" in first.split() or "great" in first.split()
      if spec.num_labels == 1:
        cols["label"].append(float(rng.uniform(0, 5)))
      elif spec.num_labels == 2:
        cols["label"].append(int(good))
      else:
        cols["label"].append(int(rng.integers(0, spec.num_labels)))
    return cols

  out = {"train": split(SMOKE["train_examples"])}
  for s in spec.eval_splits:
    out[s] = split(SMOKE["eval_examples"])
  return out


def load_data(cfg: dict) -> dict[str, Any]:
  """Split name -> columns (a ``datasets`` split or a dict of lists).

  With ``data_dir`` the splits are JSON-lines files ``<split>.jsonl`` there
  (``train.jsonl`` and the task's dev splits, e.g. ``validation.jsonl``)
  with GLUE's column names, read offline (also under ``--smoke``, which then
  only shrinks the model and the run); else generated data for ``--smoke``;
  else the hub's GLUE.
  """
  task = cfg["task"]
  if cfg.get("data_dir"):
    import datasets
    splits = ("train",) + TASKS[task].eval_splits
    files = {s: os.path.join(cfg["data_dir"], f"{s}.jsonl") for s in splits}
    return datasets.load_dataset("json", data_files=files)
  if cfg["smoke"]:
    return smoke_dataset(task, cfg["seed"])
  import datasets
  return datasets.load_dataset(cfg["dataset"], task)


def encode(tokenizer, columns: Any, spec: GlueTask, max_len: int,
           limit: int | None) -> dict[str, np.ndarray]:
  """Tokenises one split to ragged ids/type ids and a label array."""
  a, b = spec.keys
  n = len(columns["label"]) if limit is None else min(limit,
                                                      len(columns["label"]))
  first = list(columns[a][:n])
  second = list(columns[b][:n]) if b else None
  enc = tokenizer(first, second, truncation=True, max_length=max_len)
  labels = np.asarray(columns["label"][:n],
                      np.float32 if spec.num_labels == 1 else np.int32)
  return {"input_ids": text.ragged(enc["input_ids"]),
          "token_type_ids": text.ragged(enc["token_type_ids"]),
          "lengths": np.asarray([len(x) for x in enc["input_ids"]]),
          "labels": labels}


def load_model(cfg: dict, tokenizer, num_labels: int):
  """Our sequence classifier (:mod:`jaxprune.models`): an HF checkpoint, or
  tiny random for smoke."""
  from jaxprune import models
  if cfg["smoke"]:
    config = text.tiny_bert_config(len(tokenizer), num_labels=num_labels)
    return models.FunctionalModel(models.build(
        config, "sequence_classification", seed=cfg["seed"]))
  return models.from_pretrained(cfg["model"], task="sequence_classification",
                                num_labels=num_labels, seed=cfg["seed"])


def load_tokenizer(cfg: dict):
  if cfg["smoke"]:
    return text.smoke_tokenizer()
  from jaxprune import models
  return models.load_tokenizer(cfg["model"])


def parse(argv: Sequence[str] | None) -> tuple[Any, dict]:
  ap = common.base_parser("GLUE fine-tuning with pruning.")
  ap.add_argument("--task", choices=sorted(TASKS), default=None)
  ap.add_argument("--max-seq-len", type=int, default=None)
  ap.add_argument("--data-dir", default=None,
                  help="offline data: <split>.jsonl files with GLUE's columns")
  args = ap.parse_args(argv)
  cfg = common.resolve_settings(args, DEFAULTS)
  if args.task:
    cfg["task"] = args.task
  if args.data_dir:
    cfg["data_dir"] = args.data_dir
  if args.max_seq_len:
    cfg["max_seq_len"] = args.max_seq_len
  if args.smoke:
    for k in ("batch_size", "steps", "eval_batch_size"):
      if getattr(args, k, None) is None:
        cfg[k] = SMOKE[k]
    cfg["max_seq_len"] = min(cfg["max_seq_len"], SMOKE["max_seq_len"])
    cfg["model"] = "tiny random BERT (smoke)"
  if cfg["task"] not in TASKS:
    raise SystemExit(f"unknown GLUE task {cfg['task']!r}")
  return args, cfg


def main(argv: Sequence[str] | None = None) -> dict:
  """Runs one GLUE fine-tuning; returns (and writes) the results record."""
  t0 = time.time()
  args, cfg = parse(argv)
  common.maybe_initialize_distributed(args)
  task, spec = cfg["task"], TASKS[cfg["task"]]
  out = args.out or common.default_out("glue", cfg)
  os.makedirs(out, exist_ok=True)

  tokenizer = load_tokenizer(cfg)
  data = load_data(cfg)
  max_len = cfg["max_seq_len"]
  train_set = encode(tokenizer, data["train"], spec, max_len,
                     cfg["max_train_examples"])
  eval_sets = {s: encode(tokenizer, data[s], spec, max_len,
                         cfg["max_eval_examples"]) for s in spec.eval_splits}
  model = load_model(cfg, tokenizer, spec.num_labels)
  where = common.resolve_where(cfg["where"])

  def make_batch(idx, step, global_idx):
    del step
    length = text.bucket_length(train_set["lengths"][global_idx], max_len)
    return text.pad_batch(train_set, idx, length)

  if spec.num_labels == 1:
    loss_fn = text.regression_loss(model)
    predict = jax.jit(text.regression_predictions(model))
  else:
    loss_fn = train.hf.classification_loss(model)
    predict = train.make_eval_step(train.hf.classification_logits(model))

  def evaluate(params):
    result = {}
    for split, feats in eval_sets.items():
      def batch(idx, feats=feats):
        return text.pad_batch(feats, idx, text.bucket_length(
            feats["lengths"][idx], max_len))
      outputs = common.batched_predict(predict, params, len(feats["labels"]),
                                       batch, cfg["eval_batch_size"])
      prefix = {"validation_matched": "matched_",
                "validation_mismatched": "mismatched_"}.get(split, "")
      result.update(compute_metrics(task, feats["labels"], outputs, prefix))
    return result

  trainer, params, records, train_seconds, info = common.train_and_evaluate(
      cfg, model=model, loss_fn=loss_fn, params=model.params,
      train_size=len(train_set["labels"]), make_batch=make_batch,
      where=where, evaluate=evaluate, primary=primary_metric(task), out=out,
      classification=spec.num_labels > 1)
  result = common.write_results(
      out, trainer, params, records, primary=primary_metric(task),
      seconds=time.time() - t0, train_seconds=train_seconds,
      info={"family": "glue", **info,
            "eval_examples": {s: len(f["labels"]) for s, f in
                              eval_sets.items()}})
  print(f"{task} {cfg['method']} sparsity {result['actual_sparsity']:.4f}: "
        + ", ".join(f"{k} {v:.2f}" for k, v in result["metrics"].items()
                    if isinstance(v, float) and k != "mask_sparsity"))
  return result


if __name__ == "__main__":
  main()
