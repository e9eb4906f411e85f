"""Hugging Face PyTorch parameter names and layouts <-> ours, one table per family.

Our parameter paths (``nnx.state(model, nnx.Param)``, ``/``-joined) equal the
HF PyTorch module paths with ``/`` for ``.``; only the leaf names and layouts
differ, by module kind:

========== ============================ ===================================
kind       ours                         HF PyTorch
========== ============================ ===================================
linear     ``kernel`` ``(in, out)``,    ``weight`` ``(out, in)``
           ``bias``                     (transposed), ``bias``
conv       ``kernel`` ``(kh, kw, c, d)``  ``weight`` ``(d, c, kh, kw)``, ``bias``
embed      ``embedding`` ``(n, d)``     ``weight`` ``(n, d)``
norm       ``scale``, ``bias``          ``weight``, ``bias`` (old BERT
                                        checkpoints: ``gamma``, ``beta``)
raw        the array                    the same array (``cls_token``, ...)
========== ============================ ===================================

:data:`TABLES` says which module is which kind for each family (BERT, ViT);
module paths are relative to the encoder's prefix (``bert.``, ``roberta.``,
``vit.``, ``deit.``), task heads have none.

Example:
  >>> import numpy as np
  >>> from jaxprune.models import hf_names
  >>> name, w = hf_names.to_hf(
  ...     "bert", "bert/encoder/layer/0/attention/self/query/kernel",
  ...     np.zeros((4, 8)))
  >>> name, w.shape
  ('bert.encoder.layer.0.attention.self.query.weight', (8, 4))
  >>> hf_names.from_hf("bert", name, w)[0]
  'bert/encoder/layer/0/attention/self/query/kernel'
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

__all__ = ["TABLES", "PREFIXES", "to_hf", "from_hf", "kind_of", "strip_prefix"]

_L = r"encoder\.layer\.\d+\."

#: Per family: ``(module-path regex, kind)``; the first match wins. Paths are
#: HF's dotted module paths without the encoder prefix.
TABLES: dict[str, list[tuple[re.Pattern, str]]] = {
    "bert": [(re.compile(p + "$"), k) for p, k in [
        (r"embeddings\.(word|position|token_type)_embeddings", "embed"),
        (r"embeddings\.LayerNorm", "norm"),
        (_L + r"attention\.self\.(query|key|value)", "linear"),
        (_L + r"attention\.output\.dense", "linear"),
        (_L + r"attention\.output\.LayerNorm", "norm"),
        (_L + r"intermediate\.dense", "linear"),
        (_L + r"output\.dense", "linear"),
        (_L + r"output\.LayerNorm", "norm"),
        (r"pooler\.dense", "linear"),
        (r"classifier", "linear"),                     # BERT head
        (r"classifier\.(dense|out_proj)", "linear"),   # RoBERTa head
        (r"qa_outputs", "linear"),
    ]],
    "vit": [(re.compile(p + "$"), k) for p, k in [
        (r"embeddings\.(cls_token|distillation_token|position_embeddings)",
         "raw"),
        (r"embeddings\.patch_embeddings\.projection", "conv"),
        (_L + r"layernorm_(before|after)", "norm"),
        (_L + r"attention\.attention\.(query|key|value)", "linear"),
        (_L + r"attention\.output\.dense", "linear"),
        (_L + r"intermediate\.dense", "linear"),
        (_L + r"output\.dense", "linear"),
        (r"layernorm", "norm"),
        (r"pooler\.dense", "linear"),
        (r"classifier", "linear"),
    ]],
}

#: Encoder prefixes of task models per family.
PREFIXES = {"bert": ("bert", "roberta"), "vit": ("vit", "deit")}

_OURS_TO_HF_LEAF = {
    "linear": {"kernel": "weight", "bias": "bias"},
    "conv": {"kernel": "weight", "bias": "bias"},
    "embed": {"embedding": "weight"},
    "norm": {"scale": "weight", "bias": "bias"},
}
_HF_TO_OURS_LEAF = {k: {v: o for o, v in m.items()}
                    for k, m in _OURS_TO_HF_LEAF.items()}
_HF_TO_OURS_LEAF["norm"].update(gamma="scale", beta="bias")


#: In-memory names of transformers 5 modules that differ from the checkpoint
#: format (which it still writes): read as the checkpoint names.
ALIASES: dict[str, list[tuple[re.Pattern, str]]] = {
    "bert": [],
    "vit": [(re.compile(p), r) for p, r in [
        (r"^layers\.(\d+)\.attention\.q_proj\.",
         r"encoder.layer.\1.attention.attention.query."),
        (r"^layers\.(\d+)\.attention\.k_proj\.",
         r"encoder.layer.\1.attention.attention.key."),
        (r"^layers\.(\d+)\.attention\.v_proj\.",
         r"encoder.layer.\1.attention.attention.value."),
        (r"^layers\.(\d+)\.attention\.o_proj\.",
         r"encoder.layer.\1.attention.output.dense."),
        (r"^layers\.(\d+)\.mlp\.fc1\.", r"encoder.layer.\1.intermediate.dense."),
        (r"^layers\.(\d+)\.mlp\.fc2\.", r"encoder.layer.\1.output.dense."),
        (r"^layers\.(\d+)\.(layernorm_before|layernorm_after)\.",
         r"encoder.layer.\1.\2."),
    ]],
}


def strip_prefix(family: str, dotted: str) -> tuple[str, str]:
  """``("bert", "encoder.layer.0...")`` from ``"bert.encoder.layer.0..."``;
  ``("", name)`` when ``name`` has no encoder prefix."""
  for p in PREFIXES[family]:
    if dotted.startswith(p + "."):
      return p, dotted[len(p) + 1:]
  return "", dotted


def kind_of(family: str, module: str) -> str | None:
  """The kind of the module at dotted ``module`` (prefix allowed), or None."""
  _, rel = strip_prefix(family, module)
  for rx, kind in TABLES[family]:
    if rx.match(rel):
      return kind
  return None


def _split_leaf(name: str, sep: str) -> tuple[str, str]:
  if sep not in name:
    return "", name
  mod, leaf = name.rsplit(sep, 1)
  return mod, leaf


def to_hf(family: str, path: str, x: Any) -> tuple[str, np.ndarray]:
  """Our ``/``-path and array -> HF PyTorch name and array.

  Raises:
    KeyError: the path is not in the family's table.
  """
  x = np.asarray(x)
  dotted = path.replace("/", ".")
  if kind_of(family, dotted) == "raw":
    return dotted, x
  module, leaf = _split_leaf(dotted, ".")
  kind = kind_of(family, module)
  if kind is None or leaf not in _OURS_TO_HF_LEAF[kind]:
    raise KeyError(f"no HF name for parameter {path!r} ({family} table)")
  if leaf == "kernel" and kind == "linear":
    x = x.T
  elif leaf == "kernel" and kind == "conv":
    x = np.transpose(x, (3, 2, 0, 1))
  return f"{module}.{_OURS_TO_HF_LEAF[kind][leaf]}", x


def from_hf(family: str, name: str, x: Any) -> tuple[str, np.ndarray]:
  """HF PyTorch name and array -> our ``/``-path and array.

  Raises:
    KeyError: the name is not in the family's table.
  """
  x = np.asarray(x)
  prefix, rel = strip_prefix(family, name)
  for rx, repl in ALIASES[family]:
    rel = rx.sub(repl, rel)
  name = f"{prefix}.{rel}" if prefix else rel
  if kind_of(family, name) == "raw":
    return name.replace(".", "/"), x
  module, leaf = _split_leaf(name, ".")
  kind = kind_of(family, module)
  if kind is None or leaf not in _HF_TO_OURS_LEAF[kind]:
    raise KeyError(f"unknown {family} parameter {name!r}")
  ours = _HF_TO_OURS_LEAF[kind][leaf]
  if ours == "kernel" and kind == "linear":
    x = x.T
  elif ours == "kernel" and kind == "conv":
    x = np.transpose(x, (2, 3, 1, 0))
  return f"{module}/{ours}".replace(".", "/"), x
