"""SEVEN sst2 (init_config: t_i 1000, iter_num 4000, target_ratio 0.6)."""

from experiments.configs import recipes

CONFIG = recipes.seven("sst2", warmup_steps=1000, iter_num=4000, sparsity=0.6)
