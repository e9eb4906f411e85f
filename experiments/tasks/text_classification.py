"""Text classification and regression: the demo, GLUE and your own data.

Data (``cfg.data`` or own data):

* ``rotten_tomatoes``: the offline review sentences of the demo
  (:mod:`experiments.data.rotten_tomatoes`); ``max_eval_examples`` (default
  1000) sentences are the test split, the rest train.
* ``glue/<task>``: GLUE from ``datasets`` (the hub or its cache), dev sets
  as validation (MNLI: matched and mismatched), the papers' metrics.
* ``smoke``: a few generated sentences (offline, seconds; tests).
* ``train_file`` (CSV, TSV, JSON lines) or ``dataset`` (a ``datasets`` name
  or ``save_to_disk`` folder): :func:`experiments.data.tables.load_text`,
  any number of classes, or a float target with ``regression=True``.

Sentences are tokenised once, kept ragged and padded per batch to the
smallest length bucket (:mod:`experiments.tasks.text`). Classification
trains cross-entropy and reports accuracy (GLUE: also F1 / MCC);
regression trains MSE on a 1-output head and reports Pearson and Spearman.
"""

from __future__ import annotations

import dataclasses
import jax
import numpy as np

from experiments import metrics
from experiments.tasks import base
from experiments.tasks import text
from jaxprune import train

__all__ = ["GLUE", "prepare", "load_splits"]


@dataclasses.dataclass(frozen=True)
class GlueTask:
  """Columns, head size, dev splits and metrics of one GLUE task."""
  keys: tuple[str, str | None]
  num_labels: int
  eval_splits: tuple[str, ...] = ("validation",)
  metrics: tuple[str, ...] = ("accuracy",)


GLUE: dict[str, GlueTask] = {
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
_PREFIX = {"validation_matched": "matched_",
           "validation_mismatched": "mismatched_"}


@dataclasses.dataclass
class Splits:
  """Raw text splits: name -> (texts, pairs or None, labels)."""
  splits: dict[str, tuple[list[str], list[str] | None, np.ndarray]]
  num_labels: int           # 1: regression
  metrics: tuple[str, ...]
  label_names: tuple[str, ...] | None
  source: str


def _cut(split, n):
  texts, pairs, labels = split
  if n is None:
    return split
  return texts[:n], None if pairs is None else pairs[:n], labels[:n]


def _smoke(cfg) -> Splits:
  rng = np.random.default_rng(cfg.seed)

  def split(n):
    texts = [text.sentence(rng, int(rng.integers(3, 9))) for _ in range(n)]
    if cfg.regression:
      labels = rng.uniform(0, 5, n).astype(np.float32)
    else:
      labels = np.array([int("good" in t.split() or "great" in t.split())
                         for t in texts], np.int32)
    return texts, None, labels

  return Splits({"train": split(32), "validation": split(20)},
                1 if cfg.regression else 2,
                ("pearson", "spearman") if cfg.regression else ("accuracy",),
                None, "generated sentences (smoke)")


def _glue(cfg, name: str) -> Splits:
  import datasets
  spec = GLUE[name]
  data = datasets.load_dataset("nyu-mll/glue", name)
  a, b = spec.keys

  def split(s):
    col = data[s]
    return (list(col[a]), list(col[b]) if b else None,
            np.asarray(col["label"],
                       np.float32 if spec.num_labels == 1 else np.int32))

  splits = {"train": split("train")}
  splits.update({s: split(s) for s in spec.eval_splits})
  return Splits(splits, spec.num_labels,
                ("pearson", "spearman") if spec.num_labels == 1
                else spec.metrics, None, f"GLUE {name} (nyu-mll/glue)")


def load_splits(cfg) -> Splits:
  """The run's text splits, before tokenisation and cuts."""
  if cfg.data_source in ("files", "dataset"):
    from experiments.data import tables
    d = tables.load_text(
        train_file=cfg.train_file, validation_file=cfg.validation_file,
        dataset=cfg.dataset, dataset_config=cfg.dataset_config,
        text_column=cfg.text_column, text_pair_column=cfg.text_pair_column,
        label_column=cfg.label_column, regression=cfg.regression,
        split_fraction=cfg.split_fraction, split_seed=cfg.split_seed,
        train_split=cfg.train_split, validation_split=cfg.validation_split)
    return Splits({s: (x.texts, x.pairs, x.labels) for s, x in
                   (("train", d.train), ("validation", d.validation))},
                  1 if cfg.regression else len(d.label_names),
                  ("pearson", "spearman") if cfg.regression
                  else ("accuracy",), d.label_names, d.source)
  name = cfg.data_name
  if name == "smoke":
    return _smoke(cfg)
  if name.startswith("glue/"):
    return _glue(cfg, name[5:])
  from experiments.data import rotten_tomatoes
  xtr, ytr, xte, yte = rotten_tomatoes.load(
      "data/cache", test_size=cfg.max_eval_examples or 1000, seed=0)
  return Splits({"train": (xtr, None, ytr), "validation": (xte, None, yte)},
                2, ("accuracy",), ("negative", "positive"),
                rotten_tomatoes.PROVENANCE)


def compute_metrics(names, num_labels, labels, outputs, prefix=""):
  """Metrics in percent, from logits (or scores for regression)."""
  if num_labels == 1:
    return {prefix + "pearson": 100 * metrics.pearson(labels, outputs),
            prefix + "spearman": 100 * metrics.spearman(labels, outputs)}
  pred = np.argmax(outputs, -1)
  fns = {"accuracy": metrics.accuracy, "f1": metrics.f1,
         "mcc": metrics.matthews}
  return {prefix + m: 100 * fns[m](labels, pred) for m in names}


def _encode(tokenizer, split, max_len: int) -> dict[str, np.ndarray]:
  texts, pairs, labels = split
  enc = tokenizer(list(texts), None if pairs is None else list(pairs),
                  truncation=True, max_length=max_len)
  types = enc.get("token_type_ids") or [[0] * len(x)
                                        for x in enc["input_ids"]]
  return {"input_ids": text.ragged(enc["input_ids"]),
          "token_type_ids": text.ragged(types),
          "lengths": np.asarray([len(x) for x in enc["input_ids"]]),
          "labels": np.asarray(labels)}


def prepare(cfg) -> base.Prepared:
  """Data, model, loss and metrics of a text classification/regression run."""
  from jaxprune import models
  raw = load_splits(cfg)
  tokenizer = models.load_tokenizer(
      base.offline_minilm() if cfg.model in (None, "tiny") else cfg.model)
  max_len = cfg.seq_len
  train_split = _cut(raw.splits["train"], cfg.max_train_examples)
  evals = {s: _encode(tokenizer, _cut(v, cfg.max_eval_examples), max_len)
           for s, v in raw.splits.items() if s != "train"}
  train_set = _encode(tokenizer, train_split, max_len)
  heldout_set = None
  if cfg.method == "pins_sr":
    keep, held = base.holdout(len(train_set["labels"]), cfg.heldout,
                              "training examples")
    heldout_set = {k: v[held] for k, v in train_set.items()}
    train_set = {k: v[keep] for k, v in train_set.items()}
  model, model_name = base.load_model(
      cfg, "sequence_classification", raw.num_labels,
      lambda: text.tiny_bert_config(len(tokenizer),
                                    num_labels=raw.num_labels))
  regression = raw.num_labels == 1
  if regression:
    loss_fn = text.regression_loss(model)
    predict = jax.jit(text.regression_predictions(model))
  else:
    loss_fn = train.hf.classification_loss(model)
    predict = train.make_eval_step(train.hf.classification_logits(model))

  def make_batch(idx, step, global_idx):
    del step
    length = text.bucket_length(train_set["lengths"][global_idx], max_len)
    return text.pad_batch(train_set, idx, length)

  def evaluate_on(sets, params):
    from experiments import trainer
    result = {}
    for split, feats in sets.items():
      def batch(idx, feats=feats):
        return text.pad_batch(feats, idx, text.bucket_length(
            feats["lengths"][idx], max_len))
      outputs = trainer.batched_predict(predict, params,
                                        len(feats["labels"]), batch,
                                        cfg.eval_batch_size)
      result.update(compute_metrics(raw.metrics, raw.num_labels,
                                    feats["labels"], outputs,
                                    _PREFIX.get(split, "")))
    return result

  primary = ("pearson" if regression else raw.metrics[0])
  if "validation_matched" in evals:
    primary = "matched_" + primary
  return base.Prepared(
      model=model, params=model.params, train_size=len(train_set["labels"]),
      make_batch=make_batch, loss_fn=loss_fn,
      evaluate=lambda p: evaluate_on(evals, p), primary=primary,
      classification=not regression,
      where=cfg.where or "bert",
      info={"model": model_name, "data": raw.source,
            "train_examples": len(train_set["labels"]),
            "eval_examples": {s: len(f["labels"]) for s, f in evals.items()},
            "labels": list(raw.label_names) if raw.label_names else
            ("regression" if regression else raw.num_labels)},
      heldout_evaluate=(None if heldout_set is None else
                        lambda p: evaluate_on({"heldout": heldout_set}, p)))
