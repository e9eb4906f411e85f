"""GPU cost of pruning without a GPU: compile for an H100 on this CPU and count.

What it measures
----------------
"Deviceless" ahead-of-time compilation: with ``jax-cuda12-plugin`` and
``jax-cuda12-pjrt`` (the same version as jaxlib; no CUDA libraries and no GPU
needed) and an H100 target description (``benchmarks/h100_target_config.txtpb``,
a ``stream_executor.GpuTargetConfigProto`` in text form), jax builds
compile-only H100 devices; ``jax.jit(f).lower(*abstract_args).compile()``
then runs the real XLA:GPU pipeline (fusion, copy insertion, scheduling,
conditional-to-select, trip-count analysis...) and returns the optimized
HLO, which is counted with ``benchmarks/hlo_stats.py``. The recipe (jax
0.10.2; the same as jax's own ``tests/aot_test.py::
test_deviceless_aot_compile``)::

    jax.config.update("jax_platforms", "cpu")
    from jax.experimental import topologies
    topo = topologies.get_topology_desc(
        platform="cuda", target_config=open(CONFIG).read(), topology="1x1x1")
    mesh = topologies.make_mesh(topo, (1,), ("x",))
    sh = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    x = jax.ShapeDtypeStruct((2, 2), jnp.float32, sharding=sh)
    hlo = jax.jit(f).lower(x).compile().as_text()

Programs compiled (BERT-base shapes, ``--layers`` encoder layers, default
12; the prunable leaves are those of ``where="bert"``: Q, K, V, attention
output, FFN in and out, kernels and biases; 85,017,600 scalars at 12
layers):

* ``update``: the optimizer update alone, ``tx.update`` +
  ``optax.apply_updates`` on a parameter tree of the Hugging Face Flax
  ``FlaxBertForSequenceClassification`` layout (built by hand from
  ``jax.ShapeDtypeStruct``, :func:`bert_param_shapes`), params and optimizer
  state donated;
* ``step``: the whole train step (forward and backward of BERT-base on an
  8 x 128 batch, deterministic forward, softmax cross-entropy, then the
  update; the step of ``benchmarks/platon_overhead.py``), params and
  optimizer state donated. The model comes from :func:`make_model`
  (``jaxprune.models`` BERT from its config, no weights); swap that one
  function for another model.

Every optimizer is ``experiments.methods.make_tx(method, learning_rate=8e-5,
sparsity=0.9, total_steps=10000, where="bert", num_examples=10000)`` (clip
by global norm 1.0, then the method around ``adamw``), as in
``benchmarks/method_overhead.py``; ``dense`` is the same clip and AdamW.
``--no-clip`` drops the clip (its global norm costs one reduction kernel per
leaf: 279 of dense AdamW's 482 update kernels at BERT-base).

Step kinds: when ``jaxprune.step_kind`` exists (the static per-step hint,
``tx.update(grads, state, params, step_kind=jaxprune.step_kind(tx, step))``),
one program per distinct kind over every step ``0 .. T-1`` of the schedule
is compiled (the first step of each kind is recorded, with the number of
steps of that kind). Without it the transformation decides on the device
(``lax.cond``) and each method has one program, reported as kind
``traced``.

Backend-dependent code paths: jaxprune picks some code by
``jax.default_backend()`` (e.g. PLATON's window EMA: a ``lax.cond`` on CPU,
a ``where`` elsewhere). The deviceless compile runs on the CPU backend, so
while tracing this script makes ``jax.default_backend()`` answer ``"gpu"``;
the programs are the ones a GPU run would trace.

Fields per (what, method, kind) entry (the counting rule is in
``benchmarks/hlo_stats.py``; all counts are static, i.e. an instruction in a
loop body or in a branch counts once):

* ``kernels`` = ``fusions + copies + custom_calls + sorts + other``: the
  instructions of ENTRY and of the computations run as control flow (while
  bodies and conditions, conditional branches) that launch a GPU kernel or
  memcpy; ``kernels_entry``: ENTRY only (run once per call);
* ``conditionals``; ``whiles_unknown_trip`` and ``whiles_known_trip``
  (``known_trip_count`` in the while's backend config);
* ``buffers``: jit input plus output buffers (flattened leaves of the
  arguments and of the outputs; ``buffers_in``, ``buffers_out``);
* ``bytes``: sum over the kernels of their distinct operands' and result's
  bytes (an estimate of memory traffic); ``bytes_per_weight``: ``bytes``
  divided by the number of prunable weights; ``*_over_dense``: the
  difference to dense AdamW's program of the same ``what``;
* ``kernels_min_path``, ``bytes_per_weight_min_path``: the same over the
  cheapest path (ENTRY, the branch with the fewest kernels of each
  ``conditional``, every loop body once). For a ``traced`` program (the
  step kind decided on the device) that is what an ordinary step runs,
  loops aside; the static ``kernels`` include the selection branch.

Caveats: no timing (nothing runs). The HLO is what XLA:GPU would run, but
without autotuning (no GPU to measure on), so GEMM kernel choices may differ
from a real H100 compile; command buffers (CUDA graphs) are not visible in
the HLO. ``bytes`` ignores caches, aliasing and partial reads. Counts are
static: a ``while`` body's kernels run once per iteration, only one branch
of a ``conditional`` runs.

How to run
----------
``make gpu-proxy`` (creates ``.venv-proxy`` with jax, jaxlib and the CUDA 12
plugin of one version, and the project with its ``train`` and ``gpu-proxy``
extras), or by hand::

    .venv-proxy/bin/python benchmarks/gpu_proxy.py --layers 1 --what update
    .venv-proxy/bin/python benchmarks/gpu_proxy.py \\
        --json benchmarks/results/gpu_proxy.json
    .venv-proxy/bin/python benchmarks/gpu_proxy.py --methods platon \\
        --step-methods platon --what both

On this 2-core machine (shared) one BERT-base program compiled in 4-110 s
(update) and 31-88 s (whole step); all 16 programs (dense and 7 methods,
update and step) took 18 minutes. ``--step-methods`` restricts the
whole-step programs (dense always runs); ``--dump-hlo DIR`` keeps the HLO.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from typing import Any, Callable

os.environ.setdefault("JAX_PLATFORMS", "cpu")

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_HERE = os.path.dirname(os.path.abspath(__file__))
for _p in (_ROOT, _HERE):
  if _p not in sys.path:
    sys.path.insert(0, _p)

import jax  # noqa: E402

jax.config.update("jax_platforms", "cpu")

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import jaxprune  # noqa: E402
from jaxprune import where as where_lib  # noqa: E402
from experiments import methods as methods_lib  # noqa: E402
import hlo_stats  # noqa: E402  (benchmarks/hlo_stats.py)

DEFAULT_CONFIG = os.path.join(_HERE, "h100_target_config.txtpb")
LR = 8e-5
SPARSITY = 0.9
TOTAL_STEPS = 10_000
NUM_EXAMPLES = 10_000
WHERE = "bert"
PRUNING_METHODS = tuple(m for m in methods_lib.METHODS if m != "dense")

# BERT-base (bert-base-uncased config).
VOCAB, HIDDEN, FFN, MAX_POS, TYPE_VOCAB, LABELS = 30522, 768, 3072, 512, 2, 2


# ------------------------------------------------------------------- target


def target_sharding(config_path: str = DEFAULT_CONFIG):
  """A replicated sharding on one compile-only H100 (deviceless AOT)."""
  from jax.experimental import topologies  # pylint: disable=g-import-not-at-top
  with open(config_path) as f:
    target_config = f.read()
  topo = topologies.get_topology_desc(
      platform="cuda", target_config=target_config, topology="1x1x1")
  mesh = topologies.make_mesh(topo, (1,), ("x",))
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())


@contextlib.contextmanager
def traced_as_gpu():
  """``jax.default_backend()`` answers ``"gpu"`` (for jaxprune's
  backend-dependent code paths) while tracing for the GPU target."""
  saved = jax.default_backend
  jax.default_backend = lambda: "gpu"
  try:
    yield
  finally:
    jax.default_backend = saved


def with_sharding(tree: Any, sharding) -> Any:
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
      tree)


# -------------------------------------------------------------------- model


def bert_param_shapes(layers: int = 12) -> dict:
  """``FlaxBertForSequenceClassification`` params (HF layout) as
  ``ShapeDtypeStruct``s: embeddings, ``layers`` encoder layers, pooler and
  a 2-label classifier, float32."""
  f32 = lambda *s: jax.ShapeDtypeStruct(s, jnp.float32)
  dense = lambda i, o: {"kernel": f32(i, o), "bias": f32(o)}
  ln = lambda: {"scale": f32(HIDDEN), "bias": f32(HIDDEN)}
  layer = lambda: {
      "attention": {
          "self": {n: dense(HIDDEN, HIDDEN) for n in ("query", "key",
                                                       "value")},
          "output": {"dense": dense(HIDDEN, HIDDEN), "LayerNorm": ln()},
      },
      "intermediate": {"dense": dense(HIDDEN, FFN)},
      "output": {"dense": dense(FFN, HIDDEN), "LayerNorm": ln()},
  }
  return {
      "bert": {
          "embeddings": {
              "word_embeddings": {"embedding": f32(VOCAB, HIDDEN)},
              "position_embeddings": {"embedding": f32(MAX_POS, HIDDEN)},
              "token_type_embeddings": {"embedding": f32(TYPE_VOCAB, HIDDEN)},
              "LayerNorm": ln(),
          },
          "encoder": {"layer": {str(i): layer() for i in range(layers)}},
          "pooler": {"dense": dense(HIDDEN, HIDDEN)},
      },
      "classifier": dense(HIDDEN, LABELS),
  }


def make_model(layers: int, batch: int, seq: int
               ) -> tuple[Callable, Any, dict]:
  """The model of the whole-step program: ``(loss_fn, param_shapes,
  batch_shapes)`` with ``loss_fn(params, batch) -> scalar``.

  ``jaxprune.models`` BERT for sequence classification (bert-base sizes,
  ``layers`` layers), built abstractly (``nnx.eval_shape``: no weights).
  Its params have the HF Flax layout of :func:`bert_param_shapes`. Replace
  this function to measure another model (the params must fit
  ``where="bert"``, or change :data:`WHERE`).
  """
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from jaxprune import models  # pylint: disable=g-import-not-at-top
  config = models.BertConfig(
      vocab_size=VOCAB, hidden_size=HIDDEN, heads_per_layer=(12,) * layers,
      head_dim=HIDDEN // 12, intermediate_sizes=(FFN,) * layers,
      max_position_embeddings=MAX_POS, type_vocab_size=TYPE_VOCAB,
      num_labels=LABELS)
  model = models.FunctionalModel(nnx.eval_shape(
      lambda: models.build(config, "sequence_classification")))
  params = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                        model.params)

  def loss_fn(p, b):
    logits = model(b["input_ids"], attention_mask=b["attention_mask"],
                   params=p, train=False).logits
    return optax.softmax_cross_entropy_with_integer_labels(
        logits, b["labels"]).mean()

  batch_shapes = {
      "input_ids": jax.ShapeDtypeStruct((batch, seq), jnp.int32),
      "attention_mask": jax.ShapeDtypeStruct((batch, seq), jnp.int32),
      "labels": jax.ShapeDtypeStruct((batch,), jnp.int32),
  }
  return loss_fn, params, batch_shapes


# ---------------------------------------------------------------- optimizers


def make_tx(method: str, clip_norm: float | None = 1.0
            ) -> optax.GradientTransformation:
  """``experiments.methods.make_tx`` with ``method_overhead.py``'s settings
  (``clip_norm=None``: no ``clip_by_global_norm`` in front)."""
  return methods_lib.make_tx(
      method, learning_rate=LR, sparsity=SPARSITY, total_steps=TOTAL_STEPS,
      where=WHERE, num_examples=NUM_EXAMPLES, clip_norm=clip_norm)


def _kind_label(kind: Any) -> str:
  for attr in ("name", "value"):
    v = getattr(kind, attr, None)
    if isinstance(v, str):
      return v
  return str(kind)


def step_kinds(tx, method: str) -> list[dict]:
  """The step kinds to compile for ``method``.

  Returns:
    ``[{"kind": label, "hint": value or None, "step": first step of that
    kind or None, "num_steps": steps of that kind in 0..T-1}]``. Without
    ``jaxprune.step_kind`` (or for dense): one traced program.
  """
  fn = getattr(jaxprune, "step_kind", None)
  if method == "dense" or fn is None:
    return [{"kind": "dense" if method == "dense" else "traced",
             "hint": None, "step": None, "num_steps": TOTAL_STEPS}]
  kinds: dict[str, dict] = {}
  for step in range(TOTAL_STEPS):
    hint = fn(tx, step)
    label = _kind_label(hint)
    if label not in kinds:
      kinds[label] = {"kind": label, "hint": hint, "step": step,
                      "num_steps": 0}
    kinds[label]["num_steps"] += 1
  return list(kinds.values())


def _update_args(hint: Any) -> dict:
  return {} if hint is None else {"step_kind": hint}


# ------------------------------------------------------------------ compiling


def _compile(fn: Callable, args: tuple, donate: tuple[int, ...]) -> dict:
  t0 = time.perf_counter()
  with traced_as_gpu():
    lowered = jax.jit(fn, donate_argnums=donate).lower(*args)
  t1 = time.perf_counter()
  compiled = lowered.compile()
  t2 = time.perf_counter()
  out_shapes = jax.eval_shape(fn, *args)
  return {"text": compiled.as_text(),
          "buffers_in": len(jax.tree_util.tree_leaves(args)),
          "buffers_out": len(jax.tree_util.tree_leaves(out_shapes)),
          "lower_s": round(t1 - t0, 2), "compile_s": round(t2 - t1, 2)}


def compile_update(tx, params: Any, hint: Any, sharding) -> dict:
  """``tx.update`` + ``apply_updates``, params and state donated."""
  params = with_sharding(params, sharding)
  with traced_as_gpu():
    state = with_sharding(jax.eval_shape(tx.init, params), sharding)
  extra = _update_args(hint)

  def update(p, s, g):
    u, s = tx.update(g, s, p, **extra)
    return optax.apply_updates(p, u), s

  return _compile(update, (params, state, params), (0, 1))


def compile_step(tx, loss_fn: Callable, params: Any, batch: dict, hint: Any,
                 sharding) -> dict:
  """Forward, backward and update, params and state donated."""
  params = with_sharding(params, sharding)
  batch = with_sharding(batch, sharding)
  with traced_as_gpu():
    state = with_sharding(jax.eval_shape(tx.init, params), sharding)
  extra = _update_args(hint)

  def step(p, s, b):
    loss, g = jax.value_and_grad(loss_fn)(p, b)
    u, s = tx.update(g, s, p, **extra)
    return optax.apply_updates(p, u), s, loss

  return _compile(step, (params, state, batch), (0, 1))


def num_prunable(params: Any) -> int:
  flags = where_lib.resolve(WHERE, params)
  return int(sum(int(np.prod(x.shape)) for x, f in
                 zip(jax.tree_util.tree_leaves(params), flags) if f))


def entry_from(result: dict, what: str, method: str, kind: dict,
               n_prunable: int) -> dict:
  c = hlo_stats.hlo_counts(result["text"])
  e = {"what": what, "method": method, "kind": kind["kind"],
       "step": kind["step"], "num_steps": kind["num_steps"]}
  for k in ("kernels",) + hlo_stats.KERNEL_FIELDS:
    e[k] = c[k]
  e["other_ops"] = c["other_ops"]
  e["conditionals"] = c["conditionals"]
  e["whiles_unknown_trip"] = c["whiles_unknown_trip"]
  e["whiles_known_trip"] = c["whiles_known_trip"]
  e["buffers"] = result["buffers_in"] + result["buffers_out"]
  e["buffers_in"] = result["buffers_in"]
  e["buffers_out"] = result["buffers_out"]
  e["hlo_params"] = c["entry_params"]
  e["hlo_outputs"] = c["entry_outputs"]
  e["kernels_entry"] = c["kernels_entry"]
  e["bytes"] = c["bytes"]
  e["bytes_entry"] = c["bytes_entry"]
  e["bytes_per_weight"] = round(c["bytes"] / n_prunable, 3)
  e["kernels_min_path"] = c["kernels_min_path"]
  e["bytes_min_path"] = c["bytes_min_path"]
  e["bytes_per_weight_min_path"] = round(c["bytes_min_path"] / n_prunable, 3)
  e["lower_s"] = result["lower_s"]
  e["compile_s"] = result["compile_s"]
  return e


def add_dense_deltas(entries: list[dict]) -> None:
  dense = {e["what"]: e for e in entries if e["method"] == "dense"}
  for e in entries:
    d = dense.get(e["what"])
    if d is None:
      continue
    e["kernels_over_dense"] = e["kernels"] - d["kernels"]
    e["bytes_per_weight_over_dense"] = round(
        e["bytes_per_weight"] - d["bytes_per_weight"], 3)
    e["buffers_over_dense"] = e["buffers"] - d["buffers"]
    e["kernels_min_path_over_dense"] = (e["kernels_min_path"]
                                        - d["kernels_min_path"])
    e["bytes_per_weight_min_path_over_dense"] = round(
        e["bytes_per_weight_min_path"] - d["bytes_per_weight_min_path"], 3)


def format_table(entries: list[dict]) -> str:
  cols = [("what", 6), ("method", 9), ("kind", 10), ("kernels", 7),
          ("fus", 5), ("copy", 5), ("cc", 4), ("sort", 4), ("cond", 4),
          ("while?", 6), ("while#", 6), ("buffers", 7), ("B/weight", 8),
          ("+kern", 6), ("+B/w", 7), ("kmin", 5), ("B/w min", 7),
          ("+kmin", 6), ("+B/wmin", 7), ("compile", 7)]
  head = " ".join(f"{n:>{w}}" if i > 2 else f"{n:<{w}}"
                  for i, (n, w) in enumerate(cols))
  lines = [head, "-" * len(head)]
  for e in entries:
    vals = [e["what"], e["method"], e["kind"], e["kernels"], e["fusions"],
            e["copies"], e["custom_calls"], e["sorts"], e["conditionals"],
            e["whiles_unknown_trip"], e["whiles_known_trip"], e["buffers"],
            f"{e['bytes_per_weight']:.1f}",
            e.get("kernels_over_dense", ""),
            (f"{e['bytes_per_weight_over_dense']:+.1f}"
             if "bytes_per_weight_over_dense" in e else ""),
            e["kernels_min_path"], f"{e['bytes_per_weight_min_path']:.1f}",
            e.get("kernels_min_path_over_dense", ""),
            (f"{e['bytes_per_weight_min_path_over_dense']:+.1f}"
             if "bytes_per_weight_min_path_over_dense" in e else ""),
            f"{e['compile_s']:.0f}s"]
    lines.append(" ".join(f"{str(v):>{w}}" if i > 2 else f"{str(v):<{w}}"
                          for i, (v, (_, w)) in enumerate(zip(vals, cols))))
  lines.append("")
  lines.append(
      "kernels = fus (fusions) + copy + cc (custom calls) + sort + other; "
      "cond = conditionals; while? = whiles without a known trip count, "
      "while# = with one; buffers = jit inputs + outputs; B/weight = "
      "estimated bytes moved by the kernels per prunable weight; +kern, "
      "+B/w = over dense AdamW's program of the same 'what'. Static counts "
      "(every instruction once, both branches of a conditional). kmin, "
      "B/w min: the cheapest path (ENTRY + the cheapest branch of each "
      "conditional + loop bodies once): for a 'traced' program, what an "
      "ordinary step runs. See benchmarks/hlo_stats.py.")
  return "\n".join(lines)


def environment() -> dict:
  import jaxlib  # pylint: disable=g-import-not-at-top
  env = {"jax": jax.__version__, "jaxlib": jaxlib.__version__,
         "optax": optax.__version__, "python": platform.python_version(),
         "cpu_cores": os.cpu_count(), "platform": platform.platform(),
         "jaxprune_step_kind": hasattr(jaxprune, "step_kind")}
  try:
    from importlib import metadata  # pylint: disable=g-import-not-at-top
    for pkg in ("jax-cuda12-plugin", "jax-cuda12-pjrt", "transformers",
                "flax"):
      try:
        env[pkg] = metadata.version(pkg)
      except metadata.PackageNotFoundError:
        env[pkg] = None
  except ImportError:
    pass
  return env


def _txt_path(args) -> str:
  return args.txt or os.path.splitext(args.json)[0] + ".txt"


def write_outputs(args, entries: list[dict], device, whats, step_methods,
                  n_prunable: int, total_s: float, complete: bool) -> str:
  """Adds the dense deltas, returns the table and, with ``--json``, writes
  the JSON and the table (also after every entry, ``complete`` false, so
  that an interrupted run keeps what it measured)."""
  add_dense_deltas(entries)
  table = format_table(entries)
  if not args.json:
    return table
  out = {
      "complete": complete,
      "target": {"device_kind": device.device_kind,
                 "config": os.path.relpath(args.target_config, _ROOT)
                 if os.path.abspath(args.target_config).startswith(_ROOT)
                 else args.target_config},
      "settings": {"layers": args.layers, "batch": args.batch,
                   "seq": args.seq, "what": whats, "methods": args.methods,
                   "step_methods": step_methods, "lr": LR,
                   "sparsity": SPARSITY, "total_steps": TOTAL_STEPS,
                   "num_examples": NUM_EXAMPLES, "where": WHERE,
                   "clip_norm": None if args.no_clip else 1.0,
                   "prunable_weights": n_prunable},
      "environment": environment(),
      "total_s": total_s,
      "entries": entries,
  }
  os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
  with open(args.json, "w") as f:
    json.dump(out, f, indent=1)
  with open(_txt_path(args), "w") as f:
    f.write(table + ("" if complete else "\n\n(incomplete run)")
            + f"\n\ntotal {total_s:.0f} s\n")
  return table


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(
      description=__doc__.split("\n\n", 1)[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--methods", nargs="+", default=list(PRUNING_METHODS),
                  choices=PRUNING_METHODS,
                  help="pruning methods (dense AdamW always runs)")
  ap.add_argument("--step-methods", nargs="*", default=None,
                  choices=PRUNING_METHODS,
                  help="methods whose whole train step is compiled (default: "
                  "--methods); dense always runs")
  ap.add_argument("--layers", type=int, default=12)
  ap.add_argument("--batch", type=int, default=8)
  ap.add_argument("--seq", type=int, default=128)
  ap.add_argument("--what", choices=("update", "step", "both"),
                  default="both")
  ap.add_argument("--json", default=None, help="write the entries here")
  ap.add_argument("--txt", default=None,
                  help="write the table here (default: --json with .txt)")
  ap.add_argument("--no-clip", action="store_true",
                  help="no clip_by_global_norm(1.0) before the optimizer "
                  "(its norm is one reduction kernel per leaf)")
  ap.add_argument("--target-config", default=DEFAULT_CONFIG)
  ap.add_argument("--dump-hlo", default=None,
                  help="directory for the optimized HLO text of each program")
  args = ap.parse_args(argv)

  t_start = time.perf_counter()
  sharding = target_sharding(args.target_config)
  device = sharding.mesh.devices.flat[0]
  print(f"target: {device.device_kind} ({device.client.runtime_type}), "
        f"jax {jax.__version__}, {args.layers} layer(s)", flush=True)
  step_methods = (args.methods if args.step_methods is None
                  else args.step_methods)
  whats = ["update", "step"] if args.what == "both" else [args.what]

  upd_params = bert_param_shapes(args.layers)
  n_prunable = num_prunable(upd_params)
  model = None
  if "step" in whats:
    loss_fn, step_params, batch = make_model(args.layers, args.batch,
                                             args.seq)
    if (jax.tree_util.tree_structure(step_params)
        != jax.tree_util.tree_structure(upd_params)
        or [x.shape for x in jax.tree_util.tree_leaves(step_params)]
        != [x.shape for x in jax.tree_util.tree_leaves(upd_params)]):
      print("note: the model's params differ from bert_param_shapes",
            flush=True)
    if num_prunable(step_params) != n_prunable:
      raise SystemExit("the model's prunable weights differ from the "
                       "update-only tree's")
    model = (loss_fn, step_params, batch)
  print(f"prunable weights (where={WHERE!r}): {n_prunable:,}", flush=True)

  entries = []
  for what in whats:
    for method in ["dense"] + list(args.methods):
      if what == "step" and method != "dense" and method not in step_methods:
        continue
      tx = make_tx(method, None if args.no_clip else 1.0)
      jax.eval_shape(tx.init, upd_params)  # binds the prunable sizes (kinds)
      for kind in step_kinds(tx, method):
        if what == "update":
          res = compile_update(tx, upd_params, kind["hint"], sharding)
        else:
          res = compile_step(tx, model[0], model[1], model[2], kind["hint"],
                             sharding)
        if args.dump_hlo:
          os.makedirs(args.dump_hlo, exist_ok=True)
          with open(os.path.join(
              args.dump_hlo, f"{what}_{method}_{kind['kind']}.hlo.txt"),
                    "w") as f:
            f.write(res["text"])
        e = entry_from(res, what, method, kind, n_prunable)
        entries.append(e)
        print(f"  {what:6s} {method:9s} {e['kind']:10s} kernels "
              f"{e['kernels']:5d} cond {e['conditionals']:3d} while? "
              f"{e['whiles_unknown_trip']:3d} buffers {e['buffers']:4d} "
              f"B/weight {e['bytes_per_weight']:7.1f}  (lower "
              f"{e['lower_s']:.0f}s, compile {e['compile_s']:.0f}s)",
              flush=True)
        write_outputs(args, entries, device, whats, step_methods,
                      n_prunable, round(time.perf_counter() - t_start, 1),
                      complete=False)

  total_s = round(time.perf_counter() - t_start, 1)
  table = write_outputs(args, entries, device, whats, step_methods,
                        n_prunable, total_s, complete=True)
  print()
  print(table)
  print(f"\ntotal {total_s:.0f} s")
  if args.json:
    print(f"wrote {args.json} and {_txt_path(args)}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
