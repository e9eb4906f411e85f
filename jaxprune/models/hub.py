"""Loading: HF checkpoints (a folder or a hub name) into our NNX models.

:func:`from_pretrained` reads ``config.json`` and ``model.safetensors``
(sharded ``model.safetensors.index.json`` too) with ``safetensors.numpy``, no
torch; a folder that has only ``pytorch_model.bin`` is read with torch's
``weights_only=True`` loader where torch is installed (a pickle from the
internet can run code, so nothing else unpickles it), otherwise the error names
the safetensors alternative. A name that is not a local folder is fetched with
``huggingface_hub.snapshot_download``. Names are mapped by
:mod:`jaxprune.models.hf_names`.

Rules: every encoder parameter of the config must be in the checkpoint with
its shape; the task head and the pooler may be missing (then they are
randomly initialised, with a warning, as HF does); checkpoint entries the
model has no use for (a pretraining head, a pooler the task model lacks,
buffers such as ``position_ids``) are skipped. Everything else raises
:class:`CheckpointError` naming the file and the parameter.

Example:
  >>> import os
  >>> from jaxprune import models
  >>> path = os.path.join(os.path.dirname(__file__), "..", "..", "tests",
  ...                     "fixtures", "models", "bert")
  >>> model = models.from_pretrained(path)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import struct
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxprune.models import bert as bert_lib
from jaxprune.models import config as config_lib
from jaxprune.models import hf_names
from jaxprune.models import vit as vit_lib
from jaxprune.models.functional import FunctionalModel

__all__ = ["from_pretrained", "build", "load_tokenizer", "read_checkpoint",
           "resolve", "CheckpointError", "TASKS"]

#: Tasks and the HF architecture suffix of each.
TASKS = {"base": "Model",
         "sequence_classification": "ForSequenceClassification",
         "question_answering": "ForQuestionAnswering",
         "image_classification": "ForImageClassification"}

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt",
                    "vocab.json", "merges.txt", "special_tokens_map.json",
                    "sentencepiece.bpe.model", "added_tokens.json",
                    "preprocessor_config.json")


class CheckpointError(ValueError):
  """A checkpoint that does not fit its config (names the file and the
  parameter)."""


def build(cfg: config_lib.Config, task: str = "base", *, seed: int = 0
          ) -> nnx.Module:
  """A randomly initialised model of ``cfg`` for ``task``.

  Args:
    cfg: a :class:`BertConfig` or :class:`ViTConfig`.
    task: one of :data:`TASKS`.
    seed: init seed.

  Returns:
    The NNX module.

  Example:
    >>> from jaxprune import models
    >>> cfg = models.ViTConfig(image_size=8, patch_size=4, num_channels=1,
    ...     hidden_size=8, heads_per_layer=(2,), head_dim=4,
    ...     intermediate_sizes=(16,), num_labels=3)
    >>> type(models.build(cfg, "image_classification")).__name__
    'ViTForImageClassification'
  """
  rngs = nnx.Rngs(seed)
  if task not in TASKS:
    raise ValueError(f"`task` must be one of {sorted(TASKS)}, got {task!r}")
  if isinstance(cfg, config_lib.BertConfig):
    cls = {"base": bert_lib.BertModel,
           "sequence_classification": bert_lib.BertForSequenceClassification,
           "question_answering": bert_lib.BertForQuestionAnswering}.get(task)
  else:
    cls = {"base": vit_lib.ViTModel,
           "image_classification": vit_lib.ViTForImageClassification}.get(task)
  if cls is None:
    raise ValueError(f"task {task!r} is not available for model_type "
                     f"{cfg.model_type!r}")
  return cls(cfg, rngs=rngs)


def task_of(cfg_dict: dict[str, Any], family: str,
            num_labels: int | None) -> str:
  """The task named by ``architectures`` in ``config.json`` (else ``base``,
  or the family's classification task when ``num_labels`` is given)."""
  for arch in cfg_dict.get("architectures") or []:
    for task, suffix in TASKS.items():
      if task != "base" and arch.endswith(suffix):
        return task
  if num_labels is not None:
    return ("sequence_classification" if family == "bert"
            else "image_classification")
  return "base"


def resolve(name_or_path: str) -> str:
  """A local folder for a folder or a hub name.

  A hub name fetches ``config.json``, the safetensors (one file or the
  shards and their index) and the tokenizer files; ``pytorch_model.bin``
  only where the model has no safetensors.

  Raises:
    FileNotFoundError: a path that does not exist (anything that looks like
      a path: absolute, relative with ``./``, or an existing parent).
  """
  if os.path.isdir(name_or_path):
    return name_or_path
  looks_local = (os.path.isabs(name_or_path) or name_or_path.startswith(".")
                 or name_or_path.count("/") > 1)
  if looks_local:
    raise FileNotFoundError(f"{name_or_path}: no such model folder")
  try:
    from huggingface_hub import snapshot_download
  except ImportError as e:
    raise FileNotFoundError(
        f"{name_or_path!r} is not a local folder and huggingface_hub is not "
        "installed to fetch it") from e
  folder = snapshot_download(
      name_or_path, allow_patterns=["config.json", "*.safetensors",
                                    "model.safetensors.index.json",
                                    *_TOKENIZER_FILES])
  if not any(os.path.isfile(os.path.join(folder, f)) for f in
             ("model.safetensors", "model.safetensors.index.json")):
    # Only a PyTorch pickle on the hub: fetch it (read_checkpoint loads it
    # with torch's weights-only loader or names the safetensors way).
    folder = snapshot_download(name_or_path,
                               allow_patterns=["pytorch_model.bin"])
  return folder


# --- reading tensors ----------------------------------------------------------

_ST_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16,
              "I64": np.int64, "I32": np.int32, "I16": np.int16,
              "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
  try:
    from safetensors.numpy import load_file
    return load_file(path)
  except (TypeError, ValueError, ImportError, AttributeError):
    pass  # e.g. bfloat16, which numpy lacks: parse the format ourselves
  import ml_dtypes
  dtypes = dict(_ST_DTYPES, BF16=ml_dtypes.bfloat16)
  with open(path, "rb") as f:
    (n,) = struct.unpack("<Q", f.read(8))
    header = json.loads(f.read(n))
    data = f.read()
  out = {}
  for name, info in header.items():
    if name == "__metadata__":
      continue
    a, b = info["data_offsets"]
    arr = np.frombuffer(data[a:b], dtype=dtypes[info["dtype"]])
    out[name] = arr.reshape(info["shape"])
  return out


def _read_torch_bin(path: str) -> dict[str, np.ndarray]:
  try:
    import torch
  except ImportError:
    raise CheckpointError(
        f"{path}: only a PyTorch pickle is available and torch is not "
        "installed; jaxprune reads model.safetensors without torch. Convert "
        "it once (safetensors.torch.save_file(torch.load(p, "
        "weights_only=True), 'model.safetensors')) or download the "
        "safetensors revision of the model.") from None
  sd = torch.load(path, map_location="cpu", weights_only=True)
  return {k: v.detach().float().numpy() if v.is_floating_point()
          else v.numpy() for k, v in sd.items()}


def read_checkpoint(folder: str) -> tuple[dict[str, np.ndarray], str]:
  """All tensors of the checkpoint in ``folder`` and the file read.

  Raises:
    FileNotFoundError: no ``model.safetensors``,
      ``model.safetensors.index.json`` or ``pytorch_model.bin``.
  """
  st = os.path.join(folder, "model.safetensors")
  if os.path.isfile(st):
    return _read_safetensors(st), st
  index = os.path.join(folder, "model.safetensors.index.json")
  if os.path.isfile(index):
    with open(index) as f:
      files = sorted(set(json.load(f)["weight_map"].values()))
    out = {}
    for name in files:
      out.update(_read_safetensors(os.path.join(folder, name)))
    return out, index
  binf = os.path.join(folder, "pytorch_model.bin")
  if os.path.isfile(binf):
    return _read_torch_bin(binf), binf
  raise FileNotFoundError(
      f"{st}: no such file (nor model.safetensors.index.json or "
      "pytorch_model.bin) in the model folder")


# --- loading -----------------------------------------------------------------


def _flat(tree: Any) -> dict[str, Any]:
  return {"/".join(str(getattr(k, "key", k)) for k in path): x
          for path, x in jax.tree_util.tree_leaves_with_path(tree)}


def _optional(rel: str) -> bool:
  """May be missing from a checkpoint (randomly initialised)."""
  return rel.startswith(("pooler/", "classifier", "qa_outputs"))


def load_params(model_abstract_params: dict[str, Any], family: str,
                tensors: dict[str, np.ndarray], source: str
                ) -> tuple[dict[str, np.ndarray], list[str], list[str]]:
  """Maps HF tensors onto our flat param paths.

  Args:
    model_abstract_params: our flat ``{path: ShapeDtypeStruct}``.
    family: ``"bert"`` or ``"vit"``.
    tensors: HF name -> array.
    source: the file, for messages.

  Returns:
    ``(params, missing, skipped)``: our flat path -> float32 array for the
    ones found, our paths that may be initialised, HF names not used.

  Raises:
    CheckpointError: a required parameter is missing, an encoder parameter
      the config does not have is present, or a shape differs.
  """
  expected: dict[str, tuple[str, Any]] = {}  # rel path -> (our path, struct)
  for path, sds in model_abstract_params.items():
    _, rel = hf_names.strip_prefix(family, path.replace("/", "."))
    expected[rel.replace(".", "/")] = (path, sds)
  found, skipped = {}, []
  for name, arr in tensors.items():
    _, rel_dotted = hf_names.strip_prefix(family, name)
    try:
      rel, ours = hf_names.from_hf(family, rel_dotted, arr)
    except KeyError:
      skipped.append(name)  # a head or buffer we do not model
      continue
    if rel not in expected:
      if _optional(rel):
        skipped.append(name)
        continue
      raise CheckpointError(
          f"{source}: parameter {name!r} {tuple(arr.shape)} is not in the "
          "model the config describes (more layers, or a different "
          "architecture than config.json says?)")
    path, sds = expected[rel]
    if tuple(ours.shape) != tuple(sds.shape):
      want = hf_names.to_hf(family, path, np.zeros(sds.shape, np.float32))[1]
      raise CheckpointError(
          f"{source}: parameter {name!r} has shape {tuple(arr.shape)}, the "
          f"config implies {tuple(want.shape)}")
    found[path] = np.asarray(ours, np.float32)
  missing = [p for rel, (p, _) in expected.items() if p not in found]
  required = [p for p in missing if not _optional(
      hf_names.strip_prefix(family, p.replace("/", "."))[1].replace(".", "/"))]
  if required:
    hf = hf_names.to_hf(family, required[0], np.zeros(
        model_abstract_params[required[0]].shape))[0]
    raise CheckpointError(
        f"{source}: missing parameter {hf!r} (ours {required[0]!r}) and "
        f"{len(required) - 1} more required by the config")
  return found, missing, skipped


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
  out: dict[str, Any] = {}
  for name, x in flat.items():
    node = out
    parts = name.split("/")
    for p in parts[:-1]:
      node = node.setdefault(p, {})
    node[parts[-1]] = x
  return out


def from_pretrained(name_or_path: str, *, task: str | None = None,
                    num_labels: int | None = None, dtype: str = "float32",
                    seed: int = 0, functional: bool = True,
                    config: config_lib.Config | None = None) -> Any:
  """Loads an HF checkpoint into our model.

  Args:
    name_or_path: a folder with ``config.json`` and weights, or a hub name.
    task: one of :data:`TASKS` (default: from ``config.json``'s
      ``architectures``, or classification when ``num_labels`` is given).
    num_labels: size of the task head (a missing or differently sized head
      must be trained).
    dtype: compute dtype, ``"float32"`` or ``"bfloat16"`` (params stay
      float32).
    seed: init seed of parameters the checkpoint lacks (task head, pooler).
    functional: return a :class:`FunctionalModel` (default) rather than the
      NNX module.
    config: use this config instead of ``config.json``.

  Returns:
    The model.

  Raises:
    FileNotFoundError: missing folder, ``config.json`` or weights file.
    jaxprune.models.ConfigError: unsupported ``model_type`` or bad config.
    CheckpointError: names or shapes that do not match the config.
  """
  folder = resolve(name_or_path)
  cfg_path = os.path.join(folder, "config.json")
  if config is None:
    config = config_lib.load(folder, num_labels=num_labels, dtype=dtype)
  with open(cfg_path) as f:
    cfg_dict = json.load(f)
  if task is None:
    task = task_of(cfg_dict, config.family, config.num_labels)
  if task != "base" and not config.num_labels:
    n = num_labels or len(cfg_dict.get("id2label") or {}) or 2
    config = config.replace(num_labels=n)
  tensors, source = read_checkpoint(folder)
  abstract = nnx.eval_shape(lambda: build(config, task, seed=seed))
  graphdef, state = nnx.split(abstract, nnx.Param)
  flat_abstract = _flat(state.to_pure_dict())
  found, missing, skipped = load_params(flat_abstract, config.family,
                                        tensors, source)
  if missing:
    warnings.warn(
        f"{source}: parameters not in the checkpoint, randomly initialised "
        f"(train them before use): {missing}", stacklevel=2)
    module = build(config, task, seed=seed)
    _, init_state = nnx.split(module, nnx.Param)
    init_flat = _flat(init_state.to_pure_dict())
    found = {**{p: init_flat[p] for p in missing}, **found}
  nnx.replace_by_pure_dict(
      state, _nest({p: jnp.asarray(x) for p, x in found.items()}))
  module = nnx.merge(graphdef, state)
  if functional:
    return FunctionalModel(module, source=folder)
  return module


# --- tokenizers --------------------------------------------------------------


class FastTokenizer:
  """A ``tokenizers.Tokenizer`` (``tokenizer.json``) with the call signature
  of HF's tokenizers for the cases used here: ``tok(texts, padding=
  "max_length" | True, truncation=True, max_length=n, return_tensors="np")``
  and ``tok(texts, pairs, ...)``."""

  def __init__(self, path: str):
    from tokenizers import Tokenizer
    self._tok = Tokenizer.from_file(path)
    self.pad_token_id = self._tok.token_to_id("[PAD]") or self._tok.token_to_id(
        "<pad>") or 0

  def __len__(self) -> int:
    return self._tok.get_vocab_size()

  def __call__(self, texts, pairs=None, *, padding=False, truncation=False,
               max_length=None, return_tensors=None, **_):
    single = isinstance(texts, str)
    texts = [texts] if single else list(texts)
    tok = self._tok
    tok.no_truncation()
    tok.no_padding()
    if truncation and max_length:
      tok.enable_truncation(max_length)
    if padding == "max_length" and max_length:
      tok.enable_padding(pad_id=self.pad_token_id, length=max_length)
    elif padding:
      tok.enable_padding(pad_id=self.pad_token_id)
    enc = (tok.encode_batch(list(zip(texts, pairs))) if pairs is not None
           else tok.encode_batch(texts))
    out = {"input_ids": [e.ids for e in enc],
           "attention_mask": [e.attention_mask for e in enc],
           "token_type_ids": [e.type_ids for e in enc]}
    if return_tensors == "np":
      out = {k: np.asarray(v, np.int64) for k, v in out.items()}
    return out


def load_tokenizer(name_or_path: str) -> Any:
  """``transformers.AutoTokenizer`` (any version) where installed, else a
  :class:`FastTokenizer` over the folder's ``tokenizer.json``.

  Raises:
    FileNotFoundError: no ``transformers`` and no ``tokenizer.json``.
  """
  try:
    from transformers import AutoTokenizer
  except ImportError:
    folder = resolve(name_or_path)
    path = os.path.join(folder, "tokenizer.json")
    if not os.path.isfile(path):
      raise FileNotFoundError(
          f"{path}: no such file, and transformers (which reads other "
          "tokenizer formats) is not installed") from None
    return FastTokenizer(path)
  return AutoTokenizer.from_pretrained(name_or_path)
