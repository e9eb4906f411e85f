"""PLATON QNLI, 10% remaining (run_bert_glue.sh).

Run: ``python -m experiments.run --config experiments/configs/platon/qnli_90.py``
"""

from experiments.configs import recipes


def get_config():
  return recipes.platon_glue(
      "qnli", remaining=0.10, beta2=0.90, warmup_steps=2000, final_steps=12000,
      lr=1e-4, epochs=10, batch_size=32, seed=9,
      source="PLATON GLUE/scripts/run_bert_glue.sh")
