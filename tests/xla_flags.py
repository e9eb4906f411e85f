"""XLA flags for the tests' CPU programs (no jax import: conftest.py sets
them before jax loads, and subprocess tests pass them on).

The tests' programs are tiny and compiled once or twice each, so compiling
is most of the suite's time:

- LLVM's cheaper pipeline cuts the suite's CPU time by about 40% (measured
  on tests/test_train.py: 196 -> 115 s of CPU) and changes no HLO (fusion,
  kernel and conditional counts are decided before LLVM).
- XLA:CPU's elemental emitters instead of its fusion emitters, and one LLVM
  module per program: the many small programs with hundreds of kernels each
  compile about a third faster again (a tiny-BERT PLATON step: 5.6 -> 3.5-3.9
  s; the fresh clone's tests 937.6 -> 585.8 s). The HLO is the same except
  that a scatter (a loss's take_along_axis gradient) becomes a while loop, so
  the tests that count control flow compile with XLA's defaults
  (helpers.compiled_text).

XLA refuses to start on a flag it does not know, and these are debug
options that a later jaxlib may drop: :func:`fast_compile` keeps those this
jaxlib accepts.
"""
import os
import platform
import subprocess
import sys

_FAST = ("--xla_backend_optimization_level=0",
         "--xla_llvm_disable_expensive_passes=true",
         "--xla_cpu_use_fusion_emitters=false",
         "--xla_cpu_parallel_codegen_split_count=1")

# No fused multiply-add. XLA contracts ``a * b + c`` into an FMA inside a
# fusion, so two programs that fuse the same arithmetic differently (a step
# compiled for its kind and the traced step with its ``cond``) can round a
# float differently in the last bit. Without FMA they agree bit for bit, and
# tests/test_step_kinds.py asserts that. x86 only: the flag names an x86
# instruction set.
NO_FMA = ("--xla_cpu_max_isa=AVX"
          if platform.machine().lower() in ("x86_64", "amd64") else "")

_ENV = "JAXPRUNE_TEST_FAST_XLA_FLAGS"  # the probe's result, for subprocesses


def _accepted(flags: str) -> bool:
  """Whether jax starts its CPU backend with ``XLA_FLAGS=flags``."""
  env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-c", "import jax; jax.devices()"],
                        env=env, capture_output=True).returncode == 0


def fast_compile() -> str:
  """The cheap-compile flags this jaxlib accepts, as one string.

  Probed once per test run (a subprocess, about 2 s) and kept in the
  environment, which the test workers and subprocesses inherit.
  """
  if _ENV not in os.environ:
    flags = list(_FAST)
    if not _accepted(" ".join(flags)):
      flags = [f for f in flags if _accepted(f)]
    os.environ[_ENV] = " ".join(flags)
  return os.environ[_ENV]
