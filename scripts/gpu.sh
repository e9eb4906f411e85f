#!/usr/bin/env bash
# One paper run on one or several NVIDIA GPUs.
#
# NOT RUN with GPUs here: the machine this repository was built on has none.
# The experiment scripts were run only with data=smoke model=tiny on a CPU (see
# docs/reproducing.md).
#
# One host, all its GPUs (sharded jit over a "data" mesh; the batch size must
# be a multiple of the GPU count; CUDA_VISIBLE_DEVICES picks the GPUs):
#   scripts/gpu.sh experiments/configs/platon/mnli_90.py
#   CUDA_VISIBLE_DEVICES=0 scripts/gpu.sh experiments/configs/platon/squad_90.py
#
# Several hosts: start the same command on every host with
# JAXPRUNE_DISTRIBUTED=1; jax.distributed.initialize() finds its peers by
# itself under SLURM or Open MPI (otherwise export JAX_COORDINATOR_ADDRESS,
# JAX_NUM_PROCESSES and JAX_PROCESS_ID), e.g.
#   srun --nodes=2 --ntasks-per-node=1 env JAXPRUNE_DISTRIBUTED=1 \
#     scripts/gpu.sh experiments/configs/platon/qqp_90.py
# --out must then be on a filesystem all hosts share.
#
# PARALLEL=pmap uses jax.pmap instead of the sharded jit (single host).
# Set SETUP=1 to install the package (CUDA 12 wheels) first.
set -euo pipefail
py=${PYTHON:-python3}   # the interpreter that has jaxprune installed
config=${1:?config file}
shift 1
if [[ "${SETUP:-0}" == 1 ]]; then
  "$py" -m pip install -U "jax[cuda12]"
  "$py" -m pip install -e ".[train]"
fi
name=$(basename "$config" .py)
out=${OUT:-runs/$(basename "$(dirname "$config")")/$name}
"$py" -m experiments.run --config "$config" \
  --set parallel="${PARALLEL:-sharded}" out="$out" "$@"
