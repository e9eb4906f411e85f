"""PLATON SST-2, 10% remaining (run_bert_glue.sh).

Run: ``python -m experiments.run --config experiments/configs/platon/sst2_90.py``
"""

from experiments.configs import recipes


def get_config():
  return recipes.platon_glue(
      "sst2", remaining=0.10, beta2=0.85, warmup_steps=1000, final_steps=5000,
      lr=8e-5, epochs=6, batch_size=32, seed=8,
      source="PLATON GLUE/scripts/run_bert_glue.sh")
