"""Train steps (jit, pmap, sharded jit) and a training loop with checkpoints."""

from jaxprune.train import distill
from jaxprune.train import hf
from jaxprune.train.loop import Checkpointer, find_prune_states, fit, mask_sparsity
from jaxprune.train.steps import (host_local_to_global, make_eval_step,
                                  make_pmap_train_step, make_sharded_train_step,
                                  make_train_step, opt_state_shardings,
                                  replicate)

__all__ = ["distill", "hf", "Checkpointer", "find_prune_states", "fit", "host_local_to_global",
           "make_eval_step", "make_pmap_train_step", "make_sharded_train_step",
           "make_train_step", "mask_sparsity", "opt_state_shardings",
           "replicate"]
