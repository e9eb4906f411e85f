"""Image classification with pruning: ViT on CIFAR-100 or an image folder.

Data: ``datasets.load_dataset("cifar100")`` (columns ``img``,
``fine_label``) or ``load_dataset("imagefolder", data_dir=...)`` (columns
``image``, ``label``; an ImageNet-style ``train/`` and ``val/`` tree).
Model: ``google/vit-base-patch16-224-in21k`` by default (our NNX ViT,
loaded from the HF checkpoint, with a new classification head). Augmentation, in numpy:

* train: random resized crop (area 8-100%, aspect ratio 3/4-4/3, bilinear)
  to ``image_size``, then a horizontal flip with probability 1/2;
* eval: resize the shorter side to ``image_size / crop_pct`` and take the
  central ``image_size`` square;
* both: scale to [0, 1], normalise with mean 0.5 and std 0.5 per channel
  (the in21k checkpoint's preprocessing), channels first.

Each train batch is decoded and augmented when it is needed, with a random
generator seeded by (seed, step, host), so a resumed run sees the same
crops.

Usage::

    python -m experiments.vit --config experiments/configs/platon/cifar100_90.py
    python -m experiments.vit --dataset imagefolder --data-dir /data/imagenet \\
        --eval-split validation --method magnitude --sparsity 0.8
    python -m experiments.vit --smoke            # offline, seconds
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Sequence

import jax
import numpy as np

from experiments import common, metrics
from jaxprune import train

DEFAULTS = {"task": "cifar100", "dataset": "cifar100", "data_dir": None,
            "model": "google/vit-base-patch16-224-in21k", "where": "vit",
            "image_size": 224, "crop_pct": 0.875, "eval_split": "test",
            "image_key": None, "label_key": None, "lr": 2e-5,
            "batch_size": 64, "epochs": 10, "eval_batch_size": 128}
SMOKE = {"batch_size": 8, "steps": 6, "eval_batch_size": 16,
         "image_size": 32, "num_labels": 5, "train_examples": 24,
         "eval_examples": 10}
_KEYS = {"cifar100": ("img", "fine_label"), "imagefolder": ("image", "label")}


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


def smoke_dataset(seed: int):
  """Generated coloured-noise images of a few classes as ``datasets`` splits."""
  import datasets
  from PIL import Image
  rng = np.random.default_rng(seed)

  def split(n):
    labels = rng.integers(0, SMOKE["num_labels"], n)
    images = []
    for y in labels:
      base = np.zeros((40, 36, 3), np.float32)
      base[..., int(y) % 3] = 60.0 * (1 + int(y))
      img = np.clip(base + rng.normal(0, 30, base.shape), 0, 255)
      images.append(Image.fromarray(img.astype(np.uint8)))
    return datasets.Dataset.from_dict({"img": images,
                                       "fine_label": labels.tolist()})

  return {"train": split(SMOKE["train_examples"]),
          "test": split(SMOKE["eval_examples"])}


def load_data(cfg: dict):
  """Train and eval splits, image and label column names, class count."""
  if cfg["smoke"]:
    data = smoke_dataset(cfg["seed"])
  else:
    import datasets
    if cfg["dataset"] == "imagefolder":
      data = datasets.load_dataset("imagefolder", data_dir=cfg["data_dir"])
    else:
      data = datasets.load_dataset(cfg["dataset"])
  image_key, label_key = _KEYS.get(cfg["dataset"], ("image", "label"))
  image_key = cfg["image_key"] or image_key
  label_key = cfg["label_key"] or label_key
  train_split, eval_split = data["train"], data[cfg["eval_split"]]
  if cfg["max_train_examples"]:
    train_split = train_split.select(range(min(cfg["max_train_examples"],
                                               len(train_split))))
  if cfg["max_eval_examples"]:
    eval_split = eval_split.select(range(min(cfg["max_eval_examples"],
                                             len(eval_split))))
  num_labels = (SMOKE["num_labels"] if cfg["smoke"] else
                train_split.features[label_key].num_classes)
  return train_split, eval_split, image_key, label_key, num_labels


def load_model(cfg: dict, num_labels: int):
  """Our ViT classifier (:mod:`jaxprune.models`): an HF checkpoint, or tiny
  random for smoke."""
  from jaxprune import models
  if cfg["smoke"]:
    config = models.ViTConfig(image_size=cfg["image_size"], patch_size=8,
                              hidden_size=32, heads_per_layer=(2, 2),
                              head_dim=16, intermediate_sizes=(64, 64),
                              num_labels=num_labels)
    return models.FunctionalModel(models.build(
        config, "image_classification", seed=cfg["seed"]))
  return models.from_pretrained(cfg["model"], task="image_classification",
                                num_labels=num_labels, seed=cfg["seed"])


def parse(argv: Sequence[str] | None) -> tuple[Any, dict]:
  ap = common.base_parser("ViT image classification with pruning.")
  ap.add_argument("--dataset", default=None,
                  help="cifar100 (default), imagefolder or a hub name")
  ap.add_argument("--data-dir", default=None, help="for imagefolder")
  ap.add_argument("--eval-split", default=None)
  ap.add_argument("--image-size", type=int, default=None)
  args = ap.parse_args(argv)
  cfg = common.resolve_settings(args, DEFAULTS)
  for flag in ("dataset", "data_dir", "eval_split", "image_size"):
    if getattr(args, flag) is not None:
      cfg[flag] = getattr(args, flag)
  if cfg["dataset"] == "imagefolder" and not cfg["data_dir"] and not args.smoke:
    raise SystemExit("--dataset imagefolder needs --data-dir")
  if args.dataset and not args.config:
    cfg["task"] = args.dataset
  if args.smoke:
    for k in ("batch_size", "steps", "eval_batch_size"):
      if getattr(args, k) is None:
        cfg[k] = SMOKE[k]
    cfg.update(image_size=SMOKE["image_size"], dataset="cifar100",
               eval_split="test", model="tiny random ViT (smoke)")
  return args, cfg


def main(argv: Sequence[str] | None = None) -> dict:
  """Runs one ViT fine-tuning; returns (and writes) the results record."""
  t0 = time.time()
  args, cfg = parse(argv)
  common.maybe_initialize_distributed(args)
  out = args.out or common.default_out("vit", cfg)
  os.makedirs(out, exist_ok=True)
  train_split, eval_split, image_key, label_key, num_labels = load_data(cfg)
  model = load_model(cfg, num_labels)
  size, seed = cfg["image_size"], cfg["seed"]
  train_labels = np.asarray(train_split[label_key], np.int32)
  eval_labels = np.asarray(eval_split[label_key], np.int32)

  def make_batch(idx, step, global_idx):
    del global_idx
    rng = np.random.default_rng([seed, step, jax.process_index()])
    images = train_split[[int(i) for i in idx]][image_key]
    crops = []
    for img in images:
      crop = random_resized_crop(to_rgb(img), size, rng)
      crops.append(crop[:, ::-1] if rng.random() < 0.5 else crop)
    return {"pixel_values": normalize(np.stack(crops)),
            "labels": train_labels[idx]}

  def eval_batch(idx):
    images = eval_split[[int(i) for i in idx]][image_key]
    return {"pixel_values": normalize(np.stack(
        [center_crop(to_rgb(img), size, cfg["crop_pct"]) for img in images]))}

  predict = train.make_eval_step(train.hf.classification_logits(model))

  def evaluate(params):
    logits = common.batched_predict(predict, params, len(eval_labels),
                                    eval_batch, cfg["eval_batch_size"])
    return {"accuracy": 100 * metrics.accuracy(eval_labels,
                                               np.argmax(logits, -1))}

  trainer, params, records, train_seconds, info = common.train_and_evaluate(
      cfg, model=model, loss_fn=train.hf.classification_loss(model),
      params=model.params, train_size=len(train_labels),
      make_batch=make_batch, where=common.resolve_where(cfg["where"]),
      evaluate=evaluate, primary="accuracy", out=out)
  result = common.write_results(
      out, trainer, params, records, primary="accuracy",
      seconds=time.time() - t0, train_seconds=train_seconds,
      info={"family": "vit", **info, "eval_examples": len(eval_labels),
            "num_labels": num_labels})
  print(f"{cfg['task']} {cfg['method']} sparsity "
        f"{result['actual_sparsity']:.4f}: accuracy "
        f"{result['metrics']['accuracy']:.2f}")
  return result


if __name__ == "__main__":
  main()
