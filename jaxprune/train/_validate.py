"""Argument checks for the train steps and the loop: one clear ``ValueError``.

Every message names the argument, the value it got and what is allowed.
"""

from __future__ import annotations

import numbers
from typing import Any

import jax
import numpy as np
import optax

__all__ = [
    "check_callable",
    "check_transformation",
    "check_int",
    "check_optional_int",
    "check_bool",
    "check_key",
    "check_tree_matches",
    "leaf_specs",
]


def check_callable(name: str, value: Any, *, optional: bool = False) -> None:
  """Checks that ``value`` is callable (or ``None`` when ``optional``)."""
  if optional and value is None:
    return
  if not callable(value):
    allowed = "a callable or None" if optional else "a callable"
    raise ValueError(f"`{name}` must be {allowed}, got {value!r}")


def check_transformation(name: str, value: Any) -> None:
  """Checks that ``value`` is an optax ``GradientTransformation``."""
  if isinstance(value, optax.GradientTransformation):
    return
  # Duck typing: objects with callable init/update work with optax too.
  if (not isinstance(value, type) and callable(getattr(value, "init", None))
      and callable(getattr(value, "update", None))):
    return
  raise ValueError(
      f"`{name}` must be an optax GradientTransformation (with `init` and "
      f"`update`), got {value!r}")


def check_int(name: str, value: Any, *, minimum: int) -> int:
  """Checks that ``value`` is an integer ``>= minimum`` and returns it."""
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}")
  if value < minimum:
    raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value}")
  return int(value)


def check_optional_int(name: str, value: Any, *, minimum: int) -> int | None:
  """Like :func:`check_int`, ``None`` allowed."""
  if value is None:
    return None
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise ValueError(
        f"`{name}` must be None or an integer >= {minimum}, got {value!r}")
  if value < minimum:
    raise ValueError(
        f"`{name}` must be None or an integer >= {minimum}, got {value}")
  return int(value)


def check_bool(name: str, value: Any) -> bool:
  """Checks that ``value`` is a Python or numpy bool."""
  if not isinstance(value, (bool, np.bool_)):
    raise ValueError(f"`{name}` must be True or False, got {value!r}")
  return bool(value)


def check_key(name: str, value: Any) -> None:
  """Checks that ``value`` is one PRNG key: typed, or raw uint32 ``(n,)``

  (``n = 2`` for the default threefry implementation, 4 for ``rbg``).
  """
  if isinstance(value, (jax.Array, np.ndarray)):
    dtype = value.dtype
    if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) and value.ndim == 0:
      return
    if dtype == np.uint32 and value.ndim == 1 and value.shape[0] >= 2:
      return
  shape = getattr(value, "shape", None)
  dtype = getattr(value, "dtype", None)
  desc = f"an array of shape {shape} and dtype {dtype}" if shape is not None \
      else repr(value)
  raise ValueError(
      f"`{name}` must be a PRNG key (jax.random.key(seed) or "
      f"jax.random.PRNGKey(seed)), got {desc}")


def _key_name(k: Any) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(k, attr):
      return str(getattr(k, attr))
  return str(k)


def leaf_specs(tree: Any) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
  """``{"a/b/0": (shape, dtype)}`` for every array leaf of ``tree``.

  Dict keys, attribute names (NamedTuple fields, which orbax stores as dict
  keys) and sequence indices all become path components, so a tree and the
  metadata of its orbax checkpoint give the same paths. Empty nodes
  (``None``, ``optax.MaskedNode()``) have no leaves.
  """
  out = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
    name = "/".join(_key_name(k) for k in path)
    shape = getattr(leaf, "shape", None)
    dtype = getattr(leaf, "dtype", None)
    if shape is None:
      shape, dtype = np.shape(leaf), np.asarray(leaf).dtype
    out[name] = (tuple(shape), None if dtype is None else np.dtype(dtype))
  return out


def check_tree_matches(saved: dict, expected: dict, *, what: str) -> None:
  """Raises ``ValueError`` at the first difference between two leaf specs.

  Args:
    saved: :func:`leaf_specs` of what was written.
    expected: :func:`leaf_specs` of what the caller expects.
    what: a description of ``saved`` for the message.
  """
  missing = sorted(set(expected) - set(saved))
  extra = sorted(set(saved) - set(expected))
  in_layout = lambda names, part: [n for n in names if f"/{part}/" in f"/{n}/"]
  if (in_layout(extra, "masks") and in_layout(missing, "mask_stacks")
      and not in_layout(expected, "masks")):
    raise ValueError(
        f"{what} was written by an earlier jaxprune, which kept the pruning "
        "state's masks as one array per leaf, "
        f"e.g. {in_layout(extra, 'masks')[0]!r}; this version stacks them by "
        "shape (jaxprune.stacking) and does not read that layout: finish "
        "that run with the version that wrote it, or start again in another "
        "directory")
  hint = ("it was written by another configuration (other params, optimizer, "
          "pruning method or `where`); use another directory or delete it")
  if missing or extra:
    parts = []
    if missing:
      parts.append(f"{len(missing)} leaves expected but not in the "
                   f"checkpoint, e.g. {missing[:3]}")
    if extra:
      parts.append(f"{len(extra)} leaves in the checkpoint but not expected, "
                   f"e.g. {extra[:3]}")
    raise ValueError(f"{what} does not match the given params and "
                     f"opt_state: {'; '.join(parts)}; {hint}")
  for name in sorted(expected):
    (s_shape, s_dtype), (e_shape, e_dtype) = saved[name], expected[name]
    dtype_differs = (s_dtype is not None and e_dtype is not None
                     and s_dtype != e_dtype)
    if s_shape != e_shape or dtype_differs:
      raise ValueError(
          f"{what} does not match the given params and opt_state: leaf "
          f"{name!r} is {s_dtype}{list(s_shape)} in the checkpoint and "
          f"{e_dtype}{list(e_shape)} here; {hint}")
