"""MGPP SQuAD v1.1 (released script, BERT-base).

Run: ``python -m experiments.run --config experiments/configs/mgpp/squad_90.py``
"""

from experiments.configs import recipes


def get_config():
  return recipes.mgpp(
      "squad", epochs=10, batch_size=16, lr_end=0.1, v0=1e-10, v1=0.05,
      warmup_steps=11000, initial_sparsity=0.5, delta_t=100, seed=47,
      source="MGPP scripts (squad.sub)")
