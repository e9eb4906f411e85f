"""ViT-B/16 (in21k) on an ImageNet image folder, PLATON at 90%: OUR choice.

Needs ``--data-dir`` (a ``train/`` and ``validation/`` tree of class
folders, as ``datasets``' imagefolder reads it). Not a paper config.
"""

CONFIG = {
    "task": "imagenet", "dataset": "imagefolder", "method": "platon",
    "sparsity": 0.9, "model": "google/vit-base-patch16-224-in21k",
    "where": "vit", "image_size": 224, "crop_pct": 0.875,
    "eval_split": "validation",
    "optimizer": {"name": "adamw", "weight_decay": 0.0}, "clip_norm": 1.0,
    "lr": 5e-5, "lr_schedule": "linear", "lr_warmup": 0.05,
    "epochs": 3, "batch_size": 256, "seed": 0, "eval_every": "1 epoch",
    "method_args": {"warmup_steps": 0.1, "final_steps": 0.3, "beta1": 0.85,
                    "beta2": 0.95, "delta_t": 10},
    "source": "jaxprune choice (no paper config retrieved)",
}
