"""PLATON RTE, 20% remaining (run_bert_glue.sh, run_bert_rte.sh #1).

Run: ``python -m experiments.run --config experiments/configs/platon/rte_80.py``
"""

from experiments.configs import recipes


def get_config():
  return recipes.platon_glue(
      "rte", remaining=0.20, beta2=0.95, warmup_steps=200, final_steps=1200,
      lr=1e-4, epochs=20, batch_size=16, seed=8,
      source="PLATON GLUE/scripts/run_bert_rte.sh #1")
