"""Test setup: 8 fake CPU devices for the pmap and sharding tests.

XLA reads the flag once, when the backend starts, so it is set here before
anything imports jax.
"""
import os

from tests import xla_flags

# Appended once (the xdist workers inherit the controller's environment).
_flags = os.environ.get("XLA_FLAGS", "").split()
for _f in ("--xla_force_host_platform_device_count=8",
           *xla_flags.fast_compile().split(), xla_flags.NO_FMA):
  if _f and _f not in _flags:
    _flags.append(_f)
os.environ["XLA_FLAGS"] = " ".join(_flags)
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
