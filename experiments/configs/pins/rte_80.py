"""PINS RTE, 80% sparsity (glue.sh; seeds 42, 12, 100, 9, 2).

Run: ``python -m experiments.run --config experiments/configs/pins/rte_80.py``
"""

from experiments.configs import recipes


def get_config():
  return recipes.pins_rte(seed=42)
