"""Export of pruned params: exact zeros, a compressed file, sparse inference.

* :func:`masks_of` and :func:`apply_masks`: the keep-masks of a pruning state
  and params with exact zeros where they are ``False``.
* :func:`save_compressed` / :func:`load_compressed`: a safetensors file with,
  per pruned leaf, the keep-mask packed 8 per byte (``np.packbits``) and the
  kept values only; other leaves dense. Loading gives the same arrays bit for
  bit. :func:`size_report` compares it with the dense safetensors file.
* :func:`to_bcoo` and :func:`sparse_apply`: run any pure apply function (a
  Flax ``module.apply``) with the sparse kernels as
  ``jax.experimental.sparse.BCOO`` matrices through ``sparse.sparsify``.
  Whether that is faster than dense depends on the sparsity and the device;
  ``benchmarks/export.py`` measures it.

Physically smaller BERT/ViT models (heads and neurons removed) are in
:mod:`jaxprune.shrink`; HF checkpoint folders of our models (HF PyTorch names
and layouts, loadable by ``transformers``) are written by
:func:`jaxprune.models.save_pretrained`.

Param names in files are the ``/``-joined key paths of the params pytree
(``bert/encoder/layer/0/attention/self/query/kernel``).

Example:
  >>> import os, tempfile, numpy as np, jax.numpy as jnp
  >>> from jaxprune import export
  >>> params = {"w": jnp.array([[0.0, 2.0], [3.0, 0.0]]), "b": jnp.ones(2)}
  >>> masks = {"w": jnp.array([[False, True], [True, False]]), "b": None}
  >>> path = os.path.join(tempfile.mkdtemp(), "m.safetensors")
  >>> rep = export.save_compressed(path, params, masks)
  >>> loaded, loaded_masks = export.load_compressed(path)
  >>> loaded["w"].tolist(), loaded_masks["w"].tolist()
  ([[0.0, 2.0], [3.0, 0.0]], [[False, True], [True, False]])
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxprune import transform
from jaxprune import where as where_lib

__all__ = ["CompressionReport", "find_prune_state", "masks_of", "apply_masks",
           "save_dense", "save_compressed", "load_compressed", "size_report",
           "to_bcoo", "sparse_apply"]

Tree = Any
_FORMAT = "jaxprune.compressed.v1"


class CompressionReport(NamedTuple):
  """Sizes of a compressed export.

  Attributes:
    path: the file written.
    file_bytes: its size on disk.
    dense_bytes: size of the dense safetensors file of the same params
      (written by :func:`size_report`; the sum of the array sizes when only
      :func:`save_compressed` ran).
    num_params: number of scalars.
    num_stored: scalars stored as values (dense leaves plus kept values).
    ratio: ``file_bytes / dense_bytes``.
  """
  path: str
  file_bytes: int
  dense_bytes: int
  num_params: int
  num_stored: int
  ratio: float


def find_prune_state(state: Any) -> transform.PruneState:
  """The :class:`jaxprune.PruneState` inside an optimizer state (chains,
  ``MultiSteps``, ``apply_if_finite`` ...); the first one found.

  Raises:
    ValueError: if there is none.
  """
  found = []
  is_ps = lambda x: isinstance(x, transform.PruneState)
  for leaf in jax.tree_util.tree_leaves(state, is_leaf=is_ps):
    if is_ps(leaf):
      found.append(leaf)
  if not found:
    raise ValueError("no jaxprune PruneState in the given optimizer state")
  return found[0]


def masks_of(state: Any, params: Tree | None = None) -> Tree:
  """Keep-masks of a pruning state, shaped like ``params``.

  Args:
    state: a :class:`jaxprune.PruneState` or an optimizer state holding one.
    params: optional params whose structure the result takes; leaves that are
      not pruned get ``None``. Without ``params`` the state's own mask tree is
      returned (``optax.MaskedNode()`` at leaves that are not pruned).

  Returns:
    A tree of bool arrays (``True`` = kept).
  """
  masks = find_prune_state(state).masks
  if params is None:
    return masks
  is_node = lambda x: isinstance(x, optax.MaskedNode)
  leaves = jax.tree_util.tree_leaves(masks, is_leaf=is_node)
  treedef = jax.tree_util.tree_structure(params)
  if len(leaves) != treedef.num_leaves:
    raise ValueError("`params` does not match the state's masks")
  return treedef.unflatten([None if is_node(m) else m for m in leaves])


def _flat_masks(params: Tree, masks: Any) -> list[Any]:
  """One mask (or None) per leaf of ``params``, flatten order."""
  n = len(jax.tree_util.tree_leaves(params))
  if masks is None:
    return [None] * n
  if _has_prune_state(masks):
    masks = masks_of(masks)
  is_none = lambda x: x is None or isinstance(x, optax.MaskedNode)
  leaves = jax.tree_util.tree_leaves(masks, is_leaf=is_none)
  if len(leaves) != n:
    raise ValueError(f"`masks` has {len(leaves)} leaves, `params` {n}")
  out = []
  for m, p in zip(leaves, jax.tree_util.tree_leaves(params)):
    if is_none(m):
      out.append(None)
      continue
    if np.shape(m) != np.shape(p):
      raise ValueError(f"mask shape {np.shape(m)} != param shape "
                       f"{np.shape(p)}")
    out.append(m)
  return out


def _has_prune_state(x: Any) -> bool:
  is_ps = lambda y: isinstance(y, transform.PruneState)
  return any(is_ps(y) for y in jax.tree_util.tree_leaves(x, is_leaf=is_ps))


def apply_masks(params: Tree, masks: Any) -> Tree:
  """``params`` with exact zeros where the masks are ``False``.

  Args:
    params: the params pytree.
    masks: a pruning state (or optimizer state holding one), or a tree shaped
      like ``params`` with bool arrays and ``None``/``MaskedNode`` at leaves
      that are not pruned.

  Returns:
    The masked params (same structure and dtypes).

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxprune import export
    >>> export.apply_masks({"w": jnp.array([1.0, -2.0])},
    ...                    {"w": jnp.array([True, False])})
    {'w': Array([1., 0.], dtype=float32)}
  """
  leaves, treedef = jax.tree_util.tree_flatten(params)
  out = [x if m is None else jnp.where(m, x, jnp.zeros_like(x))
         for x, m in zip(leaves, _flat_masks(params, masks))]
  return treedef.unflatten(out)


def _named(params: Tree) -> list[tuple[str, Any]]:
  pl = jax.tree_util.tree_leaves_with_path(params)
  names = [where_lib.path_str(p) for p, _ in pl]
  if len(set(names)) != len(names):
    raise ValueError("params have duplicate '/'-joined key paths")
  return list(zip(names, [x for _, x in pl]))


def save_dense(path: str, params: Tree) -> int:
  """Writes every leaf dense to a safetensors file (our ``/``-joined names;
  see :func:`jaxprune.models.save_pretrained` for HF names); returns its
  size."""
  from safetensors.numpy import save_file
  tensors = {name: np.ascontiguousarray(np.asarray(x))
             for name, x in _named(params)}
  save_file(tensors, path)
  return os.path.getsize(path)


def save_compressed(path: str, params: Tree, masks: Any = None
                    ) -> CompressionReport:
  """Writes params as packed keep-masks plus kept values (safetensors).

  A leaf with a mask is stored as ``NAME::mask`` (``uint8``, the row-major
  mask packed 8 per byte by ``np.packbits``) and ``NAME::values`` (the values
  where the mask is ``True``, in row-major order); a leaf without a mask is
  stored dense as ``NAME``. With ``masks=None`` every floating leaf whose
  packed form is smaller than its dense form is stored packed with the mask
  ``value != 0``. Shapes, dtypes and the layout are in the file's metadata.

  Args:
    path: the ``.safetensors`` file to write.
    params: the params (masked or not: values where a mask is ``False`` are
      not stored, so they load as 0).
    masks: a pruning state, a tree of masks (see :func:`apply_masks`) or
      ``None``.

  Returns:
    A :class:`CompressionReport` (``dense_bytes`` is the sum of the array
    sizes; :func:`size_report` also writes the dense file).
  """
  from safetensors.numpy import save_file
  tensors, meta = {}, {}
  total = stored = dense_bytes = 0
  auto = masks is None
  for (name, x), m in zip(_named(params), _flat_masks(params, masks)):
    arr = np.asarray(x)
    total += arr.size
    dense_bytes += arr.nbytes
    if auto and np.issubdtype(arr.dtype, np.floating) and arr.size:
      nz = arr != 0
      if (arr.size + 7) // 8 + int(nz.sum()) * arr.itemsize < arr.nbytes:
        m = nz
    if m is None:
      tensors[name] = np.ascontiguousarray(arr)
      meta[name] = {"kind": "dense"}
      stored += arr.size
      continue
    keep = np.asarray(m, bool).reshape(-1)
    values = arr.reshape(-1)[keep]
    tensors[name + "::mask"] = np.packbits(keep)
    tensors[name + "::values"] = np.ascontiguousarray(values)
    meta[name] = {"kind": "packed", "shape": list(arr.shape),
                  "dtype": str(arr.dtype)}
    stored += values.size
  save_file(tensors, path, metadata={
      "format": _FORMAT, "leaves": json.dumps(meta)})
  size = os.path.getsize(path)
  return CompressionReport(path, size, dense_bytes, total, stored,
                           size / max(dense_bytes, 1))


def load_compressed(path: str, like: Tree | None = None
                    ) -> tuple[Tree, Tree]:
  """Reads a file written by :func:`save_compressed`.

  Args:
    path: the file.
    like: optional params pytree with the original structure; the result
      then has it. Otherwise nested dicts keyed by the path components.

  Returns:
    ``(params, masks)``: numpy arrays equal bit for bit to the saved ones
    (0 where a mask is ``False``) and the masks (``None`` at dense leaves).
  """
  from safetensors import safe_open
  with safe_open(path, framework="numpy") as f:
    meta = f.metadata() or {}
    if meta.get("format") != _FORMAT:
      raise ValueError(f"{path!r} is not a jaxprune compressed file")
    layout = json.loads(meta["leaves"])
    params, masks = {}, {}
    for name, info in layout.items():
      if info["kind"] == "dense":
        params[name] = f.get_tensor(name)
        masks[name] = None
        continue
      shape = tuple(info["shape"])
      n = int(np.prod(shape))
      keep = np.unpackbits(f.get_tensor(name + "::mask"), count=n).astype(bool)
      values = f.get_tensor(name + "::values")
      full = np.zeros(n, values.dtype)
      full[keep] = values
      params[name] = full.reshape(shape)
      masks[name] = keep.reshape(shape)
  if like is not None:
    names = [name for name, _ in _named(like)]
    if sorted(names) != sorted(params):
      raise ValueError("`like` does not have the saved leaves")
    treedef = jax.tree_util.tree_structure(like)
    return (treedef.unflatten([params[n] for n in names]),
            treedef.unflatten([masks[n] for n in names]))
  return _nest(params), _nest(masks)


def _nest(flat: dict[str, Any]) -> dict:
  out: dict = {}
  for name, x in flat.items():
    node = out
    parts = name.split("/")
    for p in parts[:-1]:
      node = node.setdefault(p, {})
    node[parts[-1]] = x
  return out


def size_report(params: Tree, masks: Any = None, directory: str | None = None
                ) -> CompressionReport:
  """Writes the dense and the compressed file and compares their sizes.

  Args:
    params: the (masked) params.
    masks: as in :func:`save_compressed`.
    directory: where to write ``dense.safetensors`` and
      ``compressed.safetensors`` (a temporary folder, removed, by default).

  Returns:
    A :class:`CompressionReport` with the dense file's size.
  """
  def run(d):
    dense = save_dense(os.path.join(d, "dense.safetensors"), params)
    rep = save_compressed(os.path.join(d, "compressed.safetensors"), params,
                          masks)
    return rep._replace(dense_bytes=dense, ratio=rep.file_bytes / dense)
  if directory is not None:
    os.makedirs(directory, exist_ok=True)
    return run(directory)
  with tempfile.TemporaryDirectory() as d:
    return run(d)


def to_bcoo(params: Tree, masks: Any = None, *, min_sparsity: float = 0.5
            ) -> Tree:
  """Replaces sparse 2-D leaves by ``jax.experimental.sparse.BCOO`` matrices.

  A 2-D leaf becomes a BCOO matrix holding its kept entries (mask ``True``,
  or nonzero when it has no mask) if at least ``min_sparsity`` of it is
  pruned; other leaves stay dense. Use with :func:`sparse_apply`.

  Args:
    params: the (masked) params.
    masks: as in :func:`apply_masks`, or ``None`` (nonzeros are kept).
    min_sparsity: the pruned fraction from which a leaf is made sparse.

  Returns:
    The params with BCOO leaves.

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxprune import export
    >>> sp = export.to_bcoo({"w": jnp.array([[0.0, 2.0], [0.0, 0.0]])})
    >>> type(sp["w"]).__name__, int(sp["w"].nse)
    ('BCOO', 1)
  """
  from jax.experimental import sparse
  leaves, treedef = jax.tree_util.tree_flatten(params)
  out = []
  for x, m in zip(leaves, _flat_masks(params, masks)):
    arr = np.asarray(x)
    if arr.ndim != 2 or not arr.size:
      out.append(x)
      continue
    keep = arr != 0 if m is None else np.asarray(m, bool)
    nse = int(keep.sum())
    if 1 - nse / arr.size < min_sparsity:
      out.append(x)
      continue
    rows, cols = np.nonzero(keep)
    indices = np.stack([rows, cols], axis=1).astype(np.int32)
    out.append(sparse.BCOO((jnp.asarray(arr[rows, cols]),
                            jnp.asarray(indices)), shape=arr.shape,
                           indices_sorted=True, unique_indices=True))
  return treedef.unflatten(out)


def sparse_apply(apply_fn: Callable[..., Any]) -> Callable[..., Any]:
  """``jax.experimental.sparse.sparsify(apply_fn)``: ``apply_fn`` then takes
  params with BCOO leaves (from :func:`to_bcoo`), e.g.
  ``jax.jit(sparse_apply(module.apply))({"params": sp}, inputs)``; every
  matmul with a BCOO kernel runs as a sparse-dense product."""
  from jax.experimental import sparse
  return sparse.sparsify(apply_fn)
