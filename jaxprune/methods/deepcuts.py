"""Cam-Cut and Smooth-Cut (DeepCuts, Grover et al., 2022): single-shot scores.

Both score a fine-tuned dense model once, summed over training batches, and
the mask is then fixed (as in the authors' ShrinkBench code; Grover, Gawri,
Manku, *DeepCuts: Single-Shot Interpretability based Pruning for BERT*, 2022):

* **Cam-Cut** (GradCAM-style): ``S_W[i, j] += |W[i, j] * G[i, j] * a[j]|`` and
  ``S_b[j] += |b[j] * G_b[j] * a[j]|``, where ``a[j]`` is the layer's output
  unit ``j`` (before any activation) averaged, signed, over the batch and the
  tokens. ``shift=10`` uses ``10 + a`` (the authors' "Shift" variant, closer to
  ``|W * G|``, modulated per output unit).
* **Smooth-Cut** (SmoothGrad-style): ``S += |W * G_bar|`` with ``G_bar`` the
  gradient averaged over noisy passes (Gaussian noise of std 1e-3 on every
  dense layer's output, 10 passes of the same batch).

Flax kernels are ``(in, out)``, so ``a`` broadcasts along the last axis.
The model glue (capturing dense outputs, injecting noise) is in
:mod:`jaxprune.train.capture`. The authors select per tensor ("Layer"
variants, the default here) and prune weights and biases.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import optax

from jaxprune import schedules
from jaxprune import selection
from jaxprune import transform
from jaxprune.methods import _common
from jaxprune import where as where_lib

__all__ = ["cam_cut_scores", "smooth_cut_scores", "precomputed_scorer",
           "fixed_mask", "masks_from_scores", "rewind"]


def _module_path(path) -> tuple[str, ...]:
  return tuple(where_lib.path_str(path).split("/")[:-1])


def cam_cut_scores(params: Any, grads: Any,
                   activations: Mapping[tuple[str, ...], jax.Array], *,
                   where: Any = None, shift: float | None = None) -> Any:
  """One batch's Cam-Cut scores ``|theta * g * a|`` on the ``where`` leaves.

  Args:
    params: the model params.
    grads: their gradients on the batch.
    activations: module path (tuple of names, e.g. ``("bert", "encoder",
      "layer", "0", "intermediate", "dense")``) -> mean output per unit,
      shape ``(out,)``; see :func:`jaxprune.train.capture.grads_and_activations`.
    where: prunable leaves.
    shift: ``None`` (Cam-Cut) or the shift added to ``a`` (authors: 10).

  Returns:
    A params-shaped tree of float32 scores (``optax.MaskedNode()`` on leaves
    not selected).

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxprune.methods import deepcuts
    >>> params = {"d": {"kernel": jnp.ones((2, 3)), "bias": jnp.ones(3)}}
    >>> grads = {"d": {"kernel": jnp.full((2, 3), 2.0), "bias": jnp.ones(3)}}
    >>> acts = {("d",): jnp.array([1.0, -2.0, 0.0])}
    >>> deepcuts.cam_cut_scores(params, grads, acts)["d"]["kernel"]
    Array([[2., 4., 0.],
           [2., 4., 0.]], dtype=float32)
  """
  flags = where_lib.resolve(where, params)
  out = []
  for (path, p), g, f in zip(jax.tree_util.tree_leaves_with_path(params),
                             jax.tree_util.tree_leaves(grads), flags):
    if not f:
      out.append(optax.MaskedNode())
      continue
    key = _module_path(path)
    if key not in activations:
      raise ValueError(f"no captured output for the module {'/'.join(key)!r} "
                       f"of the prunable leaf {where_lib.path_str(path)!r}")
    a = activations[key].astype(jnp.float32)
    if shift is not None:
      a = a + shift
    out.append(jnp.abs(p.astype(jnp.float32) * g.astype(jnp.float32) * a))
  return jax.tree_util.tree_structure(params).unflatten(out)


def smooth_cut_scores(params: Any, mean_grads: Any, *,
                      where: Any = None) -> Any:
  """One batch's Smooth-Cut scores ``|theta * G_bar|`` on the ``where`` leaves.

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxprune.methods import deepcuts
    >>> deepcuts.smooth_cut_scores({"w": -jnp.ones((1, 2))},
    ...                            {"w": jnp.array([[0.5, -3.0]])})["w"]
    Array([[0.5, 3. ]], dtype=float32)
  """
  flags = where_lib.resolve(where, params)
  leaves, treedef = jax.tree_util.tree_flatten(params)
  return treedef.unflatten([
      jnp.abs(p.astype(jnp.float32) * g.astype(jnp.float32)) if f
      else optax.MaskedNode()
      for p, g, f in zip(leaves, treedef.flatten_up_to(mean_grads), flags)])


def precomputed_scorer(scores: Any) -> transform.Scorer:
  """A scorer whose scores are fixed: ``scores`` (params-shaped, ``where``
  leaves only, e.g. from :func:`cam_cut_scores`).

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxprune.methods import deepcuts
    >>> sc = deepcuts.precomputed_scorer({"w": jnp.array([3.0, 1.0])})
    >>> sc.scores(sc.init({"w": jnp.zeros(2)}), None)["w"]
    Array([3., 1.], dtype=float32)
  """
  fixed = jax.tree.map(lambda s: jnp.asarray(s, jnp.float32), scores)

  def init(params):
    struct = jax.tree_util.tree_structure(params)
    if jax.tree_util.tree_structure(fixed) != struct:
      raise ValueError("`scores` must cover exactly the prunable leaves "
                       "(same tree and `where` as the pruning transform)")
    return fixed

  def update(state, grads, new_params, params, step):
    del grads, new_params, params, step
    return state

  return transform.Scorer(init, update, _common.state_as_scores,
                          _common.never)


def fixed_mask(optimizer: optax.GradientTransformation, scores: Any, *,
               sparsity: float, where: Any = None,
               granularity: str = "layer", stack_state: bool = True
               ) -> optax.GradientTransformationExtraArgs:
  """Fine-tunes with the mask of ``scores`` fixed from the first update on.

  The lowest ``floor(N * sparsity)`` scores (per leaf with
  ``granularity="layer"``, the authors' default) are pruned at step 0 and
  stay 0; their gradients are zeroed before ``optimizer``. ``stack_state``
  as in :func:`jaxprune.prune`.

  Example:
    >>> import jax.numpy as jnp, optax
    >>> from jaxprune.methods import deepcuts
    >>> params = {"w": jnp.ones((2, 2))}
    >>> tx = deepcuts.fixed_mask(optax.sgd(0.1), {"w": jnp.array([[4., 1.], [3., 2.]])},
    ...                          sparsity=0.5)
    >>> u, _ = tx.update(params, tx.init(params), params)
    >>> optax.apply_updates(params, u)["w"]
    Array([[0.9, 0. ],
           [0.9, 0. ]], dtype=float32)
  """
  return transform.prune(optimizer, precomputed_scorer(scores),
                         schedules.constant(sparsity), where=where,
                         granularity=granularity, persistent_mask=True,
                         stack_state=stack_state)


def masks_from_scores(scores: Any, sparsity: float,
                      granularity: str = "layer") -> Any:
  """Keep-masks pruning the ``floor(N * sparsity)`` lowest scores.

  The same exact selection (and tie-break) that :func:`fixed_mask` makes at
  its first update, per leaf (``"layer"``) or over all leaves (``"global"``).

  Example:
    >>> import jax.numpy as jnp
    >>> from jaxprune.methods import deepcuts
    >>> deepcuts.masks_from_scores({"w": jnp.array([3.0, 1.0, 2.0, 0.5])}, 0.5)
    {'w': Array([ True, False,  True, False], dtype=bool)}
  """
  leaves, treedef = jax.tree_util.tree_flatten(scores)
  sizes = [int(x.size) for x in leaves]
  if granularity == "layer":
    groups, k = list(range(len(leaves))), [int(n * sparsity) for n in sizes]
  elif granularity == "global":
    groups, k = [0] * len(leaves), [int(sum(sizes) * sparsity)]
  else:
    raise ValueError(f"`granularity` must be 'layer' or 'global', got "
                     f"{granularity!r}")
  masks, _ = selection.prune_masks(
      [jnp.asarray(x, jnp.float32) for x in leaves],
      jnp.asarray(k, jnp.int32), groups, len(k))
  return treedef.unflatten(list(masks))


def rewind(params0: Any, masks: Any) -> Any:
  """The lottery-ticket rewind: ``params0`` with the pruned weights at 0.

  ``masks`` is params-shaped with ``optax.MaskedNode()`` on leaves that are
  not pruned (as :func:`masks_from_scores` returns for DeepCuts scores);
  those leaves are ``params0`` unchanged.
  """
  is_masked = lambda x: isinstance(x, optax.MaskedNode)
  return jax.tree.map(
      lambda p, m: p if is_masked(m) else jnp.where(m, p, jnp.zeros_like(p)),
      params0, masks, is_leaf=is_masked)
