"""Model configs: one frozen dataclass per family, read from and written to HF ``config.json``.

A config holds everything that fixes the shapes of the parameters, with the
per-layer sizes as tuples: ``heads_per_layer[i]`` attention heads of
``head_dim`` features and ``intermediate_sizes[i]`` FFN neurons in layer
``i``. A structurally pruned model is therefore just a smaller config
(:meth:`BertConfig.replace`). Hugging Face configs have one head count and one
FFN width for all layers and ``head_dim = hidden_size / num_attention_heads``;
:meth:`BertConfig.to_hf_dict` writes them when the sizes are uniform and
the standard fields can describe them, and :meth:`BertConfig.hf_expressible`
says whether they can.

Example:
  >>> from jaxprune.models import config
  >>> cfg = config.from_hf_dict({"model_type": "bert", "hidden_size": 64,
  ...     "num_hidden_layers": 2, "num_attention_heads": 4,
  ...     "intermediate_size": 128, "vocab_size": 100})
  >>> cfg.heads_per_layer, cfg.head_dim, cfg.intermediate_sizes
  ((4, 4), 16, (128, 128))
  >>> small = cfg.replace(heads_per_layer=(4, 2), intermediate_sizes=(128, 64))
  >>> small.hf_expressible()
  False
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Sequence

__all__ = ["BertConfig", "ViTConfig", "Config", "from_hf_dict", "load",
           "BERT_TYPES", "VIT_TYPES", "JAXPRUNE_KEY", "ConfigError"]

#: ``model_type`` values read as the BERT family (same parameter layout).
BERT_TYPES = ("bert", "roberta", "xlm-roberta", "camembert")
#: ``model_type`` values read as ViT.
VIT_TYPES = ("vit", "deit")
#: Key of our per-layer sizes inside a written ``config.json``.
JAXPRUNE_KEY = "jaxprune"

_DTYPES = ("float32", "bfloat16", "float16")


class ConfigError(ValueError):
  """A ``config.json`` that we cannot read (names the file and the field)."""


def _ints(x: Any, n: int, name: str) -> tuple[int, ...]:
  if isinstance(x, (int,)):
    return (int(x),) * n
  out = tuple(int(v) for v in x)
  if len(out) != n:
    raise ConfigError(f"`{name}` has {len(out)} entries for {n} layers")
  return out


@dataclasses.dataclass(frozen=True)
class _Common:
  """Fields shared by the families (see :class:`BertConfig`)."""

  def __post_init__(self):
    # Lists become tuples (hashable, frozen) and ``extra`` a sorted JSON string.
    object.__setattr__(self, "heads_per_layer", tuple(self.heads_per_layer))
    object.__setattr__(self, "intermediate_sizes",
                       tuple(self.intermediate_sizes))
    if not isinstance(self.extra, str):
      object.__setattr__(self, "extra", json.dumps(self.extra, sort_keys=True))
    self._check()

  def replace(self, **kwargs: Any):
    """A copy with ``kwargs`` changed (dataclasses.replace)."""
    return dataclasses.replace(self, **kwargs)

  @property
  def num_hidden_layers(self) -> int:
    return len(self.heads_per_layer)

  @property
  def num_attention_heads(self) -> int:
    """Heads per layer when every layer has the same count (HF's field).

    Raises:
      ValueError: the layers differ (use ``heads_per_layer``).
    """
    if len(set(self.heads_per_layer)) != 1:
      raise ValueError(f"layers have different head counts "
                       f"{self.heads_per_layer}; use heads_per_layer")
    return self.heads_per_layer[0]

  @property
  def intermediate_size(self) -> int:
    """FFN width when every layer has the same (HF's field).

    Raises:
      ValueError: the layers differ (use ``intermediate_sizes``).
    """
    if len(set(self.intermediate_sizes)) != 1:
      raise ValueError(f"layers have different FFN widths "
                       f"{self.intermediate_sizes}; use intermediate_sizes")
    return self.intermediate_sizes[0]

  def hf_expressible(self) -> bool:
    """Whether a standard Hugging Face config describes this model: the same
    head count and FFN width in every layer, at least one head, and
    ``head_dim * heads == hidden_size``."""
    h, i = set(self.heads_per_layer), set(self.intermediate_sizes)
    return (len(h) == 1 and len(i) == 1 and min(h) > 0
            and self.head_dim * min(h) == self.hidden_size)

  def _check(self) -> None:
    if len(self.heads_per_layer) != len(self.intermediate_sizes):
      raise ConfigError(
          f"heads_per_layer has {len(self.heads_per_layer)} layers, "
          f"intermediate_sizes {len(self.intermediate_sizes)}")
    if self.dtype not in _DTYPES:
      raise ConfigError(f"`dtype` must be one of {_DTYPES}, got {self.dtype!r}")
    if any(h < 0 for h in self.heads_per_layer) or any(
        i < 0 for i in self.intermediate_sizes):
      raise ConfigError("head counts and FFN sizes must be >= 0")
    if not isinstance(self.shared_attention_dropout, bool):
      raise ConfigError("`shared_attention_dropout` must be True or False, "
                        f"got {self.shared_attention_dropout!r}")

  def _hf_common(self) -> dict[str, Any]:
    d = json.loads(self.extra)
    d.update(model_type=self.model_type, hidden_size=self.hidden_size,
             num_hidden_layers=self.num_hidden_layers,
             num_attention_heads=(self.heads_per_layer[0]
                                  if self.hf_expressible()
                                  else max(1, self.hidden_size
                                           // max(self.head_dim, 1))),
             intermediate_size=max(self.intermediate_sizes, default=0),
             hidden_act=self.hidden_act,
             hidden_dropout_prob=self.hidden_dropout_prob,
             attention_probs_dropout_prob=self.attention_probs_dropout_prob,
             layer_norm_eps=self.layer_norm_eps)
    if self.num_labels is not None:
      d["num_labels"] = self.num_labels
      d.setdefault("id2label", {str(i): f"LABEL_{i}"
                                for i in range(self.num_labels)})
      if len(d["id2label"]) != self.num_labels:
        d["id2label"] = {str(i): f"LABEL_{i}" for i in range(self.num_labels)}
      d["label2id"] = {v: int(k) for k, v in d["id2label"].items()}
    if not self.hf_expressible():
      d["head_dim"] = self.head_dim
    d[JAXPRUNE_KEY] = {"heads_per_layer": list(self.heads_per_layer),
                       "intermediate_sizes": list(self.intermediate_sizes),
                       "head_dim": self.head_dim,
                       "shared_attention_dropout":
                           self.shared_attention_dropout}
    return d


@dataclasses.dataclass(frozen=True)
class BertConfig(_Common):
  """BERT-family encoder (BERT, RoBERTa, MiniLM).

  Attributes:
    model_type: ``"bert"`` or ``"roberta"`` (RoBERTa-style position ids and
      classification head); other names in :data:`BERT_TYPES` read as these.
    vocab_size: tokens.
    hidden_size: model width.
    heads_per_layer: attention heads per layer.
    head_dim: features per head.
    intermediate_sizes: FFN neurons per layer.
    hidden_act: ``"gelu"`` (exact), ``"gelu_new"``/``"gelu_pytorch_tanh"``
      (tanh approximation), ``"relu"``, ``"silu"``.
    hidden_dropout_prob: dropout after projections and embeddings.
    attention_probs_dropout_prob: dropout on attention weights.
    max_position_embeddings: positions.
    type_vocab_size: token types.
    layer_norm_eps: LayerNorm epsilon.
    pad_token_id: padding id (RoBERTa position ids count from it).
    num_labels: outputs of a classification head (1: regression); None for
      a bare encoder.
    classifier_dropout: dropout before the head (default hidden dropout).
    shared_attention_dropout: one attention-dropout mask of shape
      ``(query, key)`` shared by the batch's examples and the heads, as the
      HF Flax models had (``broadcast_dropout=True``); False: one per element,
      as HF PyTorch. Fine-tuning MiniLM-L6 densely on the demo task, shared
      masks scored about a point higher (docs/models.md). Written to and read from
      the ``jaxprune`` section of ``config.json``.
    dtype: compute dtype (``"float32"`` or ``"bfloat16"``); params are
      always float32.
    extra: other HF config fields as a JSON string (hashable), written back
      on export.
  """
  model_type: str = "bert"
  vocab_size: int = 30522
  hidden_size: int = 768
  heads_per_layer: tuple[int, ...] = (12,) * 12
  head_dim: int = 64
  intermediate_sizes: tuple[int, ...] = (3072,) * 12
  hidden_act: str = "gelu"
  hidden_dropout_prob: float = 0.1
  attention_probs_dropout_prob: float = 0.1
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12
  pad_token_id: int = 0
  num_labels: int | None = None
  classifier_dropout: float | None = None
  shared_attention_dropout: bool = True
  dtype: str = "float32"
  extra: str = "{}"

  @property
  def family(self) -> str:
    return "bert"

  @property
  def is_roberta(self) -> bool:
    return self.model_type != "bert"

  def to_hf_dict(self) -> dict[str, Any]:
    """The ``config.json`` content (HF fields plus our per-layer sizes)."""
    d = self._hf_common()
    d.update(vocab_size=self.vocab_size,
             max_position_embeddings=self.max_position_embeddings,
             type_vocab_size=self.type_vocab_size,
             pad_token_id=self.pad_token_id)
    if self.classifier_dropout is not None:
      d["classifier_dropout"] = self.classifier_dropout
    return d


@dataclasses.dataclass(frozen=True)
class ViTConfig(_Common):
  """ViT image encoder (ViT; DeiT checkpoints without a distillation token).

  Attributes:
    model_type: ``"vit"`` (or ``"deit"``).
    image_size: input height and width.
    patch_size: square patch side.
    num_channels: input channels (pixels are NCHW, as in HF).
    hidden_size, heads_per_layer, head_dim, intermediate_sizes, hidden_act,
    hidden_dropout_prob, attention_probs_dropout_prob, layer_norm_eps,
    num_labels, shared_attention_dropout, dtype, extra: as in
    :class:`BertConfig`.
    qkv_bias: Q/K/V projections have biases.
  """
  model_type: str = "vit"
  image_size: int = 224
  patch_size: int = 16
  num_channels: int = 3
  hidden_size: int = 768
  heads_per_layer: tuple[int, ...] = (12,) * 12
  head_dim: int = 64
  intermediate_sizes: tuple[int, ...] = (3072,) * 12
  hidden_act: str = "gelu"
  hidden_dropout_prob: float = 0.0
  attention_probs_dropout_prob: float = 0.0
  layer_norm_eps: float = 1e-12
  qkv_bias: bool = True
  num_labels: int | None = None
  shared_attention_dropout: bool = True
  dtype: str = "float32"
  extra: str = "{}"

  @property
  def family(self) -> str:
    return "vit"

  @property
  def num_patches(self) -> int:
    return (self.image_size // self.patch_size) ** 2

  def to_hf_dict(self) -> dict[str, Any]:
    """The ``config.json`` content (HF fields plus our per-layer sizes)."""
    d = self._hf_common()
    d.update(image_size=self.image_size, patch_size=self.patch_size,
             num_channels=self.num_channels, qkv_bias=self.qkv_bias)
    return d


Config = BertConfig | ViTConfig


_BERT_FIELDS = {f.name for f in dataclasses.fields(BertConfig)}
_VIT_FIELDS = {f.name for f in dataclasses.fields(ViTConfig)}
# HF fields that we compute (not kept in `extra`).
_DERIVED = {"num_attention_heads", "intermediate_size", "num_hidden_layers",
            "label2id", "architectures", "transformers_version", "torch_dtype",
            "dtype", JAXPRUNE_KEY, "head_dim", "_name_or_path"}


def from_hf_dict(d: dict[str, Any], *, num_labels: int | None = None,
                 dtype: str = "float32", source: str = "config.json"
                 ) -> Config:
  """Our config from a Hugging Face ``config.json`` dict.

  Args:
    d: the parsed ``config.json``.
    num_labels: size of a task head (overrides the file; None keeps the
      file's ``num_labels``/``id2label`` if it names a task architecture).
    dtype: compute dtype.
    source: the file name used in error messages.

  Returns:
    A :class:`BertConfig` or :class:`ViTConfig`.

  Raises:
    ConfigError: unknown ``model_type`` or a missing/inconsistent field
      (the message names ``source`` and the field).
  """
  mt = d.get("model_type")
  if mt in BERT_TYPES:
    fields, cls = _BERT_FIELDS, BertConfig
  elif mt in VIT_TYPES:
    fields, cls = _VIT_FIELDS, ViTConfig
  else:
    raise ConfigError(
        f"{source}: unsupported model_type {mt!r}; jaxprune.models reads "
        f"{sorted(BERT_TYPES + VIT_TYPES)}")
  try:
    hidden = int(d["hidden_size"])
    n_layers = int(d["num_hidden_layers"])
    ours = d.get(JAXPRUNE_KEY) or {}
    heads = ours.get("heads_per_layer", d.get("num_attention_heads"))
    inter = ours.get("intermediate_sizes", d.get("intermediate_size"))
    if heads is None:
      raise KeyError("num_attention_heads")
    if inter is None:
      raise KeyError("intermediate_size")
    heads = _ints(heads, n_layers, "heads_per_layer")
    inter = _ints(inter, n_layers, "intermediate_sizes")
    head_dim = ours.get("head_dim", d.get("head_dim"))
    if head_dim is None:
      nh = int(d["num_attention_heads"])
      if hidden % nh:
        raise ConfigError(f"{source}: hidden_size {hidden} is not a multiple "
                          f"of num_attention_heads {nh}")
      head_dim = hidden // nh
  except KeyError as e:
    raise ConfigError(f"{source}: missing field {e.args[0]!r}") from None
  except ConfigError as e:
    raise ConfigError(f"{source}: {e}") from None
  kw: dict[str, Any] = {}
  extra = {}
  for k, v in d.items():
    if k in fields and k not in ("heads_per_layer", "intermediate_sizes",
                                 "head_dim", "dtype", "extra", "num_labels"):
      kw[k] = v
    elif k not in _DERIVED and k not in fields:
      extra[k] = v
  if "shared_attention_dropout" in ours:
    kw["shared_attention_dropout"] = ours["shared_attention_dropout"]
  if num_labels is None and "id2label" in d and _is_task(d):
    num_labels = len(d["id2label"])
  if num_labels is None and "num_labels" in d and _is_task(d):
    num_labels = int(d["num_labels"])
  if cls is BertConfig and kw.get("pad_token_id") is None:
    kw.pop("pad_token_id", None)
  if cls is BertConfig and kw.get("classifier_dropout") is None:
    kw.pop("classifier_dropout", None)
  if num_labels is not None and "id2label" in extra and len(
      extra["id2label"]) != num_labels:
    del extra["id2label"]
  return cls(heads_per_layer=heads, intermediate_sizes=inter,
             head_dim=int(head_dim), num_labels=num_labels, dtype=dtype,
             extra=json.dumps(extra, sort_keys=True), **kw)


def _is_task(d: dict[str, Any]) -> bool:
  archs = d.get("architectures") or []
  return any(a.endswith(("ForSequenceClassification", "ForImageClassification",
                         "ForQuestionAnswering")) for a in archs) or (
                             JAXPRUNE_KEY in d)


def load(folder: str, **kwargs: Any) -> Config:
  """Reads ``folder/config.json`` (see :func:`from_hf_dict` for ``kwargs``).

  Raises:
    FileNotFoundError: no ``config.json`` in ``folder``.
    ConfigError: as :func:`from_hf_dict`.
  """
  path = os.path.join(folder, "config.json")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: no such file (a model folder needs "
                            "config.json and model.safetensors)")
  with open(path) as f:
    try:
      d = json.load(f)
    except json.JSONDecodeError as e:
      raise ConfigError(f"{path}: not valid JSON ({e})") from None
  return from_hf_dict(d, source=path, **kwargs)


def per_layer(values: Sequence[int]) -> tuple[int, ...]:
  """``values`` as a tuple of ints."""
  return tuple(int(v) for v in values)
