"""The papers' training recipes as functions of the per-task columns.

Sources (all from the released scripts, not the PDFs):

* PLATON (Q. Zhang et al., *PLATON: Pruning Large Transformer Models with
  Upper Confidence Bound of Weight Importance*, ICML 2022). GLUE
  through MT-DNN: Adamax without bias correction (b 0.9/0.999, eps 1e-6,
  decoupled wd 0.01 except biases/LayerNorm), global clip 1.0,
  ``warmup_linear`` LR with 10% warm-up, max_seq_len 512, beta1 0.85,
  delta_t 10. SQuAD through HF ``run_squad``: AdamW (eps 1e-8, wd 0), linear
  decay to 0 without warm-up, clip 1.0, seq 384, stride 128.
* MGPP (M. Zhang, Y. Sun, F. Liang, *Magnitude Pruning of Large Pretrained
  Transformer Models with a Mixture Gaussian Prior*, 2024). DecoupledAdamW b 0.9/0.98,
  eps 1e-6, wd 0, LR linear from 5e-5 to ``lr_end`` x 5e-5, no warm-up, no
  clipping; weights only (no biases); no final fine-tune stage
  (``sparse_finetune_steps = 0``); the final model is reported.
* SEVEN (J. Xiao et al., *SEVEN: Pruning Transformer Model by Reserving
  Sentinels*, IJCNN 2024). AdamW 2e-5 constant (eps 1e-8,
  wd 0), no clipping, batch 32, 10 epochs, seed 3404, alpha1 0.8 / alpha2
  0.9; per-task ``t_i``, ``iter_num`` and sparsity from ``init_config``;
  Linear weights incl. the pooler, no biases.
* PINS (S. Ren, K. Q. Zhu, *Pruning Pre-trained Language Models with
  Principled Importance and Self-regularization*, Findings of ACL 2023): RTE
  is its only script.

What these configs do not reproduce is listed in ``docs/reproducing.md``
(e.g. MT-DNN's per-task head dropout, PINS' self-distillation loss).
"""

from __future__ import annotations

from typing import Any

BERT = "bert-base-uncased"


def _data(task: str) -> dict[str, Any]:
  """The runner's task family and data for a GLUE task name or squad."""
  if task == "squad":
    return {"task": "qa", "data": "squad"}
  return {"task": "text", "data": f"glue/{task}"}

_MTDNN_ADAMAX = {"name": "mtdnn_adamax", "b1": 0.9, "b2": 0.999, "eps": 1e-6,
                 "weight_decay": 0.01}


def platon_glue(task: str, *, remaining: float, beta2: float,
                warmup_steps: int, final_steps: int, lr: float, epochs: int,
                batch_size: int, seed: int, source: str) -> dict[str, Any]:
  """One row of the PLATON GLUE table (``rT``, β2, ``t_i``, ``t_f``, ...)."""
  return {
      **_data(task), "method": "platon", "sparsity": round(1 - remaining, 6),
      "model": BERT, "where": "bert", "seq_len": 512,
      "optimizer": dict(_MTDNN_ADAMAX), "clip_norm": 1.0,
      "lr": lr, "lr_schedule": "warmup_linear", "lr_warmup": 0.1,
      "epochs": epochs, "batch_size": batch_size, "seed": seed,
      "eval_every": "1 epoch",
      "method_args": {"warmup_steps": warmup_steps, "final_steps": final_steps,
                      "beta1": 0.85, "beta2": beta2, "delta_t": 10},
      "source": source,
  }


def platon_squad(*, remaining: float = 0.10, beta2: float = 0.95,
                 source: str = "PLATON SQuAD/README.md") -> dict[str, Any]:
  """PLATON's SQuAD v1.1 run (BERT-base)."""
  return {
      **_data("squad"), "method": "platon", "sparsity": round(1 - remaining, 6),
      "model": BERT, "where": "bert", "seq_len": 384, "doc_stride": 128,
      "optimizer": {"name": "adamw", "eps": 1e-8, "weight_decay": 0.0},
      "clip_norm": 1.0, "lr": 3e-5, "lr_schedule": "linear", "lr_warmup": 0,
      "epochs": 10, "batch_size": 16, "seed": 9, "eval_every": "1 epoch",
      "method_args": {"warmup_steps": 5400, "final_steps": 27000,
                      "beta1": 0.85, "beta2": beta2, "delta_t": 10},
      "source": source,
  }


def mgpp(task: str, *, epochs: int, batch_size: int, lr_end: float,
         v0: float, v1: float, warmup_steps: int | str,
         initial_sparsity: float, delta_t: int, seed: int,
         source: str) -> dict[str, Any]:
  """One row of the MGPP script table; final sparsity 0.9."""
  cfg = {
      **_data(task), "method": "mgpp", "sparsity": 0.9, "model": BERT,
      "where": "bert_kernels", "seq_len": 512,
      "optimizer": {"name": "adamw", "b1": 0.9, "b2": 0.98, "eps": 1e-6,
                    "weight_decay": 0.0},
      "clip_norm": None, "lr": 5e-5, "lr_schedule": "linear", "lr_warmup": 0,
      "lr_end_factor": lr_end, "epochs": epochs, "batch_size": batch_size,
      "seed": seed, "eval_every": 0,
      "method_args": {"warmup_steps": warmup_steps, "final_steps": 0,
                      "initial_sparsity": initial_sparsity, "v0": v0,
                      "v1": v1, "lambda0": 0.1, "alpha_i": 1.0,
                      "alpha_f": 0.001, "delta_t": delta_t},
      "source": source,
  }
  if task == "squad":
    cfg.update(seq_len=384, doc_stride=128,
               optimizer={"name": "adamw", "weight_decay": 0.0})
  return cfg


def seven(task: str, *, warmup_steps: int, iter_num: int, sparsity: float,
          source: str = "SEVEN utils.py::init_config") -> dict[str, Any]:
  """SEVEN's per-task ``t_i``, ``iter_num`` and target ratio (``init_config``)."""
  return {
      **_data(task), "method": "seven", "sparsity": sparsity, "model": BERT,
      "where": "bert_kernels_pooler", "seq_len": 512,
      "optimizer": {"name": "adamw", "eps": 1e-8, "weight_decay": 0.0},
      "clip_norm": None, "lr": 2e-5, "lr_schedule": "constant",
      "lr_warmup": 0, "epochs": 10, "batch_size": 32, "seed": 3404,
      "eval_every": "1 epoch",
      "method_args": {"warmup_steps": warmup_steps, "pruning_steps": iter_num,
                      "alpha1": 0.8, "alpha2": 0.9},
      "source": source,
  }


def pins_rte(seed: int = 42) -> dict[str, Any]:
  """PINS ``glue.sh`` (RTE, 80% sparsity); seeds 42, 12, 100, 9, 2."""
  return {
      **_data("rte"), "method": "pins", "sparsity": 0.8, "model": BERT,
      "where": "bert", "seq_len": 128,
      "optimizer": {"name": "adamw", "eps": 1e-8, "weight_decay": 0.0},
      "clip_norm": 1.0, "lr": 3e-5, "lr_schedule": "linear",
      "lr_warmup": 200, "epochs": 20, "batch_size": 16, "seed": seed,
      "eval_every": 50,
      "method_args": {"warmup_steps": 200, "final_steps": 1200,
                      "beta1": 0.85, "beta2": 0.99, "delta_t": 10},
      "source": "PINS glue.sh (RTE); self-distillation not reproduced",
  }
