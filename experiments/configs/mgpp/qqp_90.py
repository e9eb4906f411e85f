"""MGPP QQP (released script, BERT-base).

Run: ``python -m experiments.run --config experiments/configs/mgpp/qqp_90.py``
"""

from experiments.configs import recipes


def get_config():
  return recipes.mgpp(
      "qqp", epochs=10, batch_size=32, lr_end=0.1, v0=1e-10, v1=0.05,
      warmup_steps="2 epochs", initial_sparsity=0.3, delta_t=100, seed=47,
      source="MGPP scripts (QQP)")
