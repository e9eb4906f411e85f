"""The demo with the classifier kernel drawn as HF's Flax BERT drew it.

HF's ``FlaxBertForSequenceClassificationModule`` builds its classifier as
``nn.Dense(num_labels)``, with Flax's default ``lecun_normal`` init (std
``1/sqrt(hidden)``: 0.051 for MiniLM-L6), while every other new kernel, HF
PyTorch's classifier and ours use ``normal(initializer_range = 0.02)``. A
diagnostic for the demo gap of docs/models.md:

    PYTHONPATH=. python results/head_init/lecun_head.py \\
        --config experiments/configs/demo.py \\
        --set seed=0 out=/tmp/lecun_head_s0 progress=False
"""
import sys

import jax
from flax import nnx

from experiments import run
from jaxprune.models import bert

_init = bert.BertForSequenceClassification.__init__


def _lecun_head(self, cfg, *, rngs):
  _init(self, cfg, rngs=rngs)
  if not cfg.is_roberta:
    k = self.classifier.kernel
    k.value = nnx.initializers.lecun_normal()(rngs.params(), k.value.shape,
                                              k.value.dtype)


bert.BertForSequenceClassification.__init__ = _lecun_head
run.main(sys.argv[1:])
