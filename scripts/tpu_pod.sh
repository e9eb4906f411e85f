#!/usr/bin/env bash
# One paper run on a Cloud TPU pod slice (several hosts), from your machine.
#
# NOT RUN: written for TPU pod slices, which the machine this repository was
# built on cannot reach. The experiment scripts it calls were run here only
# with data=smoke model=tiny on a CPU (see docs/reproducing.md).
#
# Every host of the slice runs the same command (gcloud ... --worker=all).
# JAXPRUNE_DISTRIBUTED=1 makes the experiment script call
# jax.distributed.initialize() (which finds the other hosts by itself on
# TPU), then train with a sharded jit over all the slice's cores: each host
# tokenises the data, takes its own slice of every global batch and hands
# it over with jaxprune.train.host_local_to_global. Every host evaluates the
# whole dev set; host 0 writes results.json.
#
# --out must be on storage all hosts share (orbax writes the checkpoints from
# every host), e.g. a gcsfuse mount of a bucket at the same path on all hosts.
#
# Usage:
#   TPU=my-v4-32 ZONE=us-central2-b OUT=/mnt/gcs/runs/platon/mnli_90 \
#     scripts/tpu_pod.sh experiments/configs/platon/mnli_90.py
# The repository must already be at ~/jaxprune on every host (e.g. copied
# with `gcloud compute tpus tpu-vm scp --recurse --worker=all`); SETUP=1
# also installs the package there first.
set -euo pipefail
config=${1:?config file}
shift 1
: "${TPU:?name of the TPU pod slice}" "${ZONE:?its zone}" "${OUT:?shared output folder}"
setup=""
py=${PYTHON:-python3}
if [[ "${SETUP:-0}" == 1 ]]; then
  setup="$py -m pip install -U 'jax[tpu]' && $py -m pip install -e '.[train]' && "
fi
gcloud compute tpus tpu-vm ssh "$TPU" --zone "$ZONE" --worker=all --command \
  "cd ~/jaxprune && ${setup}JAXPRUNE_DISTRIBUTED=1 $py -m experiments.run \
   --config $config --set parallel=sharded progress=False out=$OUT $*"
