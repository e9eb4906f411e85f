"""The experiment runner: one command for every task, method and dataset.

Usage::

    python -m experiments.run --config experiments/configs/demo.py
    python -m experiments.run --config experiments/configs/text.py \\
        --set train_file=reviews.csv validation_file=dev.csv \\
        text_column=review label_column=stars
    python -m experiments.run --config experiments/configs/platon/mnli_90.py \\
        --set parallel=sharded

A run is a :class:`experiments.config.RunConfig`: a config file (a Python
file with ``get_config()``) and ``--set key=value`` overrides, all checked
before any data or model is loaded. The task family (``text``, ``qa``,
``image``; :mod:`experiments.tasks`) prepares data, model, loss and metrics;
with ``dense_baseline`` (and always for ``cam_cut``/``smooth_cut``, which
score the dense fine-tuned model) the dense model is fine-tuned first with
the same budget and data order; then the method runs, and
:mod:`experiments.report` writes ``summary.json``, ``report.md``,
``curves.png`` and ``layer_sparsity.png`` to the run folder.

Multi-host: with ``distributed=True`` (or the environment variable
``JAXPRUNE_DISTRIBUTED=1``) every host runs the same command; the runner calls
``jax.distributed.initialize()`` before anything else touches JAX (on TPU
pods, SLURM or Open MPI it finds the other hosts by itself) and, with
``parallel=sharded``, trains on a 1-D ``data`` mesh over all the hosts'
devices, each host feeding its slice of every global batch. Elsewhere set
``JAXPRUNE_COORDINATOR`` (``host:port`` of process 0),
``JAXPRUNE_NUM_PROCESSES`` and ``JAXPRUNE_PROCESS_ID``: those that are set
are passed to ``initialize``. On CPU the processes reduce with gloo
(``jax_cpu_collectives_implementation``, unless already chosen). Only
process 0 writes logs and reports; every process writes its part of the
orbax checkpoints, so ``out`` must be a folder all hosts share.

``--save-params`` also writes the trained params (``params.msgpack``) and,
for pruning methods, the final masks (``masks.msgpack``) to the run folder,
as ``flax.serialization.to_bytes`` of their pytrees (process 0 only).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

import jaxprune
from experiments import config as config_lib
from experiments import optimizer
from experiments import report
from experiments import trainer as trainer_lib
from jaxprune import train as train_lib

__all__ = ["main", "execute", "prepare_task", "default_out", "Result"]


class Result(NamedTuple):
  """What :func:`execute` returns."""
  summary: dict                          # what summary.json holds
  params: Any                            # the trained model's params
  dense: trainer_lib.Outcome | None      # the dense baseline, when run
  task: Any                              # the prepared task


def prepare_task(cfg: config_lib.RunConfig):
  """The task family's :class:`experiments.tasks.base.Prepared`."""
  if cfg.task == "text":
    from experiments.tasks import text_classification as family
  elif cfg.task == "qa":
    from experiments.tasks import qa as family
  else:
    from experiments.tasks import image_classification as family
  task = family.prepare(cfg)
  if cfg.where is None and cfg.method == "movement":
    task.where += "_kernels"   # the authors score the encoder's matrices only
  task.info["where"] = task.where
  task.where = optimizer.resolve_where(task.where)
  jaxprune.where.resolve(task.where, task.params)  # fails early if wrong
  return task


def default_out(cfg: config_lib.RunConfig) -> str:
  """``runs/<task>_<data>_<method>_<sparsity percent>``."""
  data = (cfg.data_name if cfg.data_source == "builtin" else
          os.path.splitext(os.path.basename(os.path.normpath(
              cfg.train_file or cfg.dataset or cfg.image_folder)))[0])
  tag = "dense" if cfg.method == "dense" else (
      f"{cfg.method}_{round(100 * cfg.sparsity)}")
  return os.path.join("runs", f"{cfg.task}_{data.replace('/', '_')}_{tag}")


def _pattern(cfg, task) -> Any:
  if cfg.pattern == "unstructured" or cfg.method == "dense":
    return None
  from jaxprune import patterns
  if cfg.pattern in ("heads_and_neurons", "heads", "neurons"):
    return patterns.heads_and_neurons(
        task.model.config.heads_per_layer,
        preset="vit" if cfg.task == "image" else "bert",
        aggregate=cfg.aggregate, heads=cfg.pattern != "neurons",
        neurons=cfg.pattern != "heads")
  return patterns.resolve(cfg.pattern)


def _call(model, batch, params=None):
  kwargs = {} if params is None else {"params": params}
  if "pixel_values" in batch:
    return model(batch["pixel_values"], **kwargs)
  return model(batch["input_ids"], attention_mask=batch["attention_mask"],
               token_type_ids=batch["token_type_ids"], **kwargs)


def _shrink(task, params, out: str) -> dict:
  """Slices dead heads/neurons out; logits against the masked model."""
  from jaxprune import export, shrink
  small = shrink.shrink(task.model, params)
  n = min(16, task.train_size)
  batch = jax.tree.map(jnp.asarray, task.make_batch(np.arange(n), 0,
                                                    np.arange(n)))
  want, got = _call(task.model, batch, params), _call(small, batch)
  diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(
      jax.tree.leaves(want), jax.tree.leaves(got)))
  small.save_pretrained(os.path.join(out, "shrunk_model"))
  size = export.size_report(params, None)
  return {"heads_per_layer": list(small.heads_per_layer),
          "intermediate_sizes": list(small.intermediate_sizes),
          "params_dense": int(sum(np.size(x) for x in jax.tree.leaves(
              params))),
          "params_shrunk": small.num_params(),
          "max_abs_logit_diff_vs_masked": diff,
          "compressed_bytes": size.file_bytes,
          "dense_bytes": size.dense_bytes}


def execute(cfg: config_lib.RunConfig, *, task: Any = None,
            dense: trainer_lib.Outcome | None = None,
            command: str | None = None, save_params: bool = False
            ) -> Result:
  """Runs ``cfg`` (dense baseline first where asked); writes its folder.

  Args:
    cfg: the run's config.
    task: a prepared task to reuse (:func:`prepare_task`), or None.
    dense: a finished dense baseline of the same task and budget to reuse.
    command: the command line that reproduces the run (for the report).
    save_params: also write ``params.msgpack`` (and ``masks.msgpack``).
  """
  t0 = time.time()
  out = cfg.out or default_out(cfg)
  os.makedirs(out, exist_ok=True)
  task = task or prepare_task(cfg)
  where = task.where
  needs_dense = (cfg.method in ("cam_cut", "smooth_cut")
                 or cfg.teacher == "dense")
  if dense is None and cfg.method != "dense" and (cfg.dense_baseline
                                                  or needs_dense):
    dense = trainer_lib.train_and_evaluate(
        cfg.as_dense(), task, out, log_name="log_dense.jsonl")
  pattern = _pattern(cfg, task)
  run = trainer_lib.train_and_evaluate(
      cfg, task, out, pattern=pattern,
      dense_params=dense.params if dense is not None else None)
  pruned_evals = report.evals(run.records)
  dense_evals = report.evals(dense.records) if dense is not None else None
  final = dict(pruned_evals[-1]) if pruned_evals else {}
  final.pop("step", None)
  best = max(pruned_evals, key=lambda e: e.get(task.primary, -np.inf)) \
      if pruned_evals else {}
  dense_final = None
  if dense_evals:
    dense_final = {k: v for k, v in dense_evals[-1].items() if k != "step"}
  summary = {
      "task": cfg.task, "method": cfg.method,
      "target_sparsity": 0.0 if cfg.method == "dense" else cfg.sparsity,
      "actual_sparsity": float(jaxprune.actual_sparsity(run.params, where)),
      "primary_metric": task.primary, "metrics": final, "best": best,
      "dense_metrics": dense_final,
      "seconds": time.time() - t0,
      "train_seconds": {"dense": dense.seconds if dense else None,
                        "pruned": run.seconds},
      "total_steps": run.trainer.total_steps,
      "steps_per_epoch": run.trainer.steps_per_epoch,
      "batch_size": cfg.batch_size, "seed": cfg.seed,
      "method_args": run.trainer.overrides, **run.info,
      "layer_sparsity": report.layer_report(run.params, where),
      "devices": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
      "processes": jax.process_count(),
      "command": command or "python -m experiments.run " + " ".join(
          "--set " + shlex.quote(f"{k}={v!r}" if isinstance(v, str) else
                                 f"{k}={v}")
          for k, v in cfg.to_dict().items()
          if v != config_lib.RunConfig.__dataclass_fields__[k].default),
      **task.info, "config": cfg.to_dict(),
  }
  if cfg.shrink and pattern is not None and cfg.pattern in (
      "heads_and_neurons", "heads", "neurons"):
    summary["shrink"] = _shrink(task, run.params, out)
  summary = report.write(out, summary, dense_evals, pruned_evals)
  if save_params:
    _save_final(out, run)
  return Result(summary, run.params, dense, task)


def _save_final(out: str, run: trainer_lib.Outcome) -> None:
  """``params.msgpack`` and, if there are masks, ``masks.msgpack``."""
  if jax.process_index() != 0:
    return
  from flax import serialization
  trees = {"params": run.params}
  states = train_lib.find_prune_states(run.trainer.opt_state)
  if states and run.trainer.plan is None:  # a plan's masks: its own tree
    masks = states[0].masks
    if states[0].count.ndim == 1:  # pmap: replica 0
      masks = jax.tree.map(lambda m: m[0], masks)
    trees["masks"] = masks
  # Replicated (every run of this runner): process 0 reads its own copy.
  for name, tree in jax.device_get(trees).items():
    with open(os.path.join(out, name + ".msgpack"), "wb") as f:
      f.write(serialization.to_bytes(tree))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  ap = argparse.ArgumentParser(
      description="Fine-tune and prune a model: one run of a config.")
  ap.add_argument("--config", default=None,
                  help="config file (Python with get_config(), or JSON)")
  ap.add_argument("--set", nargs="+", action="extend", default=[],
                  metavar="KEY=VALUE",
                  help="override config keys (method_args.beta1=0.8 sets "
                  "one entry of a dict)")
  ap.add_argument("--save-params", action="store_true",
                  help="also write the trained params (params.msgpack) and "
                  "masks (masks.msgpack) to the run folder")
  return ap.parse_args(argv)


def _initialize_distributed() -> None:
  """``jax.distributed.initialize()`` with the ``JAXPRUNE_*`` settings."""
  kwargs: dict[str, Any] = {}
  for key, env, cast in (("coordinator_address", "JAXPRUNE_COORDINATOR", str),
                         ("num_processes", "JAXPRUNE_NUM_PROCESSES", int),
                         ("process_id", "JAXPRUNE_PROCESS_ID", int)):
    if os.environ.get(env):
      kwargs[key] = cast(os.environ[env])
  if getattr(jax.config, "jax_cpu_collectives_implementation", "") is None:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(**kwargs)


def main(argv: Sequence[str] | None = None) -> dict:
  """Parses, checks, runs; prints the result and where it went."""
  argv = list(sys.argv[1:] if argv is None else argv)
  args = parse_args(argv)
  try:
    cfg = config_lib.load(args.config, args.set)
  except ValueError as e:
    raise SystemExit(f"error: {e}") from None
  if cfg.distributed or os.environ.get("JAXPRUNE_DISTRIBUTED") == "1":
    _initialize_distributed()
  command = "python -m experiments.run " + " ".join(map(shlex.quote, argv))
  result = execute(cfg, command=command, save_params=args.save_params)
  s = result.summary
  if jax.process_index() != 0:  # process 0 wrote the folder and reports
    return s
  primary = s["primary_metric"]
  if s.get("dense_metrics"):
    print(f"dense {primary}: {s['dense_metrics'].get(primary, float('nan')):.2f}")
  print(f"{cfg.method} {primary}: {s['metrics'].get(primary, float('nan')):.2f}"
        f" at sparsity {s['actual_sparsity']:.4f} (target "
        f"{s['target_sparsity']})")
  out = cfg.out or default_out(cfg)
  print(f"wall time {s['seconds']:.0f} s; wrote {out}/summary.json, "
        f"report.md, curves.png, layer_sparsity.png")
  return s


if __name__ == "__main__":
  main()
