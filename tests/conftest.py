"""Test setup: 8 fake CPU devices for the pmap and sharding tests.

XLA reads the flag once, when the backend starts, so it is set here before
anything imports jax.
"""
import os
import platform

# No fused multiply-add in the tests' CPU code. XLA contracts ``a * b + c``
# into an FMA inside a fusion, so two programs that fuse the same arithmetic
# differently (a step compiled for its kind and the traced step with its
# ``cond``) can round a float differently in the last bit. Without FMA they
# agree bit for bit, and tests/test_step_kinds.py asserts that. x86 only: the
# flag names an x86 instruction set.
_NO_FMA = (" --xla_cpu_max_isa=AVX"
           if platform.machine().lower() in ("x86_64", "amd64") else "")

# The tests' programs are tiny and compiled once or twice each: LLVM's
# cheaper pipeline cuts the suite's CPU time by about 40% (measured on
# tests/test_train.py: 196 -> 115 s of CPU) and changes no HLO (fusion,
# kernel and conditional counts are decided before LLVM).
#
# XLA:CPU's older elemental emitters instead of its fusion emitters, and one
# LLVM module per program: on the suite's many small programs with hundreds of
# kernels each, compiling is about a third faster (a tiny-BERT PLATON step:
# 5.6 -> 3.5-3.9 s). The HLO is the same except that a scatter (a loss's
# take_along_axis gradient) becomes a while loop; the tests that count
# control flow compile with XLA's defaults (helpers.compiled_text).
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + " --xla_force_host_platform_device_count=8"
    + " --xla_backend_optimization_level=0"
    + " --xla_llvm_disable_expensive_passes=true"
    + " --xla_cpu_use_fusion_emitters=false"
    + " --xla_cpu_parallel_codegen_split_count=1"
    + _NO_FMA).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One persistent compilation cache for the whole run, shared by the test
# workers and the subprocess scenarios (environment variables reach both):
# many tests compile the same small programs (tiny models, eager ops), and
# on this 2-core CPU compiling is most of the suite's time. Keyed by the
# program and jax's version, so a stale entry is never used.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    ".pytest_cache", "jax-compilation-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


import gc  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
  """Drops jax's compiled-program caches after each test module.

  A single process compiling ~1000 XLA programs grew to 4-6 GB and twice
  crashed inside XLA's CPU compiler; tests never reuse another module's
  programs, so clearing between modules costs nothing.
  """
  yield
  import jax
  jax.clear_caches()
  gc.collect()
