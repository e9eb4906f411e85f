"""SEVEN qnli (init_config: t_i 2000, iter_num 12000, target_ratio 0.7).

Run: ``python -m experiments.run --config experiments/configs/seven/qnli_70.py``
"""

from experiments.configs import recipes


def get_config():
  return recipes.seven("qnli", warmup_steps=2000, iter_num=12000, sparsity=0.7)
