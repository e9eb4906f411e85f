"""A small training loop: progress bar, periodic eval, JSON-lines log, checkpoints.

Checkpoints are orbax ``CheckpointManager`` saves, which write to a
temporary directory and rename it when complete, so a run killed during a
save never leaves a checkpoint that ``latest_step`` would read. A resumed run
restores params, optimizer state (pruning scores and masks included) and the
step, and asks ``batch_fn`` for the batch of each step by its index, so it
continues exactly where the interrupted run would have been.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxprune import step_kinds
from jaxprune.train import _validate
from jaxprune.transform import find_prune_states

_CONFIG_KEY = "jaxprune_config"

__all__ = ["fit", "find_prune_states", "mask_sparsity", "Checkpointer"]


@jax.jit
def _mask_sparsity(masks):
  leaves = jax.tree.leaves(masks)
  kept = sum(jnp.sum(m, dtype=jnp.float32) for m in leaves)
  total = sum(m.size for m in leaves)
  return 1.0 - kept / total


def mask_sparsity(opt_state: Any) -> float | None:
  """Fraction of pruned entries in the last selected masks (None if no pruning).

  Under ``pmap`` (a leading device axis on the state) replica 0 is read.
  """
  states = find_prune_states(opt_state)
  if not states:
    return None
  masks = states[0].masks
  if states[0].count.ndim == 1:
    masks = jax.tree.map(lambda m: m[0], masks)
  return float(_mask_sparsity(masks))


class Checkpointer:
  """Atomic orbax checkpoints of ``{"params", "opt_state", "step"}``.

  Args:
    directory: the checkpoint directory (created if needed).
    max_to_keep: number of most recent checkpoints kept.
    config: optional JSON-serialisable description of the run (method,
      sparsity, ...), stored with every checkpoint; :meth:`restore` refuses a
      checkpoint whose stored description differs.
  """

  def __init__(self, directory: str, max_to_keep: int = 2,
               config: dict | None = None):
    import orbax.checkpoint as ocp
    if not isinstance(directory, (str, os.PathLike)) or not str(directory):
      raise ValueError(
          f"`ckpt_dir` must be a non-empty path, got {directory!r}")
    max_to_keep = _validate.check_int("max_to_keep", max_to_keep, minimum=1)
    if config is not None:
      if not isinstance(config, dict):
        raise ValueError("`config` (fit's `ckpt_config`) must be a dict or "
                         f"None, got {config!r}")
      try:
        config = json.loads(json.dumps(config))
      except (TypeError, ValueError) as e:
        raise ValueError(
            "`config` (fit's `ckpt_config`) must be JSON-serialisable, got "
            f"{config!r}: {e}") from e
    self._ocp = ocp
    self.config = config
    self.directory = os.path.abspath(directory)
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                             create=True),
        item_handlers=ocp.StandardCheckpointHandler())

  def latest_step(self) -> int | None:
    """The step of the latest complete checkpoint (``None`` if there is none)."""
    return self.manager.latest_step()

  def save(self, step: int, tree: Any) -> None:
    """Writes ``tree`` as checkpoint ``step`` and waits until it is complete."""
    custom = {_CONFIG_KEY: self.config} if self.config is not None else None
    self.manager.save(step, args=self._ocp.args.StandardSave(tree),
                      custom_metadata=custom)
    # Synchronous: the next step donates these buffers.
    self.manager.wait_until_finished()

  def check_compatible(self, step: int, like: Any) -> None:
    """Raises ``ValueError`` if checkpoint ``step`` does not fit ``like``.

    Compares the saved tree's leaf paths, shapes and dtypes with ``like``
    (orbax alone would silently restore a subset of the saved leaves when the
    optimizer state has fewer prunable leaves, e.g. another ``where``, and
    silently cast dtypes), and the stored ``config`` with this one's.
    """
    what = f"checkpoint {step} in {self.directory!r}"
    if self.config is not None:
      stored = self.manager.metadata(step).custom_metadata or {}
      saved_config = stored.get(_CONFIG_KEY)
      if saved_config != self.config:
        raise ValueError(
            f"{what} was written by another configuration: its config is "
            f"{saved_config!r}, this run's is {self.config!r}; use another "
            "directory or delete it")
    saved = _validate.leaf_specs(self.manager.item_metadata(step).tree)
    _validate.check_tree_matches(saved, _validate.leaf_specs(like), what=what)

  def restore(self, step: int, like: Any) -> Any:
    """Restores checkpoint ``step`` with the structure, shapes and dtypes of ``like``.

    Each leaf is placed like ``like``'s: with its sharding where that is
    committed (sharded or pinned to a device), uncommitted on the default
    device where ``like``'s leaf is (``jnp.array(...)``). A jitted step
    compiles one program per placement of its inputs, so a resumed run
    then runs (and finds in the persistent compilation cache) the program
    an uninterrupted run compiled, instead of compiling a second one.
    """
    self.check_compatible(step, like)

    def uncommitted(x):
      return isinstance(x, jax.Array) and not x.committed

    abstract = jax.tree.map(
        lambda x: np.empty(x.shape, x.dtype) if uncommitted(x)
        else self._ocp.utils.to_shape_dtype_struct(x), like)
    restored = self.manager.restore(
        step, args=self._ocp.args.StandardRestore(abstract))
    return jax.tree.map(lambda r, x: jnp.asarray(r) if uncommitted(x) else r,
                        restored, like)

  def close(self) -> None:
    self.manager.close()


def fit(step_fn: Callable, params: Any, opt_state: Any,
        batch_fn: Callable[[int], Any], num_steps: int, *,
        rng: jax.Array,
        eval_fn: Callable[[Any], dict] | None = None,
        eval_every: int = 0,
        log_path: str | None = None,
        log_every: int = 10,
        ckpt_dir: str | None = None,
        ckpt_every: int = 0,
        progress: bool = True,
        desc: str = "train",
        stop_after: int | None = None,
        tensorboard_dir: str | None = None,
        ckpt_config: dict | None = None,
        ) -> tuple[Any, Any, list[dict]]:
  """Runs ``num_steps`` train steps with logging, eval and checkpoints.

  Args:
    step_fn: ``(params, opt_state, batch, rng, step) -> (params, opt_state,
      metrics)``, e.g. from :func:`jaxprune.train.steps.make_train_step`.
    params: initial params (ignored when resuming from a checkpoint).
    opt_state: initial optimizer state (likewise).
    batch_fn: ``step -> batch``; must be a pure function of the step index
      for resumed runs to see the same data.
    num_steps: total number of steps.
    rng: base PRNG key (dropout); each step folds in its index.
    eval_fn: ``params -> dict`` of metrics, run every ``eval_every`` steps
      and at the end.
    eval_every: steps between evals (0 = only at the end).
    log_path: JSON-lines file; one record per log point and per eval.
    log_every: steps between log records / progress-bar updates.
    ckpt_dir: orbax checkpoint directory; the run resumes from its latest
      complete checkpoint if there is one. A checkpoint whose params or
      optimizer state differ in structure, shape or dtype from ``params`` and
      ``opt_state`` (another model, optimizer, method or ``where``) is
      refused with a ``ValueError``, as is one past ``num_steps``.
    ckpt_every: steps between checkpoints (0 = only at the end).
    progress: show a tqdm progress bar (loss, sparsity, steps/s, ETA).
    desc: progress-bar label.
    stop_after: stop (as if killed) after this many steps of this call;
      for tests of resumption.
    tensorboard_dir: also write every record as TensorBoard scalars there
      (needs ``tensorboardX``: ``pip install jaxprune[tensorboard]``).
    ckpt_config: optional JSON-serialisable description of the run (method,
      sparsity, total steps...), stored with every checkpoint; resuming from
      a checkpoint written with another description raises ``ValueError``.

  Returns:
    ``(params, opt_state, records)``.

  Raises:
    ValueError: on a bad argument (naming it, its value and what is
      allowed) or a checkpoint in ``ckpt_dir`` from another configuration.
  """
  from tqdm.auto import tqdm

  _validate.check_callable("step_fn", step_fn)
  _validate.check_callable("batch_fn", batch_fn)
  _validate.check_callable("eval_fn", eval_fn, optional=True)
  if params is None:
    raise ValueError("`params` must be a pytree of arrays, got None")
  if opt_state is None:
    raise ValueError("`opt_state` must be the optimizer state "
                     "(tx.init(params)), got None")
  num_steps = _validate.check_int("num_steps", num_steps, minimum=0)
  _validate.check_key("rng", rng)
  eval_every = _validate.check_int("eval_every", eval_every, minimum=0)
  log_every = _validate.check_int("log_every", log_every, minimum=1)
  ckpt_every = _validate.check_int("ckpt_every", ckpt_every, minimum=0)
  stop_after = _validate.check_optional_int("stop_after", stop_after,
                                            minimum=1)
  _validate.check_bool("progress", progress)
  if ckpt_every and not ckpt_dir:
    raise ValueError(f"`ckpt_every` = {ckpt_every} needs a `ckpt_dir`, got "
                     f"{ckpt_dir!r}")
  if ckpt_config is not None and not ckpt_dir:
    raise ValueError(f"`ckpt_config` = {ckpt_config!r} needs a `ckpt_dir`, "
                     f"got {ckpt_dir!r}")
  if eval_every and eval_fn is None:
    raise ValueError(f"`eval_every` = {eval_every} needs an `eval_fn`, got "
                     "None")

  ckpt = Checkpointer(ckpt_dir, config=ckpt_config) if ckpt_dir else None
  start = 0
  if ckpt is not None and ckpt.latest_step() is not None:
    last = ckpt.latest_step()
    if last > num_steps:
      ckpt.close()
      raise ValueError(
          f"`ckpt_dir` {ckpt.directory!r} holds a checkpoint at step {last}, "
          f"past `num_steps` = {num_steps}: it belongs to another run")
    try:
      restored = ckpt.restore(last, {"params": params, "opt_state": opt_state,
                                     "step": np.zeros((), np.int64)})
    except BaseException:
      ckpt.close()
      raise
    params, opt_state = restored["params"], restored["opt_state"]
    start = int(restored["step"])
  records: list[dict] = []
  log_file = open(log_path, "a") if log_path else None
  writer = None
  if tensorboard_dir:
    try:
      from tensorboardX import SummaryWriter
    except ImportError as e:
      raise ValueError(
          "`tensorboard_dir` needs the tensorboardX package: pip install "
          "'jaxprune[tensorboard]'") from e
    writer = SummaryWriter(tensorboard_dir)

  def emit(record):
    records.append(record)
    if log_file:
      log_file.write(json.dumps(record) + "\n")
      log_file.flush()
    if writer is not None:
      flat = {("eval/" + k if "eval" in record else "train/" + k): v
              for k, v in record.get("eval", record).items()
              if k != "step" and isinstance(v, (int, float))}
      for k, v in flat.items():
        writer.add_scalar(k, v, record["step"])
      writer.flush()

  bar = tqdm(total=num_steps, initial=start, desc=desc, disable=not progress,
             dynamic_ncols=True)
  t_last, s_last = time.perf_counter(), start
  t0 = time.perf_counter()
  done = 0
  try:
    for s in range(start, num_steps):
      params, opt_state, metrics = step_fn(params, opt_state, batch_fn(s), rng,
                                           s)
      done += 1
      last_step = s + 1 == num_steps
      if (s + 1) % log_every == 0 or last_step:
        step_kinds.check(metrics)  # a wrong step kind: raise, don't log on
        metrics = {k: float(np.mean(np.asarray(v))) for k, v in metrics.items()
                   if k != "kind_mismatch"}
        now = time.perf_counter()
        rate = (s + 1 - s_last) / max(now - t_last, 1e-9)
        t_last, s_last = now, s + 1
        sp = mask_sparsity(opt_state)
        record = {"step": s + 1, **metrics, "steps_per_s": rate,
                  "elapsed_s": now - t0}
        if sp is not None:
          record["mask_sparsity"] = max(sp, 0.0)
        emit(record)
        bar.set_postfix(loss=f"{metrics['loss']:.4f}",
                        sparsity="-" if sp is None else f"{max(sp, 0.0):.3f}",
                        it_s=f"{rate:.2f}")
      bar.update(1)
      if eval_fn is not None and ((eval_every and (s + 1) % eval_every == 0)
                                  or last_step):
        result = dict(eval_fn(params))
        sp = mask_sparsity(opt_state)
        if sp is not None:
          result["mask_sparsity"] = max(sp, 0.0)
        emit({"step": s + 1, "eval": result})
      if ckpt is not None and ((ckpt_every and (s + 1) % ckpt_every == 0)
                               or last_step):
        step_kinds.check(opt_state)  # never checkpoint a wrong-kind state
        ckpt.save(s + 1, {"params": params, "opt_state": opt_state,
                          "step": np.full((), s + 1, np.int64)})
      if stop_after is not None and done >= stop_after:
        break
  finally:
    bar.close()
    if log_file:
      log_file.close()
    if writer is not None:
      writer.close()
    if ckpt is not None:
      ckpt.close()
  return params, opt_state, records
