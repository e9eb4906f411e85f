"""Your own images: a folder of class subfolders (``image_folder``).

``validation_folder`` (same layout) or ``split_fraction`` gives the
validation images. Default model: a 6x192 ViT from scratch at 64x64;
``model=google/vit-base-patch16-224-in21k image_size=224`` fine-tunes a
pretrained ViT.

Run: ``python -m experiments.run --config experiments/configs/image.py
--set image_folder=photos/ split_fraction=0.1``
"""


def get_config():
  return {
      "task": "image", "model": "scratch", "image_size": 64,
      "method": "platon", "sparsity": 0.9, "epochs": 10, "batch_size": 32,
      "lr": 1e-3, "lr_warmup": 0.1, "eval_every": "1 epoch",
      "dense_baseline": True,
  }
