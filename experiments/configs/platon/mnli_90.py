"""PLATON MNLI, 10% remaining (run_bert_glue.sh; run_bert_mnli.sh #3).

Run: ``python -m experiments.run --config experiments/configs/platon/mnli_90.py``
"""

from experiments.configs import recipes


def get_config():
  return recipes.platon_glue(
      "mnli", remaining=0.10, beta2=0.85, warmup_steps=5400, final_steps=27000,
      lr=8e-5, epochs=8, batch_size=32, seed=7,
      source="PLATON GLUE/scripts/run_bert_glue.sh")
