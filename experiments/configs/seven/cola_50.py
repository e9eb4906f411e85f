"""SEVEN cola (init_config: t_i 500, iter_num 1000, target_ratio 0.5).

Run: ``python -m experiments.run --config experiments/configs/seven/cola_50.py``
"""

from experiments.configs import recipes


def get_config():
  return recipes.seven("cola", warmup_steps=500, iter_num=1000, sparsity=0.5)
