#!/usr/bin/env bash
# What a lent GPU machine should run for this project, prepared as one command.
#
# On an H100/H200 machine with Python, jax (CUDA), flax, optax, orbax, chex,
# transformers, torch, pytest and pytest-xdist preinstalled and no package
# registry (run from the repository root, nothing installed):
#
#   PART=bench OUT=/tmp/gpu benchmarks/gpu_session.sh  # GPU timings (<= 8 min)
#   PART=tests OUT=/tmp/gpu benchmarks/gpu_session.sh  # test suite (<= 5 min)
#   OUT=/tmp/gpu benchmarks/gpu_session.sh             # both (over 10 min at worst)
#
# PART=bench times what training sees on the GPU (docs/performance.md):
#   * PLATON against dense, BERT-base 8 x 128 and 32 x 128, one program per
#     step kind, per-step and streamed (benchmarks/platon_overhead.py);
#   * magnitude pruning's ordinary and selection steps (method_overhead.py);
#   * exact selection over 85M scores against torch.kthvalue on the GPU
#     (selection.py);
#   * the host's cost per jit buffer on that machine (dispatch.py).
# PART=tests runs the test suite on that machine's CPU (JAX_PLATFORMS=cpu, as
# in `make test`) with the packages it has, a check of the current stack
# (jax 0.11, transformers 5, huggingface-hub 1.x) rather than of the GPU.
#
# Every step has its own time limit, writes its JSON and log under $OUT and
# goes on after a failure; a summary is printed last.
#
# Check the script on a CPU first (tiny model, one layer of scores, a few
# tests; about 5 minutes on 2 cores, 4:11 of them PART=bench):
#   SIZE=tiny SEL="--layers 1 --torch-device cpu --repeats 1" \
#     TESTS="tests/test_step_kinds.py -k platon" PYTHON=.venv/bin/python \
#     OUT=/tmp/gs benchmarks/gpu_session.sh
set -uo pipefail
PY=${PYTHON:-python3}
OUT=${OUT:-runs/gpu_session}
PART=${PART:-all}
SIZE=${SIZE:-base}
SEL=${SEL:---torch-device cuda --repeats 5}
TESTS=${TESTS:-tests jaxprune experiments --ignore=experiments/configs}
WORKERS=${WORKERS:-$(( $(nproc) > 2 ? $(nproc) - 2 : 2 ))}
mkdir -p "$OUT"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
case "$PART" in all|bench|tests) ;; *)
  echo "PART must be all, bench or tests, got '$PART'" >&2; exit 2;; esac

step() {  # step NAME LIMIT_S COMMAND...: run, log, keep going
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name: rc=$rc in $((SECONDS - t0)) s (limit $limit s)" | tee -a "$OUT/steps.txt"
  [[ $rc == 0 ]] || tail -n 15 "$OUT/$name.log"
}

step environment 60 "$PY" -c "
import platform, jax, jaxlib, flax, optax
print('python', platform.python_version(), 'jax', jax.__version__,
      'jaxlib', jaxlib.__version__, 'flax', flax.__version__,
      'optax', optax.__version__)
print('devices', jax.devices())
import jaxprune; print('jaxprune imports')"
cat "$OUT/environment.log"

if [[ $PART != tests ]]; then
  for b in 8 32; do
    step "platon_overhead_${b}x128" 150 "$PY" benchmarks/platon_overhead.py \
      --model-size "$SIZE" --no-pieces --batch "$b" --seq 128 --steps 20 \
      --streamed 50 --streamed-rounds 3 \
      --out "$OUT/platon_overhead_${b}x128.json"
  done
  step method_overhead_magnitude 90 "$PY" benchmarks/method_overhead.py \
    --model-size "$SIZE" --methods magnitude --no-pieces --rounds 4 \
    --streamed 50 --out "$OUT/method_overhead_magnitude.json"
  # shellcheck disable=SC2086
  step selection 60 "$PY" benchmarks/selection.py --skip-slow --no-scaling \
    $SEL --out "$OUT/selection.json"
  step dispatch 20 "$PY" benchmarks/dispatch.py --no-updates \
    --out "$OUT/dispatch.json"
fi

if [[ $PART != bench ]]; then
  # shellcheck disable=SC2086
  step tests 240 env JAX_PLATFORMS=cpu "$PY" -m pytest -q -n "$WORKERS" \
    --dist worksteal -p no:cacheprovider $TESTS
  tail -n 5 "$OUT/tests.log"
fi

"$PY" - "$OUT" <<'EOF'
import glob, json, os, sys
out = sys.argv[1]
pct = lambda x: "n/a" if x is None else f"{100 * x:+.1f}%"
for f in sorted(glob.glob(os.path.join(out, "platon_overhead_*.json"))):
  d = json.load(open(f))
  t = d["train"]
  print(f"{os.path.basename(f)}: dense median {1e3 * t['dense']['median_s']:.2f} ms")
  for ph in ("cubic", "final"):
    p = t[ph]
    s = t.get("streamed", {}).get(ph, {})
    print(f"  {ph}: mean {pct(p['mean_overhead'])}, worst step "
          f"{pct(p['worst_overhead'])}, selection steps "
          f"{pct(p['median_overhead_selection_steps'])}, others "
          f"{pct(p['median_overhead_other_steps'])}, streamed "
          f"{pct(s.get('overhead'))}")
  k = t.get("kinds")
  if k:
    print("  per step kind (median of repeats): " + ", ".join(
        f"{n} {pct(r['overhead'])}" for n, r in k.items()
        if isinstance(r, dict) and "overhead" in r))
f = os.path.join(out, "method_overhead_magnitude.json")
if os.path.exists(f):
  print(json.load(open(f)).get("markdown", ""))
f = os.path.join(out, "dispatch.json")
if os.path.exists(f):
  print("host cost per jit buffer: " + ", ".join(
      f"{r['program']} x{r['buffers']} {r['dispatch_us_per_buffer']:.2f} us"
      for r in json.load(open(f))["per_buffer"]))
f = os.path.join(out, "selection.json")
if os.path.exists(f):
  for dist, r in json.load(open(f))["results"].items():
    ratios = r.get("ratio_vs_torch", {})
    print(f"selection {dist}, n={r['n']}: " + ", ".join(
        f"{k} {1e3 * v['median_s']:.1f} ms"
        + (f" ({ratios[k]:.3f}x torch)" if k in ratios else "")
        for k, v in r["rows"].items() if "median_s" in v))
EOF
