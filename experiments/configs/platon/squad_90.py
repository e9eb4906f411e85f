"""PLATON SQuAD v1.1, BERT-base, 10% remaining (SQuAD/README.md)."""

from experiments.configs import recipes

CONFIG = recipes.platon_squad()
