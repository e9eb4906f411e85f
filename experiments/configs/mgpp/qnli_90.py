"""MGPP QNLI (released script, BERT-base).

Run: ``python -m experiments.run --config experiments/configs/mgpp/qnli_90.py``
"""

from experiments.configs import recipes


def get_config():
  return recipes.mgpp(
      "qnli", epochs=10, batch_size=32, lr_end=0.1, v0=1e-9, v1=0.05,
      warmup_steps="2 epochs", initial_sparsity=0.5, delta_t=100, seed=9,
      source="MGPP scripts (QNLI)")
