"""SEVEN qqp (init_config: t_i 5400, iter_num 16600, target_ratio 0.9).

Run: ``python -m experiments.run --config experiments/configs/seven/qqp_90.py``
"""

from experiments.configs import recipes


def get_config():
  return recipes.seven("qqp", warmup_steps=5400, iter_num=16600, sparsity=0.9)
