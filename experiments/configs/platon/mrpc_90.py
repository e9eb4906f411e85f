"""PLATON MRPC, 10% remaining (run_bert_glue.sh).

Run: ``python -m experiments.run --config experiments/configs/platon/mrpc_90.py``
"""

from experiments.configs import recipes


def get_config():
  return recipes.platon_glue(
      "mrpc", remaining=0.10, beta2=0.95, warmup_steps=300, final_steps=900,
      lr=1e-4, epochs=10, batch_size=8, seed=9,
      source="PLATON GLUE/scripts/run_bert_glue.sh")
