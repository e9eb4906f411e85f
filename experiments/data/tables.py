"""Own text classification / regression data: CSV, TSV, JSON lines, `datasets`.

Local files are read with the standard library (``csv``, ``json``), so a
machine without ``datasets`` can still run on them. The first line of a CSV or
TSV file is the header; a ``.jsonl`` or ``.json`` file holds one JSON object
per line (blank lines are skipped). Validation comes from a second file, or
from ``split_fraction`` of the rows of one file (a seeded shuffle).

Example:

  >>> import os, tempfile
  >>> path = os.path.join(tempfile.mkdtemp(), "train.csv")
  >>> with open(path, "w") as f:
  ...   _ = f.write("text,label\\ngood,pos\\nbad,neg\\nfine,pos\\nmeh,neg\\n")
  >>> data = load_text(train_file=path, split_fraction=0.5)
  >>> data.label_names
  ('neg', 'pos')
  >>> len(data.train.texts), len(data.validation.texts)
  (2, 2)
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import re
from typing import Any

import numpy as np

__all__ = ["TEXT_EXTENSIONS", "TextData", "TextSplit", "check_text_source",
           "load_text"]

TEXT_EXTENSIONS = (".csv", ".tsv", ".jsonl", ".json")
_INT = re.compile(r"[+-]?\d+")


@dataclasses.dataclass(frozen=True)
class TextSplit:
  """One split: texts, optional second texts, labels.

  Attributes:
    texts: the first text column, one string per example.
    pairs: the second text column (sentence pairs), or None.
    labels: int32 class ids in ``0..K-1``, or float32 regression targets.
  """
  texts: list[str]
  pairs: list[str] | None
  labels: np.ndarray


@dataclasses.dataclass(frozen=True)
class TextData:
  """Train and validation splits of a text task.

  Attributes:
    train: the training split.
    validation: the validation split.
    label_names: class ``i`` is ``label_names[i]``; None for regression.
    source: one line saying where the data came from and how it was split.
  """
  train: TextSplit
  validation: TextSplit
  label_names: tuple[str, ...] | None
  source: str


@dataclasses.dataclass
class _Table:
  """Column-oriented rows of one file or dataset split."""
  name: str                      # "file 'x.csv'" or "dataset 'd' split 's'"
  columns: dict[str, list[Any]]
  lines: list[int] | None = None  # line number of each row (files)
  class_names: tuple[str, ...] | None = None  # the label's ClassLabel names
  available: list[str] | None = None  # all columns, when not all were read

  def __len__(self) -> int:
    return len(next(iter(self.columns.values()), []))

  def where(self, i: int, column: str) -> str:
    line = f" (line {self.lines[i]})" if self.lines else ""
    return f"{self.name}, row {i + 1}{line}, column '{column}'"

  def column(self, column: str) -> list[Any]:
    if column not in self.columns:
      raise ValueError(f"{self.name} has no column '{column}'; available "
                       f"columns: {', '.join(self.available or self.columns)}")
    return self.columns[column]


def check_text_source(*, train_file: str | None = None,
                      validation_file: str | None = None,
                      dataset: str | None = None,
                      dataset_config: str | None = None,
                      split_fraction: float | None = None,
                      max_train_examples: int | None = None,
                      max_eval_examples: int | None = None,
                      **unused: Any) -> None:
  """Validates the arguments of :func:`load_text` without reading any data.

  Takes the same keyword arguments as :func:`load_text` (the ones not listed
  are accepted and not checked), so a runner can call it with the same
  arguments before it loads a model.

  Raises:
    ValueError: naming the argument and what it accepts.

  Example:

    >>> check_text_source(train_file="no/such.csv", split_fraction=0.1)
    Traceback (most recent call last):
    ...
    ValueError: `train_file`: no such file 'no/such.csv'
  """
  del unused
  if (train_file is None) == (dataset is None):
    raise ValueError("give exactly one of `train_file` (a .csv, .tsv, .jsonl "
                     "or .json file) or `dataset` (a `datasets` hub name or a "
                     "folder written by save_to_disk)")
  if split_fraction is not None and (
      isinstance(split_fraction, bool)
      or not isinstance(split_fraction, (int, float))
      or not 0.0 < split_fraction < 1.0):
    raise ValueError("`split_fraction` (the fraction of rows held out for "
                     f"validation) must be in (0, 1), got {split_fraction!r}")
  for arg, n in (("max_train_examples", max_train_examples),
                 ("max_eval_examples", max_eval_examples)):
    if n is not None and (isinstance(n, bool) or not isinstance(n, int)
                          or n < 1):
      raise ValueError(f"`{arg}` must be a positive integer or None, got {n!r}")
  if dataset is not None:
    if validation_file is not None:
      raise ValueError("`validation_file` goes with `train_file`, not with "
                       "`dataset` (use `validation_split` or `split_fraction`)")
    if dataset_config is not None and os.path.isdir(dataset):
      raise ValueError(f"`dataset_config` applies to hub names; `dataset` "
                       f"'{dataset}' is a folder")
    return
  if (validation_file is None) == (split_fraction is None):
    raise ValueError("with `train_file` give exactly one of `validation_file` "
                     "or `split_fraction` (in (0, 1))")
  for arg, path in (("train_file", train_file),
                    ("validation_file", validation_file)):
    if path is None:
      continue
    if not path.lower().endswith(TEXT_EXTENSIONS):
      raise ValueError(f"`{arg}` must end in .csv, .tsv, .jsonl or .json "
                       f"(JSON lines), got '{path}'")
    if not os.path.isfile(path):
      raise ValueError(f"`{arg}`: no such file '{path}'")


def _read_file(path: str) -> _Table:
  name = f"file '{path}'"
  lines, records = [], []
  if path.lower().endswith((".jsonl", ".json")):
    with open(path, encoding="utf-8-sig") as f:
      for line_no, line in enumerate(f, 1):
        if not line.strip():
          continue
        try:
          record = json.loads(line)
        except json.JSONDecodeError as e:
          raise ValueError(f"{name}, line {line_no}: malformed JSON ({e.msg}); "
                           "expected one JSON object per line") from None
        if not isinstance(record, dict):
          raise ValueError(f"{name}, line {line_no}: expected a JSON object, "
                           f"got {type(record).__name__}")
        records.append(record)
        lines.append(line_no)
    header = list(dict.fromkeys(k for r in records for k in r))
  else:
    delimiter = "\t" if path.lower().endswith(".tsv") else ","
    with open(path, encoding="utf-8-sig", newline="") as f:
      reader = csv.reader(f, delimiter=delimiter)
      header = next(reader, None)
      if header is None:
        raise ValueError(f"{name} is empty (expected a header line)")
      if len(set(header)) != len(header):
        raise ValueError(f"{name}: the header repeats a column: {header}")
      for row in reader:
        if not row:
          continue
        if len(row) != len(header):
          raise ValueError(f"{name}, row {len(records) + 1} (line "
                           f"{reader.line_num}) has {len(row)} fields, the "
                           f"header has {len(header)}")
        records.append(dict(zip(header, row)))
        lines.append(reader.line_num)
  if not records:
    raise ValueError(f"{name} has no data rows")
  columns = {c: [r.get(c) for r in records] for c in header}
  return _Table(name, columns, lines)


def _texts(table: _Table, column: str) -> list[str]:
  out = []
  for i, v in enumerate(table.column(column)):
    if v is None or isinstance(v, (list, dict)):
      raise ValueError(f"{table.where(i, column)}: expected a text, got {v!r}")
    out.append(v if isinstance(v, str) else str(v))
  return out


def _targets(table: _Table, column: str) -> np.ndarray:
  out = np.empty(len(table), np.float32)
  for i, v in enumerate(table.column(column)):
    try:
      if isinstance(v, bool):
        raise TypeError
      out[i] = x = float(v.strip() if isinstance(v, str) else v)
      if not math.isfinite(x):
        raise ValueError
    except (TypeError, ValueError):
      raise ValueError(f"{table.where(i, column)}: regression target {v!r} "
                       "is not a finite number") from None
  return out


def _is_int(v: Any) -> bool:
  if isinstance(v, (bool, np.bool_)):
    return False
  return isinstance(v, (int, np.integer)) or (
      isinstance(v, str) and _INT.fullmatch(v.strip()) is not None)


def _class_names(table: _Table, column: str) -> tuple[str, ...]:
  """Sorted class names of the labels in ``table`` (numeric if all ints)."""
  if table.class_names is not None:
    names = table.class_names
  else:
    values = table.column(column)
    for i, v in enumerate(values):
      if v is None or v == "":
        raise ValueError(f"{table.where(i, column)}: missing label")
    if all(_is_int(v) for v in values):
      names = tuple(str(k) for k in sorted({int(v) for v in values}))
    else:
      names = tuple(sorted({str(v) for v in values}))
  if len(names) < 2:
    raise ValueError(f"{table.name}, column '{column}': classification "
                     f"needs at least 2 classes, found {list(names)} (pass "
                     "regression=True for numeric targets)")
  return names


def _class_ids(table: _Table, column: str, names: tuple[str, ...],
               by_id: bool) -> np.ndarray:
  numeric = all(_is_int(n) for n in names)
  index = {(int(n) if numeric else n): k for k, n in enumerate(names)}
  out = np.empty(len(table), np.int32)
  for i, v in enumerate(table.column(column)):
    if by_id:  # a ClassLabel: the value is already the class id
      k = int(v) if _is_int(v) and 0 <= int(v) < len(names) else None
    elif numeric:
      k = index.get(int(v)) if _is_int(v) else None
    else:
      k = index.get(str(v)) if v is not None else None
    if k is None:
      shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
      raise ValueError(f"{table.where(i, column)}: label {v!r} is not one of "
                       f"the training classes ({shown})")
    out[i] = k
  return out


def _from_datasets(dataset: str, config: str | None, columns: list[str],
                   train_split: str, validation_split: str,
                   split_fraction: float | None
                   ) -> tuple[_Table, _Table | None]:
  """The train (and validation) split; ``columns[-1]`` is the label column."""
  import datasets  # only here: local files never need it
  if os.path.isdir(dataset):
    obj, label = datasets.load_from_disk(dataset), f"dataset '{dataset}'"
  else:
    obj = datasets.load_dataset(dataset, config)
    label = f"dataset '{dataset}'" + (f" ({config})" if config else "")
  if isinstance(obj, datasets.DatasetDict):
    if train_split not in obj:
      raise ValueError(f"{label} has no split '{train_split}' "
                       f"(`train_split`); splits: {', '.join(obj)}")
    parts = {train_split: obj[train_split]}
    if validation_split in obj:
      if split_fraction is not None:
        raise ValueError(f"{label} has a '{validation_split}' split; "
                         "`split_fraction` is only for splitting off one")
      parts[validation_split] = obj[validation_split]
    elif split_fraction is None:
      raise ValueError(f"{label} has no split '{validation_split}' "
                       f"(`validation_split`; splits: {', '.join(obj)}): "
                       "pass `split_fraction` to split the training split")
  elif split_fraction is None:
    raise ValueError(f"{label} is a single split: pass `split_fraction`")
  else:
    parts = {train_split: obj}
  tables = []
  for split, ds in parts.items():
    if len(ds) == 0:
      raise ValueError(f"{label} split '{split}' has no rows")
    read = [c for c in columns if c in ds.column_names]  # only those needed
    table = _Table(f"{label} split '{split}'",
                   ds.select_columns(read).to_dict() if read else {},
                   available=list(ds.column_names))
    feature = ds.features.get(columns[-1])
    if isinstance(feature, datasets.ClassLabel):
      table.class_names = tuple(feature.names)
    tables.append(table)
  return tables[0], (tables[1] if len(tables) > 1 else None)


def _split(n: int, fraction: float, seed: int, name: str
           ) -> tuple[np.ndarray, np.ndarray]:
  """Train and validation row indices (each in row order) of ``n`` rows."""
  if n < 2:
    raise ValueError(f"{name} has {n} row: `split_fraction` needs at least 2")
  n_val = min(max(1, round(n * fraction)), n - 1)
  perm = np.random.default_rng(seed).permutation(n)
  return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _take(s: TextSplit, idx: np.ndarray | slice) -> TextSplit:
  rows = np.arange(len(s.texts))[idx]
  return TextSplit([s.texts[i] for i in rows],
                   None if s.pairs is None else [s.pairs[i] for i in rows],
                   s.labels[rows])


def load_text(*, train_file: str | None = None,
              validation_file: str | None = None,
              dataset: str | None = None, dataset_config: str | None = None,
              text_column: str = "text", text_pair_column: str | None = None,
              label_column: str = "label", regression: bool = False,
              split_fraction: float | None = None, split_seed: int = 0,
              train_split: str = "train",
              validation_split: str = "validation",
              max_train_examples: int | None = None,
              max_eval_examples: int | None = None) -> TextData:
  """Loads a text classification or regression task from files or `datasets`.

  Args:
    train_file: a .csv, .tsv, .jsonl or .json (JSON lines) file.
    validation_file: a second file of the same columns (or `split_fraction`).
    dataset: instead of files, a `datasets` hub name, or a folder written by
      ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``.
    dataset_config: the hub dataset's configuration name (e.g. "sst2").
    text_column: the column of the (first) text.
    text_pair_column: the column of the second text of sentence pairs.
    label_column: the column of the labels.
    regression: float targets instead of classes.
    split_fraction: the fraction of the rows of `train_file` (or of the
      training split of a `dataset` without `validation_split`) held out for
      validation, chosen by ``np.random.default_rng(split_seed)``; both parts
      keep the file's row order.
    split_seed: the seed of that choice.
    train_split: the training split of a `dataset`.
    validation_split: the validation split of a `dataset`.
    max_train_examples: keep the first N training rows (after splitting).
    max_eval_examples: keep the first N validation rows.

  Returns:
    A :class:`TextData`. Classes are the training labels sorted, numerically
    if they are all integers (JSON ints or digit strings), else as strings;
    a ``ClassLabel`` column keeps its ids and names. With `split_fraction`
    the classes are those of the whole file, before the split.

  Raises:
    ValueError: bad arguments (see :func:`check_text_source`), or bad data:
      the message names the file (or dataset and split), the row (1-based,
      header excluded, with the line for files) and the column.
  """
  check_text_source(train_file=train_file, validation_file=validation_file,
                    dataset=dataset, dataset_config=dataset_config,
                    split_fraction=split_fraction,
                    max_train_examples=max_train_examples,
                    max_eval_examples=max_eval_examples)
  if dataset is not None:
    needed = [text_column, text_pair_column, label_column]
    train, val = _from_datasets(dataset, dataset_config,
                                [c for c in needed if c], train_split,
                                validation_split, split_fraction)
  else:
    train = _read_file(train_file)
    val = _read_file(validation_file) if validation_file else None

  def split_of(t: _Table) -> TextSplit:
    texts = _texts(t, text_column)
    pairs = _texts(t, text_pair_column) if text_pair_column else None
    if regression:
      return TextSplit(texts, pairs, _targets(t, label_column))
    if t.class_names is not None and t.class_names != names:
      t.columns[label_column] = [  # another ClassLabel: compare by name
          t.class_names[v] if 0 <= v < len(t.class_names) else v
          for v in t.columns[label_column]]
      t.class_names = None
    return TextSplit(texts, pairs, _class_ids(
        t, label_column, names, by_id=t.class_names is not None))

  names = None if regression else _class_names(train, label_column)
  tr = split_of(train)
  if val is not None:
    va = split_of(val)
    how = f"{train.name} ({len(train)} rows), validation {val.name}"
  else:
    tr_idx, va_idx = _split(len(train), split_fraction, split_seed, train.name)
    tr, va = _take(tr, tr_idx), _take(tr, va_idx)
    how = (f"{train.name} ({len(train)} rows), validation: {len(va_idx)} of "
           f"them (split_fraction {split_fraction}, seed {split_seed})")
  tr = _take(tr, slice(max_train_examples))
  va = _take(va, slice(max_eval_examples))
  kind = "regression" if regression else f"{len(names)} classes"
  return TextData(tr, va, names, f"{how}; {kind}; {len(tr.texts)} train / "
                  f"{len(va.texts)} validation examples")
