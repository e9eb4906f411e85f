#!/usr/bin/env bash
# One paper run on a single Cloud TPU VM (e.g. v3-8, v4-8, v5e-8).
#
# NOT RUN: written for TPU VMs, which the machine this repository was built
# on cannot reach. The experiment scripts it calls were run here only with
# data=smoke model=tiny on a CPU (see docs/reproducing.md).
#
# Usage (on the TPU VM, from the repository root):
#   scripts/tpu_vm.sh experiments/configs/platon/mnli_90.py [extra flags]
#   scripts/tpu_vm.sh experiments/configs/platon/squad_90.py
#   scripts/tpu_vm.sh experiments/configs/vit/cifar100_platon_90.py
#
# The batch is split over the VM's TPU cores with a sharded jit
# (--parallel sharded; params and pruning state replicated, batch sharded on
# the "data" axis), so the batch size must be a multiple of the core count.
# Set SETUP=1 to install the package first.
set -euo pipefail
py=${PYTHON:-python3}   # the interpreter that has jaxprune installed
config=${1:?config file}
shift 1
if [[ "${SETUP:-0}" == 1 ]]; then
  "$py" -m pip install -U "jax[tpu]"
  "$py" -m pip install -e ".[train]"
fi
name=$(basename "$config" .py)
out=${OUT:-runs/$(basename "$(dirname "$config")")/$name}
"$py" -m experiments.run --config "$config" \
  --set parallel=sharded out="$out" "$@"
"$py" -m experiments.collect_results "$(dirname "$out")"
