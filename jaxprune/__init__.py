"""jaxprune: Transformer pruning methods as optax transformations.

Example:
  >>> import optax, jaxprune
  >>> tx = jaxprune.platon(optax.adamw(8e-5), sparsity=0.9, total_steps=1000)
"""

from jaxprune import schedules
from jaxprune import selection
from jaxprune import where
from jaxprune.methods.magnitude import magnitude, magnitude_scorer
from jaxprune.methods.platon import PlatonScoreState, platon, platon_scorer
from jaxprune.methods.taylor import taylor, taylor_scorer
from jaxprune.report import sparsity_report, actual_sparsity
from jaxprune.transform import PruneState, Scorer, prune

__version__ = "0.1.0"

__all__ = [
    "PlatonScoreState", "PruneState", "Scorer", "actual_sparsity",
    "magnitude", "magnitude_scorer", "platon", "platon_scorer", "prune",
    "schedules", "selection", "sparsity_report", "taylor", "taylor_scorer",
    "where",
]
