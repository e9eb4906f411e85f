"""PLATON STS-B, 10% remaining (run_bert_glue.sh).

Run: ``python -m experiments.run --config experiments/configs/platon/stsb_90.py``
"""

from experiments.configs import recipes


def get_config():
  return recipes.platon_glue(
      "stsb", remaining=0.10, beta2=0.85, warmup_steps=500, final_steps=2500,
      lr=1e-4, epochs=15, batch_size=16, seed=9,
      source="PLATON GLUE/scripts/run_bert_glue.sh")
