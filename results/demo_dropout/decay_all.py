"""The demo's PLATON run with AdamW's weight decay on every leaf, biases and
LayerNorms included, as the HF Flax demo script of commit 2a357b9 had it
(the experiment runner leaves them out). A diagnostic for docs/models.md:

    PYTHONPATH=. python results/demo_dropout/decay_all.py \
        --config experiments/configs/demo.py \
        --set seed=0 dense_baseline=False out=/tmp/decay_all_s0 progress=False
"""
import sys

import jax

from experiments import optimizer, run

optimizer.decay_mask = lambda params: jax.tree.map(lambda _: True, params)
run.main(sys.argv[1:])
