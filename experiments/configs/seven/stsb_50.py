"""SEVEN stsb (init_config: t_i 500, iter_num 2000, target_ratio 0.5).

With the script defaults (batch 32, 10 epochs) training ends before the
pruning window does, so the run ends below the target sparsity, as the
reference would (spec platon_seven.md section 2.6)."""

from experiments.configs import recipes

CONFIG = recipes.seven("stsb", warmup_steps=500, iter_num=2000, sparsity=0.5)
