"""SEVEN mrpc (init_config: t_i 300, iter_num 600, target_ratio 0.5).

Run: ``python -m experiments.run --config experiments/configs/seven/mrpc_50.py``
"""

from experiments.configs import recipes


def get_config():
  return recipes.seven("mrpc", warmup_steps=300, iter_num=600, sparsity=0.5)
