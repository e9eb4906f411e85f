"""SEVEN cola (init_config: t_i 500, iter_num 1000, target_ratio 0.5)."""

from experiments.configs import recipes

CONFIG = recipes.seven("cola", warmup_steps=500, iter_num=1000, sparsity=0.5)
