"""MGPP MNLI (released script, BERT-base)."""

from experiments.configs import recipes

CONFIG = recipes.mgpp(
    "mnli", epochs=8, batch_size=32, lr_end=0.1, v0=1e-10, v1=0.05,
    warmup_steps="1 epoch", initial_sparsity=0.3, delta_t=100, seed=47,
    source="MGPP scripts (MNLI)")
