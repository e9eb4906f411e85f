"""Our own Flax NNX Transformers, loaded from and saved as HF checkpoints.

* :mod:`.config`: :class:`BertConfig`, :class:`ViTConfig` (per-layer head
  counts and FFN widths).
* :mod:`.bert`: BERT/RoBERTa/MiniLM encoder, sequence classification and
  regression, extractive QA. :mod:`.vit`: ViT/DeiT image classification.
* :mod:`.hf_names`: the HF PyTorch <-> our parameter-name tables.
* :mod:`.hub`: :func:`from_pretrained` (a folder or a hub name; safetensors,
  or ``pytorch_model.bin`` through torch's weights-only loader),
  :func:`load_tokenizer`.
* :mod:`.export`: :func:`save_pretrained` (an HF folder that ``transformers``
  loads).
* :mod:`.functional`: :class:`FunctionalModel`, a module as a pure
  ``(params, inputs) -> outputs`` function for optax-style training loops.

Nothing here imports ``transformers`` (tokenizers load it lazily).
"""

from jaxprune.models.config import BertConfig, ViTConfig, ConfigError
from jaxprune.models.bert import (BertModel, BertForSequenceClassification,
                                  BertForQuestionAnswering)
from jaxprune.models.vit import ViTModel, ViTForImageClassification
from jaxprune.models.functional import FunctionalModel
from jaxprune.models.hub import (from_pretrained, load_tokenizer, build,
                                 CheckpointError)
from jaxprune.models.export import save_pretrained

__all__ = ["BertConfig", "ViTConfig", "ConfigError", "BertModel",
           "BertForSequenceClassification", "BertForQuestionAnswering",
           "ViTModel", "ViTForImageClassification", "FunctionalModel",
           "from_pretrained", "load_tokenizer", "build", "CheckpointError",
           "save_pretrained"]
