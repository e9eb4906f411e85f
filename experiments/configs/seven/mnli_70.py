"""SEVEN mnli (init_config: t_i 5400, iter_num 16600, target_ratio 0.7)."""

from experiments.configs import recipes

CONFIG = recipes.seven("mnli", warmup_steps=5400, iter_num=16600, sparsity=0.7)
