"""The generic pruning transformation that every method is an instance of.

Data flows one way::

    grads, params -> inner optimizer -> theta' = params + inner updates
                  -> scorer state (pure update on the selected leaves)
                  -> schedule(step) -> k -> exact selection -> masks
                  -> updates = masked(theta') - params

``prune`` wraps any optax transformation. Nothing has to be called after
``optax.apply_updates``: pruned weights come out exactly 0.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxprune import patterns as patterns_lib
from jaxprune import _checks
from jaxprune import schedules as schedules_lib
from jaxprune import stacking
from jaxprune import step_kinds as step_kinds_lib
from jaxprune import where as where_lib
from jaxprune.methods import _common

__all__ = ["Scorer", "PruneState", "prune", "selected_leaves",
           "find_prune_states"]

Tree = Any


class Scorer(NamedTuple):
  """A pruning criterion as pure functions on pytrees.

  Every tree argument has the structure of the params with
  ``optax.MaskedNode()`` at the leaves that are not prunable, so
  ``jax.tree.map`` over them visits exactly the prunable leaves.

  Attributes:
    init: ``params -> state``.
    update: ``(state, grads, new_params, params, step) -> state``, called
      once per update *after* the inner optimizer; ``new_params`` is
      ``params + inner_updates`` (before masking) and ``step`` the int32
      number of earlier updates.
    scores: ``(state, new_params) -> tree`` of float32 scores; the lowest
      are pruned.
    changes_at: ``step -> bool``: whether the scores may have changed at
      ``step`` for reasons other than ``new_params``. Used to skip the
      selection at mask events where the scores and ``k`` are unchanged
      (the mask would be identical). Return ``True`` when unsure.
    uses_params: whether ``scores`` depends on ``new_params`` directly (then
      every mask event selects again).
    needs_inner_state: whether ``update`` takes the keyword argument
      ``inner_state`` (the inner optimizer's state after this step's update,
      e.g. to read an ``inject_hyperparams`` learning rate).
    guards_nonfinite: whether ``update`` itself keeps the state of weights
      whose inputs are NaN or inf unchanged; otherwise :func:`prune`
      applies ``where(isfinite(g * theta'), new, old)`` to every
      params-shaped part of the returned state.
    step_hint: optional ``step -> bool`` (jnp code, vmappable): a decision
      of ``update`` that depends on the step only (PLATON: the step closes a
      window). When given, ``update`` takes the keyword argument ``hint``:
      that decision as a Python bool (see :mod:`jaxprune.step_kinds`), or
      ``None`` to trace it.
    ranks_pruned_last: whether ``update`` takes the keyword argument
      ``masks`` (the masks before this step, a tree of bool, ``True`` =
      kept) and, whenever it updates its state (``hint`` true, or its traced
      decision), makes the scores ``-inf`` where a mask is ``False``. Needs
      ``step_hint``. On a selection step whose kind the host decided with
      ``scorer=True``, ``prune(monotone=True)`` then selects on the scores
      as they are rather than on ``where(mask, score, -inf)``, which XLA
      keeps as one more float32 array written per weight (SEVEN, BERT-base,
      H100 proxy: 4 B per prunable weight of its selection steps).

  Performance note: :func:`prune` orders its masked update after the first
  params-shaped array of the state (in tree order), so a scorer whose passes
  read the params should write that array last (PLATON writes ``iwin``
  last, SEVEN ``importance``); otherwise XLA copies the donated params
  before updating them in place. Results do not depend on it.
  """
  init: Callable[[Tree], Any]
  update: Callable[..., Any]
  scores: Callable[[Any, Tree], Tree]
  changes_at: Callable[[jax.Array], jax.Array]
  uses_params: bool = False
  needs_inner_state: bool = False
  guards_nonfinite: bool = False
  step_hint: Optional[Callable[[jax.Array], jax.Array]] = None
  ranks_pruned_last: bool = False


class PruneState(NamedTuple):
  """State of :func:`prune`: arrays only, so it jits, pmaps and checkpoints.

  Attributes:
    count: int32, number of updates done so far (the next step index).
    inner_state: state of the wrapped optimizer.
    scorer_state: state of the scorer (trees shaped like the prunable params).
    mask_stacks: the last selected masks (bool, ``True`` = kept) as a
      :class:`~jaxprune.stacking.Stacked`: one array per bucket of prunable
      leaves of one shape and dtype, so few jit buffers. Read them as a tree
      with :attr:`masks`.
    threshold: float32 ``(G,)``, the score threshold of the last selection
      per group (``G = 1`` for global selection, one per leaf otherwise);
      ``-inf`` with ``monotone=True`` when only weights pruned earlier (which
      rank at ``-inf``) were pruned.
    num_pruned: int32 ``(G,)``, the ``k`` of the last selection per group.
      With a ``pattern`` other than unstructured, ``G``, ``k`` and the
      threshold are the pattern's (see :class:`jaxprune.patterns.Layout`).
    stale: bool, whether the scores changed since the last selection.
    kind_mismatch: bool, set (for good) when a step ran with a
      :class:`~jaxprune.step_kinds.StepKind` that this state contradicts;
      see :func:`jaxprune.step_kinds.check`.
  """
  count: jax.Array
  inner_state: optax.OptState
  scorer_state: Any
  mask_stacks: stacking.Stacked
  threshold: jax.Array
  num_pruned: jax.Array
  stale: jax.Array
  kind_mismatch: jax.Array

  @property
  def masks(self) -> Tree:
    """The last selected masks as a bool tree shaped like the params
    (``True`` = kept; ``optax.MaskedNode()`` at leaves that are not
    prunable)."""
    return self.mask_stacks.tree()


def find_prune_states(opt_state: Any) -> list["PruneState"]:
  """All :class:`~jaxprune.PruneState` inside an (optionally chained) state."""
  found = []

  def visit(x):
    if isinstance(x, PruneState):
      found.append(x)
      return True
    return False

  jax.tree_util.tree_flatten(opt_state, is_leaf=visit)
  return found


def _masked_tree(params: Tree, flags: list[bool], fn: Callable) -> Tree:
  leaves, treedef = jax.tree_util.tree_flatten(params)
  return treedef.unflatten([fn(x) if f else optax.MaskedNode()
                            for x, f in zip(leaves, flags)])


def selected_leaves(tree: Tree, flags: list[bool]) -> list[Any]:
  """The leaves of ``tree`` (params-shaped) where ``flags`` is set."""
  return [x for x, f in zip(jax.tree_util.tree_leaves(tree), flags) if f]


def _check_trees(name: str, tree: Tree, params: Tree) -> None:
  t1 = jax.tree_util.tree_structure(tree)
  t2 = jax.tree_util.tree_structure(params)
  if t1 != t2:
    raise ValueError(
        f"`{name}` must have the same tree structure as `params`; got "
        f"{t1} and {t2}")
  for a, b in zip(jax.tree_util.tree_leaves(tree),
                  jax.tree_util.tree_leaves(params)):
    if np.shape(a) != np.shape(b):
      raise ValueError(
          f"`{name}` leaf shapes must match `params`: got {np.shape(a)} for a "
          f"leaf of shape {np.shape(b)}")


def _params_shaped(template: Tree) -> Callable[[Any], bool]:
  """Predicate: is a (sub)tree shaped like ``template`` (same structure and
  leaf shapes)? Scorer states are built from such trees."""
  struct = jax.tree_util.tree_structure(template)
  shapes = [np.shape(a) for a in jax.tree_util.tree_leaves(template)]
  return lambda x: (jax.tree_util.tree_structure(x) == struct and all(
      np.shape(a) == s for a, s in zip(jax.tree_util.tree_leaves(x), shapes)))


def _guard(new: Any, old: Any, ok: Tree) -> Any:
  """``where(ok, new, old)`` on every params-shaped subtree of a scorer state.

  Scorer states are built from trees shaped like the prunable params (with
  ``MaskedNode`` elsewhere); those subtrees are guarded element-wise, any
  other leaf (a scalar, say) is taken from ``new``.
  """
  is_node = _params_shaped(ok)

  def pick(n, o):
    if is_node(n):
      return jax.tree.map(jnp.where, ok, n, o)
    return n

  return jax.tree.map(pick, new, old, is_leaf=is_node)


def _first_state_arrays(state: Any, template: Tree) -> list[Any]:
  """Per prunable leaf, the first params-shaped float array of a scorer state.

  ``template`` is a tree of the prunable leaves (``MaskedNode`` elsewhere);
  ``None`` for a leaf whose state holds no such array.
  """
  is_node = _params_shaped(template)
  first = [None] * jax.tree_util.tree_structure(template).num_leaves
  for node in jax.tree_util.tree_leaves(state, is_leaf=is_node):
    if is_node(node):
      for i, a in enumerate(jax.tree_util.tree_leaves(node)):
        if first[i] is None and jnp.issubdtype(a.dtype, jnp.floating):
          first[i] = a
  return first


def _relayout(state: PruneState, layout: stacking.StackLayout) -> PruneState:
  """``state`` with ``layout`` on its mask stacks.

  Raises ``ValueError`` unless they hold the same leaves in the same buckets
  (only the containers may differ: ``nnx.Optimizer`` initialises on
  ``nnx.Param`` nodes and updates on their values).
  """
  stacks = state.mask_stacks
  if not isinstance(stacks, stacking.Stacked):
    raise ValueError("`state.mask_stacks` must be a jaxprune.stacking.Stacked, "
                     f"got {type(stacks)}")
  if not stacks.layout.compatible(layout):
    raise ValueError(
        "`state` was created for other params, another `where` or another "
        "`stack_state`: its masks do not match the prunable leaves of "
        "`params`")
  return state._replace(mask_stacks=stacking.Stacked(stacks.stacks, layout))


def prune(optimizer: optax.GradientTransformation,
          scorer: Scorer,
          schedule: schedules_lib.Schedule,
          *,
          where: Any = None,
          granularity: str = "global",
          persistent_mask: bool = False,
          monotone: bool = False,
          pattern: Any = None,
          stack_state: bool = True,
          ) -> optax.GradientTransformationExtraArgs:
  """Wraps ``optimizer`` so that its updates prune the lowest-scoring weights.

  At a mask event (``schedule.is_event(step)``) exactly
  ``k = floor(N * schedule.sparsity(step))`` selected weights with the lowest
  scores are set to 0, ``N`` being the number of selected scalars, counted
  over all selected leaves together (``granularity="global"``) or per leaf
  (``"layer"``). Ties are broken deterministically (leaf order, then
  row-major order). Leaves not selected by ``where`` get the inner updates
  unchanged and the inner optimizer's state is never modified.

  Two modes:

  * ``persistent_mask=False`` (default, reference-faithful): weights are
    zeroed only at mask events; in between the optimizer may regrow them and
    the next selection starts from fresh scores.
  * ``persistent_mask=True``: pruned weights stay 0 at every step and their
    gradients are zeroed before the inner optimizer.

  Where ``schedule.frozen(step)`` holds, the last mask is applied at every
  step without selecting again. ``monotone=True`` (SEVEN) makes pruning
  irreversible: at each selection the weights pruned so far rank below every
  other weight, so they stay pruned; it implies ``persistent_mask``.

  Step kinds: ``update`` takes an optional keyword ``step_kind``, the
  :class:`~jaxprune.step_kinds.StepKind` of this step from
  ``jaxprune.step_kind(tx, step)``. With it the step's decisions (select,
  apply the masks, the scorer's window) are Python constants and the
  compiled step has no ``cond``; without it they are traced. Both give the
  same masks, and bitwise the same floats unless the backend contracts
  multiply-adds into FMAs (see :mod:`jaxprune.step_kinds`); a kind that
  contradicts the state sets its
  ``kind_mismatch`` flag (see :mod:`jaxprune.step_kinds`).

  Non-finite gradients: wherever ``g * theta'`` is NaN or inf (either factor
  non-finite), the scorer state of that weight is left as it was, so scores,
  masks and thresholds stay finite (PLATON and PINS test their sensitivity,
  ``|theta' g|`` and ``|g (theta' - eta g)|``, NaN or inf whenever ``g``
  or ``theta'`` is). The guard is element-wise and fused into
  the score update (a global "any non-finite?" flag would cost one more
  pass over all gradients every step). The inner optimizer sees the
  gradients as they are: wrap it in ``optax.apply_if_finite`` to skip its
  update, or wrap the whole transformation to skip the step entirely
  (pruning state included) and count skipped steps in its state.

  Args:
    optimizer: any optax transformation (chains, ``inject_hyperparams``,
      ``MultiSteps``...). Its extra arguments are passed through.
    scorer: the pruning criterion.
    schedule: sparsity and mask events as functions of the step.
    where: which leaves are prunable (see :mod:`jaxprune.where`).
    granularity: ``"global"`` or ``"layer"`` (per leaf).
    persistent_mask: keep pruned weights at 0 between mask events.
    monotone: pruned weights are never selected again (implies
      ``persistent_mask``).
    pattern: the sparsity pattern (see :mod:`jaxprune.patterns`): ``None``
      or ``"unstructured"`` (default), ``"N:M"`` (e.g. ``"2:4"``), or a
      :class:`jaxprune.patterns.Pattern` such as ``patterns.nm(2, 4)`` or
      ``patterns.heads_and_neurons(12, preset="bert")``. With a structured
      pattern ``k`` counts the pattern's units (N:M slots, heads, neurons).
    stack_state: store the masks as one array per shape of prunable leaves
      (:mod:`jaxprune.stacking`: few jit buffers); ``False``: one stack per
      leaf, for leaves of one shape sharded differently (tensor
      parallelism).

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose state is a
    :class:`PruneState`.

  Example:
    >>> import jax, jax.numpy as jnp, optax, jaxprune
    >>> params = {"w": jnp.arange(1.0, 9.0).reshape(2, 4)}
    >>> tx = jaxprune.prune(optax.sgd(0.0), jaxprune.magnitude_scorer(),
    ...                     jaxprune.schedules.constant(0.5))
    >>> state = tx.init(params)
    >>> updates, state = tx.update(jax.tree.map(jnp.ones_like, params), state,
    ...                            params)
    >>> optax.apply_updates(params, updates)["w"]
    Array([[0., 0., 0., 0.],
           [5., 6., 7., 8.]], dtype=float32)
  """
  if granularity not in ("global", "layer"):
    raise ValueError(
        f"`granularity` must be 'global' or 'layer', got {granularity!r}")
  if not isinstance(schedule, schedules_lib.Schedule):
    raise ValueError(f"`schedule` must be a jaxprune Schedule, got {schedule!r}")
  _checks.check_transformation("optimizer", optimizer)
  if not isinstance(scorer, Scorer):
    raise ValueError(f"`scorer` must be a jaxprune.Scorer, got {scorer!r}")
  if scorer.ranks_pruned_last and scorer.step_hint is None:
    raise ValueError("a Scorer with `ranks_pruned_last=True` needs a "
                     "`step_hint` (the steps where it updates its state)")
  _checks.check_bool("persistent_mask", persistent_mask)
  _checks.check_bool("monotone", monotone)
  _checks.check_bool("stack_state", stack_state)
  inner = optax.with_extra_args_support(optimizer)
  target = float(schedule.target)
  pattern = patterns_lib.resolve(pattern)
  if pattern.check_target is not None:
    pattern.check_target(target)
  persistent_mask = bool(persistent_mask or monotone)
  frozen_fn = schedule.frozen or (lambda step: jnp.asarray(False))
  bound = {}  # the layout of the params last seen by init/update (host kinds)

  def layout_for(params, flags) -> patterns_lib.Layout:
    pl = jax.tree_util.tree_leaves_with_path(params)
    paths = [where_lib.path_str(p) for (p, _), f in zip(pl, flags) if f]
    shapes = [tuple(np.shape(x)) for (_, x), f in zip(pl, flags) if f]
    return pattern.bind(paths, shapes, granularity, target)

  def init_fn(params):
    flags = where_lib.resolve(where, params)
    sel = selected_leaves(params, flags)
    sizes = [int(np.prod(x.shape)) for x in sel]
    if sum(sizes) >= 2**31:
      raise ValueError("at most 2**31 - 1 prunable scalars are supported, got "
                       f"{sum(sizes)}")
    layout = layout_for(params, flags)
    bound["layout"] = layout
    num_groups = layout.num_groups
    for (path, leaf), f in zip(jax.tree_util.tree_leaves_with_path(params),
                               flags):
      if (f and not isinstance(leaf, jax.core.Tracer)
          and not bool(jnp.all(jnp.isfinite(leaf)))):
        raise ValueError("`params` has NaN or inf in the prunable leaf "
                         f"{where_lib.path_str(path)!r}")
    sel_tree = _masked_tree(params, flags, lambda x: x)
    return PruneState(
        count=jnp.zeros([], jnp.int32),
        inner_state=inner.init(params),
        scorer_state=scorer.init(sel_tree),
        mask_stacks=stacking.Stacked.from_tree(
            _masked_tree(params, flags,
                         lambda x: jnp.ones(x.shape, jnp.bool_)),
            by_leaf=not stack_state),
        threshold=jnp.full((num_groups,), -jnp.inf, jnp.float32),
        num_pruned=jnp.zeros((num_groups,), jnp.int32),
        stale=jnp.ones([], jnp.bool_),
        kind_mismatch=jnp.zeros([], jnp.bool_),
    )

  def step_flags(step, layout):
    """What the schedule says of ``step``: (k, event, apply, changes)."""
    frac = schedule.sparsity(step)
    k = layout.k(frac, frac == jnp.float32(target))
    event = schedule.is_event(step)
    apply = (jnp.asarray(True) if persistent_mask
             else event | frozen_fn(step))
    changes = scorer.changes_at(step) | scorer.uses_params
    return k, event, apply, changes

  def decisions(step, layout, state_stale, num_pruned):
    """The traced decisions of a step: (k, reselect, apply, stale)."""
    k, event, apply, changes = step_flags(step, layout)
    stale = state_stale | changes
    reselect = event & (stale | jnp.any(k != num_pruned))
    return k, reselect, apply, stale

  def host_flags(step):
    layout = bound.get("layout")
    if layout is None:
      raise ValueError("call `tx.init(params)` before asking for step kinds "
                       "(jaxprune.step_kind): they depend on the params' "
                       "prunable sizes")
    k, event, apply, changes = step_flags(step, layout)
    hint = (scorer.step_hint(step) if scorer.step_hint is not None
            else jnp.asarray(False))
    return event, apply, changes, k, hint

  host_kinds = step_kinds_lib.HostKinds(host_flags, scorer.uses_params,
                                        scorer.step_hint is not None)

  def update_fn(updates, state, params=None, *, step_kind=None,
                **extra_args):
    if params is None:
      raise ValueError("`params` must be passed to `update` of a pruning "
                       "transformation (tx.update(grads, state, params))")
    if not isinstance(state, PruneState):
      raise ValueError(f"`state` must be a PruneState, got {type(state)}")
    if step_kind is not None and not isinstance(step_kind,
                                                step_kinds_lib.StepKind):
      raise ValueError("`step_kind` must be None or a jaxprune StepKind "
                       f"(from jaxprune.step_kind(tx, step)), got {step_kind!r}")
    _check_trees("grads", updates, params)
    flags = where_lib.resolve(where, params)
    mask_layout = stacking.layout_of(
        _masked_tree(params, flags, lambda x: jax.ShapeDtypeStruct(
            x.shape, jnp.bool_)), by_leaf=not stack_state)
    state = _relayout(state, mask_layout)
    expected = jax.eval_shape(scorer.init, _masked_tree(params, flags,
                                                        lambda x: x))
    if (jax.tree_util.tree_structure(expected)
        != jax.tree_util.tree_structure(state.scorer_state)):
      raise ValueError(
          "`state` holds the score state of another method or scorer: "
          "create it with this transformation's `init`")
    step = state.count
    treedef = jax.tree_util.tree_structure(params)
    p_leaves = treedef.flatten_up_to(params)
    g_leaves = treedef.flatten_up_to(updates)
    m_sel = state.mask_stacks.leaves()

    # 1. Inner optimizer (on masked gradients in persistent mode).
    if persistent_mask:
      it = iter(m_sel)
      g_in = [jnp.where(next(it), g, jnp.zeros_like(g)) if f else g
              for g, f in zip(g_leaves, flags)]
      grads_in = treedef.unflatten(g_in)
    else:
      grads_in = updates
    inner_updates, inner_state = inner.update(grads_in, state.inner_state,
                                              params, **extra_args)
    u_leaves = treedef.flatten_up_to(inner_updates)

    # 2. Scores from theta' = params + inner updates.
    sel_p = [p for p, f in zip(p_leaves, flags) if f]
    sel_u = [u for u, f in zip(u_leaves, flags) if f]
    sel_g = [g for g, f in zip(g_leaves, flags) if f]
    new_p = [(p + u).astype(p.dtype) for p, u in zip(sel_p, sel_u)]

    def as_tree(sel):
      it = iter(sel)
      return treedef.unflatten([next(it) if f else optax.MaskedNode()
                                for f in flags])

    # A NaN/inf in g or theta' would poison a weight's score for good: keep
    # its previous state there (g * theta' is non-finite iff either factor
    # is; inf * 0 = nan). Element-wise, so XLA fuses it into the update.
    extra = ({"inner_state": inner_state} if scorer.needs_inner_state
             else {})
    if scorer.step_hint is not None and step_kind is not None:
      extra["hint"] = step_kind.scorer
    if scorer.ranks_pruned_last:
      extra["masks"] = as_tree(m_sel)
    scorer_state = scorer.update(state.scorer_state, as_tree(sel_g),
                                 as_tree(new_p), as_tree(sel_p), step, **extra)
    if not scorer.guards_nonfinite:
      ok = as_tree([jnp.isfinite(g.astype(jnp.float32) *
                                 p.astype(jnp.float32))
                    for g, p in zip(sel_g, new_p)])
      scorer_state = _guard(scorer_state, state.scorer_state, ok)

    # 3. Schedule: k per group; select only if scores or k changed.
    layout = layout_for(params, flags)
    bound["layout"] = layout
    k, reselect, apply, stale = decisions(step, layout, state.stale,
                                          state.num_pruned)

    def select(_):
      scores = jax.tree_util.tree_leaves(scorer.scores(scorer_state,
                                                       as_tree(new_p)))
      # Pruned so far: below every score, so pruned again. A scorer that
      # ranks them last (and ran this step) has done it in its state.
      ranked = (scorer.ranks_pruned_last and step_kind is not None
                and bool(step_kind.scorer))
      if monotone and not ranked:
        scores = [jnp.where(m, s, -jnp.inf) for s, m in zip(scores, m_sel)]
      masks, threshold = layout.select(scores, k)
      return stacking.Stacked.from_leaves(masks, mask_layout), threshold

    def keep(_):
      return state.mask_stacks, state.threshold

    kind_mismatch = state.kind_mismatch
    if step_kind is None:
      mask_stacks, threshold = jax.lax.cond(reselect, select, keep, None)
    else:  # decided on the host: no cond; check the decisions on the device
      wrong = ((reselect != step_kind.select) |
               (apply != step_kind.apply))
      if scorer.step_hint is not None:
        wrong = wrong | (scorer.step_hint(step) != bool(step_kind.scorer))
      kind_mismatch = kind_mismatch | wrong
      reselect = jnp.asarray(bool(step_kind.select))
      mask_stacks, threshold = (select if step_kind.select else keep)(None)
      apply = bool(step_kind.apply)
    masks = mask_stacks.leaves()
    num_pruned = jnp.where(reselect, k, state.num_pruned)
    stale = stale & ~reselect

    # 4. Zero pruned weights through the updates: p + (-p) == 0 exactly.
    # Ordered after the scorer's last pass (the first params-shaped state
    # array, see `Scorer`), which also reads params: XLA:CPU then updates
    # params in place instead of copying them first. Not on a selection step
    # decided on the host of an accelerator: there the masks already depend
    # on every score, and XLA:GPU, which copies nothing either way, would
    # read that state array once more per weight only to order the pass
    # (BERT-base, H100 proxy: 22 bytes per prunable weight of PLATON's
    # selection step).
    order_after_scorer = not (step_kind is not None and step_kind.select
                              and jax.default_backend() != "cpu")
    last = _first_state_arrays(scorer_state, as_tree(new_p))
    out, it_m, it_last = [], iter(masks), iter(last)
    for p, u, f in zip(p_leaves, u_leaves, flags):
      if f:
        m, dep = next(it_m), next(it_last)
        if apply is not False:  # a traced flag, or True
          cond = ~m if apply is True else apply & ~m
          if dep is not None and order_after_scorer:
            cond = cond & _common.after(dep)
          u = jnp.where(cond, -p.astype(u.dtype), u)
      out.append(u)
    new_state = PruneState(
        count=optax.safe_increment(step),
        inner_state=inner_state,
        scorer_state=scorer_state,
        mask_stacks=mask_stacks,
        threshold=threshold,
        num_pruned=num_pruned,
        stale=stale,
        kind_mismatch=kind_mismatch,
    )
    return treedef.unflatten(out), new_state

  setattr(update_fn, step_kinds_lib._ATTR, host_kinds)  # pylint: disable=protected-access
  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
