"""PLATON SQuAD v1.1, BERT-base, 10% remaining (SQuAD/README.md).

Run: ``python -m experiments.run --config experiments/configs/platon/squad_90.py``
"""

from experiments.configs import recipes


def get_config():
  return recipes.platon_squad()
