"""SEVEN sst2 (init_config: t_i 1000, iter_num 4000, target_ratio 0.6).

Run: ``python -m experiments.run --config experiments/configs/seven/sst2_60.py``
"""

from experiments.configs import recipes


def get_config():
  return recipes.seven("sst2", warmup_steps=1000, iter_num=4000, sparsity=0.6)
