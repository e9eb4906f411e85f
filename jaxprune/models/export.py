"""Export: our models (pruned or shrunk) as HF folders that ``transformers`` loads.

:func:`save_pretrained` writes ``config.json`` and ``model.safetensors`` with
HF PyTorch names and layouts (:mod:`.hf_names`) and copies the tokenizer
files, so ``transformers`` (5 included) loads the folder with
``AutoModelFor...from_pretrained`` and gives the same outputs; our own
:func:`jaxprune.models.from_pretrained` reads it back too.

Per-layer sizes: HF configs have one head count and one FFN width for every
layer (and ``head_dim = hidden_size / num_attention_heads``). A model shrunk
to different sizes per layer (:func:`jaxprune.shrink.shrink`) is therefore
written, by default, with every layer zero-padded to the widest FFN and the
full head count: padded heads and neurons have zero weights in and out, so
the outputs are unchanged and ``transformers`` loads it, but the file is not
smaller than the widest layer. The compact per-layer sizes are written beside
it in ``jaxprune_config.json`` (a warning says so). With
``hf_compatible=False`` the tensors stay compact and ``config.json`` carries
the per-layer sizes under a ``"jaxprune"`` key: only jaxprune reads that.

Example:
  >>> import tempfile, os
  >>> from flax import nnx
  >>> from jaxprune import models
  >>> cfg = models.BertConfig(vocab_size=30, hidden_size=8,
  ...     heads_per_layer=(2,), head_dim=4, intermediate_sizes=(16,),
  ...     num_labels=2)
  >>> m = models.BertForSequenceClassification(cfg, rngs=nnx.Rngs(0))
  >>> d = tempfile.mkdtemp()
  >>> _ = models.save_pretrained(m, d)
  >>> sorted(os.listdir(d))
  ['config.json', 'model.safetensors']
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from typing import Any

import jax
import numpy as np
from flax import nnx

from jaxprune.models import bert as bert_lib
from jaxprune.models import config as config_lib
from jaxprune.models import hf_names
from jaxprune.models import vit as vit_lib
from jaxprune.models.functional import FunctionalModel

__all__ = ["save_pretrained", "hf_state_dict", "architecture", "pad_to_hf"]

_HF_CLASS = {"bert": "Bert", "roberta": "Roberta", "xlm-roberta": "XLMRoberta",
             "camembert": "Camembert", "vit": "ViT", "deit": "DeiT"}
_TASK_OF = {bert_lib.BertModel: "Model", vit_lib.ViTModel: "Model",
            bert_lib.BertForSequenceClassification: "ForSequenceClassification",
            bert_lib.BertForQuestionAnswering: "ForQuestionAnswering",
            vit_lib.ViTForImageClassification: "ForImageClassification"}
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt",
                    "vocab.json", "merges.txt", "special_tokens_map.json",
                    "sentencepiece.bpe.model", "added_tokens.json",
                    "preprocessor_config.json")


def _unpack(model: Any) -> tuple[Any, Any, type, str | None]:
  if isinstance(model, FunctionalModel):
    module = model.module()
    return model.params, model.config, type(module), model.source
  if isinstance(model, nnx.Module):
    params = nnx.state(model, nnx.Param).to_pure_dict()
    return params, model.config, type(model), None
  raise TypeError("`model` must be a jaxprune.models module or "
                  f"FunctionalModel, got {type(model).__name__}")


def architecture(cfg: config_lib.Config, module_cls: type) -> str:
  """HF class name, e.g. ``BertForSequenceClassification``."""
  return _HF_CLASS[cfg.model_type] + _TASK_OF[module_cls]


def _flat(tree: Any) -> dict[str, Any]:
  return {"/".join(str(getattr(k, "key", k)) for k in path): x
          for path, x in jax.tree_util.tree_leaves_with_path(tree)}


def hf_state_dict(params: Any, cfg: config_lib.Config
                  ) -> dict[str, np.ndarray]:
  """HF PyTorch name -> array (HF layout, float32) for our ``params``."""
  out = {}
  for path, x in _flat(params).items():
    name, arr = hf_names.to_hf(cfg.family, path, np.asarray(x, np.float32))
    out[name] = np.ascontiguousarray(arr)
  return out


def pad_to_hf(params: Any, cfg: config_lib.Config
              ) -> tuple[Any, config_lib.Config]:
  """Zero-pads every layer to ``hidden_size / head_dim`` heads and the widest
  FFN, so that an HF config describes the model (outputs unchanged: padded
  heads have zero value and output weights, padded neurons zero in and out).

  Raises:
    ValueError: ``hidden_size`` is not a multiple of ``head_dim``.
  """
  d = cfg.head_dim
  if cfg.hidden_size % d:
    raise ValueError(f"hidden_size {cfg.hidden_size} is not a multiple of "
                     f"head_dim {d}: no HF config describes this model")
  full_h = cfg.hidden_size // d
  full_i = max(cfg.intermediate_sizes)
  params = jax.tree.map(np.asarray, params)
  prefix = [k for k in params if k in hf_names.PREFIXES[cfg.family]]
  root = params[prefix[0]] if prefix else params
  att = "self" if cfg.family == "bert" else "attention"
  for i, (h, n) in enumerate(zip(cfg.heads_per_layer, cfg.intermediate_sizes)):
    lp = root["encoder"]["layer"][str(i)]
    ph, pn = (full_h - h) * d, full_i - n
    pad_last = lambda a, k: np.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, k)])
    pad_first = lambda a, k: np.pad(a, [(0, k)] + [(0, 0)] * (a.ndim - 1))
    for q in ("query", "key", "value"):
      lp["attention"][att][q] = {k: pad_last(v, ph)
                                 for k, v in lp["attention"][att][q].items()}
    o = lp["attention"]["output"]["dense"]
    o["kernel"] = pad_first(o["kernel"], ph)
    lp["intermediate"]["dense"] = {
        k: pad_last(v, pn) for k, v in lp["intermediate"]["dense"].items()}
    out = lp["output"]["dense"]
    out["kernel"] = pad_first(out["kernel"], pn)
  n = cfg.num_hidden_layers
  return params, cfg.replace(heads_per_layer=(full_h,) * n,
                             intermediate_sizes=(full_i,) * n)


def save_pretrained(model: Any, folder: str, *, masks: Any = None,
                    tokenizer_from: str | None = None,
                    hf_compatible: bool = True) -> dict[str, Any]:
  """Writes ``model`` as an HF folder.

  Args:
    model: a :class:`FunctionalModel` or one of our NNX modules.
    folder: the output folder (created).
    masks: optional pruning state or mask tree; the params are written with
      exact zeros where it prunes (:func:`jaxprune.export.apply_masks`).
    tokenizer_from: folder whose tokenizer files are copied (default: the
      folder the model was loaded from, if known).
    hf_compatible: zero-pad per-layer sizes that HF configs cannot express
      (see the module docstring); False writes them compact.

  Returns:
    The ``config.json`` content written.
  """
  params, cfg, cls, source = _unpack(model)
  if masks is not None:
    from jaxprune import export as export_lib
    params = export_lib.apply_masks(params, masks)
  compact = cfg
  if not cfg.hf_expressible():
    if hf_compatible:
      warnings.warn(
          "Hugging Face configs cannot express per-layer head counts or FFN "
          f"widths (heads {cfg.heads_per_layer}, FFN "
          f"{cfg.intermediate_sizes}); writing zero-padded tensors that "
          "transformers loads with unchanged outputs, and the compact sizes "
          "in jaxprune_config.json", stacklevel=2)
      params, cfg = pad_to_hf(params, cfg)
    else:
      warnings.warn(
          "writing per-layer sizes that only jaxprune reads (config.json "
          "'jaxprune' entry); transformers cannot load this folder",
          stacklevel=2)
  os.makedirs(folder, exist_ok=True)
  from safetensors.numpy import save_file
  save_file(hf_state_dict(params, cfg),
            os.path.join(folder, "model.safetensors"),
            metadata={"format": "pt"})
  d = cfg.to_hf_dict()
  d["architectures"] = [architecture(cfg, cls)]
  d["dtype"] = "float32"
  with open(os.path.join(folder, "config.json"), "w") as f:
    json.dump(d, f, indent=2, sort_keys=True)
  if compact is not cfg:
    with open(os.path.join(folder, "jaxprune_config.json"), "w") as f:
      json.dump(compact.to_hf_dict(), f, indent=2, sort_keys=True)
  src = tokenizer_from or source
  if src and os.path.isdir(src):
    for name in _TOKENIZER_FILES:
      p = os.path.join(src, name)
      if os.path.isfile(p) and os.path.abspath(src) != os.path.abspath(folder):
        shutil.copy(p, os.path.join(folder, name))
  return d
