"""Train and eval steps for any model: single device, ``pmap`` and sharded ``jit``.

The steps are model-agnostic. They take a loss function

    loss_fn(params, batch, rng) -> (loss, aux)

where ``rng`` is a per-step (and, under ``pmap``, per-device) PRNG key for
dropout and ``aux`` a dict of scalar metrics, and any optax transformation
(pruning or not). Params and optimizer state are donated, so XLA updates them
in place (without donation step times swing by ~40% and memory doubles).

Step kinds: when ``tx`` holds a pruning transformation and the step index is
a Python int, each step asks :func:`jaxprune.step_kind` what the step does
and runs the program compiled for that kind (a handful per run, compiled on
first use), so ordinary steps carry no ``cond`` (on a GPU each is a host
synchronisation). The metrics then include ``kind_mismatch``, which
:func:`jaxprune.train.fit` checks at every log point
(:func:`jaxprune.step_kinds.check`). A traced step index falls back to the
traced program, and so does every step with ``step_kinds=False``: one
program, compiled once, which suits runs of a few steps (smoke tests, short
CPU runs) where compiling every kind costs more than the syncs it saves.

Frozen inputs (a distillation teacher): every ``make_*_train_step`` takes
``frozen=tree``, a pytree the step passes to the loss as a fourth argument,

    loss_fn(params, batch, rng, frozen) -> (loss, aux)

without differentiating it or changing it. It is placed on the devices once
at construction (a copy: single device; replicated on every device: ``pmap``;
with ``frozen_shardings``, replicated by default: sharded ``jit``) and given
to the compiled program as an ordinary, never-donated argument, not baked in
as a constant, so a 110M-parameter teacher neither bloats the HLO nor
travels per step, and the step's signature stays ``step(params, opt_state,
batch, rng, step_index)`` (what :func:`jaxprune.train.fit` calls).
``step.set_frozen(tree)`` swaps it (e.g. a refreshed teacher) without
recompiling; ``step.frozen`` is the placed tree. The optimizer, pruning
included, sees only ``params``. :mod:`jaxprune.train.distill` builds such
losses.

Dropout RNG: the key for step ``s`` is ``fold_in(rng, s)``; under ``pmap`` it
is further folded with the device index, so replicas drop different units
while the pruning state, computed from the averaged gradients, stays
identical on every replica. Under sharded ``jit`` one key serves the whole
global batch, as on a single device.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxprune import stacking
from jaxprune import step_kinds
from jaxprune.train import _validate

__all__ = [
    "LossFn",
    "make_train_step",
    "make_pmap_train_step",
    "make_sharded_train_step",
    "replicate",
    "make_eval_step",
    "opt_state_shardings",
    "host_local_to_global",
]

LossFn = Callable[..., tuple[jax.Array, dict]]


def _check_step_args(loss_fn: Any, tx: Any, donate: Any,
                     use_kinds: Any) -> None:
  _validate.check_callable("loss_fn", loss_fn)
  _validate.check_transformation("tx", tx)
  _validate.check_bool("donate", donate)
  _validate.check_bool("step_kinds", use_kinds)


def _grad_step(loss_fn: LossFn, tx: optax.GradientTransformation,
               axis_name: str | None, kind: Any = None):
  """The step; ``*frozen`` (empty, or the frozen tree) goes to the loss."""

  def step(params, opt_state, batch, rng, step_index, *frozen):
    rng = jax.random.fold_in(rng, step_index)
    if axis_name is not None:
      rng = jax.random.fold_in(rng, jax.lax.axis_index(axis_name))
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, batch, rng, *frozen)
    if axis_name is not None:
      grads = jax.lax.pmean(grads, axis_name)
      loss = jax.lax.pmean(loss, axis_name)
      aux = jax.lax.pmean(aux, axis_name)
    if kind is None:
      updates, opt_state = tx.update(grads, opt_state, params)
    else:
      updates, opt_state = tx.update(grads, opt_state, params,
                                     step_kind=kind)
    params = optax.apply_updates(params, updates)
    metrics = {"loss": loss, **aux}
    if kind is not None:
      metrics["kind_mismatch"] = step_kinds.mismatch(opt_state)
    return params, opt_state, metrics

  return step


def _by_kind(tx: optax.GradientTransformation,
             build: Callable[[Any], Callable], frozen: Any = None,
             place: Callable[[Any], Any] | None = None,
             use_kinds: bool = True) -> Callable:
  """A step that runs ``build(kind)``'s program for each step's kind.

  ``build(None)`` is the traced program: used when ``tx`` holds no pruning
  transformation (or several), the step index is not a Python int, or
  ``use_kinds`` is false. With
  ``frozen`` (not None), ``place(frozen)`` is stored and passed to every
  program as a sixth argument.
  """
  kinds = (step_kinds.find(tx) if use_kinds and isinstance(
      tx, optax.GradientTransformationExtraArgs) else None)
  programs: dict = {}

  def program(kind):
    if kind not in programs:
      programs[kind] = build(kind)
    return programs[kind]

  def step(params, opt_state, batch, rng, step_index):
    kind = None
    if kinds is not None and isinstance(step_index, (int, np.integer)):
      kind = kinds(int(step_index))
    extra = () if frozen is None else (step.frozen,)
    return program(kind)(params, opt_state, batch, rng, step_index, *extra)

  def set_frozen(tree):
    """Places ``tree`` like the frozen input and uses it from now on."""
    _check_frozen(tree)
    step.frozen = place(tree)

  step.program = program  # for inspection (compiled HLO, kernel counts)
  step.step_kinds = kinds
  step.frozen = None
  if frozen is not None:
    set_frozen(frozen)
    step.set_frozen = set_frozen
  return step


def _check_frozen(frozen: Any) -> None:
  leaves = jax.tree_util.tree_leaves(frozen)
  if not leaves:
    raise ValueError("`frozen` must be a pytree with at least one array "
                     "(e.g. the teacher's params), got an empty tree")
  for path, leaf in jax.tree_util.tree_leaves_with_path(frozen):
    if not hasattr(leaf, "shape") or not hasattr(leaf, "dtype"):
      raise ValueError("`frozen` must hold arrays only, got "
                       f"{type(leaf).__name__} at "
                       f"{jax.tree_util.keystr(path)}")


def _copy_to(sharding: Any) -> Callable[[Any], Any]:
  """``tree -> copy of tree`` on ``sharding`` (a sharding or a pytree of
  them; ``None``: the default device). Never aliases the input, so that
  donating the params cannot invalidate a teacher that shares buffers."""

  def place(tree):
    if sharding is None:
      return jax.tree.map(lambda x: jax.device_put(x, may_alias=False), tree)
    return jax.device_put(tree, sharding, may_alias=False)

  return place


def make_train_step(loss_fn: LossFn, tx: optax.GradientTransformation, *,
                    donate: bool = True, frozen: Any = None,
                    step_kinds: bool = True) -> Callable:
  """A jitted single-device train step.

  Args:
    loss_fn: ``(params, batch, rng) -> (loss, aux)``, or with ``frozen``
      ``(params, batch, rng, frozen) -> (loss, aux)``.
    tx: the optax transformation (pruning or not), on ``params`` only.
    donate: donate params and optimizer state.
    frozen: optional pytree of arrays (a teacher's params) passed to the
      loss, never differentiated, donated or changed (module docstring).
    step_kinds: one program per step kind (no ``cond`` in ordinary steps;
      the default) or, if false, one traced program for every step (one
      compile; module docstring).

  Returns:
    ``step(params, opt_state, batch, rng, step_index) -> (params, opt_state,
    metrics)``; with ``frozen``, also ``step.frozen`` and
    ``step.set_frozen(tree)``.

  Example:
    >>> import jax, jax.numpy as jnp, optax, jaxprune
    >>> from jaxprune.train import steps
    >>> loss = lambda p, b, r: (jnp.mean((b["x"] @ p["w"] - b["y"]) ** 2), {})
    >>> tx = jaxprune.platon(optax.sgd(0.1), sparsity=0.5, total_steps=20)
    >>> params = {"w": jnp.ones((4, 2))}
    >>> state = tx.init(params)
    >>> step = steps.make_train_step(loss, tx)
    >>> batch = {"x": jnp.ones((8, 4)), "y": jnp.zeros((8, 2))}
    >>> for s in range(20):
    ...   params, state, m = step(params, state, batch, jax.random.key(0), s)
    >>> int((params["w"] == 0).sum())
    4
  """
  _check_step_args(loss_fn, tx, donate, step_kinds)
  return _by_kind(tx, lambda kind: jax.jit(
      _grad_step(loss_fn, tx, None, kind),
      donate_argnums=(0, 1) if donate else ()), frozen, _copy_to(None),
                  step_kinds)


def make_pmap_train_step(loss_fn: LossFn, tx: optax.GradientTransformation, *,
                         axis_name: str = "data", donate: bool = True,
                         devices=None, frozen: Any = None,
                         step_kinds: bool = True) -> Callable:
  """A data-parallel ``pmap`` train step: gradients averaged across devices.

  Params and optimizer state are replicated (leading device axis), the batch
  has a leading device axis, ``rng`` and ``step_index`` are shared. Because
  every replica applies the same averaged gradients, the masks are identical
  on every device.

  ``frozen`` (optional, see :func:`make_train_step`) is given *without* a
  device axis: it is replicated on ``devices`` (default: the local devices)
  once, here and by ``step.set_frozen``. ``step_kinds``: as in
  :func:`make_train_step`.
  """
  _check_step_args(loss_fn, tx, donate, step_kinds)
  if not isinstance(axis_name, str) or not axis_name:
    raise ValueError(
        f"`axis_name` must be a non-empty string, got {axis_name!r}")
  in_axes = (0, 0, 0, None, None) + (() if frozen is None else (0,))
  place = lambda tree: replicate(tree, devices, axis_name)
  return _by_kind(tx, lambda kind: jax.pmap(
      _grad_step(loss_fn, tx, axis_name, kind), axis_name=axis_name,
      in_axes=in_axes,
      donate_argnums=(0, 1) if donate else (), devices=devices),
                  frozen, place, step_kinds)


def replicate(tree: Any, devices: Any = None, axis_name: str = "data") -> Any:
  """One copy of every leaf per device, along a new leading axis (``pmap``).

  The copies are placed as a ``pmap`` step with this ``axis_name`` places
  its outputs (a mesh of ``devices`` whose one axis is ``axis_name``). Inputs
  placed any other way (``jnp.stack([x] * n)`` on one device, or a mesh axis
  of another name) are valid, but since ``pmap`` runs as ``jit`` of
  ``shard_map``, the step then compiles its program again at its second
  call, when the outputs of the first come back with the step's placement.

  Args:
    tree: a pytree of arrays (host or device).
    devices: the step's devices (default: ``jax.local_devices()``).
    axis_name: the step's ``axis_name``.

  Returns:
    The replicated tree: fresh buffers, one transfer per device from the
    host (never aliasing the input, so donating them cannot invalidate it).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from jaxprune import train
    >>> rep = train.replicate({"w": jnp.ones((2, 3))})
    >>> rep["w"].shape == (jax.local_device_count(), 2, 3)
    True
  """
  devs = list(devices) if devices is not None else jax.local_devices()
  if not isinstance(axis_name, str) or not axis_name:
    raise ValueError(
        f"`axis_name` must be a non-empty string, got {axis_name!r}")
  sharding = NamedSharding(Mesh(np.array(devs), (axis_name,)), P(axis_name))
  return jax.tree.map(lambda x: jax.device_put(
      np.broadcast_to(np.asarray(x), (len(devs),) + np.shape(x)), sharding),
                      tree)


def opt_state_shardings(tx: optax.GradientTransformation, params: Any,
                        param_shardings: Any, mesh: Mesh) -> Any:
  """Shardings for ``tx.init(params)``: params-shaped parts like the params.

  A leaf of the optimizer state whose key path ends with the key path of a
  parameter and which has that parameter's shape (Adam moments, pruning
  scores and masks) gets the parameter's sharding; everything else (counts,
  thresholds) is replicated. A stack of leaves (:mod:`jaxprune.stacking`:
  the masks) is sharded like its leaves on their axes and not on its leading
  one; its leaves must share one sharding (otherwise build the method with
  ``stack_state=False``).
  """
  _validate.check_transformation("tx", tx)
  if params is None:
    raise ValueError("`params` must be a pytree of arrays, got None")
  if not isinstance(mesh, Mesh):
    raise ValueError(f"`mesh` must be a jax.sharding.Mesh, got {mesh!r}")
  is_sharding = lambda x: isinstance(x, jax.sharding.Sharding)
  sharding_leaves, sharding_def = jax.tree_util.tree_flatten(
      param_shardings, is_leaf=is_sharding)
  param_leaves, param_def = jax.tree_util.tree_flatten(params)
  if sharding_def != param_def:
    raise ValueError(
        "`param_shardings` must have the tree structure of `params` (one "
        f"sharding per parameter), got {sharding_def} for params {param_def}")
  for (path, _), sh in zip(jax.tree_util.tree_leaves_with_path(params),
                           sharding_leaves):
    if not isinstance(sh, NamedSharding):
      raise ValueError(
          "`param_shardings` must hold a NamedSharding per parameter, got "
          f"{sh!r} at {jax.tree_util.keystr(path)}")
  replicated = NamedSharding(mesh, P())
  abstract = jax.eval_shape(tx.init, params)
  by_path, by_keystr = {}, {}
  for (path, leaf), sharding in zip(
      jax.tree_util.tree_leaves_with_path(params), sharding_leaves):
    by_path[tuple(str(k) for k in path)] = (tuple(leaf.shape), sharding)
    by_keystr[jax.tree_util.keystr(path)] = sharding  # stacks' leaf paths
  lengths = sorted({len(k) for k in by_path}, reverse=True)

  def pick(path, leaf):
    keys = tuple(str(k) for k in path)
    for n in lengths:
      hit = by_path.get(keys[-n:]) if len(keys) >= n else None
      if hit is not None and hit[0] == tuple(leaf.shape):
        return hit[1]
    return replicated

  def pick_stacks(stacked):
    out = []
    for bucket in stacked.layout.members:
      paths = [stacked.layout.paths[i] for i in bucket]
      specs = {tuple(by_keystr[p].spec) for p in paths}
      if len(specs) > 1:
        raise ValueError(
            "the pruning state stacks leaves of one shape into one array, "
            f"but `param_shardings` shards them differently: {paths} have "
            f"the partition specs {sorted(map(str, specs))}; build the "
            "method with `stack_state=False` (one stack per leaf)")
      spec = specs.pop()
      out.append(NamedSharding(mesh, P(None, *spec)))
    return stacking.Stacked(out, stacked.layout)

  is_stacked = lambda x: isinstance(x, stacking.Stacked)
  return jax.tree_util.tree_map_with_path(
      lambda path, x: pick_stacks(x) if is_stacked(x) else pick(path, x),
      abstract, is_leaf=is_stacked)


def make_sharded_train_step(loss_fn: LossFn, tx: optax.GradientTransformation,
                            *, param_shardings: Any, opt_state_shardings: Any,
                            batch_sharding: Any, donate: bool = True,
                            frozen: Any = None,
                            frozen_shardings: Any = None,
                            step_kinds: bool = True) -> Callable:
  """A sharded ``jit`` train step over a ``Mesh`` (data and model axes).

  Params and optimizer state keep the given shardings (the pruning state is
  sharded like the params when built with :func:`opt_state_shardings`);
  the batch is sharded by ``batch_sharding`` (usually ``P("data")``). Works
  on one host or, after ``jax.distributed.initialize()``, across the hosts of
  a TPU pod, each host passing its own part of the batch through
  :func:`host_local_to_global`.

  ``frozen`` (optional, see :func:`make_train_step`) is placed with
  ``frozen_shardings`` (a sharding or a pytree of them, e.g. the student's
  layout for a teacher of the same architecture); default: replicated on
  the mesh of ``batch_sharding``. ``step_kinds``: as in
  :func:`make_train_step`.
  """
  _check_step_args(loss_fn, tx, donate, step_kinds)
  for name, value in (("param_shardings", param_shardings),
                      ("opt_state_shardings", opt_state_shardings),
                      ("batch_sharding", batch_sharding)):
    if value is None:
      raise ValueError(
          f"`{name}` must be a sharding or a pytree of shardings, got None")
  rep = None
  frozen_in = ()
  if frozen is not None:
    if frozen_shardings is None:
      if not isinstance(batch_sharding, NamedSharding):
        raise ValueError(
            "`frozen_shardings` is needed with `frozen` when "
            "`batch_sharding` is not a NamedSharding (its mesh gives the "
            f"default, replicated), got {batch_sharding!r}")
      frozen_shardings = NamedSharding(batch_sharding.mesh, P())
    frozen_in = (frozen_shardings,)
  elif frozen_shardings is not None:
    raise ValueError("`frozen_shardings` was given without `frozen`")
  return _by_kind(tx, lambda kind: jax.jit(
      _grad_step(loss_fn, tx, None, kind),
      in_shardings=(param_shardings, opt_state_shardings, batch_sharding, rep,
                    rep) + frozen_in,
      out_shardings=(param_shardings, opt_state_shardings, rep),
      donate_argnums=(0, 1) if donate else ()),
                  frozen, _copy_to(frozen_shardings), step_kinds)


def host_local_to_global(batch: Any, sharding: NamedSharding) -> Any:
  """Builds global arrays from this host's part of the batch (multi-host).

  On a single host this is ``jax.device_put(batch, sharding)``.
  """
  if jax.process_count() == 1:
    return jax.device_put(batch, sharding)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, x), batch)


def make_eval_step(predict_fn: Callable[[Any, Any], jax.Array]) -> Callable:
  """A jitted eval step: ``predict_fn(params, batch) -> logits``."""
  return jax.jit(predict_fn)
