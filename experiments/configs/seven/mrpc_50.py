"""SEVEN mrpc (init_config: t_i 300, iter_num 600, target_ratio 0.5)."""

from experiments.configs import recipes

CONFIG = recipes.seven("mrpc", warmup_steps=300, iter_num=600, sparsity=0.5)
