"""SEVEN qnli (init_config: t_i 2000, iter_num 12000, target_ratio 0.7)."""

from experiments.configs import recipes

CONFIG = recipes.seven("qnli", warmup_steps=2000, iter_num=12000, sparsity=0.7)
