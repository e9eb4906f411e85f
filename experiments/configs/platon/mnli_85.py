"""PLATON MNLI, 15% remaining (run_bert_mnli.sh #2).

Run: ``python -m experiments.run --config experiments/configs/platon/mnli_85.py``
"""

from experiments.configs import recipes


def get_config():
  return recipes.platon_glue(
      "mnli", remaining=0.15, beta2=0.90, warmup_steps=5400, final_steps=27000,
      lr=8e-5, epochs=8, batch_size=32, seed=7,
      source="PLATON GLUE/scripts/run_bert_mnli.sh #2")
