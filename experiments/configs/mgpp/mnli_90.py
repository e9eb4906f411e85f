"""MGPP MNLI (released script, BERT-base).

Run: ``python -m experiments.run --config experiments/configs/mgpp/mnli_90.py``
"""

from experiments.configs import recipes


def get_config():
  return recipes.mgpp(
      "mnli", epochs=8, batch_size=32, lr_end=0.1, v0=1e-10, v1=0.05,
      warmup_steps="1 epoch", initial_sparsity=0.3, delta_t=100, seed=47,
      source="MGPP scripts (MNLI)")
