"""experiments.run multi-host, for real: two processes on this machine.

Two processes with 2 fake CPU devices each (``jax.distributed`` over
localhost, gloo CPU collectives, ``parallel=sharded distributed=True``)
train the same tiny PLATON config as one process with 4 fake devices
(``parallel=sharded``): the same 4-device ``data`` mesh, global batch and
data order. All three processes run at once, each in a fresh interpreter.

Masks must be equal. Params are compared to 1e-6 (absolute), not bitwise:
the losses agree, but the gradient all-reduce sums the 4 devices' parts in
another order (gloo across the two processes, XLA's in-process reduction in
the single one), so some float32 gradients differ in their last bits and
Adam carries that into the params (seen: 21 of 41 leaves bitwise equal, max
difference 3.7e-9).

XLA compiles dominate the run time; the tests' cheaper compile flags
(``tests/xla_flags.py``, both sides alike) make them cheaper.
"""
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tests import xla_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETS = ["data=smoke", "model=tiny", "steps=4", "batch_size=8",
        "eval_batch_size=16", "seq_len=32", "progress=False",
        "method=platon", "sparsity=0.5",
        # delta_t=1: a mask event every step, so the masks prune.
        "method_args={'warmup_steps': 1, 'final_steps': 1, 'delta_t': 1}",
        "parallel=sharded",
        # One traced program per process (the per-kind programs equal it
        # sharded: tests/test_step_kinds.py).
        "step_kinds=False"]
TIMEOUT = 420  # seconds for all three; 92 s on 2 cores under a load of 10


def _cpu_collectives_missing() -> str | None:
  """Why two CPU processes cannot run collectives here (None: they can)."""
  import jax
  if not hasattr(jax, "distributed") or not hasattr(jax.distributed,
                                                    "initialize"):
    return "this jax has no jax.distributed.initialize"
  if "jax_cpu_collectives_implementation" not in jax.config.values:
    return "this jax has no jax_cpu_collectives_implementation option"
  from jax._src import lib
  ext = getattr(lib, "_jax", None) or getattr(lib, "xla_extension", None)
  if not hasattr(ext, "make_gloo_tcp_collectives"):
    return "this jaxlib is built without gloo CPU collectives"
  return None


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _env(devices: int, **extra) -> dict:
  env = {k: v for k, v in os.environ.items()
         if not k.startswith(("JAXPRUNE_", "JAX_COORDINATOR"))}
  env.update(JAX_PLATFORMS="cpu", PYTHONPATH=ROOT,
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices} "
             + xla_flags.fast_compile(), **extra)
  return env


def _start(out, log, env, *sets) -> subprocess.Popen:
  return subprocess.Popen(
      [sys.executable, "-m", "experiments.run", "--save-params", "--set",
       *SETS, *sets, f"out={out}"],
      cwd=ROOT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def _wait(procs: dict) -> None:
  """Waits for all; on a failure or the timeout kills the rest and fails."""
  deadline = time.monotonic() + TIMEOUT
  try:
    while any(p.poll() is None for p, _ in procs.values()):
      failed = [n for n, (p, _) in procs.items()
                if p.poll() not in (None, 0)]
      if failed or time.monotonic() > deadline:
        break
      time.sleep(0.5)
  finally:
    for p, _ in procs.values():
      if p.poll() is None:
        p.kill()
        p.wait()
  bad = {n: (p.returncode, log) for n, (p, log) in procs.items()
         if p.returncode != 0}
  if bad:
    msg = []
    for n, (rc, log) in bad.items():
      msg.append(f"--- {n}: exit {rc} (negative: killed at the {TIMEOUT} s "
                 f"timeout or by a failed peer)\n"
                 + "".join(open(log).readlines()[-25:]))
    pytest.fail("\n".join(msg))


def _load(folder, name):
  from flax import serialization
  with open(os.path.join(folder, name + ".msgpack"), "rb") as f:
    return serialization.msgpack_restore(f.read())


def test_two_processes_train_like_one(tmp_path):
  reason = _cpu_collectives_missing()
  if reason:
    pytest.skip(reason)
  import jax
  port = _free_port()
  multi, single = tmp_path / "multi", tmp_path / "single"
  t0 = time.monotonic()
  procs = {
      f"process {i}": (_start(
          multi, tmp_path / f"p{i}.log",
          _env(2, JAXPRUNE_COORDINATOR=f"localhost:{port}",
               JAXPRUNE_NUM_PROCESSES="2", JAXPRUNE_PROCESS_ID=str(i)),
          "distributed=True"), tmp_path / f"p{i}.log")
      for i in range(2)}
  procs["one process"] = (_start(single, tmp_path / "one.log", _env(4)),
                          tmp_path / "one.log")
  _wait(procs)
  print(f"three processes: {time.monotonic() - t0:.0f} s")

  s_multi = json.loads((multi / "summary.json").read_text())
  s_single = json.loads((single / "summary.json").read_text())
  assert (s_multi["processes"], s_single["processes"]) == (2, 1)
  assert s_multi["devices"].startswith("4 x")
  assert s_single["devices"].startswith("4 x")
  assert s_multi["actual_sparsity"] == s_single["actual_sparsity"]
  assert abs(s_single["actual_sparsity"] - 0.5) < 1e-3
  assert s_multi["metrics"] == s_single["metrics"]
  # Process 0 alone logs: as many records as the single run's.
  lines = lambda d: (d / "log.jsonl").read_text().splitlines()
  assert len(lines(multi)) == len(lines(single)) == 2
  # Both processes wrote their part of one complete orbax checkpoint.
  assert (multi / "ckpt" / "4" / "commit_success.txt").exists()
  assert sorted(os.listdir(multi / "ckpt" / "4" / "default" /
                           "array_metadatas")) == ["process_0", "process_1"]

  m_multi, m_single = _load(multi, "masks"), _load(single, "masks")
  assert jax.tree.structure(m_multi) == jax.tree.structure(m_single)
  kept = sum(m.sum() for m in jax.tree.leaves(m_single)) / sum(
      m.size for m in jax.tree.leaves(m_single))
  assert abs(kept - 0.5) < 1e-3   # the masks do prune (half of the weights)
  for a, b in zip(jax.tree.leaves(m_multi), jax.tree.leaves(m_single)):
    np.testing.assert_array_equal(a, b)

  p_multi, p_single = _load(multi, "params"), _load(single, "params")
  assert jax.tree.structure(p_multi) == jax.tree.structure(p_single)
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(p_multi),
                          jax.tree.leaves(p_single)):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6,
                               err_msg=jax.tree_util.keystr(path))
