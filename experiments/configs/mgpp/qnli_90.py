"""MGPP QNLI (released script, BERT-base)."""

from experiments.configs import recipes

CONFIG = recipes.mgpp(
    "qnli", epochs=10, batch_size=32, lr_end=0.1, v0=1e-9, v1=0.05,
    warmup_steps="2 epochs", initial_sparsity=0.5, delta_t=100, seed=9,
    source="MGPP scripts (QNLI)")
