"""PLATON QQP, 20% remaining (run_bert_glue.sh).

Run: ``python -m experiments.run --config experiments/configs/platon/qqp_80.py``
"""

from experiments.configs import recipes


def get_config():
  return recipes.platon_glue(
      "qqp", remaining=0.20, beta2=0.85, warmup_steps=5400, final_steps=27000,
      lr=1e-4, epochs=10, batch_size=32, seed=9,
      source="PLATON GLUE/scripts/run_bert_glue.sh")
