"""SEVEN rte (init_config: t_i 200, iter_num 1000, target_ratio 0.6).

With the script defaults (batch 32, 10 epochs) training ends before the
pruning window does, so the run ends below the target sparsity, as the
reference would (spec platon_seven.md section 2.6)."""

from experiments.configs import recipes

CONFIG = recipes.seven("rte", warmup_steps=200, iter_num=1000, sparsity=0.6)
