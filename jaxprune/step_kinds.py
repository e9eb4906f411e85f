"""Step kinds: the host decides what a pruning step does, so that the device
program of an ordinary step has no control flow.

Whether a step is a mask event, selects new masks, applies them, or closes a
PLATON window is integer arithmetic on the step index, which the training
loop knows. Traced on the device (``tx.update(grads, state, params)``), those
decisions become a ``lax.cond``; on XLA:GPU every ``conditional`` copies its
predicate to the host and blocks until the stream drains, and the untaken
branch still splits fusions and copies buffers. Given a :class:`StepKind`
(``tx.update(grads, state, params, step_kind=kind)``) the decisions are
Python constants: an ordinary step compiles to the inner optimizer's kernels
with the score update fused in, and the train steps compile one program per
kind (a handful per run) and pick it on the host.

A kind computes the same arithmetic as the traced step: the same masks,
counts and decisions, and bitwise the same floats where the backend does not
contract ``a * b + c`` into a fused multiply-add (tested on CPU with
``XLA_FLAGS=--xla_cpu_max_isa=AVX``). With FMA, which XLA:CPU on AVX2 and
XLA:GPU use inside a fusion, the two differently fused programs can round a
float differently in its last bit. A wrong kind (a
loop whose step counter disagrees with the optimizer state, say after
resuming with the wrong step) is detected on the device: the state's
``kind_mismatch`` flag is set and :func:`check` raises :class:`StepKindError`
when the loop next reads a value (``jaxprune.train.fit`` checks at every log
point and before every checkpoint).

Example:
  >>> import jax, jax.numpy as jnp, optax, jaxprune
  >>> params = {"w": jnp.arange(1.0, 9.0).reshape(2, 4)}
  >>> tx = jaxprune.magnitude(optax.sgd(0.1), sparsity=0.5, total_steps=10)
  >>> state = tx.init(params)
  >>> kind = jaxprune.step_kind(tx, 0)
  >>> kind
  StepKind(select=False, apply=True, scorer=None)
  >>> grads = jax.tree.map(jnp.ones_like, params)
  >>> updates, state = tx.update(grads, state, params, step_kind=kind)
  >>> jaxprune.step_kinds.check(state)  # raises StepKindError on a mismatch
"""

from __future__ import annotations

from typing import Any, Callable, Hashable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["StepKind", "StepKindError", "HostKinds", "find", "step_kind",
           "mismatch", "check"]

_ATTR = "_jaxprune_step_kinds"


class StepKind(NamedTuple):
  """What one step of a pruning transformation does (static, hashable).

  Attributes:
    select: masks are selected again from the scores at this step.
    apply: the masks are applied (pruned weights set to 0) at this step.
    scorer: the scorer's own static decision (PLATON and PINS: whether the
      step closes a window and updates ``Ibar``/``Ubar``; SEVEN: whether the
      step is in its scoring window), ``None`` if the scorer has none.
  """
  select: bool
  apply: bool
  scorer: Hashable = None


class StepKindError(RuntimeError):
  """A step ran with a :class:`StepKind` that its optimizer state contradicts."""


class HostKinds:
  """The kind of every step of one pruning transformation, on the host.

  Built by :func:`jaxprune.prune`; reached through :func:`step_kind`. The
  traced decisions (mask event, frozen phase, ``k`` per group, scorer hint)
  are evaluated for blocks of steps at once on the CPU, then the
  "did anything change since the last selection" rule of the traced step is
  replayed from step 0, so the kind of a step depends on its index only.

  Args:
    flags: ``step -> (event, apply, changes, k, scorer_hint)``, jnp code
      vmappable over the step; ``k`` is ``(G,)`` int32, ``scorer_hint`` a
      bool scalar (ignored when ``has_scorer_hint`` is false).
    uses_params: the scorer's ``uses_params`` (every event selects).
    has_scorer_hint: whether the scorer takes a static hint.
  """

  _BLOCK = 4096

  def __init__(self, flags: Callable[[jax.Array], tuple],
               uses_params: bool, has_scorer_hint: bool):
    self._flags = flags
    self._uses_params = bool(uses_params)
    self._has_hint = bool(has_scorer_hint)
    self._fn = None
    self._kinds: list[StepKind] = []
    self._stale = True
    self._last_k: Optional[np.ndarray] = None

  def _extend(self, end: int) -> None:
    if self._fn is None:
      self._fn = jax.jit(jax.vmap(self._flags))
    cpu = jax.local_devices(backend="cpu")[0]  # multi-host: this host's
    while len(self._kinds) < end:
      start = len(self._kinds)
      steps = np.arange(start, start + self._BLOCK, dtype=np.int32)
      with jax.default_device(cpu):
        event, apply, changes, k, hint = jax.device_get(
            self._fn(jax.device_put(steps, cpu)))
      for i in range(self._BLOCK):
        self._stale = self._stale or bool(changes[i]) or self._uses_params
        ki = k[i]
        if self._last_k is None:
          self._last_k = np.zeros_like(ki)
        select = bool(event[i]) and (self._stale or
                                     bool(np.any(ki != self._last_k)))
        if select:
          self._stale = False
          self._last_k = ki
        self._kinds.append(StepKind(
            select, bool(apply[i]), bool(hint[i]) if self._has_hint else None))

  def __call__(self, step: int) -> StepKind:
    step = int(step)
    if not 0 <= step < 2**31 - 1:
      raise ValueError(f"`step` must be in [0, 2**31 - 1), got {step}")
    if step >= len(self._kinds):
      self._extend(step + 1)
    return self._kinds[step]


def _children(x: Any) -> list[Any]:
  """Objects an optax transformation may hold its inner transformations in."""
  out = []
  if isinstance(x, tuple):  # NamedTuples (GradientTransformation), tuples
    out.extend(x)
  elif isinstance(x, list):
    out.extend(x)
  elif isinstance(x, dict):
    out.extend(x.values())
  elif callable(x):
    for cell in getattr(x, "__closure__", None) or ():
      try:
        out.append(cell.cell_contents)
      except ValueError:  # empty cell
        pass
    if hasattr(x, "__self__"):  # bound method, e.g. MultiSteps
      out.append(x.__self__)
  elif hasattr(x, "__dict__"):
    out.extend(vars(x).values())
  return out


def find(tx: Any) -> Optional[HostKinds]:
  """The :class:`HostKinds` of the one pruning transformation inside ``tx``.

  Looks through ``tx`` and what it wraps (``optax.chain``,
  ``optax.masked``, ``inject_hyperparams``...). Returns ``None`` when ``tx``
  holds no pruning transformation, or several (their kinds would differ; the
  traced step is used then).
  """
  found, seen, todo = [], set(), [(tx, 0)]
  while todo:
    x, depth = todo.pop()
    if id(x) in seen or depth > 12:
      continue
    seen.add(id(x))
    kinds = getattr(x, _ATTR, None) if callable(x) else None
    if isinstance(kinds, HostKinds):
      if all(kinds is not f for f in found):
        found.append(kinds)
      continue
    if isinstance(x, (str, bytes, int, float, np.ndarray, jax.Array)):
      continue
    todo.extend((c, depth + 1) for c in _children(x))
  return found[0] if len(found) == 1 else None


def step_kind(tx: Any, step: int) -> Optional[StepKind]:
  """The :class:`StepKind` of step ``step`` (0-based) for ``tx``.

  Pass it to ``tx.update(grads, state, params, step_kind=kind)``, and compile
  one program per distinct kind (it is hashable; make it a static argument of
  your jitted step). ``step`` must equal the pruning state's ``count`` (the
  number of earlier updates); a mismatch is detected on the device (see
  :func:`check`).

  Args:
    tx: the pruning transformation, or a transformation that wraps exactly
      one (e.g. ``optax.chain(optax.clip_by_global_norm(1.0), tx)``).
    step: the step index, a Python int.

  Returns:
    The kind, or ``None`` if ``tx`` holds no (or more than one) pruning
    transformation: then call ``tx.update`` without ``step_kind``.
  """
  kinds = find(tx)
  return None if kinds is None else kinds(step)


def mismatch(opt_state: Any) -> jax.Array:
  """Whether any pruning state in ``opt_state`` ran a step of the wrong kind
  (a bool array; under ``pmap``, one per replica)."""
  from jaxprune.transform import find_prune_states  # pylint: disable=g-import-not-at-top
  flags = [st.kind_mismatch for st in find_prune_states(opt_state)]
  if not flags:
    return jnp.asarray(False)
  out = flags[0]
  for f in flags[1:]:
    out = out | f
  return out


def check(tree: Any) -> None:
  """Raises :class:`StepKindError` if a step of the wrong kind has run.

  Args:
    tree: an optimizer state, or a train step's metrics dict (its
      ``"kind_mismatch"`` entry).

  Raises:
    StepKindError: naming what to do. Reads one scalar: call it where the
      loop reads values anyway (log points, checkpoints).
  """
  if isinstance(tree, dict) and "kind_mismatch" in tree:
    bad = tree["kind_mismatch"]
  else:
    bad = mismatch(tree)
  if bool(np.any(np.asarray(bad))):
    raise StepKindError(
        "a pruning step ran with a `step_kind` that does not match its "
        "optimizer state: the step index given to the train step (or to "
        "jaxprune.step_kind) differs from the state's `count` (the number of "
        "earlier updates), e.g. after resuming with the wrong step. The "
        "masks and scores may differ from the traced step's from then on; "
        "restart from a checkpoint with matching step indices, or call "
        "tx.update without `step_kind`")
