"""PLATON RTE, 10% remaining (run_bert_rte.sh #3).

Run: ``python -m experiments.run --config experiments/configs/platon/rte_90.py``
"""

from experiments.configs import recipes


def get_config():
  return recipes.platon_glue(
      "rte", remaining=0.10, beta2=0.95, warmup_steps=200, final_steps=1200,
      lr=1e-4, epochs=20, batch_size=16, seed=8,
      source="PLATON GLUE/scripts/run_bert_rte.sh #3")
