"""Image classification: Fashion-MNIST, CIFAR-100 or your own image folder.

Data (``cfg.data`` or ``image_folder``):

* ``fashion_mnist``: offline (Debian ``dataset-fashion-mnist``, else
  scikit-learn's digits; :mod:`experiments.data.images`), 1 channel, native
  size, no augmentation; the default model is a 6x192 ViT from scratch.
* ``cifar100``: ``datasets.load_dataset("cifar100")``; each train batch is
  decoded and augmented when needed (random resized crop to ``image_size``,
  area 8-100%, aspect 3/4-4/3, bilinear, then a horizontal flip with
  probability 1/2; seeded by (seed, step, host), so a resumed run sees the
  same crops); eval: shorter side to ``image_size / crop_pct``, central
  crop; both normalised with mean 0.5 and std 0.5 (the in21k checkpoints'
  preprocessing), channels first.
* ``image_folder``: class subfolders (:mod:`experiments.data.image_folder`),
  resized to ``image_size``.
* ``smoke``: generated coloured noise of 5 classes (offline, seconds).

Models: an HF ViT/DeiT name or folder, ``scratch`` (6 layers x 192, from
scratch, the default) or ``tiny`` (2 x 32).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np

from experiments import metrics
from experiments.tasks import base
from jaxprune import train

__all__ = ["prepare", "resize_bilinear", "random_resized_crop",
           "center_crop", "normalize", "to_rgb"]


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
  """Bilinear resize of an ``(H, W, C)`` array (half-pixel centres)."""
  h, w = image.shape[:2]

  def coords(n_out, n_in):
    x = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    x = np.clip(x, 0, n_in - 1)
    lo = np.floor(x).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, (x - lo).astype(np.float32)

  y0, y1, fy = coords(height, h)
  x0, x1, fx = coords(width, w)
  img = image.astype(np.float32)
  top = img[y0][:, x0] * (1 - fx)[None, :, None] + img[y0][:, x1] * fx[None, :, None]
  bot = img[y1][:, x0] * (1 - fx)[None, :, None] + img[y1][:, x1] * fx[None, :, None]
  return top * (1 - fy)[:, None, None] + bot * fy[:, None, None]


def random_resized_crop(image: np.ndarray, size: int, rng: np.random.Generator,
                        scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)
                        ) -> np.ndarray:
  """Crop a random area/aspect box (10 tries, else the centre) and resize."""
  h, w = image.shape[:2]
  area = h * w
  for _ in range(10):
    target = area * rng.uniform(*scale)
    aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
    cw = int(round(math.sqrt(target * aspect)))
    ch = int(round(math.sqrt(target / aspect)))
    if 0 < cw <= w and 0 < ch <= h:
      top = int(rng.integers(0, h - ch + 1))
      left = int(rng.integers(0, w - cw + 1))
      return resize_bilinear(image[top:top + ch, left:left + cw], size, size)
  side = min(h, w)
  top, left = (h - side) // 2, (w - side) // 2
  return resize_bilinear(image[top:top + side, left:left + side], size, size)


def center_crop(image: np.ndarray, size: int, crop_pct: float) -> np.ndarray:
  """Resize the shorter side to ``size / crop_pct``, crop the centre."""
  h, w = image.shape[:2]
  short = int(round(size / crop_pct))
  nh, nw = (short, max(size, round(w * short / h))) if h <= w else (
      max(size, round(h * short / w)), short)
  img = resize_bilinear(image, nh, nw)
  top, left = (nh - size) // 2, (nw - size) // 2
  return img[top:top + size, left:left + size]


def normalize(images: np.ndarray) -> np.ndarray:
  """``(N, H, W, C)`` in [0, 255] -> ``(N, C, H, W)`` float32, mean/std 0.5."""
  x = (images.astype(np.float32) / 255.0 - 0.5) / 0.5
  return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def to_rgb(image: Any) -> np.ndarray:
  """A PIL image or array -> ``(H, W, 3)`` uint8."""
  if hasattr(image, "convert"):
    image = image.convert("RGB")
  arr = np.asarray(image)
  if arr.ndim == 2:
    arr = np.repeat(arr[..., None], 3, -1)
  return arr


def _smoke(seed: int):
  rng = np.random.default_rng(seed)

  def split(n):
    labels = rng.integers(0, 5, n).astype(np.int32)
    x = rng.normal(0, 0.3, (n, 3, 16, 16)).astype(np.float32)
    for i, y in enumerate(labels):
      x[i, int(y) % 3] += 0.4 * (1 + int(y))
    return x, labels

  return split(24), split(10)


def _arrays(cfg) -> tuple[Any, Any, tuple | None, str]:
  """``((x, y) train, (x, y) eval, class names, source)`` held in memory."""
  if cfg.data_source == "image_folder":
    from experiments.data import image_folder
    d = image_folder.load_image_folder(
        cfg.image_folder, image_size=cfg.image_size,
        validation_folder=cfg.validation_folder,
        split_fraction=cfg.split_fraction, split_seed=cfg.split_seed,
        max_train_examples=cfg.max_train_examples,
        max_eval_examples=cfg.max_eval_examples)
    return ((d.train_images, d.train_labels), (d.val_images, d.val_labels),
            tuple(d.class_names), d.source)
  if cfg.data_name == "smoke":
    tr, ev = _smoke(cfg.seed)
    return tr, ev, None, "generated images (smoke)"
  from experiments.data import images
  xtr, ytr, xte, yte, name = images.load(cfg.max_train_examples,
                                         cfg.max_eval_examples or 1000)
  return (xtr, ytr), (xte, yte), None, name


def _vit_config(cfg, shape, num_labels):
  from jaxprune import models
  channels, size = shape[0], shape[-1]
  patch = 4 if size % 4 == 0 else 2
  if cfg.model == "tiny":
    return models.ViTConfig(image_size=size, patch_size=patch,
                            num_channels=channels, hidden_size=32,
                            heads_per_layer=(2, 2), head_dim=16,
                            intermediate_sizes=(64, 64),
                            num_labels=num_labels, dtype=cfg.dtype)
  return models.ViTConfig(image_size=size, patch_size=patch,
                          num_channels=channels, hidden_size=192,
                          heads_per_layer=(6,) * 6, head_dim=32,
                          intermediate_sizes=(768,) * 6,
                          num_labels=num_labels, dtype=cfg.dtype)


def prepare(cfg) -> base.Prepared:
  """Data, model, loss and metrics of an image classification run."""
  from experiments import trainer
  size, seed = cfg.image_size, cfg.seed
  if cfg.data_source == "builtin" and cfg.data_name == "cifar100":
    import datasets
    data = datasets.load_dataset("cifar100")
    tr_split, ev_split = data["train"], data["test"]
    if cfg.max_train_examples:
      tr_split = tr_split.select(range(min(cfg.max_train_examples,
                                           len(tr_split))))
    if cfg.max_eval_examples:
      ev_split = ev_split.select(range(min(cfg.max_eval_examples,
                                           len(ev_split))))
    ytr = np.asarray(tr_split["fine_label"], np.int32)
    yev = np.asarray(ev_split["fine_label"], np.int32)
    num_labels, names, source = 100, None, "CIFAR-100 (datasets)"
    shape = (3, size, size)

    def train_images(idx, step):
      rng = np.random.default_rng([seed, step, jax.process_index()])
      crops = []
      for img in tr_split[[int(i) for i in idx]]["img"]:
        crop = random_resized_crop(to_rgb(img), size, rng)
        crops.append(crop[:, ::-1] if rng.random() < 0.5 else crop)
      return normalize(np.stack(crops))

    def eval_images(idx):
      return normalize(np.stack([center_crop(to_rgb(img), size, cfg.crop_pct)
                                 for img in ev_split[[int(i) for i in idx]][
                                     "img"]]))
  else:
    (xtr, ytr), (xev, yev), names, source = _arrays(cfg)
    num_labels = len(names) if names else int(max(ytr.max(), yev.max())) + 1
    shape = xtr.shape[1:]
    train_images = lambda idx, step: xtr[idx]
    eval_images = lambda idx: xev[idx]
  heldout_idx = None
  train_idx = np.arange(len(ytr))
  if cfg.method == "pins_sr":
    train_idx, heldout_idx = base.holdout(len(ytr), cfg.heldout,
                                          "training images")
  model, model_name = base.load_model(
      cfg, "image_classification", num_labels,
      lambda: _vit_config(cfg, shape, num_labels))
  predict = train.make_eval_step(train.hf.classification_logits(model))

  def make_batch(idx, step, global_idx):
    del global_idx
    real = train_idx[idx]
    return {"pixel_values": train_images(real, step), "labels": ytr[real]}

  def accuracy(params, images, labels):
    logits = trainer.batched_predict(
        predict, params, len(labels),
        lambda idx: {"pixel_values": images(idx)}, cfg.eval_batch_size)
    return {"accuracy": 100 * metrics.accuracy(labels, np.argmax(logits, -1))}

  return base.Prepared(
      model=model, params=model.params, train_size=len(train_idx),
      make_batch=make_batch, loss_fn=train.hf.classification_loss(model),
      evaluate=lambda p: accuracy(p, eval_images, yev), primary="accuracy",
      classification=True, where=cfg.where or "vit",
      info={"model": model_name, "data": source,
            "train_examples": len(train_idx), "eval_examples": len(yev),
            "labels": list(names) if names else num_labels},
      heldout_evaluate=(None if heldout_idx is None else lambda p: accuracy(
          p, lambda i: train_images(heldout_idx[i], 0), ytr[heldout_idx])))
