"""Structured PLATON on the demo task: whole heads and FFN neurons, 50%.

The pruner scores groups (:func:`jaxprune.patterns.heads_and_neurons`);
after training the dead heads and neurons are sliced out
(:mod:`jaxprune.shrink`), the smaller model is saved in ``shrunk_model/``
and its logits are compared with the masked model's.

Run: ``python -m experiments.run --config experiments/configs/structured.py``
(``--set pattern=2:4`` for N:M, ``pattern=heads aggregate=l2``, ...)
"""

from experiments.configs import demo


def get_config():
  return {**demo.get_config(), "sparsity": 0.5,
          "pattern": "heads_and_neurons", "shrink": True,
          "dense_baseline": False, "out": "runs/structured"}
