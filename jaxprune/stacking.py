"""Few large buffers for pruning state that is written rarely.

The masks change only at selections, but as one array per prunable leaf
they are one jit input and one output each: BERT-base's 144 prunable leaves
make 288 buffers, each with host-side cost on every call (about 1-2 us per
buffer, ``benchmarks/dispatch.py``). :class:`Stacked` holds such a
params-shaped tree as one array per bucket of leaves with the same shape and
dtype (BERT-base: 5 buckets), stacked along a new leading axis.

PLATON's ``Ibar`` and ``Ubar`` (written only at window boundaries) stay one
array per leaf: stacked, they would save 556 more buffers, but compiled for
an H100 the boundary step then moved 81 instead of 60 bytes per prunable
weight and the selection step 147 instead of 104, because the stacked
exponential averages no longer fuse into each leaf's update
(``docs/performance.md``).

A stack keeps each leaf's sharding on the leaf's own axes (the new leading
axis is not sharded; see :func:`jaxprune.train.opt_state_shardings`), so
taking a leaf out is a local slice, which XLA fuses into its reader. The
layout (which leaf sits where) is static pytree metadata, so stacks jit,
pmap, shard and checkpoint like any array.

Example:
  >>> import jax.numpy as jnp, optax
  >>> from jaxprune import stacking
  >>> tree = {"a": jnp.ones((2, 3)), "b": optax.MaskedNode(),
  ...         "c": jnp.zeros((2, 3)), "d": jnp.ones(4)}
  >>> s = stacking.Stacked.from_tree(tree)
  >>> [x.shape for x in s.stacks]
  [(2, 2, 3), (1, 4)]
  >>> s.tree()["c"].shape
  (2, 3)
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax

__all__ = ["StackLayout", "Stacked", "bucket_members"]

Tree = Any


def bucket_members(keys: Sequence[Any]) -> list[list[int]]:
  """Leaf positions grouped by key, buckets in order of first appearance.

  Args:
    keys: one hashable key per leaf, e.g. ``(shape, dtype)``.

  Returns:
    Per bucket, its leaf positions in ascending order.
  """
  by_key: dict = {}
  for i, key in enumerate(keys):
    by_key.setdefault(key, []).append(i)
  return list(by_key.values())


class StackLayout(NamedTuple):
  """Where each leaf of a params-shaped tree sits in the stacks (static).

  Attributes:
    treedef: structure of the params-shaped tree (``optax.MaskedNode()``,
      a node without children, at the leaves that are not held).
    paths: key path (``jax.tree_util.keystr``) of each held leaf, in leaf
      order.
    shapes: shape of each held leaf.
    members: per bucket, the positions (in leaf order) of its leaves.
    held: per leaf of the params (``MaskedNode`` counted as a leaf), whether
      it is held.
  """
  treedef: Any
  paths: tuple[str, ...]
  shapes: tuple[tuple[int, ...], ...]
  members: tuple[tuple[int, ...], ...]
  held: tuple[bool, ...]

  def compatible(self, other: "StackLayout") -> bool:
    """Same held leaves, shapes and buckets; containers may differ (e.g.
    ``nnx.Optimizer`` initialises on ``nnx.Param`` nodes and updates on
    their values)."""
    return (self.held, self.shapes, self.members) == (
        other.held, other.shapes, other.members)

  @property
  def num_leaves(self) -> int:
    return len(self.paths)

  def place(self) -> list[tuple[int, int]]:
    """Per held leaf, ``(bucket, position in the bucket)``."""
    where = [(0, 0)] * self.num_leaves
    for b, members in enumerate(self.members):
      for j, i in enumerate(members):
        where[i] = (b, j)
    return where

  def bucket_names(self) -> list[str]:
    """A readable, unique name per bucket (its checkpoint key)."""
    names = []
    for b, members in enumerate(self.members):
      shape = self.shapes[members[0]]
      names.append(f"{b}_" + ("x".join(map(str, shape)) or "scalar"))
    return names


def layout_of(tree: Tree, by_leaf: bool = False) -> StackLayout:
  """The layout of a params-shaped tree, bucketed by (shape, dtype).

  Args:
    tree: params-shaped tree of arrays, ``optax.MaskedNode()`` at the leaves
      that are not held.
    by_leaf: one bucket per leaf (a stack of one), e.g. when leaves of one
      shape are sharded differently.
  """
  # MaskedNode has no children: the treedef's leaves are the held ones.
  path_leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
  held = [(jax.tree_util.keystr(p), x) for p, x in path_leaves]
  shapes = tuple(tuple(x.shape) for _, x in held)
  keys = (list(range(len(held))) if by_leaf else
          [(s, jnp.dtype(x.dtype)) for s, (_, x) in zip(shapes, held)])
  flags = tuple(not isinstance(x, optax.MaskedNode) for x in
                jax.tree_util.tree_leaves(
                    tree, is_leaf=lambda x: isinstance(x, optax.MaskedNode)))
  return StackLayout(treedef, tuple(p for p, _ in held), shapes,
                     tuple(tuple(m) for m in bucket_members(keys)), flags)


@jax.tree_util.register_pytree_with_keys_class
class Stacked:
  """A params-shaped tree stored as one array per bucket of equal leaves.

  Attributes:
    stacks: per bucket, an array ``(L_b,) + shape_b`` (any leading axes
      before it, e.g. ``pmap``'s device axis, are kept by :meth:`leaves`).
    layout: the static :class:`StackLayout`.
  """

  def __init__(self, stacks: Sequence[Any], layout: StackLayout):
    self.stacks = tuple(stacks)
    self.layout = layout

  @classmethod
  def from_tree(cls, tree: Tree, by_leaf: bool = False) -> "Stacked":
    """Stacks a params-shaped tree (``MaskedNode`` at leaves not held)."""
    return cls.from_leaves(jax.tree_util.tree_leaves(tree),
                           layout_of(tree, by_leaf))

  @classmethod
  def from_leaves(cls, leaves: Sequence[Any],
                  layout: StackLayout) -> "Stacked":
    """Stacks the held leaves (in leaf order) into ``layout``'s buckets."""
    if len(leaves) != layout.num_leaves:
      raise ValueError(f"expected {layout.num_leaves} leaves to stack, got "
                       f"{len(leaves)}")
    return cls([jnp.stack([leaves[i] for i in m]) for m in layout.members],
               layout)

  def leaves(self) -> list[Any]:
    """The held leaves in leaf order (static slices of the stacks).

    Stacks of ``jax.ShapeDtypeStruct`` (from ``jax.eval_shape``) give
    ``ShapeDtypeStruct`` leaves.
    """
    out = []
    for (b, j), shape in zip(self.layout.place(), self.layout.shapes):
      x = self.stacks[b]
      axis = len(x.shape) - len(shape) - 1
      if isinstance(x, jax.ShapeDtypeStruct):
        out.append(jax.ShapeDtypeStruct(x.shape[:axis] + x.shape[axis + 1:],
                                        x.dtype))
      else:
        out.append(jax.lax.index_in_dim(x, j, axis=axis, keepdims=False))
    return out

  def tree(self) -> Tree:
    """The params-shaped tree (``optax.MaskedNode()`` at leaves not held)."""
    return jax.tree_util.tree_unflatten(self.layout.treedef, self.leaves())

  def __eq__(self, other: Any) -> bool:
    """Like a tuple's: same layout and ``==`` stacks (arrays: ambiguous)."""
    if not isinstance(other, Stacked):
      return NotImplemented
    return self.layout == other.layout and self.stacks == other.stacks

  __hash__ = None  # type: ignore[assignment]

  def tree_flatten_with_keys(self):
    names = self.layout.bucket_names()
    return ([(jax.tree_util.DictKey(n), x)
             for n, x in zip(names, self.stacks)], self.layout)

  @classmethod
  def tree_unflatten(cls, layout, stacks):
    return cls(stacks, layout)

  def __repr__(self) -> str:
    return (f"Stacked({self.layout.num_leaves} leaves in "
            f"{len(self.stacks)} stacks: {self.layout.bucket_names()})")
