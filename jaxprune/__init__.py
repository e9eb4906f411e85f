"""jaxprune: Transformer pruning methods as optax transformations.

Example:
  >>> import optax, jaxprune
  >>> tx = jaxprune.platon(optax.adamw(8e-5), sparsity=0.9, total_steps=1000)
"""

from jaxprune import export
from jaxprune import patterns
from jaxprune import schedules
from jaxprune import selection
from jaxprune import step_kinds
from jaxprune import where
from jaxprune.methods.magnitude import magnitude, magnitude_scorer
from jaxprune.methods.mgpp import MgppPriorState, mgpp, mgpp_prior
from jaxprune.methods.movement import movement, movement_scorer
from jaxprune.methods.pins import pins, pins_scorer
from jaxprune.methods.platon import PlatonScoreState, platon, platon_scorer
from jaxprune.methods.seven import SevenScoreState, seven, seven_scorer
from jaxprune.methods.soft_movement import (MovementMasks, SoftMovement,
                                           soft_movement, topk_movement)
from jaxprune.methods.taylor import taylor, taylor_scorer
from jaxprune.report import sparsity_report, actual_sparsity
from jaxprune.step_kinds import StepKind, StepKindError, step_kind
from jaxprune.transform import PruneState, Scorer, prune

__version__ = "0.1.0"

__all__ = [
    "MgppPriorState", "PlatonScoreState", "PruneState", "Scorer",
    "SevenScoreState", "actual_sparsity", "export", "patterns", "magnitude",
    "magnitude_scorer",
    "mgpp", "mgpp_prior", "movement", "movement_scorer", "MovementMasks",
    "pins",
    "pins_scorer", "platon", "platon_scorer", "prune", "schedules",
    "selection", "seven", "seven_scorer", "SoftMovement", "soft_movement",
    "sparsity_report", "StepKind", "StepKindError", "step_kind",
    "step_kinds", "taylor", "topk_movement",
    "taylor_scorer", "where",
]
