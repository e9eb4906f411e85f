"""SEVEN mnli (init_config: t_i 5400, iter_num 16600, target_ratio 0.7).

Run: ``python -m experiments.run --config experiments/configs/seven/mnli_70.py``
"""

from experiments.configs import recipes


def get_config():
  return recipes.seven("mnli", warmup_steps=5400, iter_num=16600, sparsity=0.7)
