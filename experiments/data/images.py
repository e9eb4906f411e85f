"""Offline image data: Fashion-MNIST (Debian ``dataset-fashion-mnist``) or digits.

Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017; MIT licence) is read from the
IDX files that Debian's ``dataset-fashion-mnist`` package installs
(``apt-get install dataset-fashion-mnist``); when they are absent,
scikit-learn's bundled ``load_digits`` (8x8 handwritten digits, UCI) is used.
"""

from __future__ import annotations

import glob
import gzip
import os

import numpy as np

__all__ = ["load"]

_SEARCH = ["/usr/share/dataset-fashion-mnist", "/usr/share/fashion-mnist",
           "/usr/share/datasets/fashion-mnist", "data/fashion-mnist"]


def _read_idx(path: str) -> np.ndarray:
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "rb") as f:
    data = f.read()
  ndim = data[3]
  shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big")
                for i in range(ndim))
  return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find(prefix: str) -> str | None:
  for root in _SEARCH:
    hits = glob.glob(os.path.join(root, "**", prefix + "*"), recursive=True)
    if hits:
      return sorted(hits)[0]
  return None


def load(max_train: int | None = None, max_test: int | None = None):
  """``(x_train, y_train, x_test, y_test, name)``; x is float32 NCHW in [0, 1]."""
  files = {k: _find(k) for k in ("train-images", "train-labels",
                                  "t10k-images", "t10k-labels")}
  if all(files.values()):
    xtr = _read_idx(files["train-images"]).astype(np.float32)[:, None] / 255.0
    ytr = _read_idx(files["train-labels"]).astype(np.int32)
    xte = _read_idx(files["t10k-images"]).astype(np.float32)[:, None] / 255.0
    yte = _read_idx(files["t10k-labels"]).astype(np.int32)
    name = "fashion-mnist"
  else:
    from sklearn.datasets import load_digits
    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None]
    y = d.target.astype(np.int32)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    xtr, ytr, xte, yte = x[360:], y[360:], x[:360], y[:360]
    name = "sklearn-digits"
  if max_train:
    xtr, ytr = xtr[:max_train], ytr[:max_train]
  if max_test:
    xte, yte = xte[:max_test], yte[:max_test]
  return xtr, ytr, xte, yte, name
