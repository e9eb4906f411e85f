"""MGPP SST-2 (released script, BERT-base).

Run: ``python -m experiments.run --config experiments/configs/mgpp/sst2_90.py``
"""

from experiments.configs import recipes


def get_config():
  return recipes.mgpp(
      "sst2", epochs=6, batch_size=32, lr_end=0.01, v0=1e-9, v1=0.1,
      warmup_steps=1000, initial_sparsity=0.3, delta_t=10, seed=7,
      source="MGPP scripts (SST-2)")
