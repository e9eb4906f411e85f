"""Test setup: 8 fake CPU devices for the pmap and sharding tests.

XLA reads the flag once, when the backend starts, so it is set here before
anything imports jax.
"""
import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")


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
