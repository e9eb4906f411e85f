"""The image demo: a 6x192 ViT from scratch on Fashion-MNIST, dense vs PLATON.

Fashion-MNIST from Debian's ``dataset-fashion-mnist`` (scikit-learn's
digits when absent), 1,000 test images.

Run: ``python -m experiments.run --config experiments/configs/demo_vit.py``
"""


def get_config():
  return {
      "task": "image", "data": "fashion_mnist", "model": "scratch",
      "method": "platon", "sparsity": 0.9, "steps": 300, "batch_size": 16,
      "lr": 1e-3, "lr_warmup": 0.1, "eval_every": 100,
      "eval_batch_size": 200, "max_eval_examples": 1000,
      "dense_baseline": True, "out": "runs/demo_vit",
  }
