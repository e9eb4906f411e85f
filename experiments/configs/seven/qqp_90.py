"""SEVEN qqp (init_config: t_i 5400, iter_num 16600, target_ratio 0.9)."""

from experiments.configs import recipes

CONFIG = recipes.seven("qqp", warmup_steps=5400, iter_num=16600, sparsity=0.9)
