"""Extractive question answering (SQuAD v1.1): exact match and F1.

Data: ``squad`` (``datasets.load_dataset("rajpurkar/squad")``, the hub or
its cache) or ``smoke`` (generated, offline). The pipeline, written here
from scratch:

* (question, context) pairs are tokenised with the context split into
  windows of ``seq_len`` tokens overlapping by ``doc_stride``
  (``return_overflowing_tokens``); ``return_offsets_mapping`` maps tokens
  back to characters of the context;
* training target per window: the token span of the first answer, or the
  ``[CLS]`` position when the answer is not entirely inside the window;
* prediction per question: over all its windows, the ``n_best`` highest
  start and end logits, kept when both lie in the context, ``start <= end``
  and the span has at most ``max_answer_length`` tokens; the span with the
  highest ``start + end`` logit is mapped back to the context text;
* exact match and F1 as the official v1.1 script defines them
  (:func:`experiments.metrics.squad_evaluate`).
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np

from experiments import metrics
from experiments.tasks import base
from experiments.tasks import text

__all__ = ["prepare", "train_features", "eval_features", "best_spans",
           "smoke_dataset"]


def smoke_dataset(seed: int) -> dict[str, dict[str, list]]:
  """Generated SQuAD-shaped examples; contexts long enough to overflow."""
  rng = np.random.default_rng(seed)

  def split(n, name):
    cols = {"id": [], "title": [], "context": [], "question": [],
            "answers": []}
    for i in range(n):
      words = list(rng.choice(text.WORDS, int(rng.integers(30, 60))))
      start = int(rng.integers(0, len(words) - 3))
      length = int(rng.integers(1, 4))
      context = " ".join(words)
      answer = " ".join(words[start:start + length])
      char = len(" ".join(words[:start])) + (1 if start else 0)
      texts, starts = [answer], [char]
      if i % 2:  # a second reference: the first word of the span
        texts.append(words[start])
        starts.append(char)
      cols["id"].append(f"{name}-{i}")
      cols["title"].append("smoke")
      cols["context"].append(context)
      cols["question"].append(f"what comes after {words[max(start - 1, 0)]} ?")
      cols["answers"].append({"text": texts, "answer_start": starts})
    return cols

  return {"train": split(16, "train"),
          "validation": split(8, "dev")}


def _window(tokenizer, questions, contexts, cfg) -> Any:
  return tokenizer([q.lstrip() for q in questions], list(contexts),
                   truncation="only_second", max_length=cfg.seq_len,
                   stride=cfg.doc_stride, return_overflowing_tokens=True,
                   return_offsets_mapping=True, padding="max_length")


def _context_range(seq_ids: Sequence[int | None]) -> tuple[int, int]:
  """First and last token index of the context (sequence 1)."""
  idx = [i for i, s in enumerate(seq_ids) if s == 1]
  return idx[0], idx[-1]


def train_features(tokenizer, columns: Any, cfg: Any) -> dict[str, np.ndarray]:
  """Windows with answer token positions (``[CLS]`` = 0 when absent)."""
  enc = _window(tokenizer, columns["question"], columns["context"], cfg)
  starts, ends = [], []
  for i, offsets in enumerate(enc["offset_mapping"]):
    answers = columns["answers"][enc["overflow_to_sample_mapping"][i]]
    a_start = answers["answer_start"][0]
    a_end = a_start + len(answers["text"][0])
    lo, hi = _context_range(enc.sequence_ids(i))
    if offsets[lo][0] > a_start or offsets[hi][1] < a_end:
      starts.append(0)
      ends.append(0)
      continue
    s = lo
    while s <= hi and offsets[s][0] <= a_start:
      s += 1
    e = hi
    while e >= lo and offsets[e][1] >= a_end:
      e -= 1
    starts.append(s - 1)
    ends.append(e + 1)
  return {"input_ids": np.asarray(enc["input_ids"], np.int32),
          "attention_mask": np.asarray(enc["attention_mask"], np.int32),
          "token_type_ids": np.asarray(enc["token_type_ids"], np.int32),
          "start_positions": np.asarray(starts, np.int32),
          "end_positions": np.asarray(ends, np.int32)}


def eval_features(tokenizer, columns: Any, cfg: Any) -> dict[str, np.ndarray]:
  """Windows with their example index and context-only character offsets."""
  enc = _window(tokenizer, columns["question"], columns["context"], cfg)
  offsets = np.asarray(enc["offset_mapping"], np.int64)
  for i in range(len(offsets)):
    seq_ids = enc.sequence_ids(i)
    not_context = np.asarray([s != 1 for s in seq_ids])
    offsets[i][not_context] = -1
  return {"input_ids": np.asarray(enc["input_ids"], np.int32),
          "attention_mask": np.asarray(enc["attention_mask"], np.int32),
          "token_type_ids": np.asarray(enc["token_type_ids"], np.int32),
          "example": np.asarray(enc["overflow_to_sample_mapping"], np.int64),
          "offsets": offsets}


def best_spans(start_logits: np.ndarray, end_logits: np.ndarray,
               features: dict[str, np.ndarray], contexts: Sequence[str],
               n_best: int, max_answer_length: int) -> list[str]:
  """The highest-scoring valid answer text of every example.

  Args:
    start_logits: ``(num_windows, seq_len)``.
    end_logits: likewise.
    features: :func:`eval_features` output (``example``, ``offsets``).
    contexts: the examples' context strings.
    n_best: start and end candidates per window.
    max_answer_length: longest span in tokens.

  Returns:
    One answer string per example (``""`` when no valid span exists).
  """
  best: dict[int, tuple[float, str]] = {}
  for w in range(len(start_logits)):
    ex = int(features["example"][w])
    offsets = features["offsets"][w]
    s_cand = np.argsort(start_logits[w])[::-1][:n_best]
    e_cand = np.argsort(end_logits[w])[::-1][:n_best]
    for s in s_cand:
      if offsets[s][0] < 0:
        continue
      for e in e_cand:
        if offsets[e][0] < 0 or e < s or e - s + 1 > max_answer_length:
          continue
        score = float(start_logits[w][s] + end_logits[w][e])
        if ex not in best or score > best[ex][0]:
          best[ex] = (score, contexts[ex][offsets[s][0]:offsets[e][1]])
  return [best.get(i, (0.0, ""))[1] for i in range(len(contexts))]


def _limit(columns: Any, n: int | None) -> Any:
  if n is None or n >= len(columns["id"]):
    return columns
  if hasattr(columns, "select"):
    return columns.select(range(n))
  return {k: v[:n] for k, v in columns.items()}


def prepare(cfg) -> base.Prepared:
  """Data, model, loss and metrics of an extractive QA run."""
  from experiments import trainer
  from jaxprune import models
  tokenizer = models.load_tokenizer(
      base.offline_minilm() if cfg.model in (None, "tiny") else cfg.model)
  if cfg.data_name == "smoke":
    data, source = smoke_dataset(cfg.seed), "generated (smoke)"
  else:
    import datasets
    data, source = datasets.load_dataset("rajpurkar/squad"), "SQuAD v1.1"
  train_cols = _limit(data["train"], cfg.max_train_examples)
  dev = _limit(data["validation"], cfg.max_eval_examples)
  train_set = train_features(tokenizer, train_cols, cfg)
  dev_set = eval_features(tokenizer, dev, cfg)
  contexts = list(dev["context"])
  references = {qid: a["text"] for qid, a in zip(dev["id"], dev["answers"])}
  model, model_name = base.load_model(
      cfg, "question_answering", None,
      lambda: text.tiny_bert_config(len(tokenizer)))
  predict = jax.jit(text.span_logits(model))
  model_keys = ("input_ids", "attention_mask", "token_type_ids")

  def make_batch(idx, step, global_idx):
    del step, global_idx
    return {k: v[idx] for k, v in train_set.items()}

  def evaluate(params):
    starts, ends = trainer.batched_predict(
        predict, params, len(dev_set["example"]),
        lambda idx: {k: dev_set[k][idx] for k in model_keys},
        cfg.eval_batch_size)
    answers = best_spans(starts, ends, dev_set, contexts, cfg.n_best,
                         cfg.max_answer_length)
    return metrics.squad_evaluate(dict(zip(dev["id"], answers)), references)

  return base.Prepared(
      model=model, params=model.params,
      train_size=len(train_set["start_positions"]), make_batch=make_batch,
      loss_fn=text.span_loss(model), evaluate=evaluate, primary="f1",
      classification=False, where=cfg.where or "bert",
      info={"model": model_name, "data": source,
            "train_questions": len(train_cols["id"]),
            "train_examples": int(len(train_set["start_positions"])),
            "eval_examples": len(references),
            "eval_windows": int(len(dev_set["example"]))})
