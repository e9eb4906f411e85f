#!/usr/bin/env bash
# Every paper configuration in turn, through one launcher, then the table.
#
# NOT RUN here (no hub access, no accelerator): see docs/reproducing.md.
#
# Usage:
#   scripts/paper_runs.sh scripts/gpu.sh platon          # PLATON GLUE + SQuAD
#   scripts/paper_runs.sh scripts/tpu_vm.sh mgpp
set -euo pipefail
py=${PYTHON:-python3}   # the interpreter that has jaxprune installed
launcher=${1:?scripts/gpu.sh or scripts/tpu_vm.sh}
family=${2:-platon}
dirs=(platon mgpp seven pins vit)
[[ "$family" != all ]] && dirs=("$family")
for d in "${dirs[@]}"; do
  for config in experiments/configs/"$d"/*.py; do
    OUT="runs/$d/$(basename "$config" .py)" "$launcher" "$config"
  done
done
"$py" -m experiments.collect_results runs --best --out runs/results.md
