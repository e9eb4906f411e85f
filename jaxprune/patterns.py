"""Sparsity patterns: which weights are pruned together, for any scorer.

The pattern is an axis independent of the scorer and the schedule: a scorer
gives one score per weight, the schedule a fraction ``p(step)``, and the
pattern turns both into keep-masks with the same exact, sort-free selection
as the core (:func:`jaxprune.selection.prune_masks`). Three patterns:

* :func:`unstructured` (the default): exactly ``floor(N * p)`` weights with the
  lowest scores are pruned, globally or per leaf.
* :func:`nm` (``N:M``, 2:4 by default): in every group of ``M`` consecutive
  weights along the input axis of a kernel (axis ``-2``: the first axis of a
  Flax ``Dense`` kernel ``(in, out)``, the ``in`` axis of a ``Conv`` kernel),
  the ``M - N`` lowest-scoring weights are pruned. N:M is a fixed pattern: the
  schedule's target must equal ``1 - N/M`` (checked when the transformation is
  built) and while the schedule ramps up to it, ``min(floor(M * p), M - N)``
  weights of each group are pruned (so 2:4 passes through 3:4). Leaves with
  fewer than 2 dimensions (biases) are left dense.
* :func:`heads_and_neurons`: attention heads (the head's Q, K, V kernel
  columns and biases and its rows of the attention-output kernel) and FFN
  neurons (an intermediate kernel column and bias and its row of the output
  kernel) of BERT/ViT encoders (:mod:`jaxprune.models`, or Hugging Face Flax
  trees of the same layout) are pruned whole. A unit's
  score aggregates its weights' scores (``"sum"``, ``"mean"`` or ``"l2"``);
  ``floor(H * p)`` heads and ``floor(I * p)`` neurons are pruned, heads and
  neurons in separate pools (``H``, ``I``: numbers of heads and neurons over
  all layers with ``granularity="global"``, per layer with ``"layer"``). The
  output biases of both blocks belong to no unit and stay dense.

With ``monotone=True`` (SEVEN) the weights pruned earlier score ``-inf``;
structured units containing one score ``-inf`` as a whole.

Example:
  >>> import jax, jax.numpy as jnp, optax, jaxprune
  >>> from jaxprune import patterns
  >>> params = {"w": jnp.arange(1.0, 17.0).reshape(8, 2)}
  >>> tx = jaxprune.prune(optax.sgd(0.0), jaxprune.magnitude_scorer(),
  ...                     jaxprune.schedules.constant(0.5),
  ...                     pattern=patterns.nm(2, 4))
  >>> state = tx.init(params)
  >>> u, state = tx.update(jax.tree.map(jnp.zeros_like, params), state, params)
  >>> optax.apply_updates(params, u)["w"][:, 0]
  Array([ 0.,  0.,  5.,  7.,  0.,  0., 13., 15.], dtype=float32)
"""

from __future__ import annotations

import re
from typing import Any, Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxprune import selection

__all__ = ["Layout", "Pattern", "unstructured", "nm", "heads_and_neurons",
           "resolve", "AGGREGATES"]

Shape = tuple[int, ...]


class Layout(NamedTuple):
  """A pattern bound to the prunable leaves (static, built at trace time).

  Attributes:
    num_groups: ``G``, the number of selection groups (length of
      ``PruneState.threshold`` and ``num_pruned``).
    k: ``(fraction, at_target) -> int32 (G,)``: the number of units
      (weights, N:M slots or heads/neurons) to prune per group for the
      scheduled pruned fraction; ``at_target`` says the fraction equals the
      schedule's target exactly.
    select: ``(scores, k) -> (masks, threshold)``: keep-masks (``True`` =
      kept) for the list of per-leaf float32 scores, and a float32 ``(G,)``
      threshold (the largest pruned score or unit score; ``-inf`` if none).
  """
  num_groups: int
  k: Callable[[jax.Array, jax.Array], jax.Array]
  select: Callable[[list[jax.Array], jax.Array],
                   tuple[list[jax.Array], jax.Array]]


class Pattern(NamedTuple):
  """A sparsity pattern.

  Attributes:
    name: a short description (``"unstructured"``, ``"2:4"``, ...).
    bind: ``(paths, shapes, granularity, target) -> Layout`` for the prunable
      leaves (their ``/``-joined key paths and shapes, in flatten order);
      raises ``ValueError`` if the leaves do not fit the pattern.
    check_target: optional ``target -> None`` raising ``ValueError`` if the
      schedule's target sparsity does not fit the pattern (called when the
      transformation is built).
  """
  name: str
  bind: Callable[[Sequence[str], Sequence[Shape], str, float], Layout]
  check_target: Optional[Callable[[float], None]] = None


def _count_k(n: int, frac: jax.Array, at_target: jax.Array,
             target: float) -> jax.Array:
  """``floor(n * frac)``, in float64 from ``target`` where at the target."""
  return jnp.where(at_target, jnp.int32(int(n * target)),
                   selection.floor_mul(n, frac))


def _leaf_groups(n_leaves: int, granularity: str) -> tuple[list[int], int]:
  if granularity == "global":
    return [0] * n_leaves, 1
  return list(range(n_leaves)), max(n_leaves, 1)


def unstructured() -> Pattern:
  """Element-wise selection: exactly ``floor(N * p)`` weights per group.

  Example:
    >>> from jaxprune import patterns
    >>> patterns.unstructured().name
    'unstructured'
  """

  def bind(paths, shapes, granularity, target):
    del paths
    sizes = [int(np.prod(s)) for s in shapes]
    groups, num_groups = _leaf_groups(len(sizes), granularity)
    group_sizes = [0] * num_groups
    for n, g in zip(sizes, groups):
      group_sizes[g] += n

    def k(frac, at_target):
      return jnp.stack([_count_k(n, frac, at_target, target)
                        for n in group_sizes])

    def select(scores, k):
      return selection.prune_masks(scores, k, groups, num_groups)

    return Layout(num_groups, k, select)

  return Pattern("unstructured", bind)


def _rank_in_blocks(x: jax.Array) -> jax.Array:
  """Rank of each entry in its block (last axis), ties by lower index."""
  m = x.shape[-1]
  a = x[..., :, None]  # entry i
  b = x[..., None, :]  # entry j
  idx = jnp.arange(m)
  before = (b < a) | ((b == a) & (idx[None, :] < idx[:, None]))
  return jnp.sum(before, axis=-1, dtype=jnp.int32)


def nm(n: int = 2, m: int = 4, axis: int = -2) -> Pattern:
  """``N:M`` sparsity: at most ``n`` nonzeros in each group of ``m``.

  Groups are ``m`` consecutive weights along ``axis`` (default ``-2``, the
  input-feature axis of Flax ``Dense``/``Conv`` kernels), which must be a
  multiple of ``m``. Ties are broken towards the lower index. Leaves with
  ``ndim < 2`` stay dense. The schedule's target must be ``1 - n/m``; before
  it is reached ``min(floor(m * p), m - n)`` weights per group are pruned.

  Args:
    n: weights kept per group, ``1 <= n < m``.
    m: group size, ``2 <= m <= 64``.
    axis: the axis along which groups run.

  Returns:
    A :class:`Pattern`.

  Example:
    >>> from jaxprune import patterns
    >>> patterns.nm(2, 4).name
    '2:4'
  """
  if not (isinstance(m, (int, np.integer)) and 2 <= m <= 64):
    raise ValueError(f"`m` must be an int in [2, 64], got {m!r}")
  if not (isinstance(n, (int, np.integer)) and 1 <= n < m):
    raise ValueError(f"`n` must be an int in [1, m) = [1, {m}), got {n!r}")
  n, m, axis = int(n), int(m), int(axis)
  drop = m - n

  def check_target(target):
    if abs(float(target) - drop / m) > 1e-6:
      raise ValueError(
          f"an {n}:{m} pattern prunes {drop}/{m} = {drop / m:g} of the "
          f"weights; `sparsity` must be {drop / m:g}, got {target:g}")

  def bind(paths, shapes, granularity, target):
    check_target(target)
    groups, num_groups = _leaf_groups(len(shapes), granularity)
    blocks = []
    for path, shape in zip(paths, shapes):
      if len(shape) < 2:
        blocks.append(0)
        continue
      if shape[axis] % m:
        raise ValueError(
            f"{n}:{m} sparsity needs axis {axis} of every prunable kernel to "
            f"be a multiple of {m}; {path!r} has shape {shape}")
      blocks.append(int(np.prod(shape)) // m)
    group_blocks = [0] * num_groups
    for b, g in zip(blocks, groups):
      group_blocks[g] += b

    def per_block(frac, at_target):
      return jnp.where(at_target, jnp.int32(drop),
                       jnp.minimum(selection.floor_mul(m, frac), drop))

    def k(frac, at_target):
      c = per_block(frac, at_target)
      return jnp.stack([c * jnp.int32(b) for b in group_blocks])

    def select(scores, k):
      masks, tau = [], [jnp.float32(-jnp.inf)] * num_groups
      for s, b, g in zip(scores, blocks, groups):
        if b == 0:
          masks.append(jnp.ones(s.shape, jnp.bool_))
          continue
        c = k[g] // jnp.int32(group_blocks[g])
        x = s.astype(jnp.float32)
        x = jnp.where(jnp.isnan(x), jnp.inf, x)
        xt = jnp.moveaxis(x, axis, -1)
        blk = xt.reshape(xt.shape[:-1] + (xt.shape[-1] // m, m))
        pruned = _rank_in_blocks(blk) < c
        top = jnp.max(jnp.where(pruned, blk, -jnp.inf))
        tau[g] = jnp.maximum(tau[g], top)
        keep = jnp.moveaxis((~pruned).reshape(xt.shape), -1, axis)
        masks.append(keep)
      return masks, jnp.stack(tau)

    return Layout(num_groups, k, select)

  return Pattern(f"{n}:{m}", bind, check_target)


# --- structured: attention heads and FFN neurons -----------------------------

#: Group-score aggregates of :func:`heads_and_neurons`.
AGGREGATES = ("sum", "mean", "l2")

_L = r"(?:^|/)encoder/layer/(\d+)/"
_PRESET_ROLES = {
    "bert": [
        (re.compile(_L + r"attention/self/(?:query|key|value)/kernel$"),
         "heads", -1),
        (re.compile(_L + r"attention/self/(?:query|key|value)/bias$"),
         "heads", -1),
        (re.compile(_L + r"attention/output/dense/kernel$"), "heads", 0),
        (re.compile(_L + r"intermediate/dense/(?:kernel|bias)$"),
         "neurons", -1),
        (re.compile(_L + r"output/dense/kernel$"), "neurons", 0),
    ],
    "vit": [
        (re.compile(_L + r"attention/attention/(?:query|key|value)/kernel$"),
         "heads", -1),
        (re.compile(_L + r"attention/attention/(?:query|key|value)/bias$"),
         "heads", -1),
        (re.compile(_L + r"attention/output/dense/kernel$"), "heads", 0),
        (re.compile(_L + r"intermediate/dense/(?:kernel|bias)$"),
         "neurons", -1),
        (re.compile(_L + r"output/dense/kernel$"), "neurons", 0),
    ],
}
#: How many kernels each unit needs per layer (Q, K, V + O; in + out).
_REQUIRED_KERNELS = {"heads": 4, "neurons": 2}


class _UnitLeaf(NamedTuple):
  kind: str
  layer: int
  shape3: Shape  # (P, units, w * Q): the unit axis in the middle


def _classify(paths, shapes, preset, num_heads, kinds):
  """Per leaf: a ``_UnitLeaf`` or ``None`` (kept dense); per (kind, layer):
  the number of units."""
  roles = _PRESET_ROLES[preset]
  out, units, kernels = [], {}, {}
  for path, shape in zip(paths, shapes):
    hit = None
    for rx, kind, ax in roles:
      mt = rx.search(path)
      if mt and kind in kinds:
        hit = (kind, int(mt.group(1)), ax)
        break
    if hit is None:
      out.append(None)
      continue
    kind, layer, ax = hit
    ax = ax % len(shape)
    size = shape[ax]
    if kind == "heads":
      if isinstance(num_heads, tuple) and layer >= len(num_heads):
        raise ValueError(f"{path!r}: layer {layer} but num_heads has "
                         f"{len(num_heads)} layers")
      nh = num_heads[layer] if isinstance(num_heads, tuple) else num_heads
      if nh == 0 or size % nh:
        raise ValueError(
            f"{path!r} has {size} features along its head axis, not a "
            f"multiple of num_heads={nh}")
      n_units = nh
    else:
      n_units = size
    prev = units.setdefault((kind, layer), n_units)
    if prev != n_units:
      raise ValueError(f"{path!r}: {n_units} {kind} but other leaves of "
                       f"layer {layer} have {prev}")
    if len(shape) >= 2:
      kernels[(kind, layer)] = kernels.get((kind, layer), 0) + 1
    pre = int(np.prod(shape[:ax]))
    post = int(np.prod(shape[ax + 1:])) * (size // n_units)
    out.append(_UnitLeaf(kind, layer, (pre, n_units, post)))
  for key, count in kernels.items():
    if count != _REQUIRED_KERNELS[key[0]]:
      raise ValueError(
          f"structured pruning of {key[0]} in layer {key[1]} needs all "
          f"{_REQUIRED_KERNELS[key[0]]} of its kernels selected by `where`, "
          f"found {count}")
  if not units:
    raise ValueError(
        f"the {preset!r} structured pattern found no attention/FFN kernel "
        "among the prunable leaves; check `where` and `preset`")
  return out, units


def heads_and_neurons(num_heads: "int | Sequence[int] | Any", *,
                      preset: str = "bert",
                      aggregate: str = "sum", heads: bool = True,
                      neurons: bool = True) -> Pattern:
  """Prunes whole attention heads and FFN neurons of BERT/ViT encoders.

  A head's group is its ``head_dim`` columns of the Q, K and V kernels and
  biases plus its ``head_dim`` rows of the attention-output kernel; a neuron's
  group is its column of the intermediate kernel, its intermediate bias and
  its row of the FFN output kernel (only the leaves selected by ``where``
  count; all of a unit's kernels must be selected). The unit score is the
  ``aggregate`` of its weights' scores: ``"sum"``, ``"mean"`` (sum / number
  of weights) or ``"l2"`` (``sqrt(sum(score**2))``). ``floor(units * p)``
  heads and, separately, neurons with the lowest unit scores are pruned per
  group (all layers together with ``granularity="global"``, each layer with
  ``"layer"``), ties by layer then index. Other selected leaves (the output
  biases, anything the preset does not name) stay dense.
  ``PruneState.num_pruned`` then counts units and ``threshold`` is a unit
  score; the groups are ``[heads, neurons]`` (global) or ``[heads of layer
  0, ..., neurons of layer 0, ...]`` (layer).

  Args:
    num_heads: attention heads per layer of the model: an int (every layer),
      a sequence (one per layer), or a :mod:`jaxprune.models` config (its
      ``heads_per_layer``).
    preset: ``"bert"`` (BERT, RoBERTa, MiniLM) or ``"vit"`` parameter names.
    aggregate: one of :data:`AGGREGATES`.
    heads: prune heads.
    neurons: prune FFN neurons.

  Returns:
    A :class:`Pattern`.

  Example:
    >>> from jaxprune import patterns
    >>> patterns.heads_and_neurons(12, preset="bert", aggregate="l2").name
    'heads+neurons(bert, l2)'
  """
  if preset not in _PRESET_ROLES:
    raise ValueError(f"`preset` must be one of {sorted(_PRESET_ROLES)}, got "
                     f"{preset!r}")
  if aggregate not in AGGREGATES:
    raise ValueError(f"`aggregate` must be one of {AGGREGATES}, got "
                     f"{aggregate!r}")
  if hasattr(num_heads, "heads_per_layer"):
    num_heads = tuple(num_heads.heads_per_layer)
  if isinstance(num_heads, (list, tuple)):
    if not num_heads or not all(isinstance(h, (int, np.integer)) and h >= 0
                                for h in num_heads):
      raise ValueError("`num_heads` per layer must be ints >= 0, got "
                       f"{num_heads!r}")
    num_heads = tuple(int(h) for h in num_heads)
  elif not (isinstance(num_heads, (int, np.integer)) and num_heads >= 1):
    raise ValueError(f"`num_heads` must be an int >= 1, got {num_heads!r}")
  if not (heads or neurons):
    raise ValueError("at least one of `heads` and `neurons` must be True")
  kinds = tuple(k for k, on in (("heads", heads), ("neurons", neurons)) if on)
  if not isinstance(num_heads, tuple):
    num_heads = int(num_heads)
  name = "+".join(kinds) + f"({preset}, {aggregate})"

  def bind(paths, shapes, granularity, target):
    leaves, units = _classify(paths, shapes, preset, num_heads, kinds)
    layers = sorted({layer for _, layer in units})
    # Unit-score arrays: one per (kind, layer), kinds first, layers in order.
    keys = [(kind, layer) for kind in kinds for layer in layers
            if (kind, layer) in units]
    if granularity == "global":
      kind_ids = {kind: i for i, kind in
                  enumerate(sorted({k for k, _ in keys}, key=kinds.index))}
      groups = [kind_ids[kind] for kind, _ in keys]
      num_groups = len(kind_ids)
    else:
      groups = list(range(len(keys)))
      num_groups = len(keys)
    group_units = [0] * num_groups
    for key, g in zip(keys, groups):
      group_units[g] += units[key]
    counts = {key: 0 for key in keys}  # weights per unit
    for leaf in leaves:
      if leaf is not None:
        counts[(leaf.kind, leaf.layer)] += leaf.shape3[0] * leaf.shape3[2]

    def k_fn(frac, at_target):
      return jnp.stack([_count_k(n, frac, at_target, target)
                        for n in group_units])

    def select(scores, k):
      acc = {key: jnp.zeros((units[key],), jnp.float32) for key in keys}
      neg = {key: jnp.zeros((units[key],), jnp.bool_) for key in keys}
      for s, leaf in zip(scores, leaves):
        if leaf is None:
          continue
        key = (leaf.kind, leaf.layer)
        x = s.astype(jnp.float32).reshape(leaf.shape3)
        neg[key] = neg[key] | jnp.any(x == -jnp.inf, axis=(0, 2))
        x = jnp.where(x == -jnp.inf, 0.0, x)
        if aggregate == "l2":
          x = x * x
        acc[key] = acc[key] + jnp.sum(x, axis=(0, 2))
      unit_scores = []
      for key in keys:
        a = acc[key]
        if aggregate == "mean":
          a = a / jnp.float32(counts[key])
        elif aggregate == "l2":
          a = jnp.sqrt(a)
        unit_scores.append(jnp.where(neg[key], -jnp.inf, a))
      unit_keep, tau = selection.prune_masks(unit_scores, k, groups,
                                             num_groups)
      keep = dict(zip(keys, unit_keep))
      masks = []
      for s, leaf in zip(scores, leaves):
        if leaf is None:
          masks.append(jnp.ones(s.shape, jnp.bool_))
          continue
        kk = keep[(leaf.kind, leaf.layer)]
        full = jnp.broadcast_to(kk[None, :, None], leaf.shape3)
        masks.append(full.reshape(s.shape))
      return masks, tau

    return Layout(num_groups, k_fn, select)

  return Pattern(name, bind)


_NM_RE = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


def resolve(pattern: "Pattern | str | None") -> Pattern:
  """``None``/``"unstructured"`` -> :func:`unstructured`, ``"N:M"`` ->
  :func:`nm`, a :class:`Pattern` as is.

  Example:
    >>> from jaxprune import patterns
    >>> patterns.resolve("1:4").name, patterns.resolve(None).name
    ('1:4', 'unstructured')
  """
  if pattern is None:
    return unstructured()
  if isinstance(pattern, Pattern):
    return pattern
  if isinstance(pattern, str):
    if pattern == "unstructured":
      return unstructured()
    mt = _NM_RE.match(pattern)
    if mt:
      return nm(int(mt.group(1)), int(mt.group(2)))
  raise ValueError(
      "`pattern` must be None, 'unstructured', 'N:M' (e.g. '2:4') or a "
      f"jaxprune.patterns.Pattern, got {pattern!r}")
