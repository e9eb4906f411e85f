"""PINS RTE, 80% sparsity (glue.sh; seeds 42, 12, 100, 9, 2)."""

from experiments.configs import recipes

CONFIG = recipes.pins_rte(seed=42)
