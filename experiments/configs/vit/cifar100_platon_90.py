"""ViT-B/16 (in21k) on CIFAR-100, PLATON at 90%: OUR choice, not a paper config.

The ViT hyperparameters of the PLATON paper (Zhang et al., ICML 2022) were
not retrieved. These values are a plain fine-tuning recipe
with PLATON's schedule shape (t_i 10%, t_f 30% of the run).

Run: ``python -m experiments.run --config experiments/configs/vit/cifar100_platon_90.py``
"""


def get_config():
  return {
      "task": "image", "data": "cifar100", "method": "platon",
      "sparsity": 0.9, "model": "google/vit-base-patch16-224-in21k",
      "where": "vit", "image_size": 224, "crop_pct": 1.0,
      "optimizer": {"name": "adamw", "weight_decay": 0.0}, "clip_norm": 1.0,
      "lr": 5e-5, "lr_schedule": "linear", "lr_warmup": 0.05,
      "epochs": 10, "batch_size": 64, "seed": 0, "eval_every": "1 epoch",
      "method_args": {"warmup_steps": 0.1, "final_steps": 0.3, "beta1": 0.85,
                      "beta2": 0.95, "delta_t": 10},
      "source": "jaxprune choice (no paper config retrieved)",
  }
